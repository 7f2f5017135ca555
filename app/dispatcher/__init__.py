"""The dispatcher process: lanes (a bot, a webhook) taken through leases and sent for concurrently
(runner.py), within Telegram's rates (rates.py). What a lane sends is its sender's business
(app.campaigns.delivery, app.webhooks.delivery); app.workers puts them together."""

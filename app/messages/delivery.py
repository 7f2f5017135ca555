"""The dispatcher: sends queued messages through the Telegram Bot API, fairly and within Telegram's rates.

- Only tenants flagged with pending messages are visited, active ones only (a suspended tenant's
  messages wait; a deleted tenant's are gone with it).
- Tenants take turns, one message each per turn (round robin), so a large campaign does not hold up
  a small one.
- Each bot stays under TELEGRAM_RATE_PER_BOT, each chat under TELEGRAM_RATE_PER_CHAT (sliding
  windows kept in this process: the scheduler has one leader; a request counts while in flight and
  from the moment its answer came back), and a bot told to wait (429 retry_after) waits.
- Each message is claimed with one atomic update (queued -> sending) before it is sent, so two
  dispatcher runs never send the same message. A message whose send outcome is unknown (the process
  died while sending) is marked failed, never sent twice.
- A permanent failure refunds the message's messagesPerMonth unit and emits `message.failed`; a
  campaign with no message left to send is completed (or failed) and emits an event.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from limits import RateLimitItem, parse

from app import crypto
from app.campaigns.models import Campaign
from app.clock import utcnow
from app.media.models import MediaChunk, MediaFile
from app.telegram.client import PermanentError, RetryAfter, TelegramClient, TelegramError
from app.telegram_accounts.models import TelegramAccount
from app.tenancy.context import tenant_scope
from app.tenants.models import Tenant
from app.usage import service as usage
from app.webhooks.events import emit

from .models import Message

log = logging.getLogger("app.dispatch")

STALE_SENDING = timedelta(minutes=10)
ClientFactory = Callable[[TelegramAccount], TelegramClient]


class RateWindow:
    """At most `amount` requests per `seconds`, counted as Telegram counts them: a request in flight
    counts, and a finished one counts from the moment its answer came back (by then it had arrived),
    so the latency of a request can never squeeze one more into Telegram's window."""

    def __init__(self, amount: int, seconds: float):
        self.amount = amount
        self.seconds = seconds
        self.in_flight = 0
        self.finished: deque[float] = deque()

    def free(self, now: float) -> bool:
        while self.finished and self.finished[0] <= now - self.seconds:
            self.finished.popleft()
        return self.in_flight + len(self.finished) < self.amount

    def start(self) -> None:
        self.in_flight += 1

    def finish(self, now: float, sent: bool = True) -> None:
        self.in_flight -= 1
        if sent:
            self.finished.append(now)


class _RateState:
    """Rate windows and pauses of this process's bots and chats."""

    def __init__(self) -> None:
        self.windows: dict[str, RateWindow] = {}
        self.paused_until: dict[str, float] = {}
        self.lock = threading.Lock()

    def window(self, key: str, rate: RateLimitItem) -> RateWindow:
        if key not in self.windows:
            self.windows[key] = RateWindow(rate.amount, rate.get_expiry())
        return self.windows[key]

    def paused(self, bot: str) -> bool:
        return self.paused_until.get(bot, 0.0) > time.monotonic()

    def pause(self, bot: str, seconds: float) -> None:
        self.paused_until[bot] = time.monotonic() + seconds


_rates = _RateState()


def reset_rates() -> None:
    """Forget every rate window and pause (tests; a new leader starts fresh anyway)."""
    global _rates
    _rates = _RateState()


def client_for(account: TelegramAccount) -> TelegramClient:
    config = current_app.config
    return TelegramClient(
        crypto.decrypt(account.token_encrypted),
        account.api_base_url or config["TELEGRAM_API_BASE"],
        timeout=config["TELEGRAM_TIMEOUT"],
        max_retries=config["TELEGRAM_RETRIES"],
        backoff=config["TELEGRAM_RETRY_BACKOFF_MS"] / 1000,
    )


class Run:
    """One pass of the dispatcher over the tenants with pending messages."""

    def __init__(self, now: datetime, client_factory: ClientFactory) -> None:
        config = current_app.config
        self.now = now
        self.client_factory = client_factory
        self.bot_rate = parse(config["TELEGRAM_RATE_PER_BOT"])
        self.chat_rate = parse(config["TELEGRAM_RATE_PER_CHAT"])
        self.max_attempts = config["MESSAGE_MAX_ATTEMPTS"]
        self.accounts: dict[Any, TelegramAccount | None] = {}
        self.clients: dict[Any, TelegramClient] = {}
        self.campaigns: dict[Any, set[Any]] = {}  # tenant id -> campaigns touched in this run
        self.counts = {"sent": 0, "failed": 0, "retried": 0, "deferred": 0}

    # -- one message ------------------------------------------------------------------------------

    def _account(self, account_id: Any) -> TelegramAccount | None:
        if account_id not in self.accounts:
            self.accounts[account_id] = TelegramAccount.objects(id=account_id).first()
        return self.accounts[account_id]

    def _client(self, account: TelegramAccount) -> TelegramClient:
        if account.id not in self.clients:
            self.clients[account.id] = self.client_factory(account)
        return self.clients[account.id]

    def _windows(self, bot: str, chat: str) -> list[RateWindow] | None:
        """Take a place in the bot's and the chat's windows, or None when either is full (or paused)."""
        with _rates.lock:
            windows = [_rates.window(bot, self.bot_rate), _rates.window(f"{bot}:{chat}", self.chat_rate)]
            now = time.monotonic()
            if _rates.paused(bot) or not all(window.free(now) for window in windows):
                return None
            for window in windows:
                window.start()
            return windows

    @staticmethod
    def _done(windows: list[RateWindow], sent: bool) -> None:
        with _rates.lock:
            now = time.monotonic()
            for window in windows:
                window.finish(now, sent)

    def _touch(self, message: Message) -> None:
        self.campaigns.setdefault(message.tenant_id, set()).add(message.campaign_id)

    @staticmethod
    def _event(message: Message, error: str) -> dict[str, Any]:
        return {
            "messageId": str(message.id),
            "campaignId": str(message.campaign_id),
            "chat": message.chat,
            "error": error[:500],
        }

    def _fail(self, message: Message, error: str) -> None:
        done = Message.objects(id=message.id, status="sending").update_one(
            set__status="failed", set__error=error[:500], set__failed_at=utcnow()
        )
        if done:
            usage.refund("messagesPerMonth", period=usage.period_of(message.queued_at))
            emit("message.failed", self._event(message, error))
            self.counts["failed"] += 1

    def _requeue(self, message: Message, delay: float, error: str | None = None) -> None:
        Message.objects(id=message.id, status="sending").update_one(
            set__status="queued", set__not_before=utcnow() + timedelta(seconds=delay), set__error=error
        )

    def _send(self, client: TelegramClient, message: Message) -> dict[str, Any]:
        if message.media_id is None:
            return client.send_message(message.chat, message.text, message.parse_mode)
        media = MediaFile.objects(id=message.media_id, complete=True).first()
        if media is None:
            raise PermanentError("the campaign's media file was deleted")
        data = b"".join(chunk.data for chunk in MediaChunk.objects(media_id=media.id).order_by("n"))
        if media.content_type.startswith("image/"):
            return client.send_photo(message.chat, data, media.filename, message.text)
        return client.send_document(message.chat, data, media.filename, message.text)

    def process(self, message: Message) -> None:
        """Send one message of the tenant in context, if its bot and chat may send now."""
        account = self._account(message.telegram_account_id)
        if account is None or not account.active:
            if Message.objects(id=message.id, status="queued").update_one(set__status="sending"):
                self._touch(message)
                self._fail(message, "the campaign's bot was removed or deactivated")
            return
        bot = str(account.id)
        windows = self._windows(bot, message.chat)
        if windows is None:
            self.counts["deferred"] += 1
            return
        claimed = Message.objects(id=message.id, status="queued").modify(
            new=True, set__status="sending", set__sending_at=utcnow(), inc__attempts=1
        )
        if claimed is None:
            self._done(windows, sent=False)
            return  # another run took it
        self._touch(claimed)
        Campaign.objects(id=claimed.campaign_id, status="scheduled").update_one(set__status="sending")
        failure: TelegramError | None = None
        try:
            result = self._send(self._client(account), claimed)
        except TelegramError as exc:
            failure = exc
        finally:
            self._done(windows, sent=True)  # whatever happened, the request may have reached Telegram
        if failure is None:
            Message.objects(id=claimed.id, status="sending").update_one(
                set__status="sent",
                set__sent_at=utcnow(),
                set__telegram_message_id=(result or {}).get("message_id"),
                unset__error=True,
            )
            self.counts["sent"] += 1
        elif isinstance(failure, RetryAfter):
            _rates.pause(bot, failure.retry_after)
            self._requeue(claimed, failure.retry_after)
            self.counts["retried"] += 1
        elif isinstance(failure, PermanentError):
            self._fail(claimed, failure.description)
        elif claimed.attempts >= self.max_attempts:
            self._fail(claimed, f"gave up after {claimed.attempts} attempts: {failure.description}")
        else:
            self._requeue(claimed, 2**claimed.attempts, failure.description)
            self.counts["retried"] += 1

    # -- campaigns and tenants --------------------------------------------------------------------

    def finish_campaigns(self, tenant_id: Any) -> None:
        """Complete (or fail) the campaigns of the tenant in context that have nothing left to send."""
        for campaign_id in self.campaigns.pop(tenant_id, set()):
            if Message.objects(campaign_id=campaign_id, status__in=("queued", "sending")).first() is not None:
                continue
            sent = Message.objects(campaign_id=campaign_id, status="sent").count()
            failed = Message.objects(campaign_id=campaign_id, status="failed").count()
            status = "completed" if sent else "failed"
            moved = Campaign.objects(id=campaign_id, status__in=("sending", "scheduled")).update_one(
                set__status=status, set__completed_at=utcnow()
            )
            if moved:
                emit(f"campaign.{status}", {"campaignId": str(campaign_id), "sent": sent, "failed": failed})

    def fail_stale_sends(self) -> int:
        """Messages left 'sending' by a dispatcher that died: their outcome is unknown, so never resend."""
        stale = list(
            Message.objects(status="sending", sending_at__lt=self.now - STALE_SENDING).only(
                "id", "tenant_id", "campaign_id", "chat"
            )
        )
        error = "delivery outcome unknown: the dispatcher stopped while sending"
        for message in stale:
            self._touch(message)
            if Message.objects(id=message.id, status="sending").update_one(
                set__status="failed", set__error=error, set__failed_at=utcnow()
            ):
                # No refund: the message may well have reached the chat.
                emit("message.failed", self._event(message, error))
        return len(stale)


def _due(tenant: Tenant, now: datetime, limit: int) -> list[Message]:
    with tenant_scope(tenant):
        due = Message.objects(status="queued").filter(
            __raw__={"$or": [{"notBefore": None}, {"notBefore": {"$lte": now}}]}
        )
        return list(due.order_by("queued_at", "id").limit(limit))


def dispatch(now: datetime | None = None, client_factory: ClientFactory = client_for) -> dict[str, int]:
    """Send what is due, tenants taking turns, up to DISPATCH_BATCH messages."""
    now = now or utcnow()
    run = Run(now, client_factory)
    budget = current_app.config["DISPATCH_BATCH"]
    tenants = list(Tenant.objects(pending="messages", status="active"))
    queues = {tenant.id: _due(tenant, now, budget) for tenant in tenants}
    by_id = {tenant.id: tenant for tenant in tenants}
    position = 0
    while budget > 0 and any(position < len(queue) for queue in queues.values()):
        for tenant_id, queue in queues.items():
            if position < len(queue) and budget > 0:
                with tenant_scope(by_id[tenant_id]):
                    run.process(queue[position])
                budget -= 1
        position += 1
    for tenant in tenants:
        with tenant_scope(tenant):
            run.fail_stale_sends()
            Tenant.clear_pending(tenant.id, "messages")
            if Message.objects(status__in=("queued", "sending")).first() is not None:
                Tenant.mark_pending(tenant.id, "messages")
            run.finish_campaigns(tenant.id)
    return {"tenants": len(tenants), **run.counts}

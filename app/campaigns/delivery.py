"""A bot's sender: delivers the bot's queued messages through the Telegram Bot API, as fast as Telegram
allows and no faster, while its dispatcher holds the bot's lane (app.dispatcher.runner).

- Messages are claimed in small batches (queued -> sending, one update for the batch), about a
  second's worth, in the order of their position in their campaign: a bot's campaigns take turns,
  so a small campaign is not held up by a large one.
- Up to TELEGRAM_CONCURRENCY requests of the bot are in flight at once, within its windows
  (app.dispatcher.rates): TELEGRAM_RATE_PER_BOT (TELEGRAM_RATE_PAID_BROADCAST for a bot with paid
  broadcasts), TELEGRAM_RATE_PER_CHAT per private chat and TELEGRAM_RATE_PER_GROUP per group or
  channel. A 429 pauses this bot only. Connections are kept alive between sends and turns.
- Outcomes are written in batches (one bulk write): sent, with Telegram's message id; queued again
  with a later `notBefore` (a 429, a 5xx or a connection that could not be made, up to
  MESSAGE_MAX_ATTEMPTS); failed, when Telegram refuses for good (the unit goes back to its month
  and `message.failed` is emitted) or when a send's outcome is unknown (no answer came back, or
  the dispatcher died while sending: no refund, and never sent again).
- A campaign with nothing left to send is completed (or failed) and emits its event; one cancelled
  or deleted meanwhile sends nothing more than what was already in flight.
- A suspended tenant's messages wait; the due messages of a bot that is deleted or deactivated fail.
- A media file goes up once per bot; later sends name the file id Telegram gave it.
"""

from __future__ import annotations

import logging
import math
import queue
from collections import Counter, defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from bson import ObjectId
from flask import Flask
from pymongo import UpdateOne

from app import clock, crypto, metrics
from app.dispatcher.rates import Rate, Throttle
from app.dispatcher.runner import Lane, Turn
from app.media.models import MediaChunk, MediaFile
from app.messages.models import UNFINISHED, Message
from app.signals import notify, notify_many
from app.telegram.client import (
    OutcomeUnknown,
    PermanentError,
    RetryAfter,
    ServerRefused,
    TelegramClient,
    TelegramError,
    TransientError,
    bot_client,
)
from app.telegram_accounts.models import TelegramAccount
from app.tenancy.context import tenant_scope
from app.tenants.models import Tenant
from app.tenants.plans import period_of
from app.usage import service as usage

from .models import Campaign

log = logging.getLogger("app.dispatch")

RECHECK = 5.0  # seconds between looks at the tenant's status and the bot's settings during a turn
CAMPAIGNS_RECHECK = 1.0  # seconds between looks for campaigns cancelled or deleted while being sent
HOLD = 2.0  # a bot told to wait longer than this gives its lane up until then
DEFER = 1.0  # a message whose chat is busy longer than this goes back to the queue until then
FLUSH_EVERY = 0.25  # seconds an outcome may wait to be written with others
SUSPENDED_RECHECK = timedelta(minutes=1)  # a suspended tenant's lanes look again after this
UNKNOWN = "delivery outcome unknown"
FIELDS = ("id", "position", "campaign_id", "chat", "text", "parse_mode", "media_id", "attempts", "queued_at")


@dataclass(slots=True)
class Outgoing:
    """A claimed message, as the sender needs it."""

    id: ObjectId
    position: int
    campaign_id: ObjectId
    chat: str
    text: str
    parse_mode: str | None
    media_id: ObjectId | None
    attempts: int
    queued_at: datetime

    @classmethod
    def from_stored(cls, raw: dict[str, Any]) -> Outgoing:
        return cls(
            raw["_id"],
            raw.get("position", 0),
            raw["campaignId"],
            raw["chat"],
            raw["text"],
            raw.get("parseMode"),
            raw.get("mediaId"),
            raw.get("attempts", 0),
            raw["queuedAt"],
        )

    def event(self, error: str) -> dict[str, Any]:
        return {
            "messageId": str(self.id),
            "campaignId": str(self.campaign_id),
            "chat": self.chat,
            "error": error,
        }


@dataclass(slots=True)
class Media:
    kind: str  # "photo" or "document"
    filename: str
    content: bytes | str  # the file, or the id Telegram gave it when this bot first sent it


def stale_after(config: Any) -> timedelta:
    """How long a send can take at most (connect and read timeouts of every try, and the backoffs):
    a message 'sending' for longer was left by a dispatcher that stopped, and its outcome is unknown."""
    tries = config["TELEGRAM_RETRIES"] + 1
    backoff = config["TELEGRAM_RETRY_BACKOFF_MS"] / 1000 * 2**tries
    return timedelta(seconds=2 * config["TELEGRAM_TIMEOUT"] * tries + backoff + 30)


class BotSender:
    """Everything kept for one bot between its turns: the client and its connections, the rate
    windows, the file ids of media already sent."""

    def __init__(self, app: Flask, lane: Lane):
        config = app.config
        self.app = app
        self.account_id = ObjectId(lane.key)
        self.tenant_id = lane.tenant_id
        self.rate = Rate.parse(config["TELEGRAM_RATE_PER_BOT"])
        self.paid_rate = Rate.parse(config["TELEGRAM_RATE_PAID_BROADCAST"])
        self.throttle = Throttle(
            self.rate,
            Rate.parse(config["TELEGRAM_RATE_PER_CHAT"]),
            Rate.parse(config["TELEGRAM_RATE_PER_GROUP"]),
        )
        self.concurrency = config["TELEGRAM_CONCURRENCY"]
        self.max_attempts = config["MESSAGE_MAX_ATTEMPTS"]
        self.batch = config["DISPATCH_BATCH"]
        self.stale_after = stale_after(config)
        self.client: TelegramClient | None = None
        self.account_stamp: Any = None
        self.paid_broadcast = False
        self.file_ids: dict[ObjectId, str] = {}

    def run(self, turn: Turn) -> datetime | None:
        tenant = Tenant.objects(id=self.tenant_id).first()
        if tenant is None:
            return None  # deleted, and its messages with it
        if not tenant.is_active:
            return clock.utcnow() + SUSPENDED_RECHECK
        with tenant_scope(tenant):
            return _BotTurn(self, turn).run()

    def close(self) -> None:
        if self.client is not None:
            self.client.close()

    def refresh(self) -> bool:
        """Load the bot's settings if they changed; return whether it can send."""
        stamp = TelegramAccount.objects(id=self.account_id).only("updated_at", "active").as_pymongo().first()
        if stamp is None or not stamp.get("active", True):
            return False
        if stamp.get("updatedAt") != self.account_stamp:
            account = TelegramAccount.objects(id=self.account_id).first()
            config = self.app.config
            self.close()
            self.client = bot_client(
                crypto.decrypt(account.token_encrypted),
                account.api_base_url,
                config,
                max_retries=config["TELEGRAM_RETRIES"],
                connections=self.concurrency,
            )
            self.paid_broadcast = account.paid_broadcast
            self.throttle.set_bot_rate(self.paid_rate if account.paid_broadcast else self.rate)
            self.account_stamp = stamp.get("updatedAt")
        return True

    @property
    def claim_size(self) -> int:
        """About a second's worth of messages: few are lost as 'outcome unknown' if the process dies."""
        rate = self.throttle.bot.rate
        return max(10, min(self.batch, math.ceil(rate.amount / rate.seconds)))

    def deliver(self, message: Outgoing, media: Media | None) -> dict[str, Any]:
        """Send one message (in a thread of the turn's pool: no database here)."""
        paid = self.paid_broadcast
        client = self.client
        assert client is not None, "deliver() follows a refresh() that found the bot"
        if media is None:
            return client.send_message(message.chat, message.text, message.parse_mode, paid_broadcast=paid)
        send = client.send_photo if media.kind == "photo" else client.send_document
        return send(
            message.chat, media.content, media.filename, message.text, message.parse_mode, paid_broadcast=paid
        )


class _BotTurn:
    """One turn of a bot's sender: claim, send within the rates, write the outcomes, until nothing
    is due or the turn ends."""

    def __init__(self, sender: BotSender, turn: Turn):
        self.sender = sender
        self.turn = turn
        self.buffer: deque[Outgoing] = deque()
        self.held: Counter[ObjectId] = Counter()  # campaign -> its messages buffered or in flight
        self.in_flight = 0
        self.results: queue.SimpleQueue[tuple[Outgoing, Media | None, Any, float]] = queue.SimpleQueue()
        self.writes: list[UpdateOne] = []
        self.sent = 0  # messages among `writes` that Telegram accepted
        self.failures: list[tuple[Outgoing, str, bool, str]] = []
        self.finished: set[ObjectId] = set()
        self.first_pending = 0.0
        self.sending_campaigns: set[ObjectId] = set()
        self.media: dict[ObjectId, Media | None] = {}
        self.pool: ThreadPoolExecutor | None = None
        self.cursor: int | None = None  # where the next claim starts (None: from the start)

    # -- the turn -----------------------------------------------------------------------------------

    def run(self) -> datetime | None:
        self._fail_stale()
        if not self.sender.refresh():
            self._fail_due("the campaign's bot was removed or deactivated")
            return self._next_due()
        with ThreadPoolExecutor(self.sender.concurrency, thread_name_prefix="telegram") as pool:
            self.pool = pool
            try:
                self._loop()
            finally:
                while self.in_flight:
                    self._collect(timeout=1.0)
                self._drop_stopped()
                self._release(list(self.buffer), clock.utcnow())
                self._flush()
        return self._next_due()

    def _loop(self) -> None:
        throttle = self.sender.throttle
        exhausted = False
        checked = looked = clock.monotonic()
        while not self.turn.ending():
            now = clock.monotonic()
            if now - looked > CAMPAIGNS_RECHECK:
                self._drop_stopped()
                looked = now
            if now - checked > RECHECK:
                if not (self._tenant_active() and self.sender.refresh()):
                    return
                throttle.prune(now)
                self.cursor = None
                checked = now
            if throttle.paused_until - now > HOLD:
                return
            size = self.sender.claim_size
            if not exhausted and len(self.buffer) <= min(size // 2, self.sender.concurrency):
                wanted = size - len(self.buffer)
                exhausted = self._claim(wanted) < wanted
            wait = self._start_sends(now)
            if self.first_pending and now - self.first_pending >= FLUSH_EVERY:
                self._flush()
            if not self.buffer and not self.in_flight:
                if exhausted:
                    return
                continue
            self._collect(timeout=min(wait, FLUSH_EVERY))

    def _tenant_active(self) -> bool:
        status = Tenant.objects(id=self.sender.tenant_id).only("status").as_pymongo().first()
        return status is not None and status.get("status", "active") == "active"

    # -- claims -------------------------------------------------------------------------------------

    def _due(self, wanted: int, since: int | None) -> list[Outgoing]:
        """The first `wanted` due messages of the bot in order, from position `since` on when given."""
        due = Message.objects(
            telegram_account_id=self.sender.account_id, status="queued", not_before__lte=clock.utcnow()
        )
        if since is not None:
            due = due.filter(position__gte=since, position__lte=since + wanted)
        return [
            Outgoing.from_stored(raw)
            for raw in due.order_by("position").limit(wanted).only(*FIELDS).as_pymongo()
        ]

    def _claim(self, wanted: int) -> int:
        """Claim up to `wanted` due messages of the bot, in order; return how many were due.

        After a claim, what is due next starts at the position where it stopped: the next claim looks
        at the positions from there (a bounded read however long the queue), and at the whole queue
        when that falls short or when the cursor was reset (every RECHECK seconds, and after messages
        went back to the queue), so that a new campaign or a retry, lower in position, gets its turn.
        """
        candidates = self._due(wanted, self.cursor) if self.cursor is not None else []
        if len(candidates) < wanted:
            candidates = self._due(wanted, None)
        self.cursor = candidates[-1].position if len(candidates) == wanted else None
        now = clock.utcnow()
        if not candidates:
            return 0
        ids = [message.id for message in candidates]
        mine = Message.objects(id__in=ids, status="queued")
        taken = mine.update(set__status="sending", set__sending_at=now, set__claimed_by=self.turn.holder)
        if taken < len(ids):  # cancelled meanwhile, or taken by a dispatcher whose lease lapsed
            got = set(
                Message.objects(
                    id__in=ids, status="sending", claimed_by=self.turn.holder, sending_at=now
                ).scalar("id")
            )
            candidates = [message for message in candidates if message.id in got]
        new = {message.campaign_id for message in candidates} - self.sending_campaigns
        if new:
            Campaign.objects(id__in=list(new), status="scheduled").update(set__status="sending")
            self.sending_campaigns |= new
        self.buffer.extend(candidates)
        self.held.update(message.campaign_id for message in candidates)
        return len(ids)

    def _drop_stopped(self) -> None:
        """Send nothing more of a campaign cancelled or deleted meanwhile: the messages claimed for it
        are cancelled and their units go back to the month they were reserved in."""
        held = {message.campaign_id for message in self.buffer}
        if not held:
            return
        status = {
            row["_id"]: row["status"]
            for row in Campaign.objects(id__in=list(held)).only("status").as_pymongo()
        }
        stopped = {campaign for campaign in held if status.get(campaign) not in ("scheduled", "sending")}
        if not stopped:
            return
        dropped: dict[tuple[str, bool], list[ObjectId]] = defaultdict(list)
        for message in [message for message in self.buffer if message.campaign_id in stopped]:
            dropped[(period_of(message.queued_at), message.campaign_id not in status)].append(message.id)
            self.held[message.campaign_id] -= 1
        self.buffer = deque(message for message in self.buffer if message.campaign_id not in stopped)
        for (period, deleted), ids in dropped.items():
            cancelled = Message.objects(id__in=ids, status="sending", claimed_by=self.turn.holder).update(
                set__status="cancelled", set__failed_at=clock.utcnow()
            )
            # A deleted campaign took its messages along: only this dispatcher knows these were not sent.
            usage.refund("messagesPerMonth", len(ids) if deleted else cancelled, period=period)

    # -- sending ------------------------------------------------------------------------------------

    def _start_sends(self, now: float) -> float:
        """Start every buffered message its windows allow; return how long until one more may start."""
        throttle = self.sender.throttle
        waiting: deque[Outgoing] = deque()
        deferred: list[tuple[Outgoing, float]] = []
        soonest = math.inf
        while self.buffer:
            if self.in_flight >= self.sender.concurrency:
                break
            bot_wait = throttle.bot_wait(now)
            if bot_wait:
                soonest = bot_wait
                break
            message = self.buffer.popleft()
            chat_wait = throttle.chat_wait(message.chat, now)
            if chat_wait > DEFER and chat_wait != math.inf:
                deferred.append((message, chat_wait))
            elif chat_wait:
                waiting.append(message)
                soonest = min(soonest, chat_wait)
            else:
                media = self._media(message)
                if media is False:
                    self.held[message.campaign_id] -= 1
                    continue
                throttle.start(message.chat)
                self.in_flight += 1
                assert self.pool is not None, "sends start only inside run()"
                self.pool.submit(self._send, message, media)
        self.buffer = waiting + self.buffer
        for message, chat_wait in deferred:
            self._release([message], clock.utcnow() + timedelta(seconds=chat_wait))
        return soonest

    def _media(self, message: Outgoing) -> Media | Literal[False] | None:
        """The message's media to send, None without one, False when it is gone (the message fails)."""
        if message.media_id is None:
            return None
        if message.media_id not in self.media:
            stored = MediaFile.objects(id=message.media_id, complete=True).first()
            if stored is None:
                self.media[message.media_id] = None
            else:
                content = self.sender.file_ids.get(stored.id) or b"".join(
                    chunk.data for chunk in MediaChunk.objects(media_id=stored.id).order_by("n")
                )
                kind = "photo" if stored.content_type.startswith("image/") else "document"
                self.media[stored.id] = Media(kind, stored.filename, content)
        media = self.media[message.media_id]
        if media is None:
            self._fail(message, "the campaign's media file was deleted", refund=True, reason="media_deleted")
            return False
        return media

    def _send(self, message: Outgoing, media: Media | None) -> None:
        try:
            outcome: Any = self.sender.deliver(message, media)
        except TelegramError as exc:
            outcome = exc
        except Exception:
            log.exception("send failed unexpectedly", extra={"message": str(message.id)})
            outcome = OutcomeUnknown("the dispatcher failed while sending")
        self.results.put((message, media, outcome, clock.monotonic()))

    def _collect(self, timeout: float) -> None:
        """Take in the answers that came back, waiting up to `timeout` for the first."""
        try:
            answer = self.results.get(timeout=max(timeout, 0.0)) if timeout > 0 else self.results.get_nowait()
        except queue.Empty:
            return
        while True:
            self._answered(*answer)
            try:
                answer = self.results.get_nowait()
            except queue.Empty:
                return

    def _answered(self, message: Outgoing, media: Media | None, outcome: Any, at: float) -> None:
        throttle = self.sender.throttle
        self.in_flight -= 1
        # A connection that could not be made never reached Telegram: it does not count.
        reached = not (isinstance(outcome, TransientError) and "could not connect" in outcome.description)
        throttle.finish(message.chat, at, reached)
        now = clock.utcnow()
        if not isinstance(outcome, TelegramError):
            self._write(
                message,
                {
                    "$set": {"status": "sent", "sentAt": now, "telegramMessageId": outcome.get("message_id")},
                    "$unset": {"error": ""},
                    "$inc": {"attempts": 1},
                },
            )
            self.sent += 1
            if media is not None and message.media_id is not None and isinstance(media.content, bytes):
                self._remember_file(message.media_id, media, outcome)
            self.finished.add(message.campaign_id)
        elif isinstance(outcome, RetryAfter):
            metrics.TELEGRAM_RETRY_AFTER.inc()
            throttle.pause(at + outcome.retry_after)
            self._requeue(message, now + timedelta(seconds=outcome.retry_after), None)
        elif isinstance(outcome, PermanentError):
            reason = "egress_refused" if isinstance(outcome, ServerRefused) else "refused"
            self._fail(message, outcome.description, refund=True, reason=reason)
        elif isinstance(outcome, OutcomeUnknown):
            self._fail(message, f"{UNKNOWN}: {outcome.description}", refund=False, reason="unknown")
        elif message.attempts + 1 >= self.sender.max_attempts:
            error = f"gave up after {message.attempts + 1} attempts: {outcome.description}"
            self._fail(message, error, refund=True, reason="gave_up")
        else:
            self._requeue(message, now + timedelta(seconds=2 ** (message.attempts + 1)), outcome.description)
        self.held[message.campaign_id] -= 1

    def _remember_file(self, media_id: ObjectId, media: Media, result: dict[str, Any]) -> None:
        """Keep the id Telegram gave the uploaded file: later sends of this bot name it instead."""
        if media.kind == "photo":
            sizes = result.get("photo")
            file = sizes[-1] if isinstance(sizes, list) and sizes else None
        else:
            file = result.get("document")
        file_id = file.get("file_id") if isinstance(file, dict) else None
        if isinstance(file_id, str) and file_id:
            self.sender.file_ids[media_id] = file_id
            self.media[media_id] = Media(media.kind, media.filename, file_id)

    # -- outcomes -----------------------------------------------------------------------------------

    def _mine(self, message_id: ObjectId) -> dict[str, Any]:
        return {
            "_id": message_id,
            "tenantId": self.sender.tenant_id,
            "status": "sending",
            "claimedBy": self.turn.holder,
        }

    def _write(self, message: Outgoing, update: dict[str, Any]) -> None:
        self.writes.append(UpdateOne(self._mine(message.id), update))
        self._pending()

    def _pending(self) -> None:
        if not self.first_pending:
            self.first_pending = clock.monotonic()
        if len(self.writes) + len(self.failures) >= self.sender.claim_size:
            self._flush()

    def _requeue(self, message: Outgoing, not_before: datetime, error: str | None) -> None:
        self.cursor = None
        changes: dict[str, Any] = {"status": "queued", "notBefore": not_before}
        update: dict[str, Any] = {"$set": changes, "$inc": {"attempts": 1}}
        if error is None:
            update["$unset"] = {"error": ""}
        else:
            changes["error"] = error[:500]
        self._write(message, update)

    def _release(self, messages: list[Outgoing], not_before: datetime) -> None:
        """Give claimed messages that were never sent back to the queue (no attempt counted)."""
        self.cursor = None
        for message in messages:
            self.writes.append(
                UpdateOne(self._mine(message.id), {"$set": {"status": "queued", "notBefore": not_before}})
            )
            self.held[message.campaign_id] -= 1
        if messages:
            self._pending()

    def _fail(self, message: Outgoing, error: str, refund: bool, reason: str) -> None:
        """Fail a message (written with the next flush); `reason` is its metrics label."""
        self.failures.append((message, error[:500], refund, reason))
        self._pending()

    def _flush(self) -> None:
        """Write the outcomes: one bulk write, one update per failure; then finish campaigns."""
        if self.writes:
            Message._get_collection().bulk_write(self.writes, ordered=False)
            self.writes = []
            metrics.MESSAGES_SENT.inc(self.sent)
            self.sent = 0
        failures, self.failures = self.failures, []
        self._record_failures(
            [
                (message, error, refund, reason, self._mine(message.id))
                for message, error, refund, reason in failures
            ]
        )
        self.first_pending = 0.0
        done = {campaign for campaign in self.finished if self.held[campaign] <= 0}
        self.finished -= done
        finish_campaigns(done)

    def _record_failures(self, failures: list[tuple[Outgoing, str, bool, str, dict[str, Any]]]) -> None:
        """Fail each message still matching its filter; give units back, emit message.failed."""
        refunds: Counter[str] = Counter()
        events = []
        now = clock.utcnow()
        for message, error, refund, reason, where in failures:
            update = {"$set": {"status": "failed", "error": error, "failedAt": now}, "$inc": {"attempts": 1}}
            if Message._get_collection().update_one(where, update).modified_count:
                metrics.MESSAGES_FAILED.labels(reason).inc()
                if refund:
                    refunds[period_of(message.queued_at)] += 1
                events.append(message.event(error))
                self.finished.add(message.campaign_id)
        for period, units in refunds.items():
            usage.refund("messagesPerMonth", units, period=period)
        notify_many("message.failed", events)

    def _fail_due(self, error: str) -> None:
        """Fail every due message of a bot that cannot send any more."""
        while self._claim(self.sender.batch):
            messages, self.buffer = list(self.buffer), deque()
            for message in messages:
                self._fail(message, error, refund=True, reason="bot_unavailable")
                self.held[message.campaign_id] -= 1
            self._flush()

    def _fail_stale(self) -> None:
        """Fail the messages a dispatcher left 'sending' longer than any send takes: it stopped, and
        whether Telegram got them is unknown, so they are never sent again (and not refunded)."""
        cutoff = clock.utcnow() - self.sender.stale_after
        stale = Message.objects(
            telegram_account_id=self.sender.account_id, status="sending", sending_at__lt=cutoff
        )
        error = f"{UNKNOWN}: the dispatcher stopped while sending"
        failures = []
        for raw in stale.only(*FIELDS).as_pymongo():
            message = Outgoing.from_stored(raw)
            where = {
                "_id": message.id,
                "tenantId": self.sender.tenant_id,
                "status": "sending",
                "sendingAt": {"$lt": cutoff},
            }
            failures.append((message, error, False, "unknown", where))
        if failures:
            self._record_failures(failures)
            finish_campaigns(self.finished)
            self.finished = set()

    def _next_due(self) -> datetime | None:
        """When the bot has work next: its first queued message, or a send that will turn stale."""
        mine = Message.objects(telegram_account_id=self.sender.account_id)
        queued = mine.filter(status="queued").order_by("not_before").only("not_before").as_pymongo().first()
        sending = mine.filter(status="sending").order_by("sending_at").only("sending_at").as_pymongo().first()
        times = []
        if queued is not None:
            times.append(queued["notBefore"])
        if sending is not None:
            times.append(sending["sendingAt"] + self.sender.stale_after)
        if not times:
            return None
        # Another dispatcher may take the lane next: not before this bot's window is empty.
        quiet = clock.utcnow() + timedelta(seconds=self.sender.throttle.quiet_after(clock.monotonic()))
        return max(min(times), quiet)


def finish_campaigns(campaign_ids: set[ObjectId]) -> None:
    """Complete (or fail) the campaigns of the tenant in context that have nothing left to send."""
    for campaign_id in campaign_ids:
        if Message.objects(campaign_id=campaign_id, status__in=UNFINISHED).only("id").first():
            continue
        counts = defaultdict(int)
        pipeline = [{"$group": {"_id": "$status", "n": {"$sum": 1}}}]
        for row in Message.objects(campaign_id=campaign_id).aggregate(pipeline):
            counts[row["_id"]] = row["n"]
        sent, failed = counts["sent"], counts["failed"]
        status = "completed" if sent else "failed"
        moved = Campaign.objects(id=campaign_id, status__in=("sending", "scheduled")).update_one(
            set__status=status, set__completed_at=clock.utcnow()
        )
        if moved:
            notify(f"campaign.{status}", {"campaignId": str(campaign_id), "sent": sent, "failed": failed})

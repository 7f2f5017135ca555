"""Rate windows as Telegram counts them, for one bot and the chats it sends to.

A request counts while it is in flight and, once answered, from the moment its answer came back (by
then it had arrived), so the latency of one request can never squeeze another into Telegram's window.
One process sends for a bot at a time (the bot's lease), so its windows are exact. Chats' windows
are dropped once they are empty, so memory follows the chats of the last window, not every chat ever
messaged.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from limits import parse

from app.telegram.sandbox import chat_kind


@dataclass(frozen=True)
class Rate:
    amount: int
    seconds: float

    @classmethod
    def parse(cls, text: str) -> Rate:
        """Read a rate such as '30/second' (a setting)."""
        item = parse(text)
        return cls(item.amount, float(item.get_expiry()))


class RateWindow:
    """At most `rate.amount` requests per `rate.seconds`."""

    def __init__(self, rate: Rate):
        self.rate = rate
        self.in_flight = 0
        self.finished: deque[float] = deque()

    def wait(self, now: float) -> float:
        """Seconds until one more request fits: 0 now, math.inf until a request in flight returns."""
        while self.finished and self.finished[0] <= now - self.rate.seconds:
            self.finished.popleft()
        if self.in_flight + len(self.finished) < self.rate.amount:
            return 0.0
        if not self.finished:
            return math.inf
        return self.finished[0] + self.rate.seconds - now

    def idle(self, now: float) -> bool:
        """Tell whether nothing counts in the window any more."""
        self.wait(now)
        return self.in_flight == 0 and not self.finished

    def start(self) -> None:
        self.in_flight += 1

    def finish(self, now: float, reached: bool) -> None:
        self.in_flight -= 1
        if reached:
            self.finished.append(now)


class Throttle:
    """The windows of one bot: its own, one per chat it sent to recently, and Telegram's pauses.
    Used by one thread (the bot's sender), so it needs no lock."""

    def __init__(self, bot: Rate, chat: Rate, group: Rate):
        self.bot = RateWindow(bot)
        self.chat_rate = chat
        self.group_rate = group
        self.chats: dict[str, RateWindow] = {}
        self.paused_until = 0.0

    def set_bot_rate(self, rate: Rate) -> None:
        """Use another rate for the bot (paid broadcasts switched on or off)."""
        self.bot.rate = rate

    def _chat(self, chat: str) -> RateWindow:
        window = self.chats.get(chat)
        if window is None:
            rate = self.chat_rate if chat_kind(chat) == "private" else self.group_rate
            window = self.chats[chat] = RateWindow(rate)
        return window

    def bot_wait(self, now: float) -> float:
        """Seconds until the bot may send again (math.inf: when a request in flight returns)."""
        return max(self.paused_until - now, self.bot.wait(now), 0.0)

    def chat_wait(self, chat: str, now: float) -> float:
        """Seconds until `chat` may get another message (math.inf: when a request in flight returns)."""
        window = self.chats.get(chat)
        return window.wait(now) if window is not None else 0.0

    def start(self, chat: str) -> None:
        self.bot.start()
        self._chat(chat).start()

    def finish(self, chat: str, now: float, reached: bool = True) -> None:
        self.bot.finish(now, reached)
        self._chat(chat).finish(now, reached)

    def pause(self, until: float) -> None:
        """Telegram said to wait (429 retry_after): no request of this bot before `until`."""
        self.paused_until = max(self.paused_until, until)

    def quiet_after(self, now: float) -> float:
        """Seconds until the bot's own window is empty: another process may then send for it."""
        if self.bot.in_flight:
            return self.bot.rate.seconds
        if not self.bot.finished:
            return max(self.paused_until - now, 0.0)
        return max(self.bot.finished[-1] + self.bot.rate.seconds - now, self.paused_until - now, 0.0)

    def prune(self, now: float) -> None:
        """Forget the chats whose windows are empty."""
        for chat in [chat for chat, window in self.chats.items() if window.idle(now)]:
            del self.chats[chat]

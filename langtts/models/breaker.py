"""Circuit breaking for the endpoints of a model: a failing endpoint is cooled down and probed before it returns.

An endpoint opens (leaves the rotation) after `failures` consecutive transport failures (connection errors, 5xx),
or after one timeout: a hung endpoint would otherwise cost the full timeout on every request it gets. After
`cooldown_s` it is due for a probe (`GET /models`, which must list the model); it closes when the probe succeeds
and cools down again when it fails. Written by hand (about forty lines) rather than taken from a breaker library:
the pool needs the state to *choose* a replica across threads and event loops, which the call-wrapping breakers
(pybreaker, aiobreaker) do not offer, and LiteLLM's router would bring its own retries and cache.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

State = Literal["closed", "open", "due"]


@dataclass
class Breaker:
    """The breaker of one endpoint; not thread-safe on its own (the pool holds its lock)."""

    failures_to_open: int = 3
    cooldown_s: float = 30.0
    failures: int = 0
    open_until: float | None = None
    probing: bool = False
    opened: int = 0

    def state(self, now: float | None = None) -> State:
        """`closed` (in rotation), `open` (cooling down or being probed) or `due` (cooled down, not yet probed)."""
        if self.open_until is None:
            return "closed"
        if self.probing or (time.monotonic() if now is None else now) < self.open_until:
            return "open"
        return "due"

    def success(self) -> None:
        self.failures, self.open_until, self.probing = 0, None, False

    def failure(self, *, timeout: bool = False) -> bool:
        """Count a failure; returns True when this one opened the breaker."""
        self.failures += 1
        if self.open_until is None and (timeout or self.failures >= self.failures_to_open):
            self.cool_down()
            return True
        return False

    def cool_down(self) -> None:
        self.open_until, self.probing = time.monotonic() + self.cooldown_s, False
        self.opened += 1

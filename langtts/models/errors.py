"""Errors raised by the model pool: a failed call is an error, never a silently wrong answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from langtts.cost import UnknownModelError

__all__ = [
    "ErrorKind",
    "ModelCallError",
    "ModelNotServedError",
    "PoolError",
    "StructuredOutputError",
    "UnknownModelError",
]

ErrorKind = Literal["timeout", "unavailable", "rate_limited", "http_4xx", "bad_response"]
"""Why a call failed: `timeout`, `unavailable` (connection error or 5xx), `rate_limited` (429), `http_4xx` (a
request the server rejects; never retried) and `bad_response` (an answer the pool cannot read)."""


class PoolError(Exception):
    """Base class of the model pool's errors (also raised for a bad pool configuration)."""


class ModelNotServedError(PoolError):
    """A configured model that its server does not serve (see `ModelPool.check`)."""

    def __init__(self, problems: Mapping[str, str]) -> None:
        self.problems = dict(problems)
        super().__init__("; ".join(self.problems.values()))


class ModelCallError(PoolError):
    """A chat call that failed after the pool's retries."""

    def __init__(
        self,
        model: str,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        endpoint: str | None = None,
        attempts: int = 1,
    ) -> None:
        self.model = model
        self.kind: ErrorKind = kind
        self.message = message
        self.status = status
        self.endpoint = endpoint
        self.attempts = attempts
        super().__init__(str(self))

    @property
    def retryable(self) -> bool:
        return self.kind in ("timeout", "unavailable", "rate_limited")

    def __str__(self) -> str:
        status = f" HTTP {self.status}" if self.status is not None else ""
        where = f" at {self.endpoint}" if self.endpoint else ""
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        return f"{self.model}{where}: {self.kind}{status}{tries}: {self.message}"


class StructuredOutputError(PoolError, ValueError):
    """A structured answer that does not parse for the schema; carries what is needed to ask for a repair."""

    def __init__(self, model: str, raw: str, message: str, *, finish_reason: str | None = None) -> None:
        self.model = model
        self.raw = raw
        self.message = message
        self.finish_reason = finish_reason
        truncated = " (the answer was cut at max_tokens)" if finish_reason == "length" else ""
        super().__init__(f"{model} gave invalid structured output{truncated}: {message}")

"""Usage ledger: one record per pool call (cache hits and failures included), with aggregations by tag."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from langtts.files import write_text_atomic


@dataclass(frozen=True)
class CallRecord:
    """One call through the pool. `tags` name its context, e.g. node, graph, run, purpose. `endpoint`: where it
    was answered (for a failed call: its last attempt); `failed_endpoints`: where each failed attempt went.
    `cached_prompt_tokens`: the prompt tokens the server answered from its own prompt (prefix) cache, as it
    reported them (`usage.prompt_tokens_details.cached_tokens`: llama-server, vLLM); 0 when it reports none. A hit
    of langtts's call cache keeps the figure of the call it replays (as it keeps its tokens and latency)."""

    model: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    cached: bool
    flops: float
    finish_reason: str | None
    timestamp: float
    tags: Mapping[str, str] = field(default_factory=dict)
    sample_index: int = 0
    retries: int = 0
    endpoint: str | None = None
    error: str | None = None
    failed_endpoints: tuple[str, ...] = ()
    cached_prompt_tokens: int = 0


class Usage(BaseModel):
    """Totals over some records, e.g. a run's cost of one purpose over its sessions (sum them with `+`).
    `flops` counts every answered call; `flops_spent` only those not cached. `cached_prompt_tokens`: the part of
    `prompt_tokens` the servers took from their prompt cache (`cached_prompt_share`)."""

    model_config = ConfigDict(frozen=True, serialize_by_alias=True)

    calls: int = 0
    hits: int = Field(  # `cache_hits` in run files
        default=0, validation_alias=AliasChoices("hits", "cache_hits"), serialization_alias="cache_hits"
    )
    errors: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    flops: float = 0.0
    flops_spent: float = 0.0
    latency_s: float = 0.0
    cached_prompt_tokens: int = 0

    @property
    def misses(self) -> int:
        return self.calls - self.hits

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    @property
    def cached_prompt_share(self) -> float | None:
        """The share of prompt tokens the servers answered from their prompt cache; None without prompt tokens."""
        return self.cached_prompt_tokens / self.prompt_tokens if self.prompt_tokens else None

    def __add__(self, other: Usage) -> Usage:
        totals: dict[str, Any] = {name: getattr(self, name) + getattr(other, name) for name in Usage.model_fields}
        return Usage(**totals)

    @classmethod
    def of(cls, records: Iterable[CallRecord]) -> Usage:
        calls = hits = errors = retries = prompt = completion = cached_prompt = 0
        flops = spent = latency = 0.0
        for r in records:
            calls += 1
            hits += r.cached
            errors += r.error is not None
            retries += r.retries
            prompt += r.prompt_tokens
            completion += r.completion_tokens
            cached_prompt += r.cached_prompt_tokens
            flops += r.flops
            spent += 0.0 if r.cached else r.flops
            latency += r.latency_s
        return cls(
            calls=calls,
            hits=hits,
            errors=errors,
            retries=retries,
            prompt_tokens=prompt,
            completion_tokens=completion,
            flops=flops,
            flops_spent=spent,
            latency_s=latency,
            cached_prompt_tokens=cached_prompt,
        )


@dataclass(frozen=True)
class EndpointUsage:
    """What one endpoint did: requests sent to it (cache hits excluded), how many failed, and the tokens and
    seconds of those it answered."""

    requests: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0

    @property
    def answered(self) -> int:
        return self.requests - self.failures

    @property
    def failure_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


class UsageLedger:
    """An append-only, thread-safe list of `CallRecord`s."""

    def __init__(self, records: Iterable[CallRecord] = ()) -> None:
        self._lock = threading.Lock()
        self._records: list[CallRecord] = list(records)

    def append(self, record: CallRecord) -> None:
        with self._lock:
            self._records.append(record)

    def records(self, **tag_filter: str) -> list[CallRecord]:
        """The records whose tags match every `tag=value` given."""
        with self._lock:
            records = list(self._records)
        return [r for r in records if all(r.tags.get(k) == v for k, v in tag_filter.items())]

    def totals(self, **tag_filter: str) -> Usage:
        return Usage.of(self.records(**tag_filter))

    def by(self, tag: str, **tag_filter: str) -> dict[str | None, Usage]:
        """Totals per value of `tag` (records without it under `None`), e.g. `by("node", graph="g1")`."""
        groups: dict[str | None, list[CallRecord]] = {}
        for r in self.records(**tag_filter):
            groups.setdefault(r.tags.get(tag), []).append(r)
        return {value: Usage.of(group) for value, group in groups.items()}

    def by_endpoint(self, **tag_filter: str) -> dict[str, EndpointUsage]:
        """Requests, failures, tokens and latency per endpoint (base URL), failed attempts of retried calls
        included."""
        rows: dict[str, list[tuple[bool, int, int, float]]] = {}
        for r in self.records(**tag_filter):
            for endpoint in r.failed_endpoints:
                rows.setdefault(endpoint, []).append((True, 0, 0, 0.0))
            if r.error is None and not r.cached and r.endpoint is not None:
                rows.setdefault(r.endpoint, []).append((False, r.prompt_tokens, r.completion_tokens, r.latency_s))
        return {
            endpoint: EndpointUsage(len(row), *(sum(column) for column in zip(*row, strict=True)))
            for endpoint, row in rows.items()
        }

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def to_jsonl(self, path: str | Path) -> None:
        """Write every record as one JSON line (the file is replaced)."""
        lines = [json.dumps(dataclasses.asdict(r) | {"tags": dict(r.tags)}) for r in self.records()]
        write_text_atomic(path, "".join(line + "\n" for line in lines))

    @classmethod
    def from_jsonl(cls, path: str | Path) -> UsageLedger:
        with Path(path).open(encoding="utf-8") as f:
            return cls(_record(json.loads(line)) for line in f if line.strip())


def _record(data: dict) -> CallRecord:
    return CallRecord(**data | {"failed_endpoints": tuple(data.get("failed_endpoints", ()))})


_ACTIVE: ContextVar[tuple[UsageLedger, ...]] = ContextVar("langtts_active_ledgers", default=())


@contextmanager
def track(ledger: UsageLedger | None = None) -> Iterator[UsageLedger]:
    """Also record the pool calls made inside this context (this task or thread) into `ledger`.

    >>> with track() as usage:
    ...     pool.chat("smollm2-135m", messages)  # doctest: +SKIP
    >>> usage.totals().flops  # doctest: +SKIP
    """
    ledger = UsageLedger() if ledger is None else ledger
    token = _ACTIVE.set((*_ACTIVE.get(), ledger))
    try:
        yield ledger
    finally:
        _ACTIVE.reset(token)


def active_ledgers() -> tuple[UsageLedger, ...]:
    """The ledgers opened with `track` in the current context."""
    return _ACTIVE.get()

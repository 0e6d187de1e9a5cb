"""The call cache: answers stored in SQLite (WAL), keyed by request and sample index.

A request key hashes the model identity (id, served name, fingerprint), the messages and the sampling
parameters. The cache key adds the sample index, so parallel samples of one request stay distinct while a
repeated search replays them. The file is safe to share between threads and processes: WAL journal, a busy
timeout, one short statement per operation, and `INSERT OR IGNORE` (the first answer stored for a key wins).
Top log-probabilities and the server's prompt-cache figure (`cached_prompt_tokens`, stored when not 0) live in
tables of their own, so files written before they existed load unchanged and older langtts versions can keep
writing to a shared file.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langtts.serve.cache import cache_dir

TopLogprobs = tuple[dict[str, float], ...]
"""For each generated token, its most likely alternatives: token -> log-probability."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    finish_reason TEXT,
    latency_s REAL NOT NULL,
    endpoint TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS top_logprobs (
    key TEXT PRIMARY KEY,
    top_logprobs TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS prompt_cache (
    key TEXT PRIMARY KEY,
    cached_prompt_tokens INTEGER NOT NULL
)
"""


def canonical_json(obj: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8 kept as is."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def request_key(request: Mapping[str, Any]) -> str:
    """sha256 of a request (model identity, messages, sampling parameters), without the sample index."""
    return hashlib.sha256(canonical_json(request).encode()).hexdigest()


def cache_key(request_key: str, sample_index: int) -> str:
    """The cache key of sample `sample_index` of a request."""
    payload = canonical_json({"request": request_key, "sample_index": sample_index})
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class CachedAnswer:
    """What the cache keeps of a successful call (a `ChatResult` adds how the pool obtained it)."""

    model: str
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None
    latency_s: float
    endpoint: str | None = None
    top_logprobs: TopLogprobs | None = None
    cached_prompt_tokens: int = 0  # of prompt_tokens, those the server took from its prompt (prefix) cache


class CallCache:
    """SQLite call cache; `CallCache(None)` (or `CallCache.disabled()`) stores nothing."""

    def __init__(self, path: str | Path | None, *, busy_timeout_s: float = 30.0) -> None:
        self.path = None if path is None else Path(path).expanduser()
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self.hits = 0
        self.misses = 0
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock:
                self._connection()

    @classmethod
    def default(cls) -> CallCache:
        """`calls.sqlite` in the user cache root (:func:`langtts.serve.cache.cache_dir`)."""
        return cls(cache_dir() / "calls.sqlite")

    @classmethod
    def disabled(cls) -> CallCache:
        return cls(None)

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def _connection(self) -> sqlite3.Connection:
        """The open connection (call with the lock held); reopened in a forked child."""
        if self.path is None:
            raise RuntimeError("a disabled CallCache has no connection")
        if self._conn is None or self._pid != os.getpid():
            conn = sqlite3.connect(
                self.path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    _SELECT = (
        "SELECT model, text, prompt_tokens, completion_tokens, finish_reason, latency_s, endpoint, "
        "top_logprobs.top_logprobs, prompt_cache.cached_prompt_tokens FROM calls "
        "LEFT JOIN top_logprobs USING (key) LEFT JOIN prompt_cache USING (key) WHERE calls.key = ?"
    )

    def get(self, key: str) -> CachedAnswer | None:
        if self.path is None:
            return None
        with self._lock:
            row = self._connection().execute(self._SELECT, (key,)).fetchone()
            if row is None:
                self.misses += 1
                return None
            self.hits += 1
        model, text, prompt_tokens, completion_tokens, finish_reason, latency_s, endpoint, top, cached_prompt = row
        return CachedAnswer(
            model,
            text,
            prompt_tokens,
            completion_tokens,
            finish_reason,
            latency_s,
            endpoint,
            top_logprobs=None if top is None else tuple(json.loads(top)),
            cached_prompt_tokens=cached_prompt or 0,
        )

    def put(self, key: str, answer: CachedAnswer) -> None:
        """Store an answer unless the key already has one."""
        if self.path is None:
            return
        row = (
            key,
            answer.model,
            answer.text,
            answer.prompt_tokens,
            answer.completion_tokens,
            answer.finish_reason,
            answer.latency_s,
            answer.endpoint,
            time.time(),
        )
        insert = "INSERT OR IGNORE INTO calls VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        with self._lock:
            conn = self._connection()
            if answer.top_logprobs is None and not answer.cached_prompt_tokens:
                conn.execute(insert, row)
                return
            conn.execute("BEGIN IMMEDIATE")  # the answer and its extra tables are stored together
            try:
                if conn.execute(insert, row).rowcount == 0:  # the key had an answer: keep it as it is
                    conn.execute("COMMIT")
                    return
                if answer.top_logprobs is not None:
                    top = json.dumps(answer.top_logprobs)
                    conn.execute("INSERT OR IGNORE INTO top_logprobs VALUES (?, ?)", (key, top))
                if answer.cached_prompt_tokens:
                    conn.execute("INSERT OR IGNORE INTO prompt_cache VALUES (?, ?)", (key, answer.cached_prompt_tokens))
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def __len__(self) -> int:
        if self.path is None:
            return 0
        with self._lock:
            return self._connection().execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def __repr__(self) -> str:
        where = str(self.path) if self.path is not None else "disabled"
        return f"CallCache({where}, hits={self.hits}, misses={self.misses})"

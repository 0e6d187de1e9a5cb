"""CallCache and request/cache keys."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from langtts.models import CachedAnswer, CallCache
from langtts.models.cache import cache_key, request_key


def answer(text: str = "42", latency: float = 1.5) -> CachedAnswer:
    return CachedAnswer("m", text, 10, 2, "stop", latency, "http://x/v1")


def test_store_and_replay(tmp_path: Path) -> None:
    cache = CallCache(tmp_path / "calls.sqlite")
    key = cache_key(request_key({"q": 1}), 0)
    assert cache.get(key) is None
    cache.put(key, answer())
    assert cache.get(key) == answer()
    assert (cache.hits, cache.misses, len(cache)) == (1, 1, 1)


def test_first_answer_wins(tmp_path: Path) -> None:
    cache = CallCache(tmp_path / "calls.sqlite")
    cache.put("k", answer("first"))
    cache.put("k", answer("second"))
    assert cache.get("k").text == "first"


def test_keys_separate_sample_indices_and_requests() -> None:
    base = request_key({"model": "m", "messages": [{"role": "user", "content": "q"}], "temperature": 0.7})
    assert base == request_key({"temperature": 0.7, "messages": [{"content": "q", "role": "user"}], "model": "m"})
    assert base != request_key({"model": "m", "messages": [{"role": "user", "content": "q"}], "temperature": 0.8})
    assert len({cache_key(base, i) for i in range(5)}) == 5


def test_never_returns_another_sample_index(tmp_path: Path) -> None:
    cache = CallCache(tmp_path / "calls.sqlite")
    base = request_key({"q": "same"})
    cache.put(cache_key(base, 0), answer("sample 0"))
    assert cache.get(cache_key(base, 1)) is None
    cache.put(cache_key(base, 1), answer("sample 1"))
    assert cache.get(cache_key(base, 0)).text == "sample 0"
    assert cache.get(cache_key(base, 1)).text == "sample 1"


def test_disabled_cache_stores_nothing() -> None:
    cache = CallCache.disabled()
    cache.put("k", answer())
    assert cache.get("k") is None
    assert not cache.enabled and len(cache) == 0


def test_default_location_follows_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANGTTS_CACHE_DIR", str(tmp_path / "dir"))
    cache = CallCache.default()
    assert cache.path == tmp_path / "dir" / "calls.sqlite"
    assert cache.path.exists()


def test_wal_mode(tmp_path: Path) -> None:
    cache = CallCache(tmp_path / "calls.sqlite")
    with cache._lock:
        assert cache._connection().execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_two_instances_share_one_file(tmp_path: Path) -> None:
    a, b = CallCache(tmp_path / "calls.sqlite"), CallCache(tmp_path / "calls.sqlite")
    a.put("k", answer("from a"))
    assert b.get("k").text == "from a"


def test_many_threads(tmp_path: Path) -> None:
    caches = [CallCache(tmp_path / "calls.sqlite") for _ in range(2)]
    barrier = threading.Barrier(8)

    def work(worker: int) -> None:
        cache = caches[worker % 2]
        barrier.wait()
        for i in range(50):
            cache.put(f"k{i}", answer(f"{i}"))  # every worker writes the same keys
            assert cache.get(f"k{i}").text == f"{i}"

    with ThreadPoolExecutor(8) as executor:
        list(executor.map(work, range(8)))
    assert len(caches[0]) == 50


def _write_from_process(cache: CallCache, worker: int) -> None:
    for i in range(100):
        key = f"shared{i}" if i % 2 else f"w{worker}-{i}"
        cache.put(key, CachedAnswer("m", key, 1, 1, "stop", 0.1))
        assert cache.get(key).text == key


def test_several_processes(tmp_path: Path) -> None:
    cache = CallCache(tmp_path / "calls.sqlite")  # opened here, reopened in each forked child
    cache.put("parent", answer())
    fork = multiprocessing.get_context("fork")
    procs = [fork.Process(target=_write_from_process, args=(cache, w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(cache) == 1 + 50 + 3 * 50
    assert cache.get("shared1").text == "shared1"


def test_top_logprobs_round_trip(tmp_path: Path) -> None:
    cache = CallCache(tmp_path / "calls.sqlite")
    top = ({"A": -0.1, " B": -2.5}, {"\n": -0.01})
    cache.put("k", CachedAnswer("m", "A\n", 3, 2, "length", 0.2, "http://x/v1", top))
    cache.put("k", CachedAnswer("m", "other", 3, 2, "length", 0.2, "http://x/v1", ({"C": -1.0},)))
    assert cache.get("k") == CachedAnswer("m", "A\n", 3, 2, "length", 0.2, "http://x/v1", top)
    cache.put("plain", answer())
    assert cache.get("plain").top_logprobs is None


def test_cached_prompt_tokens_round_trip(tmp_path: Path) -> None:
    cache = CallCache(tmp_path / "calls.sqlite")
    cache.put("k", CachedAnswer("m", "A", 32, 5, "stop", 0.2, None, cached_prompt_tokens=31))
    cache.put("k", CachedAnswer("m", "B", 32, 5, "stop", 0.2, None, cached_prompt_tokens=7))  # the first one wins
    assert cache.get("k") == CachedAnswer("m", "A", 32, 5, "stop", 0.2, None, cached_prompt_tokens=31)
    top = ({"A": -0.1},)
    cache.put("both", CachedAnswer("m", "A", 3, 1, "stop", 0.2, None, top, cached_prompt_tokens=2))
    assert (cache.get("both").top_logprobs, cache.get("both").cached_prompt_tokens) == (top, 2)
    cache.put("plain", answer())
    assert cache.get("plain").cached_prompt_tokens == 0


def test_files_without_top_logprobs_load(tmp_path: Path) -> None:
    path = tmp_path / "calls.sqlite"
    old = sqlite3.connect(path)  # the file as langtts wrote it before log-probabilities were cached
    old.execute(
        "CREATE TABLE calls (key TEXT PRIMARY KEY, model TEXT NOT NULL, text TEXT NOT NULL, prompt_tokens INTEGER "
        "NOT NULL, completion_tokens INTEGER NOT NULL, finish_reason TEXT, latency_s REAL NOT NULL, endpoint TEXT, "
        "created REAL NOT NULL)"
    )
    old.execute("INSERT INTO calls VALUES ('k', 'm', '42', 10, 2, 'stop', 1.5, 'http://x/v1', 0)")
    old.commit()
    cache = CallCache(path)
    assert cache.get("k") == answer()
    cache.put("new", CachedAnswer("m", "A", 1, 1, "length", 0.1, None, ({"A": -0.5},)))
    assert cache.get("new").top_logprobs == ({"A": -0.5},)
    old.execute("INSERT INTO calls VALUES ('older', 'm', 'x', 1, 1, 'stop', 0.1, NULL, 0)")  # old writers still work
    old.commit()
    assert cache.get("older").text == "x"


def test_a_replayed_answer_reports_the_prompt_cache_to_callbacks() -> None:
    from langtts.models.replay import CachedChatModel

    cached = CachedChatModel(answer=CachedAnswer("m", "A", 32, 5, "stop", 0.2, cached_prompt_tokens=31), model_name="m")
    assert cached.invoke("q").usage_metadata["input_token_details"] == {"cache_read": 31}
    plain = CachedChatModel(answer=answer(), model_name="m")
    assert "input_token_details" not in plain.invoke("q").usage_metadata

"""UsageLedger aggregation, JSONL and the `track` context."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from langtts.models import CallRecord, EndpointUsage, Usage, UsageLedger, track
from langtts.models.ledger import active_ledgers


def record(node: str | None, *, cached: bool = False, flops: float = 100.0, error: str | None = None) -> CallRecord:
    tags = {"graph": "g1", "purpose": "answer"} | ({"node": node} if node else {})
    return CallRecord(
        model="m",
        prompt_tokens=0 if error else 10,
        completion_tokens=0 if error else 5,
        latency_s=0.5,
        cached=cached,
        flops=0.0 if error else flops,
        finish_reason=None if error else "stop",
        timestamp=1.0,
        tags=tags,
        retries=1 if error else 0,
        error=error,
    )


@pytest.fixture
def ledger() -> UsageLedger:
    return UsageLedger([record("a"), record("a", cached=True), record("b", flops=300.0), record("b", error="boom")])


def test_totals(ledger: UsageLedger) -> None:
    total = ledger.totals()
    assert (total.calls, total.hits, total.misses, total.errors, total.retries) == (4, 1, 3, 1, 1)
    assert (total.prompt_tokens, total.completion_tokens, total.tokens) == (30, 15, 45)
    assert total.flops == 500.0
    assert total.flops_spent == 400.0  # the cache hit cost nothing
    assert total.latency_s == 2.0


def test_by_tag_and_filter(ledger: UsageLedger) -> None:
    per_node = ledger.by("node")
    assert set(per_node) == {"a", "b"}
    expected = Usage(calls=2, hits=1, prompt_tokens=20, completion_tokens=10, flops=200.0, latency_s=1.0)
    assert per_node["a"] == expected.model_copy(update={"flops_spent": 100.0})
    assert per_node["b"].errors == 1
    assert ledger.totals(node="b").flops == 300.0
    assert ledger.by("node", graph="other") == {}
    ledger.append(record(None))
    assert ledger.by("node")[None].calls == 1
    assert ledger.by("purpose")["answer"].calls == 5


def test_jsonl_round_trip(ledger: UsageLedger, tmp_path: Path) -> None:
    path = tmp_path / "usage" / "calls.jsonl"
    ledger.to_jsonl(path)
    assert len(path.read_text().splitlines()) == 4
    assert UsageLedger.from_jsonl(path).records() == ledger.records()


def test_thread_safe_appends() -> None:
    ledger = UsageLedger()
    with ThreadPoolExecutor(8) as executor:
        list(executor.map(lambda i: ledger.append(record(str(i % 4))), range(1000)))
    assert len(ledger) == 1000
    assert sum(u.calls for u in ledger.by("node").values()) == 1000


def test_track_nests_and_follows_tasks() -> None:
    with track() as outer:
        with track() as inner:
            assert active_ledgers() == (outer, inner)
        assert active_ledgers() == (outer,)

        async def in_task() -> tuple[UsageLedger, ...]:
            return active_ledgers()

        assert asyncio.run(in_task()) == (outer,)
    assert active_ledgers() == ()


def test_by_endpoint(tmp_path: Path) -> None:
    a, b = "http://a/v1", "http://b/v1"
    ledger = UsageLedger(
        [
            CallRecord("m", 10, 2, 0.5, False, 1.0, "stop", 0.0, endpoint=a, retries=1, failed_endpoints=(b,)),
            CallRecord("m", 10, 2, 0.5, True, 1.0, "stop", 0.0, endpoint=a),  # a cache hit: no request
            CallRecord("m", 0, 0, 2.0, False, 0.0, None, 0.0, endpoint=b, error="timeout", failed_endpoints=(b, b)),
        ]
    )
    assert ledger.by_endpoint() == {
        a: EndpointUsage(requests=1, failures=0, prompt_tokens=10, completion_tokens=2, latency_s=0.5),
        b: EndpointUsage(requests=3, failures=3),
    }
    assert ledger.by_endpoint()[b].failure_rate == 1.0
    ledger.to_jsonl(tmp_path / "l.jsonl")
    assert UsageLedger.from_jsonl(tmp_path / "l.jsonl").records() == ledger.records()


def test_usage_sums_and_reads_the_run_files_of_earlier_versions(ledger: UsageLedger) -> None:
    total = ledger.totals()
    assert total + Usage() == total and (total + total).calls == 2 * total.calls
    assert (total + total).flops_spent == 2 * total.flops_spent and (total + total).hits == 2 * total.hits
    written_before = {  # a state.json cost as langtts wrote it before Usage replaced CostTotals
        "calls": 3, "cache_hits": 2, "errors": 1, "prompt_tokens": 5, "completion_tokens": 1, "flops": 2.0,
        "flops_spent": 1.0,
    }  # fmt: skip
    usage = Usage.model_validate(written_before)
    assert (usage.calls, usage.hits, usage.misses, usage.errors, usage.retries) == (3, 2, 1, 1, 0)
    assert usage.model_dump() == written_before | {"retries": 0, "latency_s": 0.0, "cached_prompt_tokens": 0}
    assert usage.cached_prompt_share == 0.0 and Usage().cached_prompt_share is None


def test_cached_prompt_tokens_are_summed_and_old_ledgers_load(tmp_path: Path) -> None:
    records = [CallRecord("m", 32, 5, 0.1, False, 1.0, "stop", 0.0, cached_prompt_tokens=c) for c in (0, 31, 31)]
    total = UsageLedger(records).totals()
    assert (total.prompt_tokens, total.cached_prompt_tokens) == (96, 62)
    assert total.cached_prompt_share == pytest.approx(62 / 96)
    assert (total + total).cached_prompt_tokens == 124
    assert Usage.model_validate(total.model_dump()) == total  # the run-file round trip keeps it
    path = tmp_path / "old.jsonl"  # a ledger written before the field existed
    path.write_text(
        '{"model": "m", "prompt_tokens": 3, "completion_tokens": 1, "latency_s": 0.1, "cached": false, '
        '"flops": 1.0, "finish_reason": "stop", "timestamp": 0.0, "tags": {}}\n'
    )
    (old,) = UsageLedger.from_jsonl(path).records()
    assert old.cached_prompt_tokens == 0

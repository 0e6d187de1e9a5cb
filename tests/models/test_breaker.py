"""Circuit breaking: endpoints that refuse connections, hang or fail leave the rotation and are probed back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from langtts.models import EndpointUsage, ModelNotServedError, ModelPool
from langtts.models.breaker import Breaker
from tests.models.helpers import MODEL, user
from tests.models.stub_server import StubServer

MakeStub = Callable[..., StubServer]
MakePool = Callable[..., ModelPool]


def run_concurrently(pool: ModelPool, n: int, prefix: str = "q") -> list[str]:
    async def run() -> list[str]:
        results = await asyncio.gather(*(pool.achat(MODEL, user(f"{prefix}{i}")) for i in range(n)))
        return [r.text for r in results]

    return asyncio.run(run())


def test_breaker_states() -> None:
    breaker = Breaker(failures_to_open=2, cooldown_s=10.0)
    assert not breaker.failure() and breaker.state() == "closed"
    assert breaker.failure() and breaker.state() == "open"
    assert breaker.state(now=time.monotonic() + 11) == "due"
    breaker.probing = True
    assert breaker.state(now=time.monotonic() + 11) == "open"
    breaker.success()
    assert (breaker.state(), breaker.failures, breaker.opened) == ("closed", 0, 1)
    assert Breaker().failure(timeout=True)  # one timeout opens it


def test_refusing_endpoint_gets_few_attempts(make_stub: MakeStub, make_pool: MakePool) -> None:
    a, b, bad = make_stub(latency=0.02), make_stub(latency=0.02), make_stub()
    pool = make_pool(a, b, bad, max_concurrency=4)
    bad_url = bad.base_url
    bad.stop()  # connections refused from now on
    assert len(run_concurrently(pool, 48)) == 48
    figures = pool.ledger.by_endpoint()
    assert figures[bad_url].requests == figures[bad_url].failures <= 4  # at most the ones in flight at once
    assert pool.ledger.totals().retries == figures[bad_url].failures
    assert figures[a.base_url].answered + figures[b.base_url].answered == 48
    for i in range(12):
        pool.chat(MODEL, user(f"later {i}"))
    assert pool.ledger.by_endpoint()[bad_url].requests == figures[bad_url].requests


def test_hung_endpoint_is_cooled_down_after_its_first_timeout(make_stub: MakeStub, make_pool: MakePool) -> None:
    a, b, hung = make_stub(), make_stub(), make_stub(latency=10.0)
    pool = make_pool(a, b, hung, timeout=0.3)
    hung_url = hung.base_url
    started = time.monotonic()
    try:
        texts = [pool.chat(MODEL, user(f"q{i}")).text for i in range(12)]
    finally:
        hung.kill()
    assert texts == [f"echo: q{i}" for i in range(12)]
    assert hung.chat_calls == 1 and a.chat_calls + b.chat_calls == 12
    assert time.monotonic() - started < 3.0  # one timeout, not four
    assert pool.ledger.by_endpoint()[hung_url] == EndpointUsage(requests=1, failures=1)


def test_recovered_endpoint_returns_after_a_probe(make_stub: MakeStub, make_pool: MakePool) -> None:
    flaky, good = make_stub(fail_first=3), make_stub()
    pool = make_pool(flaky, good, breaker_cooldown=0.3)
    for i in range(8):
        pool.chat(MODEL, user(f"q{i}"))
    assert flaky.chat_calls == 3  # three 503s open it; nothing more while it cools down
    time.sleep(0.4)
    pool.chat(MODEL, user("starts the probe"))
    time.sleep(0.1)
    for i in range(4):
        pool.chat(MODEL, user(f"after {i}"))
    assert flaky.chat_calls == 5  # back in the rotation: round-robin again
    assert pool.ledger.by_endpoint()[flaky.base_url] == EndpointUsage(
        requests=5, failures=3, **_tokens(pool, flaky.base_url)
    )


def _tokens(pool: ModelPool, url: str) -> dict[str, float]:
    answered = [r for r in pool.ledger.records() if r.endpoint == url and r.error is None]
    return {
        "prompt_tokens": sum(r.prompt_tokens for r in answered),
        "completion_tokens": sum(r.completion_tokens for r in answered),
        "latency_s": sum(r.latency_s for r in answered),
    }


def test_dead_endpoint_stays_out_after_failed_probes(make_stub: MakeStub, make_pool: MakePool) -> None:
    good, bad = make_stub(), make_stub()
    pool = make_pool(good, bad, breaker_cooldown=0.1)
    bad_url = bad.base_url
    bad.stop()
    for i in range(10):
        pool.chat(MODEL, user(f"q{i}"))
        time.sleep(0.05)  # several cool-downs pass: each ends in a failed probe
    assert pool.ledger.by_endpoint()[bad_url].requests == 3
    assert pool._breakers[MODEL][1].opened > 1


def test_single_endpoint_is_never_locked_out(make_stub: MakeStub, make_pool: MakePool) -> None:
    server = make_stub(fail_first=4)
    pool = make_pool(server, max_retries=5)
    assert pool.chat(MODEL, user("q")).retries == 4  # its breaker opened, but it is the only endpoint


def test_check_at_start_ejects_endpoints_that_do_not_answer(make_stub: MakeStub, make_pool: MakePool) -> None:
    good, bad = make_stub(), make_stub()
    pool = make_pool(good, bad)
    bad_url = bad.base_url
    bad.stop()
    assert pool.check() == {good.base_url: [MODEL]}
    for i in range(6):
        pool.chat(MODEL, user(f"q{i}"))
    assert good.chat_calls == 6 and bad_url not in pool.ledger.by_endpoint()
    good.stop()
    with pytest.raises(ModelNotServedError, match="no endpoint of model 'm' answers"):
        pool.check()

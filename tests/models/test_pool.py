"""ModelPool against the stub OpenAI-compatible server (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from pydantic import BaseModel

import langtts.cost
from langtts.cost import call_flops, default_catalog
from langtts.models import (
    CallCache,
    Endpoint,
    ModelCallError,
    ModelNotServedError,
    ModelPool,
    PoolConfig,
    PoolError,
    PoolModel,
    StructuredOutputError,
    UnknownModelError,
    sample_seed,
    track,
)
from langtts.models.cache import request_key
from langtts.shapes import single
from tests.fakes import fake_pool
from tests.models.helpers import MODEL, SPEC, pool_config, user
from tests.models.stub_server import StubServer

MakeStub = Callable[..., StubServer]
MakePool = Callable[..., ModelPool]


# --- basics -------------------------------------------------------------------------------------------------


def test_chat_returns_text_usage_and_flops(stub: StubServer, make_pool: MakePool) -> None:
    pool = make_pool(stub)
    result = pool.chat(MODEL, user("two plus two"), tags={"node": "n1"})
    assert result.text == "echo: two plus two"
    assert (result.prompt_tokens, result.completion_tokens, result.finish_reason) == (3, 4, "stop")
    assert result.flops == call_flops(default_catalog().get(SPEC), 3, 4)
    assert not result.cached and result.retries == 0 and result.latency_s > 0
    assert result.endpoint == stub.base_url
    (record,) = pool.ledger.records()
    assert (record.model, record.flops, record.tags) == (MODEL, result.flops, {"node": "n1"})


def test_request_sent_to_server(stub: StubServer, make_pool: MakePool) -> None:
    pool = make_pool(stub, model={"served_name": MODEL, "id": "alias", "stop": ["\nUser:"]})
    messages = [SystemMessage("be brief"), HumanMessage("hi")]
    pool.chat("alias", messages, max_tokens=7, stop=["###"])
    (request,) = stub.requests
    assert request["model"] == MODEL
    assert request["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    assert request["max_completion_tokens"] == 7
    assert request["stop"] == ["###", "\nUser:"]  # the caller's, then the base model's own
    assert request["temperature"] == 0.0
    assert "seed" not in request


def test_finish_reason_length(stub: StubServer, make_pool: MakePool) -> None:
    result = make_pool(stub).chat(MODEL, user("one two three four five"), max_tokens=3)
    assert (result.finish_reason, result.completion_tokens) == ("length", 3)


def test_inline_spec_flops(stub: StubServer, make_pool: MakePool) -> None:
    pool = make_pool(stub, model={"spec": {"params": 1e9, "layers": 10, "hidden": 1000, "context_window": 2048}})
    result = pool.chat(MODEL, user("a b"))
    assert result.flops == call_flops(pool.spec(MODEL), result.prompt_tokens, result.completion_tokens)
    assert pool.spec(MODEL).id == MODEL and pool.context_window(MODEL) == 2048


def test_unknown_model_lists_ids(stub: StubServer, make_pool: MakePool) -> None:
    pool = make_pool(stub)
    with pytest.raises(UnknownModelError, match=r"unknown model 'nope'; the pool has: m"):
        pool.chat("nope", user("x"))
    with pytest.raises(UnknownModelError) as info:
        pool.model("nope")
    assert (info.value.model_id, info.value.known) == ("nope", [MODEL])
    assert UnknownModelError is langtts.cost.UnknownModelError  # one error for catalogs and pools
    assert pool.ids() == [MODEL]


def test_catalog_for_a_graph_some_models_or_the_whole_pool() -> None:
    pool, _ = fake_pool(lambda *_: "")
    assert pool.catalog_for().ids() == ("qwen2.5-coder-0.5b", "smollm2-135m")
    assert pool.catalog_for(["smollm2-135m"]).ids() == ("smollm2-135m",)
    assert pool.catalog_for(single("smollm2-135m")).get("smollm2-135m") == pool.spec("smollm2-135m")


def test_bad_spec_fails_at_construction(stub: StubServer) -> None:
    with pytest.raises(PoolError, match="no usable FLOPs spec for model 'm'"):
        ModelPool(pool_config(stub, spec="not-in-catalog"))
    with pytest.raises(PoolError, match="duplicate model ids"):
        ModelPool(PoolConfig(models=[*pool_config(stub).models, *pool_config(stub).models]))


def test_context_window(stub: StubServer, make_pool: MakePool) -> None:
    assert make_pool(stub).context_window(MODEL) == 8192  # from the catalog spec
    assert make_pool(stub, model={"context_window": 4096}).context_window(MODEL) == 4096


def test_pool_file_round_trip(stub: StubServer, tmp_path: Path) -> None:
    config = PoolConfig(
        models=[
            PoolModel(id="a", spec="qwen2.5-coder-0.5b", endpoints=[Endpoint(base_url=stub.base_url)]),
            PoolModel(
                id="b",
                spec={"params": 2e8, "layers": 4, "hidden": 64},
                served_name="base",
                stop=["\nUser:"],
                fingerprint="sha256:abc",
                endpoints=[Endpoint(base_url=stub.base_url, api_key_env="KEY", max_concurrency=2)],
            ),
        ]
    )
    for name in ("pool.yaml", "pool.json"):
        ModelPool(config).save(tmp_path / name)
        assert PoolConfig.load(tmp_path / name) == config
        pool = ModelPool.from_file(tmp_path / name, timeout=5.0)
        assert pool.ids() == ["a", "b"] and pool.timeout == 5.0
        assert pool.spec("b").params == 2e8


def test_discover_and_check(make_stub: MakeStub, make_pool: MakePool) -> None:
    server = make_stub(models=[MODEL, "other"])
    pool = make_pool(server)
    assert pool.discover(server.base_url) == [MODEL, "other"]
    assert pool.check() == {server.base_url: [MODEL, "other"]}
    missing = make_pool(server, model={"served_name": "ghost"})
    with pytest.raises(ModelNotServedError, match=r"'ghost'.*the server has: m, other"):
        missing.check()


def test_discover_unreachable(make_pool: MakePool, stub: StubServer) -> None:
    pool = make_pool(stub)
    url = stub.base_url
    stub.stop()
    with pytest.raises(ModelCallError) as info:
        pool.discover(url)
    assert info.value.kind == "unavailable"


def test_missing_api_key_env(stub: StubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LANGTTS_TEST_KEY", raising=False)
    config = PoolConfig(
        models=[
            PoolModel(
                id=MODEL,
                spec=SPEC,
                endpoints=[Endpoint(base_url=stub.base_url, api_key_env="LANGTTS_TEST_KEY")],
            )
        ]
    )
    with ModelPool(config) as pool, pytest.raises(PoolError, match="LANGTTS_TEST_KEY"):
        pool.chat(MODEL, user("x"))
    monkeypatch.setenv("LANGTTS_TEST_KEY", "secret")
    with ModelPool(config) as pool:
        assert pool.chat(MODEL, user("x")).text == "echo: x"


# --- retries and failures -----------------------------------------------------------------------------------


def test_retries_transient_503(make_stub: MakeStub, make_pool: MakePool) -> None:
    server = make_stub(fail_first=2)
    pool = make_pool(server, max_retries=3)
    result = pool.chat(MODEL, user("hello"))
    assert result.text == "echo: hello" and result.retries == 2
    assert server.chat_calls == 3
    assert pool.ledger.totals().retries == 2


def test_gives_up_after_max_retries(make_stub: MakeStub, make_pool: MakePool, tmp_path: Path) -> None:
    server = make_stub(fail_first=100, fail_status=503)
    pool = make_pool(server, max_retries=2, cache=CallCache(tmp_path / "c.sqlite"))
    with pytest.raises(ModelCallError) as info:
        pool.chat(MODEL, user("hello"))
    error = info.value
    assert (error.kind, error.status, error.attempts) == ("unavailable", 503, 3)
    assert "stub failure 3" in str(error)
    assert server.chat_calls == 3
    (record,) = pool.ledger.records()
    assert record.error and record.retries == 2 and record.completion_tokens == 0
    assert len(pool.cache) == 0


def test_429_is_retried(make_stub: MakeStub, make_pool: MakePool) -> None:
    server = make_stub(fail_first=1, fail_status=429)
    assert make_pool(server).chat(MODEL, user("x")).retries == 1


def test_400_is_not_retried(make_stub: MakeStub, make_pool: MakePool, tmp_path: Path) -> None:
    server = make_stub(always_status=400)
    pool = make_pool(server, max_retries=5, cache=CallCache(tmp_path / "c.sqlite"))
    with pytest.raises(ModelCallError) as info:
        pool.chat(MODEL, user("x"))
    assert (info.value.kind, info.value.status, info.value.attempts) == ("http_4xx", 400, 1)
    assert "the stub always rejects this request" in str(info.value)
    assert server.chat_calls == 1
    assert len(pool.cache) == 0 and pool.ledger.totals().errors == 1


def test_unknown_served_model_is_a_clear_400(stub: StubServer, make_pool: MakePool) -> None:
    pool = make_pool(stub, model={"served_name": "ghost"})
    with pytest.raises(ModelCallError, match="model 'ghost' not found") as info:
        pool.chat(MODEL, user("x"))
    assert info.value.kind == "http_4xx"


def test_timeout(make_stub: MakeStub, make_pool: MakePool) -> None:
    server = make_stub(latency=2.0)
    pool = make_pool(server, timeout=0.2, max_retries=1)
    started = time.monotonic()
    with pytest.raises(ModelCallError) as info:
        pool.chat(MODEL, user("x"))
    assert (info.value.kind, info.value.attempts) == ("timeout", 2)
    assert time.monotonic() - started < 1.5


def test_no_usage_is_an_error(make_stub: MakeStub, make_pool: MakePool) -> None:
    pool = make_pool(make_stub(usage=False))
    with pytest.raises(ModelCallError) as info:
        pool.chat(MODEL, user("x"))
    assert info.value.kind == "bad_response" and info.value.attempts == 1


def test_server_killed_mid_run(make_stub: MakeStub, make_pool: MakePool, tmp_path: Path) -> None:
    server = make_stub(latency=5.0)
    pool = make_pool(server, max_concurrency=6, max_retries=2, cache=CallCache(tmp_path / "c.sqlite"))

    async def run() -> list[object]:
        calls = asyncio.gather(*(pool.achat(MODEL, user(f"q{i}")) for i in range(6)), return_exceptions=True)
        while server.in_flight < 6:
            await asyncio.sleep(0.01)
        server.kill()
        return await calls

    outcomes = asyncio.run(run())
    assert server.in_flight == 0 and server.chat_calls == 6  # all were in flight when it died
    assert all(isinstance(o, ModelCallError) and o.kind == "unavailable" for o in outcomes)
    assert all(o.attempts == 3 for o in outcomes)
    totals = pool.ledger.totals()
    assert (totals.calls, totals.errors, totals.completion_tokens, totals.flops) == (6, 6, 0, 0.0)
    assert len(pool.cache) == 0
    with pytest.raises(ModelCallError, match="unavailable"):  # connection refused from now on
        pool.chat(MODEL, user("later"))


# --- concurrency --------------------------------------------------------------------------------------------


def test_concurrency_cap(make_stub: MakeStub, make_pool: MakePool) -> None:
    server = make_stub(latency=0.1)
    pool = make_pool(server, max_concurrency=3)

    async def run() -> None:
        await asyncio.gather(*(pool.achat(MODEL, user(f"q{i}")) for i in range(20)))

    asyncio.run(run())
    assert server.chat_calls == 20
    assert server.max_in_flight == 3


def test_cap_holds_across_threads_and_event_loops(make_stub: MakeStub, make_pool: MakePool) -> None:
    server = make_stub(latency=0.05)
    pool = make_pool(server, max_concurrency=3)

    def one_loop(worker: int) -> None:
        async def run() -> None:
            await asyncio.gather(*(pool.achat(MODEL, user(f"w{worker} q{i}")) for i in range(5)))

        asyncio.run(run())

    def blocking(worker: int) -> None:
        for i in range(3):
            pool.chat(MODEL, user(f"sync w{worker} q{i}"))

    with ThreadPoolExecutor(6) as executor:
        futures = [executor.submit(one_loop, w) for w in range(3)] + [executor.submit(blocking, w) for w in range(3)]
        for future in futures:
            future.result()
    assert server.chat_calls == 3 * 5 + 3 * 3
    assert server.max_in_flight == 3


def test_pool_reused_across_asyncio_runs(stub: StubServer, make_pool: MakePool) -> None:
    pool = make_pool(stub, max_concurrency=1)
    for i in range(3):
        assert asyncio.run(pool.achat(MODEL, user(f"run {i}"))).text == f"echo: run {i}"


def test_aclose_closes_the_http_clients(stub: StubServer, make_pool: MakePool) -> None:
    pool = make_pool(stub)

    async def run() -> httpx.AsyncClient:
        await pool.achat(MODEL, user("q"))
        (client,) = pool._clients[id(asyncio.get_running_loop())].clients.values()
        assert isinstance(client, ChatOpenAI)
        await pool.aclose()
        return client.http_async_client

    assert asyncio.run(run()).is_closed


def test_aclose_with_factory_clients_that_have_no_http_client() -> None:
    pool, _ = fake_pool(lambda model_id, messages, options: "ok")

    async def run() -> None:
        assert (await pool.achat("smollm2-135m", user("q"))).text == "ok"
        await pool.aclose()  # a fake chat model has no http_async_client: nothing to close

    asyncio.run(run())


def test_cancelled_waiters_free_their_slots(make_stub: MakeStub, make_pool: MakePool) -> None:
    server = make_stub(latency=0.2)
    pool = make_pool(server, max_concurrency=1)

    async def run() -> None:
        tasks = [asyncio.create_task(pool.achat(MODEL, user(f"q{i}"))) for i in range(4)]
        await asyncio.sleep(0.05)
        for task in tasks[1:]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.wait_for(pool.achat(MODEL, user("after")), timeout=2)

    asyncio.run(run())
    assert pool._limiters[MODEL][0].load == 0


def test_replicas_share_the_load(make_stub: MakeStub, make_pool: MakePool) -> None:
    a, b = make_stub(latency=0.05), make_stub(latency=0.05)
    pool = make_pool(a, b, max_concurrency=2)

    async def run() -> None:
        await asyncio.gather(*(pool.achat(MODEL, user(f"q{i}")) for i in range(8)))

    asyncio.run(run())
    assert (a.chat_calls, b.chat_calls) == (4, 4)
    assert a.max_in_flight == b.max_in_flight == 2
    for i in range(4):  # one at a time: round-robin
        pool.chat(MODEL, user(f"seq{i}"))
    assert (a.chat_calls, b.chat_calls) == (6, 6)
    assert {r.endpoint for r in pool.ledger.records()} == {a.base_url, b.base_url}


def test_retry_moves_to_another_replica(make_stub: MakeStub, make_pool: MakePool) -> None:
    bad, good = make_stub(always_status=503), make_stub()
    pool = make_pool(bad, good, max_retries=3)
    for i in range(4):
        result = pool.chat(MODEL, user(f"q{i}"))
        assert result.endpoint == good.base_url


# --- cache and sample indices -------------------------------------------------------------------------------


def test_cache_replay(make_stub: MakeStub, make_pool: MakePool, tmp_path: Path) -> None:
    server = make_stub(latency=0.05)
    pool = make_pool(server, cache=CallCache(tmp_path / "c.sqlite"))
    first = pool.chat(MODEL, user("question"), tags={"run": "1"})
    again = pool.chat(MODEL, user("question"), tags={"run": "2"})
    assert server.chat_calls == 1
    assert (again.text, again.latency_s, again.flops) == (first.text, first.latency_s, first.flops)
    assert (first.cached, again.cached) == (False, True)
    assert pool.cache.hits == 1
    by_run = pool.ledger.by("run")
    assert (by_run["1"].hits, by_run["2"].hits) == (0, 1)
    assert pool.ledger.totals().flops_spent == first.flops

    fresh = make_pool(server, cache=CallCache(tmp_path / "c.sqlite"))  # another process, same file
    assert fresh.chat(MODEL, user("question")).cached
    assert server.chat_calls == 1


def test_cache_key_covers_request(make_stub: MakeStub, make_pool: MakePool, tmp_path: Path) -> None:
    server = make_stub()
    cache = CallCache(tmp_path / "c.sqlite")
    pool = make_pool(server, cache=cache)
    pool.chat(MODEL, user("q"))
    pool.chat(MODEL, user("q"), max_tokens=100)
    pool.chat(MODEL, user("q"), temperature=0.5)
    pool.chat(MODEL, user("q"), stop=["x"])
    pool.chat(MODEL, user("q"), response_format={"type": "json_object"})
    make_pool(server, cache=cache, model={"fingerprint": "other-weights"}).chat(MODEL, user("q"))
    assert server.chat_calls == 6
    assert pool.chat(MODEL, [HumanMessage("q")]).cached  # LangChain messages key like dicts


def test_sample_indices_are_distinct(make_stub: MakeStub, make_pool: MakePool, tmp_path: Path) -> None:
    server = make_stub()
    pool = make_pool(server, cache=CallCache(tmp_path / "c.sqlite"))
    samples = [pool.chat(MODEL, user("q"), temperature=0.8, sample_index=i) for i in range(3)]
    assert server.chat_calls == 3 and len(pool.cache) == 3
    seeds = [r["seed"] for r in server.requests]
    assert seeds == [sample_seed(None, i) for i in range(3)] and len(set(seeds)) == 3
    assert len({s.text for s in samples}) == 3
    replay = [pool.chat(MODEL, user("q"), temperature=0.8, sample_index=i) for i in range(3)]
    assert [r.text for r in replay] == [s.text for s in samples]
    assert all(r.cached for r in replay) and server.chat_calls == 3
    assert pool.chat(MODEL, user("q"), temperature=0.8, seed=7, sample_index=0).text.endswith(
        f"[seed {sample_seed(7, 0)}]"
    )


def test_greedy_calls_pass_the_seed_unchanged(stub: StubServer, make_pool: MakePool) -> None:
    pool = make_pool(stub)
    pool.chat(MODEL, user("q"), seed=5)
    assert stub.requests[-1]["seed"] == 5


def test_samples_of_one_request_share_its_request_key(make_stub: MakeStub, make_pool: MakePool, tmp_path: Path) -> None:
    server = make_stub()
    pool = make_pool(server, cache=CallCache(tmp_path / "c.sqlite"))
    request = pool.request(MODEL, user("same question"), temperature=0.7)
    assert request.request_key == pool.request(MODEL, [HumanMessage("same question")], temperature=0.7).request_key
    assert request.request_key != pool.request(MODEL, user("same question"), temperature=0.7, max_tokens=10).request_key
    samples = [request.sample(i) for i in range(3)]
    assert {s.request_key for s in samples} == {request.request_key} and len({s.key for s in samples}) == 3
    assert samples[0].key == request.key == pool.request(MODEL, user("same question"), temperature=0.7).key
    texts = [pool.send(s).text for s in samples]
    assert len(set(texts)) == 3
    assert [pool.chat(MODEL, user("same question"), temperature=0.7, sample_index=i).text for i in range(3)] == texts


def test_failed_calls_are_not_cached(make_stub: MakeStub, make_pool: MakePool, tmp_path: Path) -> None:
    server = make_stub(fail_first=1)
    cache = CallCache(tmp_path / "c.sqlite")
    pool = make_pool(server, max_retries=0, cache=cache)
    with pytest.raises(ModelCallError):
        pool.chat(MODEL, user("q"))
    assert len(cache) == 0
    assert not pool.chat(MODEL, user("q")).cached
    assert pool.chat(MODEL, user("q")).cached


# --- ledger -------------------------------------------------------------------------------------------------


def test_ledger_records_the_servers_prompt_cache(make_stub: MakeStub, make_pool: MakePool, tmp_path: Path) -> None:
    server = make_stub(prompt_cache=True)  # usage.prompt_tokens_details.cached_tokens, as llama-server and vLLM
    pool = make_pool(server, cache=CallCache(tmp_path / "c.sqlite"))
    first = pool.chat(MODEL, user("what is two plus two"), temperature=0.5, sample_index=0)
    second = pool.chat(MODEL, user("what is two plus two"), temperature=0.5, sample_index=1)
    assert server.requests[-1]["messages"] == server.requests[0]["messages"] and server.chat_calls == 2
    assert (first.cached_prompt_tokens, second.cached_prompt_tokens) == (0, first.prompt_tokens - 1)
    replay = pool.chat(MODEL, user("what is two plus two"), temperature=0.5, sample_index=1)
    assert replay.cached and server.chat_calls == 2
    assert replay.cached_prompt_tokens == second.cached_prompt_tokens  # the call cache keeps what was recorded
    assert [r.cached_prompt_tokens for r in pool.ledger.records()] == [0, 4, 4]
    total = pool.ledger.totals()
    assert total.cached_prompt_tokens == 8 and total.cached_prompt_share == pytest.approx(8 / 15)
    fresh = make_pool(server, cache=CallCache(tmp_path / "c.sqlite"))  # another process reads it back
    assert fresh.chat(MODEL, user("what is two plus two"), temperature=0.5, sample_index=1).cached_prompt_tokens == 4


def test_servers_without_prompt_cache_figures_record_zero(stub: StubServer, make_pool: MakePool) -> None:
    pool = make_pool(stub)
    pool.chat(MODEL, user("q"))
    pool.chat(MODEL, user("q"), max_tokens=100)
    assert pool.ledger.totals().cached_prompt_tokens == 0


def test_cached_prompt_tokens_from_a_streamed_answer(make_stub: MakeStub, make_pool: MakePool) -> None:
    from langtts.compile import compile_graph

    server = make_stub(prompt_cache=True)
    pool = make_pool(server)
    app = compile_graph(single(MODEL), pool)
    for _ in range(2):
        list(app.stream({"question": "two plus two"}, stream_mode="messages"))
    assert all(r["stream"] for r in server.requests)
    first, second = pool.ledger.records()
    assert first.cached_prompt_tokens == 0 and second.cached_prompt_tokens == second.prompt_tokens - 1 > 0


def test_ledger_per_tag(stub: StubServer, make_pool: MakePool) -> None:
    pool = make_pool(stub)

    async def run() -> None:
        await asyncio.gather(
            *(pool.achat(MODEL, user(f"q{i}"), tags={"graph": f"g{i % 2}", "node": f"n{i % 3}"}) for i in range(12))
        )

    asyncio.run(run())
    per_graph = pool.ledger.by("graph")
    assert {g: u.calls for g, u in per_graph.items()} == {"g0": 6, "g1": 6}
    assert sum(u.flops for u in per_graph.values()) == pytest.approx(pool.ledger.totals().flops)
    assert pool.ledger.totals(graph="g0", node="n0").calls == 2
    spec = pool.spec(MODEL)
    for r in pool.ledger.records():
        assert r.flops == call_flops(spec, r.prompt_tokens, r.completion_tokens)


def test_track_collects_calls_of_a_context(stub: StubServer, make_pool: MakePool) -> None:
    pool = make_pool(stub)
    pool.chat(MODEL, user("before"))
    with track() as usage:
        pool.chat(MODEL, user("sync"))
        asyncio.run(pool.achat(MODEL, user("async")))
    pool.chat(MODEL, user("after"))
    assert len(usage) == 2 and len(pool.ledger) == 4


def test_track_is_per_thread(stub: StubServer, make_pool: MakePool) -> None:
    pool = make_pool(stub)
    with track() as usage:
        other = threading.Thread(target=lambda: pool.chat(MODEL, user("other thread")))
        other.start()
        other.join()
        pool.chat(MODEL, user("this thread"))
    assert [r.tags for r in usage.records()] == [{}] and len(pool.ledger) == 2


# --- structured output --------------------------------------------------------------------------------------


class Answer(BaseModel):
    answer: int
    reason: str


def test_structured_output(make_stub: MakeStub, make_pool: MakePool) -> None:
    server = make_stub(reply=lambda request: json.dumps({"answer": 4, "reason": "2+2"}))
    pool = make_pool(server)
    parsed = pool.structured(MODEL, user("2+2?"), Answer)
    assert parsed == Answer(answer=4, reason="2+2")
    response_format = server.requests[-1]["response_format"]
    assert response_format == {
        "type": "json_schema",
        "json_schema": {"name": "Answer", "schema": Answer.model_json_schema(), "strict": True},
    }
    schema = {"title": "my answer", "type": "object", "properties": {"answer": {"type": "integer"}}}
    assert asyncio.run(pool.astructured(MODEL, user("2+2?"), schema)) == {"answer": 4, "reason": "2+2"}
    assert server.requests[-1]["response_format"]["json_schema"]["name"] == "my_answer"


def test_structured_output_invalid(make_stub: MakeStub, make_pool: MakePool) -> None:
    server = make_stub(reply=lambda request: '{"answer": "four"}')
    pool = make_pool(server)
    with pytest.raises(StructuredOutputError) as info:
        pool.structured(MODEL, user("2+2?"), Answer)
    assert info.value.raw == '{"answer": "four"}'
    assert "answer" in info.value.message and "reason" in info.value.message
    listing = make_pool(make_stub(reply=lambda request: "[1, 2]"))
    with pytest.raises(StructuredOutputError, match="expected a JSON object"):
        listing.structured(MODEL, user("list please"), {"type": "object"})


def test_structured_output_truncated(make_stub: MakeStub, make_pool: MakePool) -> None:
    server = make_stub(reply=lambda request: '{"answer": 4, "reason": "because two and two"}')
    with pytest.raises(StructuredOutputError, match="cut at max_tokens") as info:
        make_pool(server).structured(MODEL, user("2+2?"), Answer, max_tokens=3)
    assert info.value.finish_reason == "length"


# --- log-probabilities --------------------------------------------------------------------------------------

ALTS = {"alt1": -1.0, "alt2": -2.0}  # the stub's alternatives to each word


def test_logprobs(stub: StubServer, make_pool: MakePool) -> None:
    pool = make_pool(stub)
    result = pool.chat(MODEL, user("Answer:"), logprobs=3)
    request = stub.requests[-1]
    assert (request["logprobs"], request["top_logprobs"]) == (True, 3)
    assert result.text == "echo: Answer:"
    assert result.top_logprobs == ({"echo:": -0.25, **ALTS}, {"Answer:": -0.25, **ALTS})
    assert pool.chat(MODEL, user("q")).top_logprobs is None
    assert "logprobs" not in stub.requests[-1]


def test_logprobs_are_cached(make_stub: MakeStub, make_pool: MakePool, tmp_path: Path) -> None:
    server = make_stub()
    pool = make_pool(server, cache=CallCache(tmp_path / "c.sqlite"))
    first = pool.chat(MODEL, user("Answer:"), max_tokens=1, logprobs=3)
    assert first.top_logprobs == ({"echo:": -0.25, **ALTS},)
    fresh = make_pool(server, cache=CallCache(tmp_path / "c.sqlite"))
    again = fresh.chat(MODEL, user("Answer:"), max_tokens=1, logprobs=3)
    assert again.cached and again.top_logprobs == first.top_logprobs
    plain = pool.chat(MODEL, user("Answer:"), max_tokens=1)  # another request: not answered from the above
    assert not plain.cached and plain.top_logprobs is None
    assert not pool.chat(MODEL, user("Answer:"), max_tokens=1, logprobs=5).cached
    assert server.chat_calls == 3


def test_request_key_without_logprobs_is_unchanged(stub: StubServer, make_pool: MakePool) -> None:
    pool = make_pool(stub)
    model = pool.model(MODEL)
    before = request_key(  # the key dict of requests as it was before `logprobs` existed
        {
            "model": {"id": MODEL, "served_name": MODEL, "fingerprint": None},
            "messages": user("q"),
            "temperature": 0.0,
            "max_tokens": 512,
            "stop": list(model.stop),
            "seed": None,
            "response_format": None,
        }
    )
    assert pool.request(MODEL, user("q")).request_key == before
    assert pool.request(MODEL, user("q"), logprobs=20).request_key != before


def test_missing_logprobs_is_an_error(make_stub: MakeStub, make_pool: MakePool) -> None:
    server = make_stub(logprobs=False)
    with pytest.raises(ModelCallError, match="no log-probabilities") as info:
        make_pool(server).chat(MODEL, user("q"), logprobs=2)
    assert info.value.kind == "bad_response"

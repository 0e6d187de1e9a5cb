"""Token streaming of compiled graphs through the pool, against a stub server that streams server-sent events."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableLambda

from langtts.compile import compile_graph
from langtts.models import CallCache, ModelPool
from langtts.shapes import parallel
from tests.models.helpers import MODEL, user
from tests.models.stub_server import StubServer

MakePool = Callable[..., ModelPool]
QUESTION = {"question": "two plus two"}


def streamed_texts(app: Any) -> tuple[dict[str, str], dict[str, int]]:
    """The text streamed per node with `stream_mode="messages"`, and the number of chunks per node."""
    texts: dict[str, str] = defaultdict(str)
    chunks: dict[str, int] = defaultdict(int)
    for chunk, metadata in app.stream(QUESTION, stream_mode="messages"):
        texts[metadata["langgraph_node"]] += chunk.text
        chunks[metadata["langgraph_node"]] += 1
    return dict(texts), dict(chunks)


def test_stream_messages_token_by_token(stub: StubServer, make_pool: MakePool) -> None:
    pool = make_pool(stub)
    app = compile_graph(parallel(MODEL, n=2), pool)
    texts, chunks = streamed_texts(app)
    assert set(texts) == {"n0", "n1", "sink"}
    assert all(count > 5 for count in chunks.values())  # token by token, not one message per node
    assert all(r["stream"] and r["stream_options"] == {"include_usage": True} for r in stub.requests)
    records = pool.ledger.records()
    assert len(records) == 3 and all(r.finish_reason == "stop" and r.completion_tokens > 0 for r in records)
    assert {r.completion_tokens for r in records if r.tags["node"] == "sink"} == {len(texts["sink"].split())}
    out = app.invoke(QUESTION)  # invoke does not stream: same answers (greedy sink), usage from the plain body
    assert out["answer"] == texts["sink"]


def test_stream_only_the_sink(stub: StubServer, make_pool: MakePool) -> None:
    graph = parallel(MODEL, n=2)
    app = compile_graph(graph, make_pool(stub))
    sink_text = "".join(
        chunk.text
        for chunk, metadata in app.stream(QUESTION, stream_mode="messages")
        if metadata["langgraph_node"] == graph.sink.id
    )
    assert sink_text.startswith("echo:") and sink_text == app.invoke(QUESTION)["answer"]


def test_astream_events(stub: StubServer, make_pool: MakePool) -> None:
    app = compile_graph(parallel(MODEL, n=2), make_pool(stub))

    async def run() -> dict[str, list[str]]:
        events: dict[str, list[str]] = defaultdict(list)
        async for event in app.astream_events(QUESTION, version="v2"):
            if event["event"] in ("on_chat_model_start", "on_chat_model_stream", "on_chat_model_end"):
                events[event["event"]].append(event["metadata"]["langgraph_node"])
        return events

    events = asyncio.run(run())
    assert sorted(events["on_chat_model_start"]) == sorted(events["on_chat_model_end"]) == ["n0", "n1", "sink"]
    assert len(events["on_chat_model_stream"]) > 15


def test_cache_hits_emit_one_chunk(stub: StubServer, make_pool: MakePool, tmp_path: Path) -> None:
    pool = make_pool(stub, cache=CallCache(tmp_path / "c.sqlite"))
    app = compile_graph(parallel(MODEL, n=2), pool)
    first, _ = streamed_texts(app)
    again, chunks = streamed_texts(app)
    assert stub.chat_calls == 3 and pool.ledger.totals().hits == 3
    assert again == first and chunks == {"n0": 1, "n1": 1, "sink": 1}  # a cached answer: one whole chunk


def test_cache_hit_callbacks(stub: StubServer, make_pool: MakePool, tmp_path: Path) -> None:
    pool = make_pool(stub, cache=CallCache(tmp_path / "c.sqlite"))
    pool.chat(MODEL, user("q"))
    chat = RunnableLambda(lambda messages: pool.chat(MODEL, messages).text)

    async def call(messages: list[dict[str, str]]) -> Any:
        return await pool.achat(MODEL, messages, tags={"node": "x"})

    async def events() -> list[tuple[str, Any]]:
        runnable = RunnableLambda(call)
        seen = []
        async for event in runnable.astream_events(user("q"), version="v2"):
            if event["event"].startswith("on_chat_model"):
                seen.append((event["event"], event["data"]))
        return seen

    seen = asyncio.run(events())
    assert [name for name, _ in seen] == ["on_chat_model_start", "on_chat_model_stream", "on_chat_model_end"]
    message = seen[-1][1]["output"]
    assert message.text == "echo: q" and message.response_metadata["cached"] is True
    assert message.usage_metadata["output_tokens"] == 2
    assert chat.invoke(user("q")) == "echo: q" and stub.chat_calls == 1


def test_streamed_logprobs(stub: StubServer, make_pool: MakePool) -> None:
    pool = make_pool(stub)

    async def call(messages: list[dict[str, str]]) -> Any:
        return await pool.achat(MODEL, messages, logprobs=2)

    async def run() -> Any:
        async for event in RunnableLambda(call).astream_events(user("A B"), version="v2"):
            if event["event"] == "on_chain_end":
                return event["data"]["output"]

    result = asyncio.run(run())
    assert stub.requests[-1]["stream"] is True
    assert result.top_logprobs == tuple({word: -0.25, "alt1": -1.0} for word in ("echo:", "A", "B"))
    assert result.completion_tokens == 3

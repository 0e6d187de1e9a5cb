"""ModelPool against the real embedded llama.cpp server (`embedded_server` from `tests.serve_fixture`)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from langtts.cost import call_flops
from langtts.models import CallCache, ModelPool
from langtts.serve.embedded import ServerInfo
from tests.models.helpers import user
from tests.serve_fixture import TEST_MODELS

pytestmark = pytest.mark.integration


@pytest.fixture
def pool(embedded_server: ServerInfo, tmp_path: Path) -> Iterator[ModelPool]:
    with ModelPool.from_file(embedded_server.pool_file, cache=CallCache(tmp_path / "calls.sqlite")) as pool:
        yield pool


def test_served_models_match_the_pool(pool: ModelPool) -> None:
    served = pool.check()
    assert set(TEST_MODELS) <= {m for models in served.values() for m in models}


@pytest.mark.parametrize("model", TEST_MODELS)
def test_chat_usage_flops_and_replay(pool: ModelPool, model: str) -> None:
    messages = user("What is the capital of France? Answer in one word.")
    first = pool.chat(model, messages, max_tokens=16, tags={"node": "n1"})
    assert first.text.strip() and not first.cached
    assert first.prompt_tokens > 5 and 0 < first.completion_tokens <= 16
    assert first.finish_reason in ("stop", "length")
    assert first.flops == call_flops(pool.spec(model), first.prompt_tokens, first.completion_tokens) > 0
    again = pool.chat(model, messages, max_tokens=16, tags={"node": "n1"})
    assert again.cached and (again.text, again.latency_s) == (first.text, first.latency_s)
    usage = pool.ledger.totals(node="n1")
    assert (usage.calls, usage.hits, usage.flops_spent) == (2, 1, first.flops)


def test_distinct_samples_for_distinct_indices(pool: ModelPool) -> None:
    messages = user("Write one short sentence about the sea.")

    async def samples() -> list[str]:
        calls = [pool.achat(TEST_MODELS[0], messages, temperature=0.8, max_tokens=24, sample_index=i) for i in range(3)]
        return [r.text for r in await asyncio.gather(*calls)]

    texts = asyncio.run(samples())
    assert len(set(texts)) == 3
    assert asyncio.run(samples()) == texts  # replayed from the cache


def test_seeded_samples_reproduce_without_cache(embedded_server: ServerInfo) -> None:
    messages = user("Name a colour.")
    runs = []
    for _ in range(2):
        with ModelPool.from_file(embedded_server.pool_file) as pool:
            results = [
                pool.chat(TEST_MODELS[0], messages, temperature=0.8, max_tokens=12, sample_index=i) for i in (0, 1)
            ]
            runs.append([r.text for r in results])
    assert runs[0] == runs[1]


class Capital(BaseModel):
    country: str
    capital: str


def test_json_schema_output(pool: ModelPool) -> None:
    answer = pool.structured(
        "qwen2.5-coder-0.5b",
        user("Give the country France and its capital city as JSON."),
        Capital,
        max_tokens=64,
    )
    assert isinstance(answer, Capital) and answer.capital

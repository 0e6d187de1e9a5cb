"""Every search method for 2 rounds on GSM8K on the real embedded server (small sizes: CPU only)."""

from __future__ import annotations

from pathlib import Path

import pytest

from langtts.models import CallCache, ModelPool
from langtts.search import METHODS, optimize

pytestmark = pytest.mark.integration
MODELS = ["smollm2-135m", "qwen2.5-coder-0.5b"]


@pytest.fixture(scope="module")
def pool(embedded_server, tmp_path_factory):
    cache = CallCache(tmp_path_factory.mktemp("cache") / "calls.sqlite")
    with ModelPool.from_file(embedded_server.pool_file, cache=cache) as pool:
        yield pool


@pytest.mark.parametrize("method", sorted(m for m in METHODS if m != "agent-reinforce"))
def test_two_rounds_on_gsm8k(pool: ModelPool, method: str, tmp_path: Path) -> None:
    result = optimize(
        "gsm8k",
        pool,
        10,
        method=method,
        models=MODELS,
        iterations=2,
        batch_size=2,
        race_max_questions=2,  # one chunk a round: the candidate on the incumbent's first questions
        top_k=1,
        validation_size=2,
        n_test=2,
        max_tokens=160,  # room for most reasoning replies: recovery fires on cut ones only
        run_dir=tmp_path,
        progress=False,
    )
    print(result.summary())
    search = [e for e in result.ledger if e.phase == "search"]
    # the top graph is validated, and so is any other Pareto-front graph (accuracy against latency); then the test
    after = [e.phase for e in result.ledger[len(search) :]]
    assert {e.round for e in search} == {0, 1} and after[-1] == "test" and set(after[:-1]) == {"validate"}
    assert all(e.modelled_flops <= result.config.budget.flops * (1 + 1e-9) for e in result.ledger)
    assert all(e.outcome.calls > 0 and e.outcome.flops > 0 and e.outcome.errors == 0 for e in result.ledger)
    # validation re-runs the chosen graph on the first batch's questions: same calls, served by the cache
    validation = result.ledger[len(search)]
    first_batch = next(e for e in search if e.fingerprint == validation.fingerprint)
    if first_batch.outcome.question_ids == validation.outcome.question_ids:
        assert validation.outcome.cache_hits == validation.outcome.calls
    assert result.evaluation_cost.calls == sum(e.outcome.calls for e in result.ledger)
    assert result.evaluation_cost.hits >= sum(e.outcome.cache_hits for e in result.ledger)
    assert (tmp_path / "graph.json").is_file() and (tmp_path / "result.json").is_file()

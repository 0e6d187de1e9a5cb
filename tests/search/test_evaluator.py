"""PoolEvaluator on the scripted fake pool: context overflows are counted and reported, never a silent 0; per-node
accuracy and agreement reach the ledger."""

from __future__ import annotations

import asyncio
from pathlib import Path

from langtts.evaluation import evaluate
from langtts.search.base import Outcome
from langtts.search.evaluator import PoolEvaluator
from langtts.shapes import parallel, self_consistency, single
from langtts.tasks import Example, get_task
from tests.fakes import fake_pool

QWEN, SMOL = "qwen2.5-coder-0.5b", "smollm2-135m"
GSM8K = get_task("gsm8k")


def _answer(model, messages, kwargs):
    return "The final answer is 3"


def test_a_graph_that_cannot_fit_any_question_counts_every_question_as_an_overflow() -> None:
    pool, log = fake_pool(_answer, context_window=600)  # 2 inputs x 384 max_tokens + 384 own > 600
    examples = GSM8K.load()[:3]
    outcome = asyncio.run(PoolEvaluator(GSM8K, pool).evaluate(parallel([QWEN, SMOL], sink_model=QWEN), examples))
    assert (outcome.errors, outcome.context_overflows, outcome.accuracy, len(log.calls)) == (3, 3, 0.0, 0)


def test_one_question_too_long_for_the_window_is_one_overflow() -> None:
    pool, _ = fake_pool(_answer, context_window=1000)
    long = Example(id="long", question="How many? " * 400, answer="3")
    short = Example(id="short", question="1 + 2?", answer="3")
    outcome = asyncio.run(PoolEvaluator(GSM8K, pool).evaluate(single(QWEN), [long, short]))
    assert (outcome.errors, outcome.context_overflows, outcome.correct) == (1, 1, [False, True])


def test_the_run_reports_overflows(tmp_path: Path) -> None:
    from langtts.search import optimize
    from tests.search.synthetic_run import BUDGET_UNITS, evaluator, settings

    class Overflowing:
        def __init__(self, inner):
            self.inner = inner

        async def evaluate(self, graph, examples):
            outcome = await self.inner.evaluate(graph, examples)
            return outcome.model_copy(update={"errors": 1, "context_overflows": 1})

    lines: list[str] = []
    options = settings("random", iterations=2, progress=lines.append)
    build = lambda space: Overflowing(evaluator()(space))  # noqa: E731
    optimize("gsm8k", None, BUDGET_UNITS, run_dir=str(tmp_path), evaluator=build, **options)
    assert any("1 questions overflowed a context window (scored wrong)" in line for line in lines), lines


def test_the_outcome_carries_per_node_accuracy_and_agreement() -> None:
    def answer(model, messages, kwargs):  # qwen right (3), smollm wrong (4)
        return f"The final answer is {3 if model == QWEN else 4}"

    pool, _ = fake_pool(answer)
    examples = [Example(id=str(i), question=f"{i} + 3 - {i}?", answer="3") for i in range(2)]
    outcome = asyncio.run(PoolEvaluator(GSM8K, pool).evaluate(parallel([QWEN, SMOL], sink_model=QWEN), examples))
    assert outcome.node_accuracy == {"n0": 1.0, "n1": 0.0, "sink": 1.0} and outcome.node_agreement == {"sink": 0.5}
    voted = asyncio.run(PoolEvaluator(GSM8K, pool).evaluate(self_consistency(SMOL, 2), examples))
    assert voted.node_accuracy == {"n0": 0.0, "n1": 0.0, "sink": 0.0} and voted.node_agreement == {"sink": 1.0}
    old = outcome.model_dump(exclude={"node_accuracy", "node_agreement"})  # a ledger written before them
    assert Outcome.model_validate(old).node_accuracy == {}


def test_the_outcome_is_what_the_evaluation_measured() -> None:
    pool, _ = fake_pool(_answer)
    examples = [Example(id=str(i), question=f"{i} + 3 - {i}?", answer=str(i + 1)) for i in range(3)]
    result = evaluate(parallel([QWEN, SMOL], sink_model=QWEN), GSM8K, pool, examples=examples, progress=False)
    outcome = Outcome.of(result)
    assert (outcome.question_ids, outcome.correct, outcome.accuracy) == (["0", "1", "2"], [False, False, True], 1 / 3)
    assert (outcome.ci_low, outcome.ci_high, outcome.flops) == (result.ci_low, result.ci_high, result.flops)
    assert (outcome.prompt_tokens, outcome.completion_tokens) == (result.prompt_tokens, result.completion_tokens)
    assert (outcome.calls, outcome.cache_hits, outcome.wall_time_s) == (result.calls, 0, result.wall_time_s)
    assert (outcome.latency_s, outcome.errors, outcome.context_overflows) == (result.latency_p50_s, 0, 0)
    assert outcome.node_accuracy == {"n0": 1 / 3, "n1": 1 / 3, "sink": 1 / 3}

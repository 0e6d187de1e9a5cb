"""PoolEvaluator on the scripted fake pool: context overflows are counted and reported, never a silent 0."""

from __future__ import annotations

import asyncio
from pathlib import Path

from langtts.optimize.evaluator import PoolEvaluator
from langtts.shapes import parallel, single
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
    from langtts.optimize import optimize
    from tests.optimize.synthetic_run import BUDGET_UNITS, evaluator, settings

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

"""Evaluators measure a graph on a batch of questions. `PoolEvaluator` runs it for real through the model pool;
:mod:`langtts.search.synthetic` holds an instrument for testing optimizer logic without any model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from langtts.compile import ContextOverflowError
from langtts.evaluation import aevaluate
from langtts.graph import CollaborationGraph
from langtts.models.pool import ModelPool
from langtts.search.base import EvaluationError, Outcome
from langtts.tasks.base import Example, Task


class Evaluator(Protocol):
    async def evaluate(self, graph: CollaborationGraph, examples: Sequence[Example]) -> Outcome:
        """Run ``graph`` on ``examples`` and measure it; raise `EvaluationError` if it could not be measured."""


class PoolEvaluator:
    """Runs graphs with :func:`langtts.evaluation.aevaluate` on the pool; every call is tagged ``tags`` (the loop
    adds ``purpose=evaluate`` and the run id).

    A question whose model call failed after the pool's retries makes the whole evaluation an
    `EvaluationError` (the server is failing; scoring it as wrong would mislead the search). A question whose
    prompts cannot fit a model's context window is scored wrong and counted in ``context_overflows`` (the run
    reports it); a graph that cannot fit even an empty question overflows on every question.
    """

    def __init__(
        self,
        task: Task,
        pool: ModelPool,
        *,
        concurrency: int = 4,
        tags: Mapping[str, str] | None = None,
        **compile_options: Any,
    ) -> None:
        self.task = task
        self.pool = pool
        self.concurrency = concurrency
        self.tags = dict(tags or {})
        self.compile_options = compile_options

    async def evaluate(self, graph: CollaborationGraph, examples: Sequence[Example]) -> Outcome:
        ids = [ex.id for ex in examples]
        try:
            result = await aevaluate(
                graph,
                self.task,
                self.pool,
                examples=examples,
                concurrency=self.concurrency,
                progress=False,
                keep_traces=False,
                errors_as_wrong=True,  # context overflows are wrong answers; call failures raise below
                tags=self.tags,
                **self.compile_options,
            )
        except ContextOverflowError:
            return Outcome(
                question_ids=ids,
                correct=[False] * len(ids),
                accuracy=0.0,
                ci_low=0.0,
                ci_high=0.0,
                flops=0.0,
                latency_s=0.0,
                prompt_tokens=0,
                completion_tokens=0,
                calls=0,
                cache_hits=0,
                errors=len(ids),
                context_overflows=len(ids),
                wall_time_s=0.0,
            )
        failed = [r for r in result.records if r.error == "call_failed"]
        if failed:
            raise EvaluationError(
                f"{len(failed)} of {result.n} questions failed after retries: {' '.join(failed[0].detail.split())}"
            )
        return Outcome.of(result)

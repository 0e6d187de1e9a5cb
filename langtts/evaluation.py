"""Run a collaboration graph over a task's questions and measure it: accuracy with a bootstrap CI, FLOPs
(measured from token usage and analytic from Theorem 1), tokens, latency, errors and cache hits.

A call that fails after the pool's retries, or a prompt that overflows a context window, is an *error*, reported
separately from wrong answers: by default its question's correctness is undetermined (``correct`` is None) and the
accuracy and its CI cover the other questions only (None when no question was determined); ``errors_as_wrong=True``
counts errors as wrong answers instead. ``EvaluationResult.raise_for_call_failures()`` raises `CallsFailedError`
when calls failed (a server down), as the command line does (exit 1). An output with no parsable answer is an
*extraction failure* (``no_answer``): wrong, and counted separately. An empty or truncated sink answer is flagged
in its record.

Answer recovery (see :mod:`langtts.compile`): extraction failures and truncations are counted *before* recovery,
with the recovery rate (recovery calls, of any node, that produced an answer) and the accuracy with and without
recovery (without: the sink's reply before its own recovery; for a vote sink, its vote over its inputs' replies
before theirs).

Every node is scored: each node's own text goes through ``task.score`` against the gold answer (trace entries get
``correct``; records keep ``node_correct`` and ``node_agreement``, the agreement among a node's inputs from the
trace), and the result has per-node accuracy and mean agreement (`NodeStats`, over the questions the node ran on).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field
from tqdm.auto import tqdm

from langtts.compile import ContextOverflowError, compile_graph
from langtts.cost import TaskLengths, graph_cost, measure_task_lengths, task_lengths
from langtts.files import write_text_atomic
from langtts.graph import CollaborationGraph
from langtts.models.errors import ModelCallError
from langtts.models.pool import ModelPool
from langtts.sync import run_sync
from langtts.tasks.base import Example, Task

RESULT_SCHEMA_VERSION = 1


class QuestionRecord(BaseModel):
    """The outcome on one question."""

    id: str
    prediction: str | None = None
    gold: str
    correct: bool | None = Field(default=False, description="None: undetermined (the question ended in an error)")
    error: str | None = Field(default=None, description="no_answer | empty | call_failed | context_overflow | ...")
    detail: str = ""
    answer: str = ""
    truncated: bool = False
    no_answer_before_recovery: bool = False
    recovery: str | None = Field(default=None, description="why the sink's answer was recovered: no_answer | truncated")
    recovered: bool = Field(default=False, description="the recovery call produced an answer")
    correct_without_recovery: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    flops: float = 0.0
    analytic_flops: float = 0.0
    latency_s: float = 0.0
    calls: int = 0
    cache_hits: int = 0
    node_correct: dict[str, bool] = Field(default_factory=dict, description="each node's own answer right")
    node_agreement: dict[str, float] = Field(
        default_factory=dict, description="nodes with >= 2 inputs: share of inputs giving their majority answer"
    )
    trace: list[dict[str, Any]] = Field(default_factory=list)


class NodeStats(BaseModel):
    """One node's own answers over the questions it ran on (questions that ended in an error are left out)."""

    id: str
    role: str
    model: str | None = Field(description="None: a vote (no LLM call)")
    n: int
    accuracy: float | None = Field(description="None: the node ran on no question")
    agreement: float | None = Field(description="mean agreement among its inputs; None below 2 inputs")


class EvaluationResult(BaseModel):
    """An evaluation of one graph on one task split; ``save``/``load`` as JSON."""

    schema_version: int = RESULT_SCHEMA_VERSION
    task: str
    split: str | None
    graph: dict[str, Any] | None
    fingerprint: str | None
    n: int
    accuracy: float | None = Field(description="None: undetermined (every question ended in an error)")
    ci_low: float | None
    ci_high: float | None
    errors_as_wrong: bool
    n_correct: int
    n_errors: int
    n_no_answer: int
    n_truncated: int
    extraction_failure_rate: float
    n_no_answer_before_recovery: int = 0
    extraction_failure_rate_before_recovery: float = 0.0
    truncation_rate: float = 0.0
    n_recovery_calls: int = 0
    n_recovered: int = 0
    recovery_rate: float | None = Field(default=None, description="recovery calls that produced an answer")
    accuracy_without_recovery: float | None = None
    error_rate: float
    prompt_tokens: int
    completion_tokens: int
    flops: float
    analytic_flops: float
    flops_ratio: float | None = Field(description="measured / analytic FLOPs")
    lengths: dict[str, float] | None = Field(description="task lengths (A, B) used for the analytic FLOPs")
    latency_mean_s: float
    latency_p50_s: float
    latency_p95_s: float
    calls: int
    cache_hits: int
    wall_time_s: float
    sandbox: str | None = Field(default=None, description="what confined scored code (None: the task runs none)")
    nodes: list[NodeStats] = Field(default_factory=list, description="per node, in graph order")
    records: list[QuestionRecord]

    def save(self, path: str | Path) -> None:
        write_text_atomic(path, self.model_dump_json(indent=1))

    @classmethod
    def load(cls, path: str | Path) -> EvaluationResult:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("schema_version") != RESULT_SCHEMA_VERSION:
            raise ValueError(f"{path}: unsupported result schema_version {data.get('schema_version')!r}")
        return cls.model_validate(data)

    def accuracy_text(self) -> str:
        """``61.5% [40.0%, 80.0%]``, or ``undetermined`` when every question ended in an error."""
        if self.accuracy is None or self.ci_low is None or self.ci_high is None:
            return "undetermined"
        return f"{self.accuracy:.1%} [{self.ci_low:.1%}, {self.ci_high:.1%}]"

    def call_failures(self) -> list[QuestionRecord]:
        """The questions whose model calls failed after the pool's retries."""
        return [r for r in self.records if r.error == "call_failed"]

    def raise_for_call_failures(self) -> None:
        """Raise `CallsFailedError` if any question's model calls failed after the pool's retries."""
        if failed := self.call_failures():
            raise CallsFailedError(
                f"{len(failed)} of {self.n} questions failed after the pool's retries (accuracy "
                f"{'counted them as wrong' if self.errors_as_wrong else 'undetermined for them'}): "
                f"{' '.join(failed[0].detail.split())}"
            )

    def summary(self) -> str:
        return (
            f"{self.task}: accuracy {self.accuracy_text()} on {self.n} questions "
            f"({self.n_correct} correct, {self.n_no_answer} without a parsable answer, {self.n_errors} errors"
            f"{' counted as wrong' if self.errors_as_wrong else ' undetermined'}); before answer recovery "
            f"{self.n_no_answer_before_recovery} without an answer and {self.n_truncated} cut at max_tokens, "
            f"{self.n_recovered}/{self.n_recovery_calls} recovered (accuracy without recovery "
            f"{self.accuracy_without_recovery or 0.0:.1%}); {self.flops:.3g} FLOPs measured "
            f"({'n/a' if self.flops_ratio is None else f'{self.flops_ratio:.2f}'}× analytic); latency "
            f"p50 {self.latency_p50_s:.2f}s p95 {self.latency_p95_s:.2f}s; {self.cache_hits}/{self.calls} calls cached"
        )


class CallsFailedError(RuntimeError):
    """Model calls failed after the pool's retries (a server down): the evaluation measured nothing for them."""


def bootstrap_ci(values: Sequence[bool], *, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """A 95 % percentile-bootstrap interval of the mean of ``values``."""
    if not values:
        return (0.0, 0.0)
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(resamples, len(data)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


async def aevaluate(
    graph: CollaborationGraph,
    task: Task,
    pool: ModelPool,
    *,
    split: str | None = None,
    n: int | None = None,
    examples: Sequence[Example] | None = None,
    concurrency: int = 4,
    errors_as_wrong: bool = False,
    progress: bool = True,
    keep_traces: bool = True,
    **compile_options: Any,
) -> EvaluationResult:
    """Evaluate ``graph`` on ``examples`` (default: the first ``n`` of ``task.load(split)``); see :func:`evaluate`."""
    if examples is None:
        examples = task.load(split)[:n] if n is not None else task.load(split)
    if not examples:
        raise ValueError("no questions to evaluate")
    app = compile_graph(graph, pool, task, **compile_options)
    limit = asyncio.Semaphore(concurrency)
    bar = tqdm(total=len(examples), desc=f"evaluate {task.name}", unit="q", disable=not progress, leave=False)
    started = time.monotonic()

    async def one(example: Example) -> QuestionRecord:
        async with limit:
            record = await _run_one(app, task, example)
        bar.update(1)
        return record

    try:
        records = await asyncio.gather(*(one(ex) for ex in examples))
    finally:
        bar.close()
    return _result(graph, task, split, list(records), pool, errors_as_wrong, time.monotonic() - started, keep_traces)


def evaluate(graph: CollaborationGraph, task: Task, pool: ModelPool, **options: Any) -> EvaluationResult:
    """Run ``graph`` on a task's questions with bounded concurrency and a progress bar; see :func:`aevaluate`.

    Options: ``split``, ``n``, ``examples``, ``concurrency`` (questions in flight), ``errors_as_wrong``,
    ``progress``, ``keep_traces`` (per-node texts in the records), and :func:`~langtts.compile.compile_graph`'s
    options (``settings``, ``node_settings``, ``prompts``, ``context_policy``, ``tags``).
    """
    return run_sync(aevaluate(graph, task, pool, **options))


async def _run_one(app: Any, task: Task, example: Example) -> QuestionRecord:
    base: dict[str, Any] = {"id": example.id, "gold": example.answer}
    try:
        out = await app.ainvoke({"question": task.format_question(example)})
    except ModelCallError as error:
        return QuestionRecord(**base, error="call_failed", detail=str(error))
    except ContextOverflowError as error:
        return QuestionRecord(**base, error="context_overflow", detail=str(error))
    usage = {
        key: out[key]
        for key in (
            "prompt_tokens",
            "completion_tokens",
            "flops",
            "latency_s",
            "calls",
            "cache_hits",
            "truncated",
        )
    }
    trace = out["trace"]
    sink = trace[-1]  # the sink runs last
    recovery = sink.get("recovery")
    agreement = {e["node"]: e["agreement"] for e in trace if e.get("agreement") is not None}
    if out["empty"]:
        return QuestionRecord(
            **base, **usage, error="empty", detail="the sink returned no text", trace=trace,
            no_answer_before_recovery=True, recovery=recovery and recovery["reason"],
            node_correct=await _score_nodes(task, example, trace, {}), node_agreement=agreement,
        )  # fmt: skip
    score = await asyncio.to_thread(task.score, out["answer"], example)
    before = score
    before_text = recovery["reply"] if recovery is not None else sink.get("text_before_recovery", out["answer"])
    if before_text != out["answer"]:
        before = await asyncio.to_thread(task.score, before_text, example)
    node_correct = await _score_nodes(task, example, trace, {out["answer"]: score.correct})
    return QuestionRecord(
        **base,
        **usage,
        prediction=score.prediction,
        correct=score.correct,
        error=score.error,
        detail=score.detail,
        answer=out["answer"],
        no_answer_before_recovery=before.error == "no_answer",
        recovery=recovery and recovery["reason"],
        recovered=bool(recovery and recovery["answer"] is not None),
        correct_without_recovery=before.correct,
        node_correct=node_correct,
        node_agreement=agreement,
        trace=trace,
    )


async def _score_nodes(
    task: Task, example: Example, trace: list[dict[str, Any]], known: dict[str, bool]
) -> dict[str, bool]:
    """Score every node's text (each distinct text once; ``known``: text -> verdict already reached); the
    verdicts go into the trace entries (``correct``) and come back by node id."""
    verdicts = dict(known)
    for entry in trace:
        if entry["text"] not in verdicts:
            verdicts[entry["text"]] = (await asyncio.to_thread(task.score, entry["text"], example)).correct
        entry["correct"] = verdicts[entry["text"]]
    return {entry["node"]: entry["correct"] for entry in trace}


def _node_stats(graph: CollaborationGraph, records: list[QuestionRecord]) -> list[NodeStats]:
    stats = []
    for node in graph.pruned().nodes:
        verdicts = [r.node_correct[node.id] for r in records if node.id in r.node_correct]
        agreements = [r.node_agreement[node.id] for r in records if node.id in r.node_agreement]
        stats.append(
            NodeStats(
                id=node.id,
                role=node.role,
                model=node.model if node.calls_model else None,
                n=len(verdicts),
                accuracy=sum(verdicts) / len(verdicts) if verdicts else None,
                agreement=statistics.fmean(agreements) if agreements else None,
            )
        )
    return stats


def _lengths(task: Task, records: list[QuestionRecord]) -> TaskLengths | None:
    """The task's preset lengths, else lengths measured from this run's no-input calls."""
    if task.lengths_key:
        return task_lengths(task.lengths_key)
    usages = [
        (entry["prompt_tokens"], entry["completion_tokens"])
        for record in records
        for entry in record.trace
        if not entry["inputs"] and entry["completion_tokens"] > 0
    ]
    return measure_task_lengths(usages) if usages else None


def _result(
    graph: CollaborationGraph,
    task: Task,
    split: str | None,
    records: list[QuestionRecord],
    pool: ModelPool,
    errors_as_wrong: bool,
    wall_time: float,
    keep_traces: bool,
) -> EvaluationResult:
    call_errors = {"call_failed", "context_overflow"}
    lengths = _lengths(task, records)
    analytic = graph_cost(graph, pool.catalog_for(graph), lengths).flops if lengths else 0.0
    recoveries = [e["recovery"] for r in records for e in r.trace if e.get("recovery")]  # before traces go
    for record in records:
        if record.error not in call_errors:
            record.analytic_flops = analytic
        elif not errors_as_wrong:
            record.correct = None
        if not keep_traces:
            record.trace = []
    scored = [r for r in records if errors_as_wrong or r.error not in call_errors]
    outcomes = [bool(r.correct) for r in scored]
    low, high = bootstrap_ci(outcomes) if outcomes else (None, None)
    answered = [r for r in records if r.error not in call_errors]
    latencies = [r.latency_s for r in answered] or [0.0]
    flops = sum(r.flops for r in records)
    n_recoveries, n_recovered = len(recoveries), sum(r["answer"] is not None for r in recoveries)
    analytic_total = sum(r.analytic_flops for r in records)
    return EvaluationResult(
        task=task.name,
        split=split,
        graph=graph.to_dict(),
        fingerprint=graph.fingerprint(),
        n=len(records),
        accuracy=sum(outcomes) / len(outcomes) if outcomes else None,
        ci_low=low,
        ci_high=high,
        errors_as_wrong=errors_as_wrong,
        n_correct=sum(outcomes),
        n_errors=sum(r.error in call_errors for r in records),
        n_no_answer=sum(r.error == "no_answer" for r in records),
        n_truncated=sum(r.truncated for r in records),
        extraction_failure_rate=sum(r.error == "no_answer" for r in records) / len(records),
        n_no_answer_before_recovery=sum(r.no_answer_before_recovery for r in records),
        extraction_failure_rate_before_recovery=sum(r.no_answer_before_recovery for r in records) / len(records),
        truncation_rate=sum(r.truncated for r in records) / len(records),
        n_recovery_calls=n_recoveries,
        n_recovered=n_recovered,
        recovery_rate=n_recovered / n_recoveries if n_recoveries else None,
        accuracy_without_recovery=sum(r.correct_without_recovery for r in scored) / len(scored) if scored else None,
        error_rate=sum(r.error in call_errors for r in records) / len(records),
        prompt_tokens=sum(r.prompt_tokens for r in records),
        completion_tokens=sum(r.completion_tokens for r in records),
        flops=flops,
        analytic_flops=analytic_total,
        flops_ratio=flops / analytic_total if analytic_total else None,
        lengths=lengths.model_dump() if lengths else None,
        latency_mean_s=statistics.fmean(latencies),
        latency_p50_s=float(np.percentile(latencies, 50)),
        latency_p95_s=float(np.percentile(latencies, 95)),
        calls=sum(r.calls for r in records),
        cache_hits=sum(r.cache_hits for r in records),
        wall_time_s=wall_time,
        sandbox=getattr(task, "sandbox_backend", None),  # tasks that run model-written code say how
        nodes=_node_stats(graph, records),
        records=records,
    )

"""What a run directory holds: the run's configuration, its resumable state and its final result.

``RUN_DIR/config.json`` (:class:`RunConfig`) is written when the run starts (a resume may change its stop
conditions); ``RUN_DIR/state.json`` (:class:`RunState`: the ledger of every evaluation, the optimizer's state,
progress, cost so far) is replaced atomically after every evaluation; ``RUN_DIR/result.json``
(:class:`OptimizationResult`) is written when the run ends, with ``RUN_DIR/graph.json``, the chosen graph without
the nodes that never run (no path to the sink). Every JSON file but graph.json carries ``schema_version``.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from langtts.compare import PairedComparison
from langtts.cost import Budget, TaskLengths
from langtts.files import write_text_atomic
from langtts.graph import CollaborationGraph
from langtts.models.ledger import Usage
from langtts.search.base import METHODS, Evaluation
from langtts.space import DEFAULT_MAX_NODES

SCHEMA_VERSION = 1
RESUMABLE_CHANGES = ("iterations", "max_evaluations", "wall_time_s", "max_flops", "patience", "concurrency")
"""The run options a resume may change: the stop conditions and the questions in flight (``n_search`` may grow)."""


class RunConfig(BaseModel):
    """Everything needed to (re)build a run: what is searched, how, and on which questions.

    A resume may change the fields of `RESUMABLE_CHANGES` and grow ``n_search`` (runs with ``test_first``);
    every other field is fixed when the run starts. The defaults are those of :func:`~langtts.search.optimize`.
    """

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    run_id: str
    task: str
    task_options: dict[str, Any] = Field(default_factory=dict)
    split: str | None = None
    method: str = "agent-reinforce"
    method_options: dict[str, Any] = Field(default_factory=dict)
    objective: dict[str, Any]
    budget: Budget
    models: list[str]
    sink_model: str
    lengths: TaskLengths
    max_nodes: int = DEFAULT_MAX_NODES
    iterations: int = Field(default=10, ge=1)
    batch_size: int = Field(default=4, ge=1)
    race_max_questions: int | None = Field(
        default=None, ge=1, description="the most search questions a round gives a candidate (default 4 × batch_size)"
    )
    n_search: int
    n_test: int = Field(default=20, ge=0)
    top_k: int = Field(default=3, ge=0)
    validation_size: int = Field(default=12, ge=0)
    seed: int = 0
    max_evaluations: int | None = None
    wall_time_s: float | None = None
    max_flops: float | None = Field(default=None, gt=0, description="stop once evaluations and optimizer used this")
    patience: int | None = None
    concurrency: int = Field(default=4, ge=1)
    temperature: float = 0.1
    max_tokens: int | None = None
    test_first: bool = Field(
        default=False, description="the held-out test questions are drawn before the search questions (new runs)"
    )
    paper_faithful: bool = Field(
        default=True,
        description=(
            "the paper's search space: the sink is a decider on sink_model and agent-reinforce keeps its model "
            "counts; False (new runs' default) lets every method choose the sink's model and a vote sink"
        ),
    )

    @field_validator("method")
    @classmethod
    def _known_method(cls, method: str) -> str:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose from {sorted(METHODS)}")
        return method


class CurvePoint(BaseModel):
    """Where a search stood at the end of a round, cumulative over every session: the best estimate so far and what
    the run had spent on evaluations (the calls and measured FLOPs of every evaluation in the ledger, cached calls
    included: a resumed run counts what the uninterrupted one would, with any evaluator) and on the optimizer (its
    LLM calls from the pool's usage, and the seconds spent in its ``propose``/``observe``: for an LLM optimizer,
    the agent's wall time)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    round: int
    best_score: float
    evaluation_calls: int
    evaluation_flops: float
    optimizer_calls: int
    optimizer_flops: float
    wall_time_s: float  # the search's active seconds, the optimizer's included
    optimizer_wall_s: float


class RunState(BaseModel):
    """The resumable state, saved after every evaluation."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    phase: Literal["search", "validate", "test", "done"] = "search"
    evaluations: list[Evaluation] = Field(default_factory=list)
    optimizer_state: dict[str, Any] | None = None
    pending_observe: int | None = None  # ledger index of the last evaluation of a round the optimizer has not observed
    incumbent: str | None = None  # fingerprint of the graph candidates race against
    rounds: int = 0
    elapsed_s: float = 0.0
    best_scores: list[float] = Field(default_factory=list)
    objective: dict[str, Any] = Field(default_factory=dict)  # the bound objective (e.g. its latency reference)
    stop_reason: str | None = None
    evaluation_cost: Usage = Field(default_factory=Usage)  # pool usage of evaluations over every session
    optimizer_cost: Usage = Field(default_factory=Usage)  # and of the optimizer's LLM calls
    sessions: int = 0
    curve: list[CurvePoint] = Field(default_factory=list)  # one point per finished round
    optimizer_wall_s: float = 0.0  # seconds in the method's propose/observe, every session
    reasked_calls: int = 0  # the method's LLM calls a resume made to redo its step that the call cache did not answer
    error: str | None = None


class Choice(BaseModel):
    """The chosen graph and why: its search estimate (the shrunk score over its search questions; a raw mean in
    runs before racing), its validation score, the estimate the choice used and the paired comparison with the
    runner-up."""

    model_config = ConfigDict(frozen=True)

    fingerprint: str
    graph: dict[str, Any]
    modelled_flops: float
    search_score: float
    search_evaluations: int
    validation_score: float | None
    validation_accuracy: float | None
    ledger_index: int
    estimate: float | None = None  # the shrunk score over its search and validation questions (None: older runs)
    versus_runner_up: PairedComparison | None = None  # on the validation questions; None: no runner-up validated

    def collaboration_graph(self) -> CollaborationGraph:
        """``graph``, parsed once."""
        return self._graph

    @cached_property
    def _graph(self) -> CollaborationGraph:
        return CollaborationGraph.from_dict(self.graph)


class ParetoPoint(BaseModel):
    """A graph of the accuracy–latency Pareto front and what it was measured on."""

    fingerprint: str
    graph: dict[str, Any] | None = None  # None in results written before the graphs were stored
    accuracy: float
    latency_s: float
    modelled_flops: float
    measured_on: Literal["validate", "search"] = "search"  # the validation questions, or mean search figures
    questions: int = 0


class OptimizationResult(BaseModel):
    """The outcome of a run (``RUN_DIR/result.json``)."""

    model_config = ConfigDict(extra="forbid")

    schema_version: int = SCHEMA_VERSION
    run_dir: str
    config: RunConfig
    chosen: Choice
    test: Evaluation | None
    stop_reason: str
    rounds: int
    ledger: list[Evaluation]
    pareto: list[ParetoPoint]
    evaluation_cost: Usage
    optimizer_cost: Usage
    wall_time_s: float
    method_report: dict[str, Any] = Field(default_factory=dict)
    curve: list[CurvePoint] = Field(default_factory=list)  # one point per search round (empty in older results)
    optimizer_wall_s: float = 0.0  # seconds in the method's propose/observe, over the search

    @property
    def graph(self) -> CollaborationGraph:
        return self.chosen.collaboration_graph()

    @property
    def agent_wall_share(self) -> float | None:
        """The optimizer LLM's share of the search's wall time; None for a method that made no LLM call."""
        if not self.optimizer_cost.calls or not self.curve:
            return None
        last = self.curve[-1]
        return last.optimizer_wall_s / last.wall_time_s if last.wall_time_s > 0 else None

    def pareto_graph(self, k: int) -> CollaborationGraph:
        """The graph of Pareto point ``k`` (0: the fastest)."""
        if not 0 <= k < len(self.pareto):
            raise ValueError(f"the run's Pareto front has {len(self.pareto)} points (K from 0), not {k}")
        point = self.pareto[k]
        if point.graph is not None:
            return CollaborationGraph.from_dict(point.graph)
        return next(e.collaboration_graph() for e in self.ledger if e.fingerprint == point.fingerprint)

    def summary(self) -> str:
        """A few human-readable lines."""
        c, t = self.chosen, self.test
        lines = [
            f"{self.config.method} on {self.config.task}: {self.rounds} rounds, {len(self.ledger)} evaluations "
            f"({self.stop_reason}), {self.wall_time_s:.0f}s",
            f"chosen graph {c.fingerprint[:12]}: search estimate {c.search_score:.3f} over {c.search_evaluations} "
            f"evaluation(s)"
            + (f", validation score {c.validation_score:.3f}" if c.validation_score is not None else "")
            + (f", shrunk estimate {c.estimate:.3f}" if c.estimate is not None else ""),
        ]
        if (v := c.versus_runner_up) is not None:
            lines.append(
                f"versus the runner-up on the same {v.n} validation questions: {v.difference:+.1%} accuracy "
                f"(95% CI {v.ci_low:+.1%} – {v.ci_high:+.1%}, McNemar p = {v.p_value:.2g})"
            )
        if t is not None:
            o = t.outcome
            lines.append(
                f"held-out test: accuracy {o.accuracy:.1%} (95% CI {o.ci_low:.1%} – {o.ci_high:.1%}) "
                f"on {len(o.question_ids)} questions, latency p50 {o.latency_s:.1f}s"
            )
        if self.pareto:
            first = self.pareto[0]
            where = f"the same {first.questions} validation questions" if first.measured_on == "validate" else "search"
            lines.append(f"Pareto front (accuracy vs latency, on {where}; `langtts export RUN_DIR --pareto K`):")
            lines += [
                f"  [{k}] accuracy {p.accuracy:.1%}, latency p50 {p.latency_s:.2f}s, {p.modelled_flops:.3g} FLOPs/q  "
                f"[{p.fingerprint[:10]}]"
                for k, p in enumerate(self.pareto)
            ]
        ev, op = self.evaluation_cost, self.optimizer_cost
        lines.append(
            f"search cost: evaluation {ev.calls} calls ({ev.hits} from the cache), {ev.flops:.3g} FLOPs; "
            f"optimizer {op.calls} LLM calls, {op.flops:.3g} FLOPs"
        )
        if (share := self.agent_wall_share) is not None:
            lines.append(
                f"the optimizer LLM (agent) took {share:.0%} of the search's wall time "
                f"({self.curve[-1].optimizer_wall_s:.0f}s of {self.curve[-1].wall_time_s:.0f}s)"
            )
        return "\n".join(lines)

    def save(self, path: str | Path) -> None:
        write_json(Path(path), self.model_dump(mode="json"))

    @classmethod
    def load(cls, path: str | Path) -> OptimizationResult:
        return cls.model_validate(read_json(Path(path), "result"))


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON atomically (temporary file, fsync, rename)."""
    write_text_atomic(path, json.dumps(data, indent=1) + "\n")


def read_json(path: Path, what: str) -> Any:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} does not exist: not a langtts run directory?") from None
    except ValueError as error:
        raise ValueError(f"{what} file {path} is not valid JSON: {error}") from None
    version = data.get("schema_version") if isinstance(data, dict) else None
    if version != SCHEMA_VERSION:
        raise ValueError(f"{what} file {path} has schema_version {version!r}; this langtts reads {SCHEMA_VERSION}")
    return data

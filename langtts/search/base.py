"""The pieces every optimizer shares: the search space, the `Optimizer` protocol and its registry, and the
types of the run ledger (`Outcome` of one evaluation, `Evaluation` = one ledger entry).

An optimizer is one module with one class registered under a method name (``@register("random")``). The loop
asks it for a graph (`propose`), races it against the incumbent on the same questions and reports back its
estimate over all the questions it answered (`observe`);
`state_dict`/`load_state_dict` make a run resumable. Adding a method touches no other method.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from langtts.cost import Budget, ModelCatalog, TaskLengths, by_size, feasible, graph_cost, maximal_multisets
from langtts.graph import CollaborationGraph
from langtts.models.pool import ModelPool
from langtts.space import DEFAULT_MAX_NODES, VOTE, ProbabilisticGraph, SinkOption
from langtts.tasks.base import Task

if TYPE_CHECKING:
    from langtts.evaluation import EvaluationResult

__all__ = [  # what `langtts.search` exports of this module
    "METHODS",
    "Evaluation",
    "EvaluationError",
    "MethodContext",
    "OptimizationError",
    "Optimizer",
    "Outcome",
    "SearchSpace",
    "register",
]

Phase = Literal["calibrate", "search", "validate", "test"]


class OptimizationError(RuntimeError):
    """A run stopped before its end (a method raised, the server failed); its run directory stays resumable."""


class EvaluationError(RuntimeError):
    """An evaluation could not be measured (e.g. model calls failed after retries): not a wrong answer."""


class Outcome(BaseModel):
    """What one evaluation of a graph on a batch of questions measured."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    question_ids: list[str]
    correct: list[bool]
    accuracy: float
    ci_low: float
    ci_high: float
    flops: float  # measured from token usage, all questions together
    latency_s: float  # median per-question latency of the graph
    prompt_tokens: int
    completion_tokens: int
    calls: int
    cache_hits: int
    errors: int = 0  # questions that ended in an error (counted as wrong)
    context_overflows: int = 0  # of those, questions whose prompts overflowed a model's context window
    wall_time_s: float
    node_accuracy: dict[str, float] = {}  # node id -> its own answers' accuracy (nodes that ran on a question)
    node_agreement: dict[str, float] = {}  # node id -> mean agreement among its inputs (nodes with >= 2 inputs)

    @classmethod
    def of(cls, result: EvaluationResult) -> Outcome:
        """What ``result`` measured: the fields both records name alike, per question and per node figures, the
        median latency. Its accuracy must be determined (not every question an error)."""
        shared = {name: getattr(result, name) for name in cls.model_fields if name in type(result).model_fields}
        return cls(
            **shared,
            question_ids=[r.id for r in result.records],
            correct=[bool(r.correct) for r in result.records],
            latency_s=result.latency_p50_s,
            errors=result.n_errors,
            context_overflows=sum(r.error == "context_overflow" for r in result.records),
            node_accuracy={s.id: s.accuracy for s in result.nodes if s.accuracy is not None},
            node_agreement={s.id: s.agreement for s in result.nodes if s.agreement is not None},
        )


class Evaluation(BaseModel):
    """One ledger entry: a graph, where it was evaluated, what was measured and the objective's score."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int
    phase: Phase
    round: int | None = None  # the search round (search phase only)
    fingerprint: str
    graph: dict[str, Any]
    modelled_flops: float  # Theorem 1 cost of the graph per question (what the budget constrains)
    score: float
    outcome: Outcome

    @property
    def accuracy(self) -> float:
        return self.outcome.accuracy

    def collaboration_graph(self) -> CollaborationGraph:
        """``graph``, parsed once."""
        return self._graph

    @cached_property
    def _graph(self) -> CollaborationGraph:
        return CollaborationGraph.from_dict(self.graph)


@dataclass(frozen=True)
class SearchSpace:
    """The graphs a run may evaluate: worker models, the sink's options, and the FLOPs budget.

    ``sink_model`` is the default sink (a decider on it; the paper's fixed sink). langtts's extension lets the
    sink also be a decider on any of ``sink_models`` or, with ``vote_sink``, a vote (:meth:`sink_options`), and
    lets a method revise a model mix it chose (``paper_faithful`` False); the defaults are the paper's space.
    """

    models: tuple[str, ...]
    sink_model: str
    budget: Budget
    lengths: TaskLengths
    catalog: ModelCatalog  # keyed by pool model ids
    max_nodes: int = DEFAULT_MAX_NODES
    sink_models: tuple[str, ...] = ()
    vote_sink: bool = False
    paper_faithful: bool = True

    def sink_options(self) -> tuple[SinkOption, ...]:
        """A decider on ``sink_model``, then on each other of ``sink_models`` (smallest first), then a vote."""
        others = [m for m in dict.fromkeys(by_size(self.sink_models, self.catalog)) if m != self.sink_model]
        deciders = tuple(SinkOption("decider", m) for m in (self.sink_model, *others))
        return deciders + ((VOTE,) if self.vote_sink else ())

    def model_ids(self) -> list[str]:
        """Every model a node of a graph in this space may run (workers and decider sinks)."""
        return list(dict.fromkeys([*self.models, self.sink_model, *self.sink_models]))

    def cost(self, graph: CollaborationGraph) -> float:
        """Modelled FLOPs of one run of ``graph`` on one question."""
        return graph_cost(graph, self.catalog, self.lengths).flops

    def feasible(self, graph: CollaborationGraph) -> bool:
        return feasible(graph, self.budget, self.catalog, self.lengths)

    def multisets(self) -> list[tuple[str, ...]]:
        """The budget-maximal worker multisets that have a worker (:func:`~langtts.cost.maximal_multisets`)."""
        specs = [self.catalog.get(m) for m in self.models]
        found = maximal_multisets(specs, self.catalog.get(self.sink_model), self.budget, self.lengths, self.max_nodes)
        return [multiset for multiset in found if multiset]

    def probabilistic_graph(self, **options: Any) -> ProbabilisticGraph:
        """A probabilistic graph over this space with uniform logits (``options`` as for ProbabilisticGraph)."""
        return ProbabilisticGraph.for_budget(
            self.models,
            self.sink_model,
            self.budget,
            self.lengths,
            self.catalog,
            max_nodes=self.max_nodes,
            **{"sink_options": self.sink_options(), **options},
        )


Calibrate = Callable[[CollaborationGraph, int], Awaitable[Evaluation]]


@dataclass(frozen=True)
class MethodContext:
    """What an optimizer is built from.

    - ``pool``/``task`` serve methods that call an LLM themselves; they pass ``tags`` (``purpose=optimizer``
      and the run id) with every such call so the search cost counts them apart from evaluations.
    - ``calibrate(graph, n)`` evaluates a graph on ``n`` search questions outside the search rounds (e.g. a
      pre-test while initialising); the loop records it in the ledger (phase ``calibrate``) and, after a
      resume, answers a repeated request for the same graph and ``n`` from the ledger instead of re-running it.
    - ``run_dir`` is the run's directory (a method may keep files there, e.g. a checkpointer database).
    - ``settings`` are the run's generation settings: ``split``, ``temperature`` and ``max_tokens`` (e.g. to find
      the stored profile measured under them); empty: the run defaults.
    - ``report(line)`` shows progress to the user.
    """

    space: SearchSpace
    seed: int
    pool: ModelPool | None = None
    task: Task | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    calibrate: Calibrate | None = None
    run_dir: Path | None = None
    report: Callable[[str], None] = lambda line: None
    settings: Mapping[str, Any] = field(default_factory=dict)


class Optimizer(Protocol):
    """One search method. Built as ``cls(context, **options)``; ``name`` is set by :func:`register`.

    The loop calls ``propose`` then ``observe`` once per search round and saves ``state_dict()`` after each
    ``observe``. On resume it builds a fresh optimizer and calls ``load_state_dict`` with the last saved state.
    If the process died after a round's evaluation was recorded but before the state after ``observe`` was
    saved, the loop calls ``propose()`` again and then ``observe(graph, evaluation)`` with the *recorded* graph
    and evaluation (not re-run): a method whose proposals are not reproducible must accept a graph other
    than the one it proposed. Optional: ``report() -> dict`` (JSON data for the result, e.g. per-round notes).
    """

    name: ClassVar[str]

    def __init__(self, context: MethodContext, **options: Any) -> None: ...

    async def propose(self) -> CollaborationGraph | None:
        """The next graph to evaluate (budget-feasible), or None when the method has nothing left to try."""

    async def observe(self, graph: CollaborationGraph, evaluation: Evaluation) -> None:
        """Learn from the evaluation of ``graph`` (normally the one :meth:`propose` returned last)."""

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state after the last :meth:`observe` (random generators included)."""

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output into a freshly built optimizer."""


METHODS: dict[str, type[Optimizer]] = {}
"""Method name -> optimizer class; modules add themselves with :func:`register`."""

C = TypeVar("C", bound=type)


def register(name: str) -> Callable[[C], C]:
    """Class decorator: add an optimizer to :data:`METHODS` under ``name``."""

    def add(cls: C) -> C:
        if name in METHODS and METHODS[name] is not cls:
            raise ValueError(f"method {name!r} is already registered by {METHODS[name].__qualname__}")
        cls.name = name  # type: ignore[attr-defined]  # C is any class; name is the Optimizer ClassVar
        METHODS[name] = cls
        return cls

    return add


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return dict(rng.bit_generator.state)


def new_rng(seed: int, state: Mapping[str, Any] | None = None) -> np.random.Generator:
    """A generator seeded with ``seed``, or restored to ``state`` (from :func:`rng_state`)."""
    rng = np.random.default_rng(seed)
    if state is not None:
        rng.bit_generator.state = dict(state)
    return rng

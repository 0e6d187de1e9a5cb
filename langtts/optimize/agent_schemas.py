"""What the Agent-REINFORCE agent reads and writes: the pilot data it is shown, the JSON schemas of its answers,
and the checks that turn an answer into a graph or into new logits (or an :class:`AgentOutputError` whose
message is fed back to the agent for a repair).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import networkx as nx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from langtts.graph import CollaborationGraph, GraphError, Node
from langtts.optimize.base import SearchSpace
from langtts.space import SINK_ID, ProbabilisticGraph, worker_id

_P_MIN = 1e-3  # probabilities are clipped to [_P_MIN, 1 - _P_MIN] before becoming logits


class AgentOutputError(ValueError):
    """An agent answer that breaks a rule; the message says which, in words the agent can act on."""


# ---- pilot data -----------------------------------------------------------------------------------------


class PilotEntry(BaseModel):
    """One pilot measurement: a model mix (or a single model) and its accuracy on a task."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: str
    mix: str = Field(description="e.g. '2×3B + 3×1B', or one model on its own")
    accuracy: float = Field(description="percent")
    budget_units: float | None = Field(default=None, description="None for a single model on its own")


_PAPER_MIXES: dict[tuple[str, float | None], dict[str, float]] = {  # method.md §4, Insight 1
    ("MATH", 9): {"9×1B": 39, "2×3B + 3×1B": 45, "1×3B + 6×1B": 44, "3×3B": 54, "1×8B": 49},
    ("MMLU", 9): {"9×1B": 30, "2×3B + 3×1B": 45, "1×3B + 6×1B": 39, "3×3B": 41, "1×8B": 64},
    ("HumanEval", 7): {"7×1B": 38, "1×3B + 3×1B": 48, "1×8B": 60},
    ("MATH", None): {"1B": 31, "3B": 40, "8B": 49, "70B": 68},
    ("MMLU", None): {"1B": 31, "3B": 43, "8B": 64, "70B": 84},
    ("HumanEval", None): {"1B": 31, "3B": 48, "8B": 60, "70B": 68},
}


def _paper_entries() -> list[PilotEntry]:
    return [
        PilotEntry(task=task, mix=mix, accuracy=accuracy, budget_units=budget)
        for (task, budget), results in _PAPER_MIXES.items()
        for mix, accuracy in results.items()
    ]


class PilotData(BaseModel):
    """Pilot accuracies shown to the agent when it picks the model mix; the default is the paper's (Llama 3.x,
    budgets in no-input calls of the 1B model). Replace it with measurements of your own pool."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = "Wang et al. 2025, Llama 3.x models; budgets in no-input calls of the 1B model"
    entries: list[PilotEntry] = Field(default_factory=_paper_entries)

    def render(self) -> str:
        """One line per task and budget: the mixes and their accuracies."""
        groups: dict[tuple[str, float | None], list[str]] = {}
        for e in self.entries:
            groups.setdefault((e.task, e.budget_units), []).append(f"{e.mix} {e.accuracy:g}")
        return "\n".join(
            f"- {task}, {'single models' if budget is None else f'budget {budget:g}'}: {', '.join(items)}"
            for (task, budget), items in groups.items()
        )


# ---- JSON schemas ---------------------------------------------------------------------------------------


def _object(properties: dict[str, Any], title: str | None = None) -> dict[str, Any]:
    """A strict object schema: every property required, nothing else allowed."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    return {"title": title, **schema} if title else schema


def _enum(values: Sequence[Any], kind: str = "string") -> dict[str, Any]:
    return {"type": kind, "enum": list(values)}


_TEXT = {"type": "string"}
_NUMBER = {"type": "number"}


def choice_schema(n_candidates: int) -> dict[str, Any]:
    numbers = _enum(range(n_candidates), "integer")
    return _object({"reasoning": _TEXT, "first": numbers, "second": numbers}, "multiset_choice")


def proposal_schema(worker_ids: Sequence[str], models: Sequence[str], fusers: bool) -> dict[str, Any]:
    roles = ["assistant", "fuser", "decider"] if fusers else ["assistant", "decider"]
    node = _object(
        {
            "id": _enum([*worker_ids, SINK_ID]),
            "model": _enum(models),
            "role": _enum(roles),
            "predecessors": {"type": "array", "items": _enum(worker_ids)},
        }
    )
    return _object({"reasoning": _TEXT, "nodes": {"type": "array", "items": node}}, "graph_proposal")


FEEDBACK_SCHEMA = _object({"feedback": _TEXT}, "textual_gradient")


def update_schema(worker_ids: Sequence[str], models: Sequence[str], fusers: bool) -> dict[str, Any]:
    node = _enum(worker_ids)
    properties: dict[str, Any] = {
        "reasoning": _TEXT,
        "edges": {
            "type": "array",
            "items": _object({"source": node, "target": _enum([*worker_ids, SINK_ID]), "probability": _NUMBER}),
        },
    }
    if fusers:
        properties["fusers"] = {"type": "array", "items": _object({"node": node, "probability": _NUMBER})}
    properties["models"] = {
        "type": "array",
        "items": _object({"node": node, "model": _enum(models), "probability": _NUMBER}),
    }
    return _object(properties, "probability_update")


# ---- parsed answers -------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MultisetChoice(_Strict):
    reasoning: str = ""
    first: int
    second: int


class ProposedNode(_Strict):
    id: str
    model: str
    role: str
    predecessors: list[str]


class Proposal(_Strict):
    reasoning: str = ""
    nodes: list[ProposedNode]


class Feedback(_Strict):
    feedback: str


class EdgeUpdate(_Strict):
    source: str
    target: str
    probability: float


class FuserUpdate(_Strict):
    node: str
    probability: float


class ModelUpdate(_Strict):
    node: str
    model: str
    probability: float


class Update(_Strict):
    reasoning: str = ""
    edges: list[EdgeUpdate] = []
    fusers: list[FuserUpdate] = []
    models: list[ModelUpdate] = []


def _validate(model: type[_Strict], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'answer'}: {err['msg']}" for err in e.errors())
        raise AgentOutputError(f"the answer does not match the schema ({problems})") from None


def parse_choice(data: Any, n_candidates: int) -> MultisetChoice:
    choice = _validate(MultisetChoice, data)
    for value in (choice.first, choice.second):
        if not 0 <= value < n_candidates:
            raise AgentOutputError(f"candidate {value} does not exist (choose from 0 to {n_candidates - 1})")
    if choice.first == choice.second:
        raise AgentOutputError("choose two different candidates")
    return choice


def parse_feedback(data: Any) -> str:
    text = _validate(Feedback, data).feedback.strip()
    if not text:
        raise AgentOutputError("the feedback is empty")
    return text


def parse_proposal(
    data: Any, *, multiset: Sequence[str], space: SearchSpace, fusers: bool, unit_flops: float
) -> CollaborationGraph:
    """The proposed graph, if it uses exactly the worker nodes and models of ``multiset``, keeps the sink, obeys
    the role rules and fits the budget; otherwise AgentOutputError naming the first problem."""
    proposal = _validate(Proposal, data)
    workers = [worker_id(i) for i in range(len(multiset))]
    known = {*workers, SINK_ID}
    seen: set[str] = set()
    for node in proposal.nodes:
        if node.id not in known:
            raise AgentOutputError(f"node {node.id!r} does not exist (nodes: {', '.join(sorted(known))})")
        if node.id in seen:
            raise AgentOutputError(f"node {node.id!r} is listed twice")
        seen.add(node.id)
        if unknown := [p for p in node.predecessors if p not in workers]:
            raise AgentOutputError(f"node {node.id!r} reads from {unknown[0]!r}, which is not a worker node")
        if len(set(node.predecessors)) != len(node.predecessors):
            raise AgentOutputError(f"node {node.id!r} lists a predecessor twice")
        if node.id == SINK_ID and (node.model != space.sink_model or node.role != "decider"):
            raise AgentOutputError(f"the sink must stay a decider running {space.sink_model!r}")
        if node.id != SINK_ID and node.role not in (("assistant", "fuser") if fusers else ("assistant",)):
            allowed = "assistant or fuser" if fusers else "assistant (the fuser role is disabled)"
            raise AgentOutputError(f"node {node.id!r} has role {node.role!r}; a worker's role is {allowed}")
    if missing := sorted(known - seen):
        raise AgentOutputError(f"node(s) {', '.join(missing)} are missing: list every node once, the sink included")
    got = Counter(n.model for n in proposal.nodes if n.id != SINK_ID)
    if got != Counter(multiset):
        raise AgentOutputError(
            f"the workers use {multiset_text(got)}, but the model counts are fixed at {multiset_text(multiset)}"
        )
    by_id = {n.id: n for n in proposal.nodes}
    try:
        graph = CollaborationGraph(
            nodes=tuple(Node(i, by_id[i].role, by_id[i].model) for i in [*workers, SINK_ID]),  # type: ignore[arg-type]
            edges=tuple((p, n.id) for n in proposal.nodes for p in n.predecessors),
        )
    except GraphError as e:
        raise AgentOutputError(str(e)) from None
    if not space.feasible(graph):
        raise AgentOutputError(
            f"the graph costs {space.cost(graph) / unit_flops:.2f} units, over the budget of "
            f"{space.budget.flops / unit_flops:.2f}: drop edges, especially into nodes with many inputs"
        )
    return graph


def multiset_text(models: Iterable[str]) -> str:
    """``2× a + 1× b`` (a Counter or a sequence of model ids, in first-appearance order)."""
    return " + ".join(f"{n}× {m}" for m, n in Counter(models).items())


def apply_update(
    pg: ProbabilisticGraph, data: Any, *, sampled: CollaborationGraph, multiset: Sequence[str], fusers: bool
) -> tuple[ProbabilisticGraph, list[str]]:
    """A copy of ``pg`` with the agent's probabilities turned into logits, and the coercions applied.

    Entries left out keep their value. Coerced (not errors): an edge that was not in the ``sampled`` graph may
    not rise (it keeps its probability); a node's model probabilities are renormalised to sum to 1. Errors:
    unknown ids, probabilities outside [0, 1], likely edges (p ≥ 0.5) forming a cycle, model probabilities
    that, when changed, no longer sum over the nodes to the model counts (±0.5).
    """
    update = _validate(Update, data)
    n, sink = pg.n_nodes, pg.n_nodes
    workers = {worker_id(i): i for i in range(n)}
    targets = {**workers, SINK_ID: sink}
    new = ProbabilisticGraph.from_dict(pg.to_dict(), pg.catalog)
    coercions: list[str] = []
    sampled_edges = {(workers.get(u), targets.get(v)) for u, v in sampled.edges}

    seen: set[tuple[int, int]] = set()
    for e in update.edges:
        if e.source not in workers or e.target not in targets:
            raise AgentOutputError(f"edge {e.source} -> {e.target}: unknown node (workers {', '.join(workers)})")
        i, j = workers[e.source], targets[e.target]
        if i == j or (i, j) in seen:
            raise AgentOutputError(f"edge {e.source} -> {e.target} is a self-loop or listed twice")
        seen.add((i, j))
        p, old = _probability(e.probability, f"edge {e.source} -> {e.target}"), pg.edge_probability(i, j)
        if (i, j) not in sampled_edges and p > old + 1e-6:
            coercions.append(f"edge {e.source} -> {e.target} was not sampled: kept at {old:.2f}, not raised to {p:.2f}")
            continue
        new.edge_logits[i, j] = _logit(p) + pg.edge_offset
    likely = nx.DiGraph((i, j) for i in range(n) for j in range(n) if i != j and new.edge_probability(i, j) >= 0.5)
    if cycle := next(iter(nx.simple_cycles(likely)), None):
        names = " -> ".join(worker_id(i) for i in [*cycle, cycle[0]])
        raise AgentOutputError(f"the likely edges (p >= 0.5) form a cycle {names}: lower one of them")

    for f in update.fusers:
        if not fusers:
            raise AgentOutputError("the fuser role is disabled: give no fuser probabilities")
        if f.node not in workers:
            raise AgentOutputError(f"fuser probability for unknown node {f.node!r}")
        p = _probability(f.probability, f"P(fuser) of {f.node}")
        new.role_logits[workers[f.node]] = (0.0, _logit(p) - pg.fuser_bonus)

    rows: dict[int, dict[int, float]] = {}
    for m in update.models:
        if m.node not in workers or m.model not in pg.models:
            raise AgentOutputError(f"model probability for {m.node!r} / {m.model!r}: unknown node or model")
        rows.setdefault(workers[m.node], {})[pg.models.index(m.model)] = _probability(
            m.probability, f"P({m.model}) of {m.node}"
        )
    probabilities = np.array([pg.model_probabilities(i) for i in range(n)])
    for i, given in rows.items():
        row = _fill_row(probabilities[i], given)
        if abs(row.sum() - 1) > 0.02:
            coercions.append(f"model probabilities of {worker_id(i)} summed to {row.sum():.2f}: renormalised")
        probabilities[i] = row / row.sum()
        new.model_logits[i] = np.log(np.clip(probabilities[i], _P_MIN, 1.0))
    for k, model in enumerate(pg.models if rows else ()):
        expected, count = probabilities[:, k].sum(), multiset.count(model)
        if abs(expected - count) > 0.5:
            raise AgentOutputError(
                f"the model probabilities put {expected:.2f} nodes' worth on {model}, but its count is {count}: "
                "move probability between nodes, keeping each model's total equal to its count"
            )
    return new, coercions


def _fill_row(old: np.ndarray, given: dict[int, float]) -> np.ndarray:
    """The given probabilities, with the mass they leave spread over the other models in proportion to ``old``."""
    row = old.copy()
    rest = [k for k in range(len(old)) if k not in given]
    for k, p in given.items():
        row[k] = p
    left, old_rest = 1.0 - sum(given.values()), old[rest].sum()
    if rest and left > 0:
        row[rest] = left * (old[rest] / old_rest if old_rest > 0 else 1 / len(rest))
    elif rest:
        row[rest] = 0.0
    if row.sum() <= 0:
        raise AgentOutputError("a node's model probabilities are all zero")
    return row


def _probability(value: float, what: str) -> float:
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise AgentOutputError(f"{what}: probability {value} is not between 0 and 1")
    return value


def _logit(p: float) -> float:
    p = min(max(p, _P_MIN), 1 - _P_MIN)
    return math.log(p / (1 - p))

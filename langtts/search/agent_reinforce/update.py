"""The agent's update: the probabilities of a checked :func:`~.schemas.update_schema` answer turned into logits."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import networkx as nx
import numpy as np

from langtts.graph import CollaborationGraph
from langtts.search.agent_reinforce.parsing import AgentOutputError
from langtts.space import SINK_ID, ProbabilisticGraph, worker_id

_P_MIN = 1e-3  # probabilities are clipped to [_P_MIN, 1 - _P_MIN] before becoming logits
_SAME = 0.006  # an update value this close to the current probability keeps it (the tables show two decimals)


def apply_update(
    pg: ProbabilisticGraph,
    data: Mapping[str, Any],
    *,
    sampled: CollaborationGraph,
    multiset: Sequence[str],
) -> tuple[ProbabilisticGraph, list[str]]:
    """A copy of ``pg`` with the probabilities of an :func:`~.schemas.update_schema` answer (checked against it:
    keys, lower-numbered inputs, values in [0, 1]) turned into logits, and the coercions applied.

    A value within ``_SAME`` of the current one keeps it (the tables show two decimals: copying them changes
    nothing). Coerced (not errors): an edge that was not in the ``sampled`` graph may not rise (it keeps its
    probability); a node's model probabilities are renormalised to sum to 1. Errors: likely edges (p ≥ 0.5)
    forming a cycle (with edges from higher- to lower-numbered nodes, which only the numeric fallback changes),
    model probabilities that, when changed, no longer sum over the nodes to the model counts (±0.5).

    With a ``"sink"`` field (several sink options), its probabilities become the sink logits (renormalised to sum
    to 1: a coercion; all zero: an error).
    """
    n, sink = pg.n_nodes, pg.n_nodes
    workers = [worker_id(i) for i in range(n)]
    new = ProbabilisticGraph.from_dict(pg.to_dict(), pg.catalog)
    coercions: list[str] = []
    index = {w: i for i, w in enumerate(workers)}
    sampled_edges = {(index.get(u), sink if v == SINK_ID else index.get(v)) for u, v in sampled.edges}

    edges: list[tuple[int, int, float]] = []
    rows: dict[int, dict[int, float]] = {}
    for j, node in enumerate(workers):
        fields = data[node]
        edges += [(index[u], j, float(p)) for u, p in fields["inputs"].items()]
        if "fuser" in fields:
            p = float(fields["fuser"])
            if abs(p - pg.fuser_probability(j)) > _SAME:
                new.role_logits[j] = (0.0, _logit(p) - pg.fuser_bonus)
        row = {pg.models.index(m): float(p) for m, p in fields.get("models", {}).items()}
        if any(abs(p - pg.model_probabilities(j)[k]) > _SAME for k, p in row.items()):
            rows[j] = row
    edges += [(index[u], sink, float(p)) for u, p in data["sink_inputs"].items()]

    for i, j, p in edges:
        old = pg.edge_probability(i, j)
        if abs(p - old) <= _SAME:
            continue
        if (i, j) not in sampled_edges and p > old:
            target = SINK_ID if j == sink else workers[j]
            coercions.append(f"edge {workers[i]} -> {target} was not sampled: kept at {old:.2f}, not raised to {p:.2f}")
            continue
        new.edge_logits[i, j] = _logit(p) + pg.edge_offset
    likely = nx.DiGraph((i, j) for i in range(n) for j in range(n) if i != j and new.edge_probability(i, j) >= 0.5)
    if cycle := next(iter(nx.simple_cycles(likely)), None):
        names = " -> ".join(worker_id(i) for i in [*cycle, cycle[0]])
        raise AgentOutputError(f"the likely edges (p >= 0.5) form a cycle {names}: lower one of them")

    probabilities = np.array([pg.model_probabilities(i) for i in range(n)])
    for i, given_row in rows.items():
        filled = _fill_row(probabilities[i], given_row)
        if abs(filled.sum() - 1) > 0.02:
            coercions.append(f"model probabilities of {worker_id(i)} summed to {filled.sum():.2f}: renormalised")
        probabilities[i] = filled / filled.sum()
        new.model_logits[i] = np.log(np.clip(probabilities[i], _P_MIN, 1.0))
    for k, model in enumerate(pg.models if rows else ()):
        expected, count = probabilities[:, k].sum(), multiset.count(model)
        if abs(expected - count) > 0.5:
            raise AgentOutputError(
                f"the model probabilities put {expected:.2f} nodes' worth on {model}, but its count is {count}: "
                "move probability between nodes, keeping each model's total equal to its count"
            )
    if "sink" in data:
        _update_sink(pg, new, data["sink"], coercions)
    return new, coercions


def _update_sink(
    pg: ProbabilisticGraph, new: ProbabilisticGraph, given: Mapping[str, Any], coercions: list[str]
) -> None:
    """The sink probabilities of an answer (keyed by option label) into ``new``'s sink logits."""
    labels = [o.label for o in pg.sink_options]
    current = pg.sink_probabilities()
    row = np.array([float(given.get(label, current[k])) for k, label in enumerate(labels)])
    if np.all(np.abs(row - current) <= _SAME):
        return
    if row.sum() <= 0:
        raise AgentOutputError(
            'the sink probabilities are all zero: give the sink option you prefer the most in "sink"'
        )
    if abs(row.sum() - 1) > 0.02:
        coercions.append(f"sink probabilities summed to {row.sum():.2f}: renormalised")
    new.sink_logits[:] = np.log(np.clip(row / row.sum(), _P_MIN, 1.0))


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


def _logit(p: float) -> float:
    p = min(max(p, _P_MIN), 1 - _P_MIN)
    return math.log(p / (1 - p))

"""``grid``: the standard test-time-scaling shapes — "just use a standard method" as a baseline.

Candidates are the shapes of :mod:`langtts.shapes` built from one pool model each (every node, sink included,
runs that model): ``single``; ``parallel`` n; ``chain`` depth d; ``fused`` n (n ≥ 2); ``layered`` w×d (w, d ≥ 2);
and, when the space allows a vote sink, ``self_consistency`` k (k ≥ 2 samples and a vote); every size that fits
the budget (isomorphic duplicates such as parallel 1 = chain 1 once). ``parallel`` k is also Self-MoA (k samples,
a decider on the same model). The groups (shape,
model) are interleaved smallest size first, so a short run still tries every shape and model; the method is
done when every candidate has been evaluated once.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from langtts import shapes
from langtts.cost import by_size
from langtts.graph import CollaborationGraph
from langtts.search.base import Evaluation, MethodContext, SearchSpace, register


def candidates(space: SearchSpace) -> list[CollaborationGraph]:
    """Every fitting shape over the space's models (sink models included), interleaved by group."""
    models = by_size(space.model_ids(), space.catalog)
    groups: list[list[CollaborationGraph]] = []
    for model in models:
        groups += [
            [shapes.single(model)] if space.feasible(shapes.single(model)) else [],
            _fitting(space, functools.partial(shapes.parallel, model), start=1),
            _fitting(space, functools.partial(shapes.chain, model), start=1),
            _fitting(space, functools.partial(shapes.fused, model), start=2),
            [g for w in range(2, space.max_nodes + 1) for g in _fitting(space, _layers(model, w), start=2)],
            _fitting(space, functools.partial(shapes.self_consistency, model), start=2) if space.vote_sink else [],
        ]
    interleaved = itertools.chain.from_iterable(itertools.zip_longest(*groups))
    unique: dict[str, CollaborationGraph] = {}
    for graph in interleaved:
        if graph is not None:
            unique.setdefault(graph.fingerprint(), graph)
    return list(unique.values())


def _layers(model: str, width: int) -> Callable[[int], CollaborationGraph]:
    return lambda depth: shapes.layered(model, width, depth)


def _fitting(space: SearchSpace, build: Callable[[int], CollaborationGraph], start: int) -> list[CollaborationGraph]:
    """``build(k)`` for k = start, start+1, ... while it fits the budget and has at most max_nodes workers."""
    out: list[CollaborationGraph] = []
    while len((graph := build(start + len(out))).workers) <= space.max_nodes and space.feasible(graph):
        out.append(graph)
    return out


@register("grid")
class GridSearch:
    name: ClassVar[str]

    def __init__(self, context: MethodContext) -> None:
        self.candidates = candidates(context.space)
        self.next = 0

    async def propose(self) -> CollaborationGraph | None:
        if self.next >= len(self.candidates):
            return None
        self.next += 1
        return self.candidates[self.next - 1]

    async def observe(self, graph: CollaborationGraph, evaluation: Evaluation) -> None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"next": self.next}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.next = state["next"]

"""``random``: the best of N random budget-feasible graphs.

Each round samples a graph from a probabilistic graph with uniform logits (method.md §3): a random model
multiset that the budget can pay for, sparse random edges (p ≈ 0.12), random roles. Nothing is learned.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from langtts.graph import CollaborationGraph
from langtts.search.base import Evaluation, MethodContext, new_rng, register, rng_state


@register("random")
class RandomSearch:
    name: ClassVar[str]

    def __init__(self, context: MethodContext) -> None:
        self.space = context.space.probabilistic_graph()
        self.seed = context.seed
        self.rng = new_rng(context.seed)

    async def propose(self) -> CollaborationGraph:
        return self.space.sample(self.rng).graph

    async def observe(self, graph: CollaborationGraph, evaluation: Evaluation) -> None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"rng": rng_state(self.rng)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng = new_rng(self.seed, state["rng"])

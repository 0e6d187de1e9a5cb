"""A synthetic evaluator: an *instrument for testing optimizer logic*, not a model of any real task.

It scores a graph by a deterministic function of its structure with a known optimum, a hidden ``target``
graph. The quality q(G) ∈ [0, 1] compares features of the pruned graph with the target's::

    mix    = Σ_m min(count_m, target_m) / max(workers, target workers)    (model multiset overlap)
    shape  = 1 / (1 + |depth − depth*| + |width − width*|)
    fusers = 1 / (1 + |fusers − fusers*|)
    inputs = 1 / (1 + |sink in-degree − sink in-degree*|)
    q      = 0.4·mix + 0.3·shape + 0.15·fusers + 0.15·inputs

so q = 1 exactly for graphs with the target's features. A question is answered correctly with probability
p = floor + (ceiling − floor)·q: question i is correct iff u_i < p, where u_i is a hash of the question id (and,
with ``noise=True``, of the graph's fingerprint too), so results are reproducible. FLOPs come from Theorem 1 and
latency from the critical path with a throughput inversely proportional to model size; no model is called.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from langtts.cost import SpeedProfile, estimate_latency
from langtts.evaluation import bootstrap_ci
from langtts.graph import CollaborationGraph
from langtts.search.base import Outcome, SearchSpace
from langtts.tasks.base import Example

WEIGHTS = {"mix": 0.4, "shape": 0.3, "fusers": 0.15, "inputs": 0.15}


@dataclass(frozen=True)
class Features:
    models: Counter[str]
    depth: int
    width: int
    fusers: int
    sink_inputs: int

    @classmethod
    def of(cls, graph: CollaborationGraph) -> Features:
        pruned = graph.pruned()
        return cls(
            models=Counter(n.model for n in pruned.workers),
            depth=pruned.depth,
            width=pruned.width,
            fusers=sum(n.role == "fuser" for n in pruned.nodes),
            sink_inputs=pruned.in_degree(pruned.sink.id),
        )


class SyntheticEvaluator:
    """Scores graphs against a hidden ``target`` (see the module docstring); ``delay_s`` sleeps per
    evaluation, to make a run slow enough to interrupt in tests."""

    def __init__(
        self,
        target: CollaborationGraph,
        space: SearchSpace,
        *,
        floor: float = 0.1,
        ceiling: float = 0.9,
        noise: bool = True,
        seed: int = 0,
        delay_s: float = 0.0,
    ) -> None:
        if not space.feasible(target):
            raise ValueError("the synthetic target graph must fit the search space's budget")
        self.target = target
        self.space = space
        self.floor, self.ceiling = floor, ceiling
        self.noise = noise
        self.seed = seed
        self.delay_s = delay_s
        self._target = Features.of(target)
        self._profiles = {
            m: SpeedProfile(
                prefill_tps=1e12 / space.catalog.get(m).params, decode_tps=1e11 / space.catalog.get(m).params
            )
            for m in space.model_ids()
        }

    @property
    def optimum(self) -> float:
        """The highest expected accuracy, reached by the target and graphs with its features."""
        return self.ceiling

    def quality(self, graph: CollaborationGraph) -> float:
        got, want = Features.of(graph), self._target
        overlap = sum((got.models & want.models).values())
        mix = overlap / max(got.models.total(), want.models.total(), 1)
        shape = 1 / (1 + abs(got.depth - want.depth) + abs(got.width - want.width))
        fusers = 1 / (1 + abs(got.fusers - want.fusers))
        inputs = 1 / (1 + abs(got.sink_inputs - want.sink_inputs))
        terms = {"mix": mix, "shape": shape, "fusers": fusers, "inputs": inputs}
        return sum(WEIGHTS[k] * v for k, v in terms.items())

    def expected_accuracy(self, graph: CollaborationGraph) -> float:
        return self.floor + (self.ceiling - self.floor) * self.quality(graph)

    async def evaluate(self, graph: CollaborationGraph, examples: Sequence[Example]) -> Outcome:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        p = self.expected_accuracy(graph)
        salt = graph.fingerprint() if self.noise else ""
        correct = [self._uniform(salt, ex.id) < p for ex in examples]
        low, high = bootstrap_ci(correct)
        n, nodes = len(examples), len(graph.pruned().nodes)
        return Outcome(
            question_ids=[ex.id for ex in examples],
            correct=correct,
            accuracy=sum(correct) / n if n else 0.0,
            ci_low=low,
            ci_high=high,
            flops=self.space.cost(graph) * n,
            latency_s=estimate_latency(graph, self.space.lengths, self._profiles),
            prompt_tokens=0,
            completion_tokens=0,
            calls=nodes * n,
            cache_hits=0,
            wall_time_s=self.delay_s,
        )

    def _uniform(self, salt: str, question_id: str) -> float:
        digest = hashlib.sha256(f"{self.seed}:{salt}:{question_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

"""``reinforce``: GPTSwarm-style REINFORCE with numeric gradients (method.md §6).

Each round samples one graph G from p_θ (:class:`~langtts.space.ProbabilisticGraph`), evaluates it, and takes
an Adam ascent step (lr 0.1 by default) on the edge, role, model and sink logits along ``A · ∇θ log p(G)``, where
the advantage ``A = score − b``.

Baseline ``b``: ``"ema"`` (default) is an exponential moving average of the past scores (decay 0.9, started at
the first score); ``"none"`` (b = 0) is what the reference did. The moving average is the default because
scores are non-negative and Adam normalises each parameter's step: without a baseline every step raises the
probability of whatever was sampled by about lr, almost regardless of how well it did, so the search drifts
towards its own early samples. Centring the score restores the sign: below-average graphs are pushed down.

:class:`PolicyGradient` (baseline and Adam step on one probabilistic graph) is shared with the numeric updates
of ``agent-reinforce``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np

from langtts.graph import CollaborationGraph
from langtts.search.base import Evaluation, MethodContext, new_rng, register, rng_state
from langtts.space import ProbabilisticGraph, Sample

TABLES = ("edge", "role", "model", "sink")


class PolicyGradient:
    """The score baseline and Adam ascent on the logits of ``graph_space`` (changed in place)."""

    def __init__(
        self,
        graph_space: ProbabilisticGraph,
        *,
        lr: float = 0.1,
        baseline: Literal["ema", "none"] = "ema",
        baseline_decay: float = 0.9,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        if baseline not in ("ema", "none"):
            raise ValueError(f"baseline must be 'ema' or 'none', got {baseline!r}")
        self.graph_space = graph_space
        self.lr, self.baseline, self.baseline_decay = lr, baseline, baseline_decay
        self.betas, self.eps = betas, eps
        self.steps = 0
        self.baseline_value: float | None = None
        self.moments = {t: (np.zeros_like(self._logits(t)), np.zeros_like(self._logits(t))) for t in TABLES}

    def _logits(self, table: str) -> np.ndarray:
        return getattr(self.graph_space, f"{table}_logits")

    def advantage(self, score: float) -> float:
        """``score − b`` with the baseline before this score; then folds the score into the baseline."""
        if self.baseline == "none":
            return score
        base = score if self.baseline_value is None else self.baseline_value
        self.baseline_value = self.baseline_decay * base + (1 - self.baseline_decay) * score
        return score - base

    def ascend(self, sample: Sample, advantage: float) -> None:
        """One Adam step along ``advantage · ∇θ log p(sample)``."""
        grads = self.graph_space.grad_log_prob(sample)
        self.steps += 1
        beta1, beta2 = self.betas
        for table in TABLES:
            grad = advantage * getattr(grads, table)
            m, v = self.moments[table]
            m[:] = beta1 * m + (1 - beta1) * grad
            v[:] = beta2 * v + (1 - beta2) * grad**2
            m_hat = m / (1 - beta1**self.steps)
            v_hat = v / (1 - beta2**self.steps)
            self._logits(table)[:] += self.lr * m_hat / (np.sqrt(v_hat) + self.eps)

    def state_dict(self) -> dict[str, Any]:
        """Steps, baseline and Adam moments (the logits belong to the graph space)."""
        return {
            "steps": self.steps,
            "baseline_value": self.baseline_value,
            "moments": {t: [m.tolist(), v.tolist()] for t, (m, v) in self.moments.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.steps = state["steps"]
        self.baseline_value = state["baseline_value"]
        for table in TABLES:
            if table not in state["moments"]:  # saved before the sink table existed (one sink option)
                continue
            m, v = state["moments"][table]
            self.moments[table] = (np.asarray(m, dtype=float), np.asarray(v, dtype=float))


@register("reinforce")
class Reinforce:
    name: ClassVar[str]

    def __init__(self, context: MethodContext, **options: Any) -> None:
        """`options` are those of :class:`PolicyGradient` (``lr``, ``baseline``, ``baseline_decay``, ``betas``,
        ``eps``)."""
        self.graph_space = context.space.probabilistic_graph()
        self.gradient = PolicyGradient(self.graph_space, **options)
        self.seed = context.seed
        self.rng = new_rng(context.seed)
        self._pending: Sample | None = None

    async def propose(self) -> CollaborationGraph:
        self._pending = self.graph_space.sample(self.rng)
        return self._pending.graph

    async def observe(self, graph: CollaborationGraph, evaluation: Evaluation) -> None:
        sample, self._pending = self._pending, None
        if sample is None or sample.graph != graph:  # a recorded graph after a resume: recover its draws
            sample = self.graph_space.explain(graph)
        self.gradient.ascend(sample, self.gradient.advantage(evaluation.score))

    def state_dict(self) -> dict[str, Any]:
        return {
            "rng": rng_state(self.rng),
            "logits": {t: getattr(self.graph_space, f"{t}_logits").tolist() for t in TABLES},
            **self.gradient.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng = new_rng(self.seed, state["rng"])
        for table in TABLES:
            if table in state["logits"]:  # no "sink" in a state saved before the sink table existed
                getattr(self.graph_space, f"{table}_logits")[:] = np.asarray(state["logits"][table], dtype=float)
        self.gradient.load_state_dict(state)

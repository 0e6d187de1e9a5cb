"""Compare graphs on the same questions: paired bootstrap CI of the accuracy difference and McNemar's exact test.

Both tests use the per-question pairing, so they are sharper than comparing two separate accuracy intervals. A
question that ended in an error (a call failed after retries) for either graph leaves the pairing unless
``errors_as_wrong=True`` counts it as wrong.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
from pydantic import BaseModel

from langtts.evaluation import CallsFailedError, EvaluationResult, evaluate
from langtts.files import write_text_atomic
from langtts.graph import CollaborationGraph
from langtts.models.pool import ModelPool
from langtts.tasks.base import Example, Task


class PairedComparison(BaseModel):
    """Graph a against graph b on the same questions: ``difference`` = accuracy(a) − accuracy(b)."""

    n: int
    accuracy_a: float
    accuracy_b: float
    difference: float
    ci_low: float  # 95% paired-bootstrap interval of the difference
    ci_high: float
    only_a: int  # questions a answers correctly and b does not
    only_b: int
    p_value: float  # exact two-sided McNemar test (binomial on the discordant questions)
    undetermined: int = 0  # questions left out: an error in either graph


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: P(X ≤ min) doubled, X ~ Binomial(only_a + only_b, 1/2); capped at 1."""
    if only_a < 0 or only_b < 0:
        raise ValueError(f"discordant counts must be >= 0, got {only_a} and {only_b}")
    n = only_a + only_b
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1))
    return min(1.0, 2 * tail / 2**n)


def paired_comparison(a: Sequence[bool], b: Sequence[bool], *, n_boot: int = 10_000, seed: int = 0) -> PairedComparison:
    """Compare correctness flags of two graphs on the same questions (position i: question i in both)."""
    if len(a) != len(b):
        raise ValueError(f"paired outcomes need the same questions, got {len(a)} and {len(b)} outcomes")
    if not a:
        raise ValueError("no questions to compare")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    n = len(a)
    only_a = sum(bool(x) and not y for x, y in zip(a, b, strict=True))
    only_b = sum(bool(y) and not x for x, y in zip(a, b, strict=True))
    # resampling questions = resampling the per-question differences (+1, -1, 0): a multinomial draw of counts
    probs = [only_a / n, only_b / n, (n - only_a - only_b) / n]
    counts = np.random.default_rng(seed).multinomial(n, probs, size=n_boot)
    diffs = (counts[:, 0] - counts[:, 1]) / n
    return PairedComparison(
        n=n,
        accuracy_a=sum(map(bool, a)) / n,
        accuracy_b=sum(map(bool, b)) / n,
        difference=(only_a - only_b) / n,
        ci_low=float(np.percentile(diffs, 2.5)),
        ci_high=float(np.percentile(diffs, 97.5)),
        only_a=only_a,
        only_b=only_b,
        p_value=mcnemar_exact(only_a, only_b),
    )


class ComparisonResult(BaseModel):
    """Each graph's evaluation on the same questions, and each graph against the reference (the first)."""

    task: str
    question_ids: list[str]
    reference: str
    results: dict[str, EvaluationResult]
    comparisons: dict[str, PairedComparison]  # name -> (that graph vs the reference)

    def summary(self) -> dict[str, Any]:
        """JSON data without the per-question records."""
        return self.model_dump(exclude={"results": {"__all__": {"records"}}})

    def raise_for_call_failures(self) -> None:
        """Raise `CallsFailedError` if model calls failed after the pool's retries for any graph."""
        for result in self.results.values():
            result.raise_for_call_failures()

    def save(self, path: str | Path) -> None:
        write_text_atomic(path, self.model_dump_json(indent=1))

    @classmethod
    def load(cls, path: str | Path) -> ComparisonResult:
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))


def compare(
    graphs: Mapping[str, CollaborationGraph],
    task: Task,
    pool: ModelPool,
    *,
    examples: Sequence[Example],
    n_boot: int = 10_000,
    seed: int = 0,
    **options: Any,
) -> ComparisonResult:
    """Evaluate every graph on ``examples`` and compare each with the first; ``options`` go to
    :func:`langtts.evaluation.evaluate` (``settings``, ``concurrency``, ``progress``, ``errors_as_wrong``, ...).

    The paired tests leave out the questions that ended in an error for either graph (unless ``errors_as_wrong``);
    `CallsFailedError` if no question is left for a comparison.
    """
    if len(graphs) < 2:
        raise ValueError(f"compare needs at least two graphs, got {len(graphs)}")
    if not examples:
        raise ValueError("no questions to compare on")
    results = {name: evaluate(graph, task, pool, examples=examples, **options) for name, graph in graphs.items()}
    reference, *others = results
    comparisons = {}
    for name in others:
        pairs = [
            (a.correct, b.correct)
            for a, b in zip(results[name].records, results[reference].records, strict=True)
            if a.correct is not None and b.correct is not None
        ]
        if not pairs:
            results[name].raise_for_call_failures()
            results[reference].raise_for_call_failures()
            raise CallsFailedError(f"{name} and {reference}: every question ended in an error")
        a, b = zip(*pairs, strict=True)
        comparison = paired_comparison(a, b, n_boot=n_boot, seed=seed)
        comparisons[name] = comparison.model_copy(update={"undetermined": len(examples) - len(pairs)})
    return ComparisonResult(
        task=task.name,
        question_ids=[ex.id for ex in examples],
        reference=reference,
        results=results,
        comparisons=comparisons,
    )


DEFAULT_DISCORDANT_RATE = 0.3
"""The planning share of discordant questions (one system right, the other wrong) when none is measured yet: two
independent systems at 30 % accuracy disagree on 2·0.3·0.7 = 42 % of the questions; systems built on the same model
agree more often."""


def _z(alpha: float, power: float) -> tuple[float, float]:
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must lie strictly between 0 and 1, got {alpha} and {power}")
    normal = NormalDist()
    return normal.inv_cdf(1 - alpha / 2), normal.inv_cdf(power)


def mcnemar_sample_size(
    difference: float, discordant_rate: float = DEFAULT_DISCORDANT_RATE, *, alpha: float = 0.05, power: float = 0.8
) -> int:
    """Questions a paired comparison needs to detect an accuracy ``difference`` δ (two-sided level ``alpha``, the
    given ``power``) when a share ψ of the questions is discordant (one system right, the other wrong) — Connor
    (1987), the normal approximation of McNemar's test:

        n = (z_{1−α/2}·√ψ + z_{power}·√(ψ − δ²))² / δ²,  rounded up,

    with ψ = max(``discordant_rate``, |δ|): a difference of δ needs at least a share δ of discordant questions.
    """
    delta = abs(difference)
    if not 0 < delta <= 1 or not 0 < discordant_rate <= 1:
        raise ValueError(
            f"need 0 < |difference| <= 1 and 0 < discordant_rate <= 1, got {difference}, {discordant_rate}"
        )
    z_a, z_b = _z(alpha, power)
    psi = max(discordant_rate, delta)
    return math.ceil((z_a * math.sqrt(psi) + z_b * math.sqrt(psi - delta * delta)) ** 2 / (delta * delta) - 1e-9)


def detectable_difference(
    n: int, discordant_rate: float = DEFAULT_DISCORDANT_RATE, *, alpha: float = 0.05, power: float = 0.8
) -> float | None:
    """The smallest accuracy difference δ that a paired comparison on ``n`` questions detects (McNemar, two-sided
    level ``alpha``, the given ``power``): :func:`mcnemar_sample_size` solved for δ.

    With a = z_{1−α/2}, b = z_{power}, ψ the discordant share and v = √(ψ − δ²), Connor's √n·δ = a√ψ + b·v and
    n·δ² + n·v² = n·ψ give δ = s·√ψ with

        c = (√(n·(n + b² − a²)) − a·b) / (n + b²),   s = √(1 − c²).

    At ψ = ``discordant_rate`` when that δ ≤ ψ; otherwise no difference is detectable at that discordance, and the
    answer is the smallest δ detectable when every discordant question favours one system (ψ = δ): δ = s².
    None when not even that is possible (c < 0: n ≤ 3 at α = 0.05 and 80 % power).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not 0 < discordant_rate <= 1:
        raise ValueError(f"discordant_rate must be in (0, 1], got {discordant_rate}")
    z_a, z_b = _z(alpha, power)
    root = n * (n + z_b * z_b - z_a * z_a)
    c = (math.sqrt(root) - z_a * z_b) / (n + z_b * z_b) if root >= 0 else -1.0
    if c < 0:
        return None
    s2 = 1 - c * c
    delta = math.sqrt(s2 * discordant_rate)
    return delta if delta <= discordant_rate else s2


__all__ = [
    "DEFAULT_DISCORDANT_RATE",
    "ComparisonResult",
    "PairedComparison",
    "compare",
    "detectable_difference",
    "mcnemar_exact",
    "mcnemar_sample_size",
    "paired_comparison",
]

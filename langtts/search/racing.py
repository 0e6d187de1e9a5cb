"""Racing a candidate graph against the incumbent on the same questions, and the shrunk accuracy that ranks graphs.

**Paired race.** On the questions both graphs answered, ``b`` counts those only the candidate got right and ``c``
those only the incumbent got right (the discordant pairs; concordant ones say nothing about which is better).
With a uniform prior on θ = P(candidate right | the two disagree), the posterior is θ ~ Beta(1 + b, 1 + c) and

    P(candidate better) = P(θ > 1/2) = P(Binomial(b + c + 1, 1/2) ≤ b)

(the Beta–binomial identity for integer parameters: exact, no numerical integration). The race says ``worse``
when that probability is at most :data:`WORSE_BELOW`, ``better`` when it is at least :data:`BETTER_ABOVE`, and
``contention`` otherwise; the search loop grows the candidate's questions in chunks while it is in contention.

**Measured error rates** (tests/search/test_racing.py; chunks of 4 questions, at most 32, a look after each chunk,
questions answered independently — the worst case: real graphs agree more often, which leaves fewer discordant
pairs of noise): a candidate 30 points worse than an incumbent at 50–90 % accuracy is dropped (``worse``) within
:data:`DROP_WITHIN` = 32 questions in ≥ 95 % of races (about 88 % within 16); a candidate exactly as good as the
incumbent is declared ``better`` in at most :data:`FALSE_BETTER_RATE` = 3 % of races (measured ≈ 2 %). The
``worse`` threshold is lenient on purpose (an equal candidate is dropped in about 40 % of races): dropping only
stops spending questions on it, its estimate still ranks it.

**Shrunk estimate.** A graph's accuracy is ranked by its posterior mean under an empirical-Bayes Beta prior
centred on ``prior_mean`` (the mean accuracy of every search question measured so far) with the weight of
``strength`` questions: ``(correct + strength · prior_mean) / (n + strength)``; so 3 right of 3 does not outrank
30 of 36.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Decision = Literal["worse", "better", "contention"]

WORSE_BELOW = 0.2
"""``worse`` when P(candidate better) ≤ this."""
BETTER_ABOVE = 0.99
"""``better`` when P(candidate better) ≥ this."""
PRIOR_STRENGTH = 4.0
"""The prior's weight in questions, for :func:`shrunk`."""
DROP_WITHIN = 32
"""Questions within which a candidate 30 points worse is dropped in ≥ 95 % of races (see the module docstring)."""
FALSE_BETTER_RATE = 0.03
"""The most often an equally good candidate is declared ``better`` (see the module docstring)."""


@dataclass(frozen=True)
class Pairs:
    """Two graphs on their shared questions: ``n`` questions, ``b`` only the candidate right, ``c`` only the
    incumbent right."""

    n: int
    b: int
    c: int

    @classmethod
    def of(cls, candidate: Mapping[str, bool], incumbent: Mapping[str, bool]) -> Pairs:
        """The pairs of two graphs' correctness by question id, on the ids both have."""
        shared = candidate.keys() & incumbent.keys()
        b = sum(candidate[q] and not incumbent[q] for q in shared)
        c = sum(incumbent[q] and not candidate[q] for q in shared)
        return cls(n=len(shared), b=b, c=c)

    @property
    def p_better(self) -> float:
        """P(the candidate is better | these pairs) under the uniform prior: see :func:`p_better`."""
        return p_better(self.b, self.c)


def p_better(b: int, c: int) -> float:
    """P(θ > 1/2) for θ ~ Beta(1 + b, 1 + c), exactly: P(Binomial(b + c + 1, 1/2) ≤ b)."""
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got {b} and {c}")
    n = b + c + 1
    return sum(math.comb(n, k) for k in range(b + 1)) / 2**n


def decide(pairs: Pairs, *, worse_below: float = WORSE_BELOW, better_above: float = BETTER_ABOVE) -> Decision:
    """``worse``, ``better`` or ``contention`` by the posterior probability that the candidate is better."""
    if not 0 <= worse_below < better_above <= 1:
        raise ValueError(f"need 0 <= worse_below < better_above <= 1, got {worse_below} and {better_above}")
    p = pairs.p_better
    if p <= worse_below:
        return "worse"
    if p >= better_above:
        return "better"
    return "contention"


def shrunk(correct: int, n: int, prior_mean: float, strength: float = PRIOR_STRENGTH) -> float:
    """The posterior mean accuracy of ``correct`` right of ``n`` under a Beta prior of mean ``prior_mean`` and
    weight ``strength`` questions."""
    if not 0 <= correct <= n:
        raise ValueError(f"need 0 <= correct <= n, got {correct} of {n}")
    if not 0 <= prior_mean <= 1 or strength < 0:
        raise ValueError(f"need a prior mean in [0, 1] and strength >= 0, got {prior_mean} and {strength}")
    if n + strength == 0:
        return prior_mean
    return (correct + strength * prior_mean) / (n + strength)


__all__ = ["BETTER_ABOVE", "PRIOR_STRENGTH", "WORSE_BELOW", "Decision", "Pairs", "decide", "p_better", "shrunk"]

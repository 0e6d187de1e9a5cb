"""The paired race and the shrunk estimate: the exact posterior, and the error rates the module states, measured by
simulating races of graphs with known accuracies (questions answered independently)."""

from __future__ import annotations

import random

import pytest

from langtts.search.racing import (
    BETTER_ABOVE,
    DROP_WITHIN,
    FALSE_BETTER_RATE,
    Decision,
    Pairs,
    decide,
    p_better,
    shrunk,
)


def test_p_better_is_the_beta_tail_at_one_half() -> None:
    assert p_better(0, 0) == 0.5
    assert p_better(3, 3) == pytest.approx(0.5)
    assert p_better(0, 2) == 1 / 8  # Beta(1, 3): (1 - 1/2)^3
    assert p_better(2, 0) == 7 / 8
    assert p_better(5, 1) == pytest.approx(1 - p_better(1, 5))
    # Beta(1 + b, 1 + c) tail by numerical integration
    b, c, steps = 4, 2, 200_000
    density = [(x / steps) ** b * (1 - x / steps) ** c for x in range(steps + 1)]
    assert p_better(b, c) == pytest.approx(sum(density[steps // 2 :]) / sum(density), abs=1e-4)
    with pytest.raises(ValueError, match="discordant counts"):
        p_better(-1, 0)


def test_pairs_count_only_shared_questions() -> None:
    candidate = {"q1": True, "q2": False, "q3": True, "q9": True}
    incumbent = {"q1": False, "q2": True, "q3": True, "q4": False}
    assert Pairs.of(candidate, incumbent) == Pairs(n=3, b=1, c=1)
    assert decide(Pairs(n=3, b=1, c=1)) == "contention"
    assert decide(Pairs(n=8, b=0, c=4)) == "worse"
    assert decide(Pairs(n=8, b=8, c=0)) == "better"
    with pytest.raises(ValueError, match="worse_below < better_above"):
        decide(Pairs(n=1, b=0, c=0), worse_below=0.6, better_above=0.4)


def test_shrunk_pulls_few_questions_towards_the_prior() -> None:
    assert shrunk(3, 3, 0.5) == pytest.approx(5 / 7)
    assert shrunk(30, 36, 0.5) > shrunk(3, 3, 0.5)  # 3 of 3 does not outrank 30 of 36
    assert shrunk(0, 0, 0.4) == 0.4 and shrunk(2, 4, 0.4, strength=0) == 0.5
    with pytest.raises(ValueError, match="correct <= n"):
        shrunk(5, 4, 0.5)


def _race(candidate: float, incumbent: float, rng: random.Random, chunk: int = 4) -> tuple[Decision, int]:
    """What the search loop does: looks after each chunk of paired questions, up to DROP_WITHIN questions."""
    b = c = n = 0
    while n < DROP_WITHIN:
        for _ in range(chunk):
            x, y = rng.random() < candidate, rng.random() < incumbent
            b, c = b + (x and not y), c + (y and not x)
        n += chunk
        if (decision := decide(Pairs(n, b, c))) != "contention":
            return decision, n
    return "contention", n


@pytest.mark.parametrize("incumbent", [0.5, 0.7, 0.9])
def test_a_candidate_30_points_worse_is_dropped_within_the_stated_questions(incumbent: float) -> None:
    rng = random.Random(incumbent)
    races = [_race(incumbent - 0.3, incumbent, rng) for _ in range(200)]
    dropped = sum(decision == "worse" and n <= DROP_WITHIN for decision, n in races)
    assert dropped >= 0.95 * len(races)
    assert not any(decision == "better" for decision, _ in races)


def test_an_equal_candidate_is_declared_better_at_most_at_the_stated_rate() -> None:
    rng = random.Random(1)
    races = [_race(p, p, rng) for p in (0.5, 0.7, 0.9) for _ in range(600)]
    wrongly_better = sum(decision == "better" for decision, _ in races) / len(races)
    assert wrongly_better <= FALSE_BETTER_RATE
    assert wrongly_better > 0  # the rate is measured, not trivially zero
    assert BETTER_ABOVE < 1

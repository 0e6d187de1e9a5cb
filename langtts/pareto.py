"""The Pareto front of (cost, accuracy) points: used by the search result and by the plots."""

from __future__ import annotations

import math
from collections.abc import Sequence


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated ``(cost, accuracy)`` points (minimise cost, maximise accuracy), by cost.

    A point is dominated when another is no worse on both and better on one; duplicates of a front point stay.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front: list[int] = []
    best = -math.inf
    for i in order:
        if points[i][1] > best or (front and tuple(points[i]) == tuple(points[front[-1]])):
            front.append(i)
            best = max(best, points[i][1])
    return front

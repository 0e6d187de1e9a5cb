"""What a search maximises: a score computed from the `Outcome` of an evaluation.

- ``accuracy``: the fraction of questions answered correctly.
- ``joint`` (:class:`AccuracyLatency`): ``score = accuracy − weight · latency / latency_ref``, latency being
  the graph's median per-question wall-clock time. ``latency_ref`` defaults to the latency measured in the
  run's first search evaluation, so a graph as slow as the first one pays ``weight`` accuracy points; the
  value is stored in the run directory, so a resumed run scores the same way.
- any function ``Outcome -> float`` (:class:`CustomObjective`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from langtts.search.base import Outcome


class Objective:
    """Base class: ``objective(outcome) -> score`` (higher is better)."""

    name = "objective"

    def __call__(self, outcome: Outcome) -> float:
        raise NotImplementedError

    def bind(self, outcome: Outcome) -> Objective:
        """The objective to use from the run's first search evaluation on (fixes data-derived constants)."""
        return self

    def spec(self) -> dict[str, Any]:
        """JSON data that :func:`make_objective` turns back into this objective."""
        return {"name": self.name}


class Accuracy(Objective):
    name = "accuracy"

    def __call__(self, outcome: Outcome) -> float:
        return outcome.accuracy


@dataclass(frozen=True)
class AccuracyLatency(Objective):
    """``accuracy − weight · latency_s / latency_ref_s`` (``latency_ref_s`` None: set by :meth:`bind`)."""

    weight: float = 0.5
    latency_ref_s: float | None = None
    name = "joint"

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ValueError(f"the latency weight must be >= 0, got {self.weight}")
        if self.latency_ref_s is not None and self.latency_ref_s <= 0:
            raise ValueError(f"latency_ref_s must be > 0, got {self.latency_ref_s}")

    def __call__(self, outcome: Outcome) -> float:
        if self.latency_ref_s is None:
            raise ValueError("AccuracyLatency has no latency reference yet: call bind(first_outcome)")
        return outcome.accuracy - self.weight * outcome.latency_s / self.latency_ref_s

    def bind(self, outcome: Outcome) -> AccuracyLatency:
        if self.latency_ref_s is not None:
            return self
        return replace(self, latency_ref_s=max(outcome.latency_s, 1e-6))

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "weight": self.weight, "latency_ref_s": self.latency_ref_s}


@dataclass(frozen=True)
class CustomObjective(Objective):
    """A user function of the outcome; ``label`` names it in the run files (the function itself is not
    stored: pass it again to resume)."""

    function: Callable[[Outcome], float]
    label: str = ""

    name = "custom"

    def __call__(self, outcome: Outcome) -> float:
        return float(self.function(outcome))

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label or getattr(self.function, "__name__", "function")}


ObjectiveLike = str | Mapping[str, Any] | Objective | Callable[[Outcome], float]


def make_objective(value: ObjectiveLike) -> Objective:
    """An objective from a name (``accuracy``, ``joint``), a :meth:`Objective.spec` mapping, an objective, or a
    function of the outcome."""
    if isinstance(value, Objective):
        return value
    if isinstance(value, str):
        value = {"name": value}
    if isinstance(value, Mapping):
        options = dict(value)
        name = options.pop("name", None)
        if name == "accuracy" and not options:
            return Accuracy()
        if name == "joint":
            return AccuracyLatency(**options)
        if name == "custom":
            raise ValueError(
                f"objective {options.get('label', 'custom')!r} is a user function: pass it again as objective="
            )
        raise ValueError(f"unknown objective {value!r}; use 'accuracy', 'joint' or a function of the outcome")
    if callable(value):
        return CustomObjective(value)
    raise TypeError(f"cannot make an objective from {type(value).__name__}")

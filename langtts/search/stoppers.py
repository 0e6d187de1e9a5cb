"""Stop conditions of the search phase, composable: ``Iterations(20) | WallTime(3600)`` stops at the first,
``a & b`` when both hold. A stopper reads only the run's `Progress`, so a resumed run stops where the
uninterrupted one would have.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Progress:
    """Where a search stands: rounds and evaluations done, active seconds (all sessions), the best score
    after each round, and the FLOPs used so far by evaluations and the optimizer's LLM calls."""

    rounds: int
    evaluations: int
    elapsed_s: float
    best_scores: tuple[float, ...] = ()
    flops: float = 0.0


class Stopper:
    """Base class: :meth:`reason` is why to stop now, or None to go on."""

    def reason(self, progress: Progress) -> str | None:
        raise NotImplementedError

    def __or__(self, other: Stopper) -> Stopper:
        return AnyOf((self, other))

    def __and__(self, other: Stopper) -> Stopper:
        return AllOf((self, other))


@dataclass(frozen=True)
class AnyOf(Stopper):
    stoppers: tuple[Stopper, ...]

    def reason(self, progress: Progress) -> str | None:
        return next((r for s in self.stoppers if (r := s.reason(progress))), None)


@dataclass(frozen=True)
class AllOf(Stopper):
    stoppers: tuple[Stopper, ...]

    def reason(self, progress: Progress) -> str | None:
        reasons = [s.reason(progress) for s in self.stoppers]
        return " and ".join(r for r in reasons if r) if all(reasons) else None


@dataclass(frozen=True)
class Iterations(Stopper):
    """Stop after ``n`` search rounds."""

    n: int

    def reason(self, progress: Progress) -> str | None:
        return f"{self.n} iterations done" if progress.rounds >= self.n else None


@dataclass(frozen=True)
class Evaluations(Stopper):
    """Stop after ``n`` graph evaluations in the search phase."""

    n: int

    def reason(self, progress: Progress) -> str | None:
        return f"{self.n} evaluations done" if progress.evaluations >= self.n else None


@dataclass(frozen=True)
class WallTime(Stopper):
    """Stop once the search has been running ``seconds`` (summed over resumed sessions)."""

    seconds: float

    def reason(self, progress: Progress) -> str | None:
        return f"wall time of {self.seconds:g} s reached" if progress.elapsed_s >= self.seconds else None


@dataclass(frozen=True)
class FlopsSpent(Stopper):
    """Stop once evaluations and the optimizer together have used ``limit`` FLOPs (so methods compare at equal
    compute; the round in progress finishes)."""

    limit: float

    def reason(self, progress: Progress) -> str | None:
        return f"{self.limit:.3g} FLOPs used" if progress.flops >= self.limit else None


@dataclass(frozen=True)
class NoImprovement(Stopper):
    """Stop when the best score has not risen by more than ``min_delta`` in the last ``rounds`` rounds."""

    rounds: int
    min_delta: float = 0.0

    def reason(self, progress: Progress) -> str | None:
        best = progress.best_scores
        if len(best) > self.rounds and best[-1] <= best[-1 - self.rounds] + self.min_delta:
            return f"no improvement in {self.rounds} rounds"
        return None


@dataclass(frozen=True)
class StopFile(Stopper):
    """Stop when ``path`` exists (``touch RUN_DIR/STOP`` ends a search gracefully)."""

    path: Path

    def reason(self, progress: Progress) -> str | None:
        return f"stop file {self.path} found" if Path(self.path).exists() else None

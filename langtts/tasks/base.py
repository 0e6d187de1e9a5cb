"""Core task types: an `Example`, the `Score` of one model output, and the `Task` base class."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Literal

Family = Literal["math", "mmlu", "code", "gsm8k", "generic"]
FAMILIES: tuple[Family, ...] = ("math", "mmlu", "code", "gsm8k", "generic")


@dataclass(frozen=True)
class Example:
    """One benchmark item: its id, the question, the gold answer and task-specific extras in `meta`."""

    id: str
    question: str
    answer: str
    meta: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "meta", MappingProxyType(dict(self.meta)))


@dataclass(frozen=True)
class Score:
    """The verdict on one output. `error` says why it could not be judged normally (e.g. ``"no_answer"``)."""

    correct: bool
    prediction: str | None
    error: str | None = None
    detail: str = ""


class Task(ABC):
    """A benchmark: loads examples, phrases questions for the nodes and scores final outputs."""

    name: str
    family: Family = "generic"
    lengths_key: str | None = None
    answer_format: str = ""
    splits: ClassVar[tuple[str, ...]] = ("test",)
    default_split: str = "test"

    def load(self, split: str | None = None) -> list[Example]:
        """The examples of `split` (default: the task's default split), in upstream order."""
        split = self.default_split if split is None else split
        if split not in self.splits:
            raise ValueError(f"task {self.name!r} has no split {split!r}; choose from {list(self.splits)}")
        return self._load(split)

    @abstractmethod
    def _load(self, split: str) -> list[Example]: ...

    def format_question(self, ex: Example) -> str:
        """The question text the nodes see."""
        return ex.question

    @abstractmethod
    def score(self, text: str, ex: Example) -> Score:
        """Judge a final output `text` against the gold answer of `ex`."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

"""Core task types: an `Example`, the `Score` of one model output, and the `Task` base class."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Literal

from langtts.prompts import PromptLibrary

Family = Literal["math", "mmlu", "code", "gsm8k", "generic"]
FAMILIES: tuple[Family, ...] = ("math", "mmlu", "code", "gsm8k", "generic")
_ANSWER_LINE = re.compile(r"(?im)^[ \t*_#>]*(?:final\s+)?answer[ \t*_]*[:：][ \t*_]*(\S.*?)[ \t*_.]*$")


def judge_answer(prediction: str | None, ex: Example, equivalent: Callable[[str, str], bool]) -> Score:
    """The score of an extracted answer (None: ``no_answer``) against the gold answer of `ex`."""
    if prediction is None:
        return Score(correct=False, prediction=None, error="no_answer", detail="no answer in output")
    return Score(correct=equivalent(prediction, ex.answer), prediction=prediction, detail=f"gold {ex.answer}")


def extract_answer_line(text: str) -> str | None:
    """The text after the last ``Answer:`` line label (markdown emphasis and a final period dropped), or None."""
    matches = _ANSWER_LINE.findall(text)
    return matches[-1].strip() if matches else None


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
    """A benchmark: loads examples, phrases questions for the nodes and judges answers.

    The answer API: `extract` reads the answer out of a reply (``None`` when there is none), `equivalent` says
    whether two extracted answers are the same answer, `answer_schema` is the JSON schema of a bare answer (for
    constrained decoding when a reply lost its answer; ``None`` when the task has none, e.g. code), and
    `format_answer` writes an answer as the task's answer line. `score` judges a reply against the gold answer.
    """

    name: str
    family: Family = "generic"
    lengths_key: str | None = None
    answer_prompt: str = "answers/generic"
    """The prompt file of the task's answer format (the role prompts' ``{answer_format}``)."""
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

    @property
    def answer_format(self) -> str:
        """The sentence asking for the task's answer line, from the default prompts (``$LANGTTS_PROMPTS_DIR``,
        then the shipped ones)."""
        return self.answer_format_in(PromptLibrary())

    def answer_format_in(self, prompts: PromptLibrary) -> str:
        """The answer format as ``prompts`` word it."""
        return prompts.text(self.answer_prompt)

    def format_question(self, ex: Example) -> str:
        """The question text the nodes see."""
        return ex.question

    @abstractmethod
    def extract(self, text: str) -> str | None:
        """The answer a reply gives, normalised (e.g. ``"C"``, ``"42"``), or None when it gives none."""

    def equivalent(self, a: str, b: str) -> bool:
        """Whether two extracted answers are the same answer (default: equal after stripping)."""
        return a.strip() == b.strip()

    def answer_schema(self) -> dict[str, Any] | None:
        """The JSON schema ``{"answer": ...}`` of a bare answer, or None when answers cannot be constrained."""
        return {
            "type": "object",
            "properties": {"answer": {"type": "string", "minLength": 1, "maxLength": 200}},
            "required": ["answer"],
            "additionalProperties": False,
        }

    def format_answer(self, answer: str) -> str:
        """`answer` written as the task's answer line."""
        return f"Answer: {answer}"

    def score(self, text: str, ex: Example) -> Score:
        """Judge a reply `text` against the gold answer of `ex`."""
        return judge_answer(self.extract(text), ex, self.equivalent)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

"""Declared scorers of user JSONL tasks: how an answer is read out of a reply and compared with the gold answer.

A scorer is named by a string, so a run directory can store it and rebuild it at resume:

- ``exact``: the ``Answer:`` line, equal to the gold answer after stripping and collapsing whitespace;
- ``number``: the number of the answer line (else the last number), compared numerically (``1,000`` = ``1000.0``);
- ``choice`` or ``choice:ABCDE``: the letter of the answer line (``B``, ``(B)``, ``B. Mars``), one of the letters
  (default ``ABCD``);
- ``regex:PATTERN``: the last match of PATTERN in the reply (its first group if it has one), else the answer line;
  compared as ``exact``;
- ``module:function``: a Python function ``(reply, example) -> bool | Score`` that judges a reply; answers are read
  from the answer line and compared as ``exact`` (for votes and answer recovery).

Each provides the task answer API (`extract`, `equivalent`, `answer_schema`, `format_answer`, see
:class:`~langtts.tasks.base.Task`) and `answer_format`, the instruction that asks the nodes for the answer line
(the prompt file ``answers/<kind>``: ``exact``, ``number`` or ``choice``; the others ask as ``exact``).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar

from langtts.prompts import PromptLibrary
from langtts.tasks.base import Example, Score, Task, extract_answer_line, judge_answer

SCORER_KINDS = "exact, number, choice[:LETTERS], regex:PATTERN or module:function"


def _string_schema(**constraints: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"answer": {"type": "string", "minLength": 1, "maxLength": 200, **constraints}},
        "required": ["answer"],
        "additionalProperties": False,
    }


@dataclass(frozen=True)
class AnswerScorer:
    """``exact``, and the base of the other kinds: the answer line, equal after stripping and collapsing
    whitespace."""

    spec: str = "exact"
    answer_prompt: ClassVar[str] = "answers/exact"

    @property
    def answer_format(self) -> str:
        """The answer format from the default prompts (``$LANGTTS_PROMPTS_DIR``, then the shipped ones)."""
        return self.answer_format_in(PromptLibrary())

    def answer_format_in(self, prompts: PromptLibrary) -> str:
        return prompts.text(self.answer_prompt)

    def extract(self, text: str) -> str | None:
        return extract_answer_line(text)

    def equivalent(self, a: str, b: str) -> bool:
        return " ".join(a.split()) == " ".join(b.split())

    def answer_schema(self) -> dict[str, Any] | None:
        return _string_schema()

    def format_answer(self, answer: str) -> str:
        return f"Answer: {answer}"

    def judge(self, text: str, ex: Example) -> Score:
        return judge_answer(self.extract(text), ex, self.equivalent)


@dataclass(frozen=True)
class NumberScorer(AnswerScorer):
    """``number``: the number of the answer line (else the last number), compared numerically."""

    spec: str = "number"
    answer_prompt: ClassVar[str] = "answers/number"

    def extract(self, text: str) -> str | None:
        return _gsm8k().extract(text)

    def equivalent(self, a: str, b: str) -> bool:
        return _gsm8k().equivalent(a, b)

    def answer_schema(self) -> dict[str, Any] | None:
        return _gsm8k().answer_schema()


@dataclass(frozen=True)
class ChoiceScorer(AnswerScorer):
    """``choice[:LETTERS]``: the letter of the answer line, one of ``letters``."""

    spec: str = "choice"
    letters: str = "ABCD"
    answer_prompt: ClassVar[str] = "answers/choice"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Z]{2,26}", self.letters) or len(set(self.letters)) < len(self.letters):
            raise ValueError(f"choice letters must be 2 to 26 distinct capital letters, got {self.letters!r}")

    def answer_format_in(self, prompts: PromptLibrary) -> str:
        """``answers/choice`` with ``{letters}`` listed, e.g. ``A, B, C or D``."""
        return prompts.text(self.answer_prompt, letters=f"{', '.join(self.letters[:-1])} or {self.letters[-1]}")

    def extract(self, text: str) -> str | None:
        return extract_choice(text, self.letters)

    def equivalent(self, a: str, b: str) -> bool:
        return a.strip().upper() == b.strip().upper()

    def answer_schema(self) -> dict[str, Any] | None:
        return {
            "type": "object",
            "properties": {"answer": {"type": "string", "enum": list(self.letters)}},
            "required": ["answer"],
            "additionalProperties": False,
        }


@dataclass(frozen=True)
class RegexScorer(AnswerScorer):
    """``regex:PATTERN``: the last match of ``pattern`` (its first group if any), else the answer line."""

    spec: str = "regex"
    pattern: str = ""

    def __post_init__(self) -> None:
        try:
            re.compile(self.pattern)
        except re.error as error:
            raise ValueError(f"scorer regex {self.pattern!r} does not compile: {error}") from None

    def extract(self, text: str) -> str | None:
        return extract_match(text, self.pattern)


@dataclass(frozen=True)
class PythonScorer(AnswerScorer):
    """``module:function``: ``function(reply, example) -> bool | Score`` judges; answers read as ``exact``."""

    spec: str = ""
    function: Callable[[str, Example], Any] | None = None

    def judge(self, text: str, ex: Example) -> Score:
        assert self.function is not None
        result = self.function(text, ex)
        if isinstance(result, Score):
            return result
        if result is None or isinstance(result, str):
            raise TypeError(f"scorer {self.spec or self.function!r} returned {result!r}, expected a bool or a Score")
        return Score(correct=bool(result), prediction=self.extract(text))


def extract_choice(text: str, letters: str) -> str | None:
    """The letter of the answer line (``B``, ``(b)``, ``B. Mars``) when it is one of ``letters``, else None."""
    line = extract_answer_line(text)
    match = re.match(rf"\(?([{letters}])\)?(?![A-Za-z])", line.upper() if line else "")
    return match.group(1) if match else None


def extract_match(text: str, pattern: str) -> str | None:
    """The last match of ``pattern`` (its first group if it has one), else the answer line."""
    matches = list(re.finditer(pattern, text))
    if not matches:
        return extract_answer_line(text)
    last = matches[-1]
    return (last.group(1) if last.re.groups else last.group(0)).strip()


def make_scorer(spec: str) -> AnswerScorer:
    """The scorer a string names (see the module docstring); a ``ValueError`` names what is wrong."""
    kind, _, argument = spec.partition(":")
    if spec == "exact":
        return AnswerScorer()
    if spec == "number":
        return NumberScorer()
    if kind == "choice":
        return ChoiceScorer(spec=spec, letters=argument or "ABCD")
    if kind == "regex" and argument:
        return RegexScorer(spec=spec, pattern=argument)
    if argument and re.fullmatch(r"[\w.]+", kind) and argument.isidentifier():
        return PythonScorer(spec=spec, function=_import(kind, argument, spec))
    raise ValueError(f"unknown scorer {spec!r}; use {SCORER_KINDS}")


def _import(module: str, name: str, spec: str) -> Callable[[str, Example], Any]:
    try:
        function = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"scorer {spec!r} does not import: {error}") from None
    if not callable(function):
        raise ValueError(f"scorer {spec!r} is not a function")
    return function


@cache
def _gsm8k() -> Task:
    from langtts.tasks.gsm8k import GSM8KTask  # not at the top: gsm8k imports jsonl, which imports this module

    return GSM8KTask()

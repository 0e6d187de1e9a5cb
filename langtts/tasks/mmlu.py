"""MMLU (57 subjects; dev 285, val 1,531, test 14,042): four lettered choices, scored on the chosen letter."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from langtts.tasks.base import Example, Task
from langtts.tasks.jsonl import packaged_examples

LETTERS = "ABCD"
_FILES = {"dev": "mmlu/mmlu_dev.jsonl", "val": "mmlu/mmlu_val.jsonl", "test": "mmlu/mmlu_test.jsonl.gz"}

# A letter, maybe written "(C)", "$C$", "\boxed{C}" or "option C".
_L = r"(?:(?i:option|choice|letter)\s+)?\(?\$?(?:\\(?:boxed|text|textbf|mathrm)\{)?\s*([A-D])(?![A-Za-z0-9])"
_ANSWER = r"(?i:answer|choice|option)"
# Tiers of evidence, strongest first; within the first tier that matches, the last match wins.
_TIERS: tuple[tuple[re.Pattern[str], ...], ...] = (
    (  # an explicit label: "Answer: C", "**Answer:** C", "Final answer: (C)", "\boxed{C}"
        re.compile(_ANSWER + r"[ \t*_]*[:：][\s*_]*" + _L),
        re.compile(r"\\boxed\{\s*(?:\\text\{)?\s*([A-D])\s*\}"),
    ),
    (  # a phrase: "the answer is (B)", "The correct option is B.", "Option B is correct"
        re.compile(_ANSWER + r"\s+(?i:is|would be|will be|should be|must be)[\s:*_]*" + _L),
        re.compile(r"(?i:option|choice)\s+\(?([A-D])\)?\s+(?i:is)\s+(?i:the\s+)?(?i:correct|right|best)"),
    ),
    (re.compile(r"(?:^|[\s*_:])\(?([A-D])\)?[\s.*_]*$"),),  # a bare final letter: "... so B." / "**B**"
    (re.compile(r"\(([A-D])\)"),),  # any parenthesised letter
)


def extract_letter(text: str) -> str | None:
    """The chosen letter A-D: the last match of the strongest pattern that matches, else None."""
    for tier in _TIERS:
        best: tuple[int, str] | None = None
        for pattern in tier:
            for m in pattern.finditer(text):
                if best is None or m.start() >= best[0]:
                    best = (m.start(), m.group(1))
        if best is not None:
            return best[1]
    return None


class MMLUTask(Task):
    """MMLU multiple choice; `split` is ``dev``, ``val`` or ``test``; `subjects` optionally filters."""

    name = "mmlu"
    family = "mmlu"
    lengths_key = "mmlu"
    splits = ("dev", "val", "test")
    answer_prompt = "answers/mmlu"

    def __init__(self, split: str = "test", subjects: Iterable[str] | None = None) -> None:
        if split not in self.splits:
            raise ValueError(f"MMLU has no split {split!r}; choose from {list(self.splits)}")
        self.default_split = split
        self.subjects = None if subjects is None else frozenset([subjects] if isinstance(subjects, str) else subjects)
        if self.subjects is not None:
            known = {ex.meta["subject"] for ex in packaged_examples(_FILES["dev"])}
            unknown = sorted(self.subjects - known)
            if unknown or not self.subjects:
                raise ValueError(f"unknown MMLU subject(s) {unknown}; known: {sorted(known)}")

    def _load(self, split: str) -> list[Example]:
        examples = packaged_examples(_FILES[split])
        if self.subjects is None:
            return list(examples)
        return [ex for ex in examples if ex.meta["subject"] in self.subjects]

    def format_question(self, ex: Example) -> str:
        options = "\n".join(f"{letter}. {choice}" for letter, choice in zip(LETTERS, ex.meta["choices"], strict=True))
        return f"{ex.question}\n\n{options}"

    def extract(self, text: str) -> str | None:
        return extract_letter(text)

    def equivalent(self, a: str, b: str) -> bool:
        return a.strip().upper() == b.strip().upper()

    def format_answer(self, answer: str) -> str:
        return f"Answer: {answer}"

    def answer_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"answer": {"type": "string", "enum": list(LETTERS)}},
            "required": ["answer"],
            "additionalProperties": False,
        }

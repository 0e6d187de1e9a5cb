"""GSM8K (test, 1,319 problems): the number of the answer line ("The final answer is N", ``#### N``,
``\\boxed{N}``), else the last number, compared numerically."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from langtts.tasks.base import Example, Task
from langtts.tasks.jsonl import packaged_examples

# A number not glued to a word or a decimal point: optional sign and "$", thousands commas, decimals.
_NUMBER = re.compile(r"(?<![\w.])([-−]?)\s*\$?\s*((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)")
# An answer line: "#### 42", "The final answer is $42.", "the answer is: 42", "\boxed{42}" (the last one wins).
_MARKER = re.compile(r"####|(?i:answer\s+is|answer\s*:)|\\boxed\{")


def _to_decimal(sign: str, digits: str) -> Decimal:
    return Decimal(("-" if sign else "") + digits.replace(",", ""))


def extract_number(text: str) -> Decimal | None:
    """The first number after the last answer marker, else the last number in `text`, else None."""
    for marker in reversed(list(_MARKER.finditer(text))):
        if m := _NUMBER.search(text, marker.end(), marker.end() + 40):
            return _to_decimal(*m.groups())
    matches = _NUMBER.findall(text)
    return _to_decimal(*matches[-1]) if matches else None


def _plain(value: Decimal) -> str:
    text = format(value.normalize(), "f")
    return "0" if text == "-0" else text


class GSM8KTask(Task):
    """Grade-school math word problems with an integer answer."""

    name = "gsm8k"
    family = "gsm8k"
    lengths_key = None
    answer_prompt = "answers/gsm8k"

    def _load(self, split: str) -> list[Example]:
        return list(packaged_examples("gsm8k/gsm8k.jsonl"))

    def extract(self, text: str) -> str | None:
        value = extract_number(text)
        return None if value is None else _plain(value)

    def equivalent(self, a: str, b: str) -> bool:
        try:
            return Decimal(a.replace(",", "")) == Decimal(b.replace(",", ""))
        except ArithmeticError:
            return a.strip() == b.strip()

    def answer_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"answer": {"type": "number"}},
            "required": ["answer"],
            "additionalProperties": False,
        }

    def format_answer(self, answer: str) -> str:
        return f"The final answer is $\\boxed{{{answer}}}$"

"""GSM8K (test, 1,319 problems): the number after ``####``, else the last number, compared numerically."""

from __future__ import annotations

import re
from decimal import Decimal

from langtts.tasks.base import Example, Score, Task
from langtts.tasks.jsonl import packaged_examples

# A number not glued to a word or a decimal point: optional sign and "$", thousands commas, decimals.
_NUMBER = re.compile(r"(?<![\w.])([-−]?)\s*\$?\s*((?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)")
_MARKER = "####"


def _to_decimal(sign: str, digits: str) -> Decimal:
    return Decimal(("-" if sign else "") + digits.replace(",", ""))


def extract_number(text: str) -> Decimal | None:
    """The first number after the last ``####``, else the last number in `text`, else None."""
    marker = text.rfind(_MARKER)
    if marker >= 0 and (m := _NUMBER.search(text, marker + len(_MARKER))):
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
    answer_format = 'End your reply with a final line of the form "#### <number>", giving only the final number.'

    def _load(self, split: str) -> list[Example]:
        return list(packaged_examples("gsm8k/gsm8k.jsonl"))

    def score(self, text: str, ex: Example) -> Score:
        value = extract_number(text)
        if value is None:
            return Score(correct=False, prediction=None, error="no_answer", detail="no number in output")
        prediction = _plain(value)
        return Score(correct=value == Decimal(ex.answer), prediction=prediction, detail=f"gold {ex.answer}")

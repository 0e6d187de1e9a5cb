"""MATH-500: the last ``\\boxed{}`` of the output, judged equal to the reference answer by math-verify.

math-verify's own timeouts use ``signal.alarm`` (main thread only), so they are switched off and every check
runs in a helper thread under our own wall-clock budget; a check that overruns is interrupted with an
asynchronous exception (like ``signal.alarm``, it fires between bytecodes) and scored as ``error="timeout"``.
"""

from __future__ import annotations

import ctypes
import logging
import re
import threading
from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar

from langtts.tasks.base import Example, Score, Task
from langtts.tasks.jsonl import packaged_examples

DEFAULT_TIMEOUT_S = 10.0
_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_BARE = re.compile(r"[ \t]*([^\s$]+)")  # "\boxed 5"
T = TypeVar("T")


def last_boxed(text: str) -> str | None:
    """The content of the last complete, non-empty ``\\boxed{}``/``\\fbox{}`` (or ``\\boxed 5``) in `text`."""
    for m in reversed(list(_BOX.finditer(text))):
        content = _box_content(text, m.end())
        if content:
            return content
    return None


def _box_content(text: str, start: int) -> str | None:
    i = start
    while i < len(text) and text[i] in " \t":
        i += 1
    if i == len(text) or text[i] != "{":
        bare = _BARE.match(text, start)
        return bare.group(1).rstrip(".,;") if bare else None
    depth, j = 0, i
    while j < len(text):
        char = text[j]
        if char == "\\":
            j += 2
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j].strip()
        j += 1
    return None  # unbalanced (e.g. a truncated output)


class _Overrun(BaseException):
    """Raised in a helper thread whose budget ran out (a BaseException: math-verify cannot swallow it)."""


def _checkpoint() -> None:
    """A Python call: a pending asynchronous exception fires at its entry at the latest."""


def call_with_budget(fn: Callable[[], T], budget_s: float) -> T:
    """Run `fn` in a helper thread; past `budget_s` seconds interrupt it and raise TimeoutError."""
    box: dict[str, Any] = {}
    lock = threading.Lock()  # the interrupt is sent only while `fn` runs, so it hits this thread, inside the try

    def target() -> None:
        try:
            try:
                box["value"] = fn()
            except _Overrun:
                raise
            except BaseException as e:  # re-raised in the caller
                box["error"] = e
            finally:
                with lock:
                    box["done"] = True
            _checkpoint()
        except _Overrun:
            pass

    thread = threading.Thread(target=target, name="langtts-math-verify", daemon=True)
    thread.start()
    thread.join(budget_s)
    with lock:
        if "done" not in box:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident or 0), ctypes.py_object(_Overrun))
            raise TimeoutError(f"math-verify took longer than {budget_s:g}s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _drop_timeout_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Timeout is disabled")


@lru_cache(maxsize=1)
def _math_verify() -> Any:
    """Import math-verify (slow: sympy) on first use, silencing its notice that we time checks ourselves."""
    import math_verify

    for module in ("grader", "parser"):
        logging.getLogger(f"math_verify.{module}").addFilter(_drop_timeout_notice)
    return math_verify


@lru_cache(maxsize=4096)
def _parse(latex: str) -> tuple[Any, ...]:
    mv = _math_verify()
    config = [mv.LatexExtractionConfig()]
    return tuple(mv.parse("\\boxed{" + latex + "}", extraction_config=config, parsing_timeout=None))


def _equivalent(gold: str, prediction: str) -> bool:
    return _math_verify().verify(list(_parse(gold)), list(_parse(prediction)), timeout_seconds=None)


def is_equivalent(gold: str, prediction: str, budget_s: float = DEFAULT_TIMEOUT_S) -> bool:
    """Whether two LaTeX answers are equal as math-verify decides; TimeoutError past `budget_s` seconds."""
    return call_with_budget(lambda: _equivalent(gold, prediction), budget_s)


class Math500Task(Task):
    """The 500 MATH test problems of "Let's Verify Step by Step"; `timeout_s` bounds each answer check."""

    name = "math500"
    family = "math"
    lengths_key = "math"
    answer_prompt = "answers/math500"

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s

    def _load(self, split: str) -> list[Example]:
        return list(packaged_examples("math500/math500.jsonl"))

    def extract(self, text: str) -> str | None:
        return last_boxed(text)

    def equivalent(self, a: str, b: str) -> bool:
        """math-verify's verdict (a check that overruns `timeout_s` raises TimeoutError)."""
        return is_equivalent(b, a, self.timeout_s)

    def format_answer(self, answer: str) -> str:
        return f"The final answer is $\\boxed{{{answer}}}$"

    def score(self, text: str, ex: Example) -> Score:
        boxed = self.extract(text)
        if boxed is None:
            return Score(correct=False, prediction=None, error="no_answer", detail="no \\boxed{} in output")
        try:
            correct = self.equivalent(boxed, ex.answer)
        except TimeoutError as e:
            return Score(correct=False, prediction=boxed, error="timeout", detail=str(e))
        return Score(correct=correct, prediction=boxed, detail=f"gold {ex.answer}")

"""Benchmarks and answer checking: load examples, phrase questions, score final outputs.

``get_task(name, **options)`` builds a registered task (``gsm8k``, ``mmlu``, ``math500``, ``humaneval``);
``JsonlTask`` wraps a user's JSONL file. The benchmark data ship in ``data/`` (see ``data/PROVENANCE.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langtts.tasks.base import FAMILIES, Example, Family, Score, Task
from langtts.tasks.gsm8k import GSM8KTask
from langtts.tasks.humaneval import HumanEvalTask
from langtts.tasks.jsonl import JsonlFormatError, JsonlTask
from langtts.tasks.math500 import Math500Task
from langtts.tasks.mmlu import MMLUTask
from langtts.tasks.sandbox import SandboxResult, SandboxUnavailableError
from langtts.tasks.splits import search_test_split

TASKS: dict[str, Callable[..., Task]] = {
    "gsm8k": GSM8KTask,
    "mmlu": MMLUTask,
    "math500": Math500Task,
    "humaneval": HumanEvalTask,
}
CODE_TASKS = frozenset({"humaneval"})  # tasks that run model-written code: they take a ``sandbox`` option


def get_task(name: str, **options: Any) -> Task:
    """The registered task `name`, built with `options` (e.g. ``get_task("mmlu", split="dev")``)."""
    try:
        factory = TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose from {sorted(TASKS)}") from None
    try:
        return factory(**options)
    except TypeError as e:
        raise TypeError(f"bad options for task {name!r}: {e}") from None


__all__ = [
    "CODE_TASKS",
    "FAMILIES",
    "TASKS",
    "Example",
    "Family",
    "GSM8KTask",
    "HumanEvalTask",
    "JsonlFormatError",
    "JsonlTask",
    "MMLUTask",
    "Math500Task",
    "SandboxResult",
    "SandboxUnavailableError",
    "Score",
    "Task",
    "get_task",
    "search_test_split",
]

"""Benchmarks and answer checking: load examples, phrase questions, score final outputs.

``get_task(name, **options)`` builds a registered task (``gsm8k``, ``mmlu``, ``math500``, ``humaneval``) or, for a
file name ending in ``.jsonl`` (``.jsonl.gz``), a ``JsonlTask`` of the user's file with a declared scorer
(``get_task("mine.jsonl", scorer="number")``, see :mod:`langtts.tasks.scorers`). The benchmark data ship in
``data/`` (see ``data/PROVENANCE.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langtts.tasks.base import FAMILIES, Example, Family, Score, Task
from langtts.tasks.gsm8k import GSM8KTask
from langtts.tasks.humaneval import HumanEvalTask
from langtts.tasks.jsonl import JsonlFormatError, JsonlTask, is_task_file
from langtts.tasks.math500 import Math500Task
from langtts.tasks.mmlu import MMLUTask
from langtts.tasks.sandbox import SandboxResult, SandboxUnavailableError
from langtts.tasks.scorers import SCORER_KINDS, make_scorer
from langtts.tasks.splits import search_test_split

TASKS: dict[str, Callable[..., Task]] = {
    "gsm8k": GSM8KTask,
    "mmlu": MMLUTask,
    "math500": Math500Task,
    "humaneval": HumanEvalTask,
}
CODE_TASKS = frozenset({"humaneval"})  # tasks that run model-written code: they take a ``sandbox`` option


def get_task(name: str, /, **options: Any) -> Task:
    """The registered task `name`, or the JSONL task of the file `name`, built with `options` (e.g.
    ``get_task("mmlu", split="dev")``, ``get_task("mine.jsonl", scorer="exact")``)."""
    if is_task_file(name):
        if not options.get("scorer"):
            raise ValueError(f"task file {name} needs a scorer: {SCORER_KINDS}")
        return JsonlTask(name, **options)
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
    "is_task_file",
    "make_scorer",
    "search_test_split",
]

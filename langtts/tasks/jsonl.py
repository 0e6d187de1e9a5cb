"""JSONL reading (plain or gzipped; the packaged benchmark files and user files) and `JsonlTask`."""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Callable, Iterable
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from langtts.tasks.base import FAMILIES, Example, Family, Score, Task, extract_answer_line

REQUIRED_KEYS = ("id", "question", "answer")
DEFAULT_ANSWER_FORMAT = 'End your reply with a final line of the form "Answer: <your final answer>".'


class JsonlFormatError(ValueError):
    """A JSONL file that cannot be read as examples; the message names the file and line."""


def read_jsonl(source: str | os.PathLike[str] | Traversable) -> list[dict]:
    """Read one JSON object per line, each with ``id``, ``question``, ``answer`` (``.gz``: decompressed)."""
    src = Path(source) if isinstance(source, str | os.PathLike) else source
    rows: list[dict] = []
    with src.open("rb") as raw, gzip.open(raw) if src.name.endswith(".gz") else raw as stream:
        text = io.TextIOWrapper(stream, encoding="utf-8")
        try:
            for lineno, line in enumerate(text, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise JsonlFormatError(f"{source}:{lineno}: invalid JSON ({e.msg})") from None
                if not isinstance(row, dict):
                    raise JsonlFormatError(f"{source}:{lineno}: expected a JSON object, got {type(row).__name__}")
                missing = [k for k in REQUIRED_KEYS if k not in row]
                if missing:
                    raise JsonlFormatError(f"{source}:{lineno}: missing key(s) {', '.join(map(repr, missing))}")
                rows.append(row)
        except UnicodeDecodeError as e:
            raise JsonlFormatError(f"{source}: not UTF-8 ({e.reason})") from None
        except (gzip.BadGzipFile, EOFError) as e:
            raise JsonlFormatError(f"{source}: not a valid gzip file ({e})") from None
    return rows


def to_examples(rows: Iterable[dict], source: str) -> list[Example]:
    """Examples from rows with `id`/`question`/`answer` (unique ids); every other key goes into `meta`."""
    examples: list[Example] = []
    seen: set[str] = set()
    for row in rows:
        ex_id = str(row["id"])
        if ex_id in seen:
            raise JsonlFormatError(f"{source}: duplicate id {ex_id!r}")
        seen.add(ex_id)
        question, answer = row["question"], row["answer"]
        if not isinstance(question, str) or not isinstance(answer, str | int | float):
            raise JsonlFormatError(f"{source}: id {ex_id!r}: 'question' must be a string, 'answer' a string or number")
        meta = {k: _freeze(v) for k, v in row.items() if k not in REQUIRED_KEYS}
        examples.append(Example(id=ex_id, question=question, answer=str(answer), meta=meta))
    return examples


def _freeze(value: Any) -> Any:
    return tuple(_freeze(v) for v in value) if isinstance(value, list) else value


@cache
def packaged_examples(relpath: str) -> tuple[Example, ...]:
    """The examples of a data file shipped in ``langtts/tasks/data`` (read once per process)."""
    resource = resources.files("langtts.tasks").joinpath("data", *relpath.split("/"))
    return tuple(to_examples(read_jsonl(resource), source=relpath))


Scorer = Callable[[str, Example], bool | Score]


class JsonlTask(Task):
    """A task from a user's JSONL file with ``id``/``question``/``answer`` keys, judged by `scorer`.

    The file is read (and validated) when the task is created. `scorer` returns a bool or a `Score`. Answers are
    extracted from the last ``Answer:`` line and compared after stripping (the task's answer format asks for it).
    """

    splits = ("all",)
    default_split = "all"

    def __init__(
        self,
        path: str | os.PathLike[str],
        scorer: Scorer,
        *,
        name: str | None = None,
        family: Family = "generic",
        answer_format: str = DEFAULT_ANSWER_FORMAT,
    ) -> None:
        if family not in FAMILIES:
            raise ValueError(f"unknown family {family!r}; choose from {list(FAMILIES)}")
        self.path = Path(path)
        self.name = name or self.path.name.split(".")[0]
        self.family = family
        self.answer_format = answer_format
        self._scorer = scorer
        self._examples = tuple(to_examples(read_jsonl(self.path), source=str(self.path)))
        if not self._examples:
            raise JsonlFormatError(f"{self.path}: no examples")

    def _load(self, split: str) -> list[Example]:
        return list(self._examples)

    def extract(self, text: str) -> str | None:
        return extract_answer_line(text)

    def score(self, text: str, ex: Example) -> Score:
        result = self._scorer(text, ex)
        if isinstance(result, Score):
            return result
        if result is None or isinstance(result, str):
            raise TypeError(f"scorer of task {self.name!r} returned {result!r}, expected a bool or a Score")
        return Score(correct=bool(result), prediction=None)

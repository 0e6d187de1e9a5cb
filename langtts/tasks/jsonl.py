"""JSONL reading (plain or gzipped; the packaged benchmark files and user files) and `JsonlTask`."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
from collections.abc import Callable, Iterable
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from langtts.prompts import PromptLibrary
from langtts.tasks.base import FAMILIES, Example, Family, Score, Task
from langtts.tasks.scorers import PythonScorer, make_scorer

REQUIRED_KEYS = ("id", "question", "answer")


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
    """A task from a user's JSONL file with ``id``/``question``/``answer`` keys.

    `scorer` is a declared scorer (a string such as ``"number"``, see :mod:`langtts.tasks.scorers`), which a run
    directory stores and rebuilds at resume, or a Python function ``(reply, example) -> bool | Score`` (answers then
    read from the ``Answer:`` line). `answer_format` replaces the scorer's answer format (the prompt file
    ``answers/<kind>``). The file is read and validated when the task is created; `sha256` (when
    given) must be the file's, so a run never goes on with a changed file.
    """

    splits = ("all",)
    default_split = "all"

    def __init__(
        self,
        path: str | os.PathLike[str],
        scorer: str | Scorer,
        *,
        name: str | None = None,
        family: Family = "generic",
        answer_format: str | None = None,
        sha256: str | None = None,
    ) -> None:
        if family not in FAMILIES:
            raise ValueError(f"unknown family {family!r}; choose from {list(FAMILIES)}")
        self.path = Path(path)
        self.name = name or self.path.name.split(".")[0]
        self.family = family
        self.scorer = make_scorer(scorer) if isinstance(scorer, str) else PythonScorer(function=scorer)
        self._answer_format = answer_format
        data = self.path.read_bytes()
        self.sha256 = hashlib.sha256(data).hexdigest()
        if sha256 is not None and sha256 != self.sha256:
            raise ValueError(
                f"{self.path} changed since the run started (sha256 {self.sha256[:12]}…, the run has {sha256[:12]}…)"
            )
        self._examples = tuple(to_examples(read_jsonl(self.path), source=str(self.path)))
        if not self._examples:
            raise JsonlFormatError(f"{self.path}: no examples")

    def options(self) -> dict[str, Any] | None:
        """What rebuilds this task with :func:`~langtts.tasks.get_task` (with the resolved path as the name), or
        None for a Python scorer function given as an object (not storable)."""
        if not self.scorer.spec:
            return None
        return {
            "scorer": self.scorer.spec,
            "sha256": self.sha256,
            "name": self.name,
            "family": self.family,
            "answer_format": self.answer_format,
        }

    def answer_format_in(self, prompts: PromptLibrary) -> str:
        """The ``answer_format`` given, else the scorer's."""
        return self.scorer.answer_format_in(prompts) if self._answer_format is None else self._answer_format

    def _load(self, split: str) -> list[Example]:
        return list(self._examples)

    def extract(self, text: str) -> str | None:
        return self.scorer.extract(text)

    def equivalent(self, a: str, b: str) -> bool:
        return self.scorer.equivalent(a, b)

    def answer_schema(self) -> dict[str, Any] | None:
        return self.scorer.answer_schema()

    def format_answer(self, answer: str) -> str:
        return self.scorer.format_answer(answer)

    def score(self, text: str, ex: Example) -> Score:
        return self.scorer.judge(text, ex)


def is_task_file(name: str) -> bool:
    """Whether a task name is a JSONL file (``.jsonl`` or ``.jsonl.gz``) rather than a registered task."""
    return name.endswith((".jsonl", ".jsonl.gz"))

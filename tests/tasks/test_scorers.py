"""Declared scorers of JSONL tasks: each kind's answer API, the task built from a file name, the file's sha256."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from langtts.tasks import JsonlTask, get_task, make_scorer
from langtts.tasks.base import Example, Score


def contains_gold(reply: str, example: Example) -> bool:
    """A Python scorer for the tests: the reply mentions the gold answer."""
    return example.answer in reply


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("spec", "reply", "extracted", "gold", "same"),
    [
        ("exact", "Thinking.\nAnswer: New  York.", "New  York", "New York", True),
        ("exact", "Answer: paris", "paris", "Paris", False),
        ("number", "So 1,200 apples.\nAnswer: 1,200.50", "1200.5", "1200.50", True),
        ("number", "It is 7, not 8.", "8", "7", False),
        ("choice", "Answer: (b) Mars", "B", "B", True),
        ("choice:ABCDE", "**Answer:** E.", "E", "e", True),
        ("regex:RESULT=(\\w+)", "RESULT=ok then RESULT=done", "done", "done", True),
        ("regex:RESULT=(\\w+)", "no marker\nAnswer: done", "done", "done", True),
        ("tests.tasks.test_scorers:contains_gold", "Answer: blue sky", "blue sky", "blue sky", True),
    ],
)
def test_each_scorer_extracts_and_compares(spec: str, reply: str, extracted: str, gold: str, same: bool) -> None:
    scorer = make_scorer(spec)
    assert scorer.spec == spec
    assert scorer.extract(reply) == extracted
    assert scorer.equivalent(extracted, gold) is same
    assert scorer.extract(scorer.format_answer(gold)) is not None  # the recovered answer line reads back
    schema = scorer.answer_schema()
    assert schema is not None and schema["required"] == ["answer"] and scorer.answer_format


def test_choice_rejects_other_letters_and_constrains_to_its_letters() -> None:
    scorer = make_scorer("choice")
    assert scorer.extract("Answer: E") is None and scorer.extract("Answer: Because") is None
    assert scorer.answer_schema()["properties"]["answer"]["enum"] == ["A", "B", "C", "D"]
    assert "A, B, C or D" in scorer.answer_format
    assert make_scorer("number").answer_schema()["properties"]["answer"] == {"type": "number"}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("fuzzy", "unknown scorer 'fuzzy'"),
        ("regex:(", "does not compile"),
        ("choice:A", "2 to 26 distinct capital letters"),
        ("no_such_module_xyz:f", "does not import"),
        ("tests.tasks.test_scorers:missing", "does not import"),
    ],
)
def test_bad_scorers_are_value_errors(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_scorer(spec)


def test_a_task_file_is_a_task_name_with_a_declared_scorer(tmp_path: Path) -> None:
    path = _write(tmp_path / "sums.jsonl", [{"id": "a", "question": "2+2?", "answer": 4}])
    task = get_task(str(path), scorer="number")
    assert isinstance(task, JsonlTask) and task.name == "sums" and "<number>" in task.answer_format
    ex = task.load()[0]
    assert task.score("Answer: 4.0", ex) == Score(correct=True, prediction="4", detail="gold 4")
    assert task.score("no idea", ex).error == "no_answer"
    options = task.options()
    assert options is not None and options["scorer"] == "number" and len(options["sha256"]) == 64
    assert get_task(str(path), **options).sha256 == task.sha256
    with pytest.raises(ValueError, match="needs a scorer"):
        get_task(str(path))
    python = get_task(str(path), scorer="tests.tasks.test_scorers:contains_gold")
    assert python.score("I say 4", ex).correct and not python.score("I say 5", ex).correct
    assert JsonlTask(path, contains_gold).options() is None  # a function object is not storable


def test_a_changed_file_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.jsonl", [{"id": "a", "question": "q", "answer": "x"}])
    options = get_task(str(path), scorer="exact").options()
    _write(path, [{"id": "a", "question": "q", "answer": "y"}])
    with pytest.raises(ValueError, match="changed since the run started"):
        get_task(str(path), **options)


def test_a_vote_counts_a_jsonl_tasks_answers_with_its_scorer(tmp_path: Path) -> None:
    from langtts import compile_graph, shapes
    from tests.fakes import fake_pool

    path = _write(tmp_path / "sums.jsonl", [{"id": "a", "question": "5 + 7?", "answer": 12}])
    task = get_task(str(path), scorer="number")
    replies = iter(["So it is\nAnswer: 12", "Answer: 1,2", "Answer: 12.0"])
    pool, _ = fake_pool(lambda model, messages, kwargs: next(replies))
    app = compile_graph(shapes.self_consistency("qwen2.5-coder-0.5b", 3), pool, task)
    out = app.invoke({"question": "5 + 7?"})
    assert task.extract(out["answer"]) == "12" and "2 of 3" in out["answer"]
    assert task.score(out["answer"], task.load()[0]).correct

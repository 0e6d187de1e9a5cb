"""MMLU letter extraction and scoring, with positive controls on the real splits."""

from __future__ import annotations

import random

import pytest

from langtts.tasks import Example, MMLUTask, get_task
from langtts.tasks.mmlu import LETTERS, extract_letter

TASK = get_task("mmlu")


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("Answer: C", "C"),
        ("answer: B", "B"),
        ("Reasoning...\n**Answer:** C", "C"),
        ("**Answer: D**", "D"),
        ("Final Answer: (A)", "A"),
        ("Answer: $B$", "B"),
        ("ANSWER: D.", "D"),
        ("Answer:\n\nC) Paris", "C"),
        ("So the answer is (B).", "B"),
        ("The answer is B", "B"),
        ("The correct option is B.", "B"),
        ("The correct answer is: **C**", "C"),
        ("The best answer is option D", "D"),
        ("Option A is correct.", "A"),
        ("Therefore the final answer is $\\boxed{C}$.", "C"),
        ("\\boxed{\\text{D}}", "D"),
        ("(B)", "B"),
        ("A is wrong and B is wrong. Hence C", "C"),
        ("After eliminating the rest: **D**", "D"),
        ("C", "C"),
        ("I weighed (A) against (C); I pick (C) in the end, not", "C"),
        # The strongest kind of evidence wins, and within it the last match.
        ("The answer is A. Wait, re-checking. Answer: B", "B"),
        ("Answer: A\nHmm, no. Answer: D", "D"),
        ("Answer: B, because (C) fails", "B"),
        ("Options (A) and (D) fail, the answer is C", "C"),
    ],
)
def test_extract_letter(text: str, letter: str) -> None:
    assert extract_letter(text) == letter


@pytest.mark.parametrize("text", ["", "I am not sure.", "Answer: E", "the answer is unclear", "Answer: none"])
def test_no_letter_is_no_answer(text: str) -> None:
    ex = TASK.load("dev")[0]
    score = TASK.score(text, ex)
    assert (score.correct, score.prediction, score.error) == (False, None, "no_answer")


def _written(letter: str, ex: Example, style: int) -> str:
    choice = ex.meta["choices"][LETTERS.index(letter)]
    return [
        f"Let's think. The question is about {ex.meta['subject']}.\nAnswer: {letter}",
        f"Option {letter} ({choice}) fits best.\n**Answer:** {letter}",
        f"The correct option is {letter}.",
        f"After weighing (A) through (D), the answer is ({letter}).",
        f"Answer: {letter}. {choice}",
    ][style % 5]


def _control(examples: list[Example]) -> None:
    for i, ex in enumerate(examples):
        score = TASK.score(_written(ex.answer, ex, i), ex)
        assert score.correct and score.prediction == ex.answer, (ex.id, score)
        wrong = LETTERS[(LETTERS.index(ex.answer) + 1 + i % 3) % 4]
        assert not TASK.score(_written(wrong, ex, i), ex).correct, ex.id


def test_split_sizes_and_format() -> None:
    sizes = {split: len(MMLUTask(split).load()) for split in ("dev", "val", "test")}
    assert sizes == {"dev": 285, "val": 1531, "test": 14042}
    ex = TASK.load("dev")[0]
    text = TASK.format_question(ex)
    assert text.startswith(ex.question) and text.endswith(f"D. {ex.meta['choices'][3]}")
    assert "\nA. " in text and "\nB. " in text and "\nC. " in text


def test_gold_letters_written_like_a_model_score_correct_on_dev_and_val() -> None:
    _control(get_task("mmlu", split="dev").load() + get_task("mmlu", split="val").load())


def test_gold_letters_written_like_a_model_score_correct_on_a_test_subset() -> None:
    examples = random.Random(0).sample(TASK.load(), 3000)
    _control(examples)


def test_subjects_filter() -> None:
    task = get_task("mmlu", split="val", subjects=["anatomy", "virology"])
    examples = task.load()
    assert {ex.meta["subject"] for ex in examples} == {"anatomy", "virology"}
    assert len(examples) == 14 + 18
    assert len(task.load("dev")) == 10
    assert {ex.meta["subject"] for ex in MMLUTask(subjects="anatomy").load()} == {"anatomy"}
    with pytest.raises(ValueError, match="unknown MMLU subject"):
        MMLUTask(subjects=["anatomy", "astrology"])

"""GSM8K number extraction and scoring, with positive controls on the whole test split."""

from __future__ import annotations

from decimal import Decimal

import pytest

from langtts.tasks import Example, get_task
from langtts.tasks.gsm8k import extract_number

TASK = get_task("gsm8k")


def _ex(answer: str) -> Example:
    return Example(id="x", question="q", answer=answer)


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("so she makes 9 * 2 = $18 every day.\n#### 18", "18"),
        ("#### 1,234", "1234"),
        ("The answer is $1,234.", "1234"),
        ("It costs $1,234.50 in total.", "1234.50"),
        ("He lost 5 and then 12 more, so -17 overall.", "-17"),
        ("The temperature is −3 degrees", "-3"),
        ("It takes 5.0 hours.", "5"),
        ("She needs 12 kg.", "12"),
        ("#### $42.\nThen 7 more steps", "42"),  # the number after #### wins over the last number
        ("The answer is 3 (not 2-4)", "3"),  # the answer line wins over the last number
        ("from 2-4", "4"),  # a hyphen between digits is not a minus sign
        ("Step 1: 5 apples.\nThe final answer is $1,200.\nThat is 3 more than before.", "1200"),
        ("So \\boxed{17}, which is 3 more.", "17"),
        ("Answer: 12 eggs; 4 were broken", "12"),
        ("#### seven\nso 7", "7"),  # nothing numeric after ####: the last number
        ("Total: .5 of the cake", "0.5"),
        ("Version v2 costs 30", "30"),
    ],
)
def test_extract_number(text: str, number: str) -> None:
    assert extract_number(text) == Decimal(number)


def test_scoring_compares_numerically() -> None:
    assert TASK.score("The answer is 5.0", _ex("5")).correct
    assert TASK.score("#### 1,000,000", _ex("1000000")).prediction == "1000000"
    assert TASK.score("she ends with -3 apples", _ex("-3")).correct
    assert TASK.score("#### 0.0", _ex("0")).prediction == "0"
    wrong = TASK.score("#### 19", _ex("18"))
    assert (wrong.correct, wrong.prediction, wrong.error) == (False, "19", None)


@pytest.mark.parametrize("text", ["", "I do not know.", "#### ?", "eighteen dollars"])
def test_no_number_is_no_answer(text: str) -> None:
    score = TASK.score(text, _ex("18"))
    assert (score.correct, score.prediction, score.error) == (False, None, "no_answer")


def test_gold_answers_written_like_a_model_score_correct_on_the_whole_split() -> None:
    examples = TASK.load()
    assert len(examples) == 1319
    for ex in examples:
        raw = ex.meta["answer_raw"]
        styles = [
            f"Let me work it out step by step: 3 + 4 = 7.\nSo the answer is #### {raw}",
            f"First 12 and 7 apples.\nThe answer is ${raw}.",
            f"#### {int(ex.answer):,}",
            ex.meta["solution"],
        ]
        for text in styles:
            score = TASK.score(text, ex)
            assert score.correct, (ex.id, text, score)


def test_wrong_answers_score_incorrect() -> None:
    for ex in TASK.load()[::25]:
        score = TASK.score(f"The answer is #### {int(ex.answer) + 1}", ex)
        assert not score.correct and score.error is None, ex.id


def test_answer_api_round_trips_and_compares_numerically() -> None:
    assert TASK.extract(TASK.format_answer("1234")) == "1234"
    assert TASK.equivalent("18", "18.0") and TASK.equivalent("1,000", "1000") and not TASK.equivalent("18", "19")
    assert TASK.extract("I do not know.") is None
    assert TASK.answer_schema()["properties"]["answer"] == {"type": "number"}

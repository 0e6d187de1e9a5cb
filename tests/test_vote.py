"""Majority votes: grouping under equivalence, missing answers, the tie rule, agreement and the vote's text."""

from __future__ import annotations

import pytest

from langtts.tasks import get_task
from langtts.vote import NO_ANSWER_TEXT, Tally, tally


def casefold(a: str, b: str) -> bool:
    return a.casefold() == b.casefold()


def test_the_majority_under_equivalence_wins_spelled_as_its_first_answer() -> None:
    result = tally(["paris", "Lyon", "PARIS", "Paris", "lyon"], casefold)
    assert result == Tally(answer="paris", count=3, inputs=5, answered=5)
    assert result.agreement == 0.6
    assert tally(["paris", "PARIS"], str.__eq__) == Tally("paris", 1, 2, 2)  # without equivalence: a tie


def test_inputs_without_an_answer_are_ignored_but_counted_as_inputs() -> None:
    result = tally([None, "Lyon", None, "Paris", "Paris"], casefold)
    assert result == Tally("Paris", 2, 5, 3) and result.agreement == 0.4
    assert tally([None, None, None], casefold) == Tally(None, 0, 3, 0)
    assert tally([None, None], casefold).agreement == 0.0


def test_ties_go_to_the_largest_model_then_to_the_earliest_input() -> None:
    assert tally(["A", "B"], str.__eq__).answer == "A"  # equal sizes: the earliest input
    assert tally(["A", "B", "B", "A"], str.__eq__).answer == "A"
    assert tally(["A", "B"], str.__eq__, sizes=[1e9, 3e9]).answer == "B"  # the larger model
    # the largest model among each answer's supporters decides, not their sum
    assert tally(["A", "A", "B", "B"], str.__eq__, sizes=[1e9, 1e9, 0.5e9, 2e9]).answer == "B"
    # a larger model does not beat a majority
    assert tally(["A", "A", "B"], str.__eq__, sizes=[1e9, 1e9, 8e9]) == Tally("A", 2, 3, 3)


def test_an_equivalence_check_that_times_out_compares_the_texts() -> None:
    def slow(a: str, b: str) -> bool:
        raise TimeoutError("math-verify overran")

    assert tally(["1/2", "0.5", "1/2"], slow) == Tally("1/2", 2, 3, 3)


def test_the_vote_text_has_the_count_and_the_tasks_answer_line() -> None:
    mmlu = get_task("mmlu")
    assert Tally("C", 3, 5, 5).text(mmlu.format_answer) == "Vote: 3 of 5 inputs agree.\nAnswer: C"
    assert Tally("C", 2, 5, 4).text(mmlu.format_answer) == "Vote: 2 of 5 inputs agree (1 gave none).\nAnswer: C"
    assert Tally(None, 0, 3, 0).text(mmlu.format_answer) == NO_ANSWER_TEXT == "Vote: no input gave an answer."


@pytest.mark.parametrize(("name", "answer"), [("mmlu", "B"), ("gsm8k", "1250"), ("math500", "\\frac{1}{2}")])
def test_a_votes_text_reads_back_as_its_answer_and_no_winner_as_none(name: str, answer: str) -> None:
    task = get_task(name)
    assert task.extract(Tally(answer, 3, 7, 5).text(task.format_answer)) == answer
    assert task.extract(Tally(None, 0, 5, 0).text(task.format_answer)) is None

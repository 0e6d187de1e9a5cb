"""MATH-500: boxed-answer extraction, math-verify equivalences, time budgets and positive controls."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from langtts.tasks import Example, get_task
from langtts.tasks.math500 import call_with_budget, is_equivalent, last_boxed

TASK = get_task("math500")


def _ex(answer: str) -> Example:
    return Example(id="x", question="q", answer=answer)


@pytest.mark.parametrize(
    ("text", "content"),
    [
        ("so $\\boxed{5}$.", "5"),
        ("first \\boxed{1}, then finally \\boxed{2}", "2"),
        ("\\boxed{\\frac{1}{\\sqrt{2}}}", "\\frac{1}{\\sqrt{2}}"),
        ("\\boxed{\\left\\{ 1, 2 \\right\\}}", "\\left\\{ 1, 2 \\right\\}"),
        ("The answer is \\boxed 5.", "5"),
        ("The answer is $\\boxed7$", "7"),
        ("\\fbox{x+1}", "x+1"),
        ("\\boxed{ 3 } and a truncated \\boxed{4", "3"),
        ("\\boxed{} then \\boxed{9}", "9"),
        ("no box here: 42", None),
        ("\\boxed{}", None),
        ("\\boxedx{3}", None),
    ],
)
def test_last_boxed(text: str, content: str | None) -> None:
    assert last_boxed(text) == content


@pytest.mark.parametrize(
    ("gold", "prediction"),
    [
        ("\\frac{1}{2}", "0.5"),
        ("\\frac12", "\\dfrac{1}{2}"),
        ("\\dfrac{3}{4}", "3/4"),
        ("\\tfrac{2}{3}", "\\frac{2}{3}"),
        ("(1,2]", "(1, 2]"),
        ("(-\\infty, 3)", "(-\\infty,3)"),
        ("[0,1] \\cup [2,3]", "[0, 1] \\cup [2, 3]"),
        ("5\\text{ cm}", "5"),
        ("12\\text{ inches}", "12"),
        ("\\text{(C)}", "C"),
        ("30^\\circ", "30"),
        ("90", "90^{\\circ}"),
        ("\\$5", "5"),
        ("1,000", "1000"),
        ("2", "2.0"),
        ("\\sqrt{2}/2", "\\frac{\\sqrt2}{2}"),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"),
        ("x^2+2x+1", "(x+1)^2"),
        ("\\{1,2\\}", "\\{2,1\\}"),
        ("p - q", "-q + p"),
    ],
)
def test_equivalent_answers(gold: str, prediction: str) -> None:
    assert is_equivalent(gold, prediction)
    assert TASK.score(f"So the answer is $\\boxed{{{prediction}}}$.", _ex(gold)).correct


@pytest.mark.parametrize(
    ("gold", "prediction"),
    [
        ("\\frac{1}{2}", "\\frac{1}{3}"),
        ("[1,2)", "(1,2)"),
        ("(1,2]", "[1,2]"),
        ("5", "-5"),
        ("\\frac{\\pi}{2}", "\\frac{\\pi}{3}"),
        ("x+1", "x-1"),
        ("0.333", "\\frac{1}{3}"),
    ],
)
def test_different_answers(gold: str, prediction: str) -> None:
    score = TASK.score(f"\\boxed{{{prediction}}}", _ex(gold))
    assert (score.correct, score.prediction, score.error) == (False, prediction, None)


@pytest.mark.parametrize("text", ["The answer is 5.", "", "\\boxed{}", "\\boxed{5"])
def test_missing_box_is_no_answer(text: str) -> None:
    score = TASK.score(text, _ex("5"))
    assert (score.correct, score.prediction, score.error) == (False, None, "no_answer")


def test_only_the_last_box_counts() -> None:
    assert TASK.score("maybe \\boxed{5}? no: \\boxed{6}", _ex("6")).correct
    assert not TASK.score("\\boxed{6}, no wait, \\boxed{5}", _ex("6")).correct


def test_positive_controls_on_all_500(timed) -> None:
    examples = TASK.load()
    assert len(examples) == 500
    with timed("MATH-500 positive controls (1000 checks)"):
        for ex in examples:
            for text in (f"The answer is \\boxed{{{ex.answer}}}", ex.meta["solution"]):
                score = TASK.score(text, ex)
                assert score.correct, (ex.id, text[-200:], score)


def test_wrong_integer_answers_score_incorrect() -> None:
    integers = [ex for ex in TASK.load() if ex.answer.lstrip("-").isdigit()][:60]
    assert len(integers) == 60
    for ex in integers:
        score = TASK.score(f"\\boxed{{{int(ex.answer) + 1}}}", ex)
        assert not score.correct and score.error is None, ex.id


def test_scoring_works_off_the_main_thread() -> None:
    examples = TASK.load()[:40]
    with ThreadPoolExecutor(4) as pool:
        scores = list(pool.map(lambda ex: TASK.score(ex.meta["solution"], ex), examples))
    assert all(s.correct for s in scores), [s for s in scores if not s.correct]


def test_budget_interrupts_a_runaway_check() -> None:
    def spin() -> None:
        while True:
            pass

    start = time.monotonic()
    with pytest.raises(TimeoutError):
        call_with_budget(spin, 0.2)
    assert time.monotonic() - start < 1.0

    def helpers_alive() -> bool:
        return any(t.name == "langtts-math-verify" for t in threading.enumerate())

    deadline = time.monotonic() + 5
    while helpers_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not helpers_alive(), "the runaway check was not interrupted"


def test_budget_passes_results_and_errors_through() -> None:
    assert call_with_budget(lambda: 42, 1.0) == 42
    with pytest.raises(ZeroDivisionError):
        call_with_budget(lambda: 1 / 0, 1.0)


def test_timeout_is_scored_as_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(gold: str, prediction: str) -> bool:
        time.sleep(2)
        return True

    monkeypatch.setattr("langtts.tasks.math500._equivalent", slow)
    task = get_task("math500", timeout_s=0.1)
    score = task.score("\\boxed{5}", _ex("5"))
    assert (score.correct, score.prediction, score.error) == (False, "5", "timeout")

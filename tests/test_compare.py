"""Paired comparison of two graphs: exact McNemar p-values, paired bootstrap CI, and `compare` on a fake pool."""

import json

import httpx
import openai
import pytest

from langtts.compare import ComparisonResult, compare, mcnemar_exact, paired_comparison
from langtts.evaluation import CallsFailedError
from langtts.shapes import single
from langtts.tasks import get_task
from tests.fakes import fake_pool

QWEN, SMOL = "qwen2.5-coder-0.5b", "smollm2-135m"
GSM8K = get_task("gsm8k")
EXAMPLES = GSM8K.load()[:4]


@pytest.mark.parametrize(
    ("only_a", "only_b", "expected"),
    [
        (0, 0, 1.0),
        (0, 5, 2 * 1 / 32),  # 2·C(5,0)/2^5
        (1, 9, 2 * (1 + 10) / 1024),  # 2·(C(10,0)+C(10,1))/2^10
        (7, 3, 2 * (1 + 10 + 45 + 120) / 1024),  # 2·P(X<=3), X~Bin(10,1/2) = 0.34375
        (5, 5, 1.0),  # doubled tail > 1 is capped
        (2, 0, 0.5),
    ],
)
def test_mcnemar_exact_matches_hand_computed_binomial_tails(only_a, only_b, expected):
    assert mcnemar_exact(only_a, only_b) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_exact_is_symmetric_and_rejects_negative_counts():
    assert mcnemar_exact(3, 12) == mcnemar_exact(12, 3)
    with pytest.raises(ValueError, match=">= 0"):
        mcnemar_exact(-1, 2)


def test_paired_comparison_counts_difference_ci_and_p_value():
    # 9 questions only a gets right, 1 only b, 6 both, 4 neither
    a = [True] * 9 + [False] + [True] * 6 + [False] * 4
    b = [False] * 9 + [True] + [True] * 6 + [False] * 4
    result = paired_comparison(a, b, n_boot=2000, seed=3)
    assert (result.n, result.only_a, result.only_b) == (20, 9, 1)
    assert result.accuracy_a == pytest.approx(0.75) and result.accuracy_b == pytest.approx(0.35)
    assert result.difference == pytest.approx(0.4)
    assert result.p_value == pytest.approx(2 * 11 / 1024)
    assert result.ci_low <= result.difference <= result.ci_high and result.ci_low < result.ci_high
    assert paired_comparison(a, b, n_boot=2000, seed=3) == result
    swapped = paired_comparison(b, a, n_boot=2000, seed=3)
    assert swapped.difference == pytest.approx(-0.4) and swapped.p_value == result.p_value


def test_identical_outcomes_give_zero_difference_and_p_one():
    flags = [True, False, True, True, False]
    result = paired_comparison(flags, flags)
    assert result.difference == 0 and result.p_value == 1.0
    assert (result.ci_low, result.ci_high) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("a", "b", "options", "message"),
    [
        ([True], [True, False], {}, "same questions"),
        ([], [], {}, "no questions"),
        ([True], [False], {"n_boot": 0}, "n_boot"),
    ],
)
def test_paired_comparison_rejects_bad_input(a, b, options, message):
    with pytest.raises(ValueError, match=message):
        paired_comparison(a, b, **options)


def test_compare_evaluates_each_graph_on_the_same_questions(tmp_path):
    def respond(model, messages, kwargs):  # qwen is always right, smollm only on the first question
        prompt = str(messages[-1].content)
        ex = next(ex for ex in EXAMPLES if GSM8K.format_question(ex) in prompt)
        right = model == QWEN or ex.id == EXAMPLES[0].id
        return f"#### {ex.answer if right else int(ex.answer) + 1}"

    pool, log = fake_pool(respond)
    graphs = {"smol": single(SMOL), "qwen": single(QWEN)}
    result = compare(graphs, GSM8K, pool, examples=EXAMPLES, progress=False, concurrency=2)
    assert result.reference == "smol" and list(result.comparisons) == ["qwen"]
    assert result.question_ids == [ex.id for ex in EXAMPLES] and len(log.calls) == 8
    assert result.results["smol"].accuracy == pytest.approx(0.25) and result.results["qwen"].accuracy == 1.0
    versus = result.comparisons["qwen"]
    assert (versus.only_a, versus.only_b) == (3, 0)
    assert versus.difference == pytest.approx(0.75) and versus.p_value == pytest.approx(0.25)
    summary = result.summary()
    json.dumps(summary)
    assert "records" not in summary["results"]["qwen"]
    result.save(tmp_path / "comparison.json")
    assert ComparisonResult.load(tmp_path / "comparison.json") == result


def test_questions_that_errored_leave_the_pairing():
    down = GSM8K.format_question(EXAMPLES[0])

    def respond(model, messages, kwargs):  # the server fails smollm's calls on question 0; qwen is always right
        prompt = str(messages[-1].content)
        if model == SMOL and down in prompt:
            raise openai.APIConnectionError(request=httpx.Request("POST", "http://127.0.0.1:9/v1"))
        ex = next(ex for ex in EXAMPLES if GSM8K.format_question(ex) in prompt)
        return f"#### {ex.answer if model == QWEN else int(ex.answer) + 1}"

    pool, _ = fake_pool(respond)
    pool.max_retries = 0
    graphs = {"smol": single(SMOL), "qwen": single(QWEN)}
    result = compare(graphs, GSM8K, pool, examples=EXAMPLES, progress=False)
    assert result.results["smol"].accuracy == 0.0 and result.results["smol"].n_errors == 1
    versus = result.comparisons["qwen"]
    assert (versus.n, versus.undetermined, versus.only_a, versus.only_b) == (3, 1, 3, 0)
    with pytest.raises(CallsFailedError, match="1 of 4 questions"):
        result.raise_for_call_failures()
    counted = compare(graphs, GSM8K, pool, examples=EXAMPLES, progress=False, errors_as_wrong=True)
    assert (counted.comparisons["qwen"].n, counted.comparisons["qwen"].only_a) == (4, 4)


def test_compare_needs_two_graphs():
    pool, _ = fake_pool(lambda model, messages, kwargs: "#### 1")
    with pytest.raises(ValueError, match="at least two graphs"):
        compare({"only": single(QWEN)}, GSM8K, pool, examples=EXAMPLES)

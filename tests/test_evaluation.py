import httpx
import openai
import pytest

from langtts.evaluation import CallsFailedError, EvaluationResult, bootstrap_ci, evaluate
from langtts.models.pool import sample_seed
from langtts.shapes import fused, parallel, self_consistency, single
from langtts.tasks import get_task
from tests.fakes import fake_pool

QWEN, SMOL = "qwen2.5-coder-0.5b", "smollm2-135m"
GSM8K = get_task("gsm8k")
EXAMPLES = GSM8K.load()[:6]
GOLD = {GSM8K.format_question(ex): ex.answer for ex in EXAMPLES}


def oracle(correct_ids):
    """Answers gold for the questions of ``correct_ids``, a wrong number for others, prose for one."""
    by_question = {GSM8K.format_question(ex): ex for ex in EXAMPLES}

    def respond(model, messages, kwargs):
        prompt = " ".join(str(m.content) for m in messages)
        ex = next(ex for q, ex in by_question.items() if q in prompt)
        if ex.id == EXAMPLES[-1].id:  # no answer, and 7 (wrong) when asked for the answer alone
            return '{"answer": 7}' if "extra_body" in kwargs else "I am not sure."
        return f"The answer is #### {ex.answer if ex.id in correct_ids else int(ex.answer) + 1}"

    return respond


def test_accuracy_ci_records_and_totals():
    correct = {EXAMPLES[0].id, EXAMPLES[1].id, EXAMPLES[2].id}
    pool, log = fake_pool(oracle(correct))
    result = evaluate(parallel([QWEN, SMOL], sink_model=QWEN), GSM8K, pool, examples=EXAMPLES, progress=False)
    assert result.n == 6 and result.n_correct == 3 and result.accuracy == pytest.approx(0.5)
    assert result.ci_low <= 0.5 <= result.ci_high and result.ci_low < result.ci_high
    # the sink's reply to the last question has no answer: one recovery call gives one (a wrong one)
    assert result.n_no_answer == 0 and result.n_no_answer_before_recovery == 1
    assert result.extraction_failure_rate_before_recovery == pytest.approx(1 / 6)
    assert (result.n_recovery_calls, result.n_recovered, result.recovery_rate) == (1, 1, 1.0)
    assert result.accuracy_without_recovery == pytest.approx(0.5)
    assert result.n_errors == 0 and result.calls == 19 == len(log.calls)
    recovered = {r.id: r for r in result.records}[EXAMPLES[-1].id]
    assert (recovered.recovery, recovered.recovered, recovered.prediction, recovered.calls) == (
        "no_answer",
        True,
        "7",
        4,
    )
    record = {r.id: r for r in result.records}[EXAMPLES[0].id]
    assert record.correct and record.prediction == EXAMPLES[0].answer and record.gold == EXAMPLES[0].answer
    assert record.calls == 3 and len(record.trace) == 3 and record.flops > 0 and record.analytic_flops > 0
    assert result.flops == pytest.approx(sum(r.flops for r in result.records))
    assert result.lengths is not None  # GSM8K has no preset: lengths measured from the no-input calls
    assert result.flops_ratio == pytest.approx(result.flops / result.analytic_flops)
    assert result.latency_p50_s <= result.latency_p95_s


def test_save_and_load_round_trip(tmp_path):
    pool, _ = fake_pool(oracle({EXAMPLES[0].id}))
    result = evaluate(single(QWEN), GSM8K, pool, examples=EXAMPLES, progress=False)
    result.save(tmp_path / "result.json")
    assert EvaluationResult.load(tmp_path / "result.json") == result
    (tmp_path / "old.json").write_text('{"schema_version": 99}')
    with pytest.raises(ValueError, match="schema_version"):
        EvaluationResult.load(tmp_path / "old.json")


def test_failed_calls_leave_accuracy_undetermined_unless_counted_as_wrong():
    def flaky(model, messages, kwargs):
        if model == SMOL:
            raise openai.APIConnectionError(request=httpx.Request("POST", "http://127.0.0.1:9/v1"))
        return "#### 1"

    pool, _ = fake_pool(flaky)
    pool.max_retries, pool.retry_wait = 1, 0.0
    graph = fused([QWEN, SMOL], sink_model=QWEN)
    dead = evaluate(graph, GSM8K, pool, examples=EXAMPLES[:3], progress=False)
    assert dead.n_errors == 3 and dead.error_rate == 1 and not dead.errors_as_wrong
    assert (dead.accuracy, dead.ci_low, dead.ci_high, dead.n_correct) == (None, None, None, 0)
    assert all(r.error == "call_failed" and r.correct is None and r.prediction is None for r in dead.records)
    assert "accuracy undetermined" in dead.summary()
    with pytest.raises(CallsFailedError, match="3 of 3 questions failed after the pool's retries"):
        dead.raise_for_call_failures()
    counted = evaluate(graph, GSM8K, pool, examples=EXAMPLES[:3], progress=False, errors_as_wrong=True)
    assert counted.n_errors == 3 and counted.accuracy == 0 and counted.errors_as_wrong
    assert all(r.correct is False for r in counted.records)


def test_questions_that_errored_are_left_out_of_the_accuracy():
    failing = {GSM8K.format_question(ex) for ex in EXAMPLES[:2]}

    def partly_down(model, messages, kwargs):
        if any(q in str(m.content) for m in messages for q in failing):
            raise openai.APIConnectionError(request=httpx.Request("POST", "http://127.0.0.1:9/v1"))
        return oracle({EXAMPLES[2].id})(model, messages, kwargs)

    pool, _ = fake_pool(partly_down)
    pool.max_retries, pool.retry_wait = 0, 0.0
    result = evaluate(single(QWEN), GSM8K, pool, examples=EXAMPLES[:4], progress=False)
    assert result.n_errors == 2 and result.n_correct == 1 and result.accuracy == pytest.approx(0.5)
    assert [r.correct for r in result.records] == [None, None, True, False]
    assert result.accuracy_text().startswith("50.0% [")
    with pytest.raises(CallsFailedError, match="2 of 4"):
        result.raise_for_call_failures()


def test_empty_sink_answers_are_flagged_not_scored():
    pool, _ = fake_pool(lambda model, messages, kwargs: "")
    result = evaluate(single(QWEN), GSM8K, pool, examples=EXAMPLES[:2], progress=False)
    assert [r.error for r in result.records] == ["empty", "empty"] and result.accuracy == 0


def test_preset_lengths_for_mmlu():
    mmlu = get_task("mmlu", split="dev")
    pool, _ = fake_pool(lambda model, messages, kwargs: "Answer: A")
    result = evaluate(single(QWEN), mmlu, pool, n=4, progress=False)
    assert result.lengths == {"input_tokens": 213.0, "output_tokens": 215.0}
    assert result.n == 4 and result.split is None


def test_bootstrap_ci_is_seeded_and_bounded():
    values = [True] * 7 + [False] * 3
    assert bootstrap_ci(values) == bootstrap_ci(values)
    low, high = bootstrap_ci(values)
    assert 0.3 < low < 0.7 < high <= 1.0
    assert bootstrap_ci([]) == (0.0, 0.0)


def test_no_questions_is_an_error():
    pool, _ = fake_pool(lambda model, messages, kwargs: "#### 1")
    with pytest.raises(ValueError, match="no questions"):
        evaluate(single(QWEN), GSM8K, pool, examples=[], progress=False)


WORDS = ("first", "second", "third")


def per_sample(table):
    """A responder: ``table[question index][sample]`` is ``g`` (gold), ``w`` (gold + 1), or ``ng``/``nw`` (no
    answer; its recovery gives gold / gold + 1). Samples are told apart by their server seed; a node with inputs
    (the sink of a self-MoA) answers gold."""
    seeds = {sample_seed(0, i): i for i in range(3)}
    by_question = {GSM8K.format_question(ex): i for i, ex in enumerate(EXAMPLES)}

    def respond(model, messages, kwargs):
        prompt = " ".join(str(m.content) for m in messages)
        q = next(i for question, i in by_question.items() if question in prompt)
        gold = int(EXAMPLES[q].answer)
        if "extra_body" in kwargs:
            sample = next(i for i, word in enumerate(WORDS) if f"the {word} sample" in str(messages[1].content))
            return f'{{"answer": {gold if table[q][sample] == "ng" else gold + 1}}}'
        sample = seeds[kwargs["seed"]]
        spec = table[q][sample]
        if spec.startswith("n"):
            return f"I am not sure, says the {WORDS[sample]} sample."
        return f"The answer is #### {gold if spec == 'g' else gold + 1}"

    return respond


def test_every_node_is_scored_with_the_agreement_among_its_inputs():
    def respond(model, messages, kwargs):  # qwen right on questions 0-2, smollm on 0; both wrong alike on 3
        prompt = " ".join(str(m.content) for m in messages)
        q = next(i for i, ex in enumerate(EXAMPLES[:4]) if GSM8K.format_question(ex) in prompt)
        gold = int(EXAMPLES[q].answer)
        if model == SMOL and q == 1:
            return "I am not sure."
        right = q == 0 or (model == QWEN and q < 3)
        return f"The answer is #### {gold if right else gold + 1}"

    pool, _ = fake_pool(respond)
    result = evaluate(parallel([QWEN, SMOL], sink_model=QWEN), GSM8K, pool, examples=EXAMPLES[:4], progress=False)
    assert [(s.id, s.role, s.model, s.n) for s in result.nodes] == [
        ("n0", "assistant", QWEN, 4),
        ("n1", "assistant", SMOL, 4),
        ("sink", "decider", QWEN, 4),
    ]
    assert [s.accuracy for s in result.nodes] == [0.75, 0.25, 0.75] and result.accuracy == 0.75
    # the sink's inputs: agree, one without an answer, disagree, agree (on the same wrong number)
    assert [r.node_agreement for r in result.records] == [{"sink": 1.0}, {"sink": 0.5}, {"sink": 0.5}, {"sink": 1.0}]
    assert [s.agreement for s in result.nodes] == [None, None, 0.75]
    assert [r.node_correct for r in result.records] == [
        {"n0": True, "n1": True, "sink": True},
        {"n0": True, "n1": False, "sink": True},
        {"n0": True, "n1": False, "sink": True},
        {"n0": False, "n1": False, "sink": False},
    ]
    assert [e["correct"] for e in result.records[2].trace] == [True, False, True]
    loaded = EvaluationResult.model_validate_json(result.model_dump_json())
    assert loaded.nodes == result.nodes and loaded.records[1].node_agreement == {"sink": 0.5}


def test_a_vote_sink_is_scored_before_and_after_its_inputs_recovery():
    table = [
        ["g", "g", "w"],  # the vote: gold, 2 of 3
        ["w", "g", "ng"],  # after recovery gold 2 of 3; before, a tie of the first two: wrong
        ["g", "nw", "w"],  # after recovery wrong 2 of 3; before, a tie: the first input's gold
        ["ng", "ng", "w"],  # after recovery gold 2 of 3; before, only the wrong one
    ]
    pool, log = fake_pool(per_sample(table))
    graph = self_consistency(QWEN, 3)
    result = evaluate(graph, GSM8K, pool, examples=EXAMPLES[:4], progress=False)
    assert result.accuracy == 0.75 and result.accuracy_without_recovery == 0.5
    assert [r.correct for r in result.records] == [True, True, False, True]
    assert [r.correct_without_recovery for r in result.records] == [True, False, True, False]
    assert (result.n_recovery_calls, result.n_recovered, result.n_no_answer_before_recovery) == (4, 4, 0)
    assert [r.recovery for r in result.records] == [None] * 4  # the vote itself is never recovered
    assert [s.accuracy for s in result.nodes] == [0.75, 0.75, 0.25, 0.75]
    assert [s.agreement for s in result.nodes] == [None, None, None, pytest.approx(2 / 3)]
    assert result.nodes[-1].model is None and result.nodes[-1].role == "vote"
    # the vote made no call and added no FLOPs: 12 samples and 4 recoveries are every call and every FLOP
    assert result.calls == 16 == len(log.calls) == len(pool.ledger.records())
    llm_flops = sum(e["flops"] + (e["recovery"] or {}).get("flops", 0.0) for r in result.records for e in r.trace)
    assert result.flops == pytest.approx(llm_flops)
    assert all(r.trace[-1]["flops"] == 0.0 and r.trace[-1]["prompt_tokens"] == 0 for r in result.records)
    assert result.records[1].answer == f"Vote: 2 of 3 inputs agree.\n{GSM8K.format_answer(EXAMPLES[1].answer)}"

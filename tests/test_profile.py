import json

import pytest

from langtts.cost import Budget
from langtts.evaluation import CallsFailedError
from langtts.models import CallCache
from langtts.profile import (
    ModelProfile,
    Profile,
    ProfileKey,
    Stale,
    load_profile,
    profile,
    profile_lengths,
    profile_path,
    profile_questions,
    search_warnings,
    stored_profile,
    wilson_interval,
)
from langtts.tasks import get_task, search_test_split
from tests.fakes import fake_pool

QWEN, SMOL = "qwen2.5-coder-0.5b", "smollm2-135m"
GSM8K = get_task("gsm8k")


def questions(n=10, seed=0):
    return profile_questions(GSM8K.load(), n, seed)


def responder(right: dict[str, set[str]]):
    """Each model gives the gold answer on the questions of ``right[model]``, a wrong number elsewhere; the reply is
    5 words."""
    gold = {GSM8K.format_question(ex): ex for ex in GSM8K.load()}

    def respond(model, messages, kwargs):
        prompt = str(messages[-1].content)
        ex = next(ex for q, ex in gold.items() if q in prompt)
        answer = ex.answer if ex.id in right.get(model, set()) else str(int(ex.answer) + 1)
        return f"so it is #### {answer}"

    return respond


def test_wilson_interval_exact_values():
    assert wilson_interval(7, 10) == pytest.approx((0.396778, 0.892208), abs=1e-6)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.277533), abs=1e-6)
    assert wilson_interval(10, 10) == pytest.approx((0.722467, 1.0), abs=1e-6)
    with pytest.raises(ValueError):
        wilson_interval(1, 0)


def test_profile_questions_never_overlap_a_test_split():
    examples = GSM8K.load()
    for seed in (0, 1, 7):
        ids = {ex.id for ex in profile_questions(examples, 100, seed)}
        assert len(ids) == 100
        for n_test in (8, 20, 200, len(examples) - 100):
            _, test = search_test_split(examples, 10, n_test, seed=seed, test_first=True)
            assert not ids & {ex.id for ex in test}
    with pytest.raises(ValueError, match="between 1 and"):
        profile_questions(examples, len(examples) + 1, 0)


def test_profile_measures_each_model_exactly(tmp_path):
    qs = questions()
    pool, log = fake_pool(responder({QWEN: {ex.id for ex in qs[:7]}}))
    result = profile(GSM8K, pool, [QWEN, SMOL], n=10, directory=tmp_path, progress=False)
    qwen, smol = result.model(QWEN), result.model(SMOL)
    assert (qwen.n, qwen.n_correct, qwen.accuracy) == (10, 7, pytest.approx(0.7))
    assert (qwen.ci_low, qwen.ci_high) == pytest.approx((0.396778, 0.892208), abs=1e-6)
    assert (smol.accuracy, smol.ci_low) == (0.0, 0.0)
    assert smol.ci_high == pytest.approx(0.277533, abs=1e-6)
    # the fake counts words: the reply has 5, the prompt is the rendered question and answer format
    prompt_words = [sum(len(str(m.content).split()) for m in messages) for name, messages, *_ in log.calls]
    assert qwen.completion_tokens_mean == 5.0
    assert qwen.prompt_tokens_mean == pytest.approx(sum(prompt_words) / len(log.calls))
    assert len(log.calls) == 20 and qwen.calls == 10 and qwen.cache_hits == 0
    assert qwen.flops_per_question > smol.flops_per_question > 0
    assert (qwen.extraction_failure_rate, qwen.truncation_rate, qwen.n_errors) == (0.0, 0.0, 0)
    assert result.key.question_ids == [ex.id for ex in qs] and result.chance_floor is None
    assert list(result.key.models) == [QWEN, SMOL] and result.key.settings["max_tokens"] == 640
    assert result.best() == qwen
    saved = profile_path(GSM8K, directory=tmp_path)
    assert Profile.load(saved) == result and saved.parent == tmp_path
    assert QWEN in result.table() and "[39.7%, 89.2%]" in result.table()


def test_truncation_and_extraction_failures_are_counted_before_recovery(tmp_path):
    def respond(model, messages, kwargs):
        if "extra_body" in kwargs:  # the recovery call: the answer alone
            return '{"answer": 1}'
        return "I do not know" if "Janet" in str(messages[-1].content) else "word " * 30 + "#### 3"

    pool, _ = fake_pool(respond)
    result = profile(GSM8K, pool, [QWEN], n=10, max_tokens=20, directory=tmp_path, progress=False)
    qwen = result.model(QWEN)
    janet = sum("Janet" in ex.question for ex in questions())
    assert qwen.truncation_rate == pytest.approx((10 - janet) / 10)
    assert qwen.extraction_failure_rate == pytest.approx(1.0)  # no answer before recovery, anywhere
    assert qwen.completion_tokens_mean == pytest.approx((janet * 4 + (10 - janet) * 20) / 10)  # recovery not counted


def test_stored_profile_is_reused_and_detected_as_stale(tmp_path):
    qs = questions()
    respond = responder({QWEN: {qs[0].id}})
    cache = CallCache(tmp_path / "calls.sqlite")
    pool, log = fake_pool(respond, cache=cache)
    store = tmp_path / "profiles"
    first = profile(GSM8K, pool, [QWEN], n=10, directory=store, progress=False)
    lines: list[str] = []

    def again(pool=pool, **options):
        options = {"n": 10, "directory": store, "progress": False, "report": lines.append, **options}
        return profile(GSM8K, pool, [QWEN], **options)

    assert again() == first and len(log.calls) == 10 and lines[-1].startswith("stored profile is current")

    # a model's pool spec changed: stale, measured again entirely from the call cache
    respec, relog = fake_pool(respond, {QWEN: "qwen2.5-coder-1.5b"}, cache=cache)
    replayed = again(respec)
    assert "stale (changed: qwen2.5-coder-0.5b's pool spec)" in lines[-1] and len(relog.calls) == 0
    assert replayed.model(QWEN).cache_hits == 10 and replayed.model(QWEN).accuracy == first.model(QWEN).accuracy
    assert replayed.model(QWEN).flops_per_question > first.model(QWEN).flops_per_question  # the 1.5B spec

    changes = {
        "max_tokens 640 → 300": {"max_tokens": 300},
        "temperature 0.1 → 0.7": {"temperature": 0.7},
        "prompts": {"prompts": {"roles/gsm8k/decider_alone": "{question}\nShow your work. {answer_format}"}},
        "question ids (10 → 12 questions)": {"n": 12},
        "seed 0 → 3": {"seed": 3},
    }
    for reason, options in changes.items():
        again(respec)  # back to the stored key
        again(respec, **options)
        assert reason in lines[-1], (reason, lines[-1])


def test_load_profile_reports_what_changed(tmp_path):
    pool, _ = fake_pool(responder({}))
    stored = profile(GSM8K, pool, [QWEN, SMOL], n=4, directory=tmp_path, progress=False)
    path = profile_path(GSM8K, directory=tmp_path)
    assert load_profile(stored.key, path) == stored
    assert stored_profile("gsm8k", pool, [QWEN, SMOL], n=4, directory=tmp_path) == stored  # nothing measured
    stale = stored_profile(GSM8K, pool, [QWEN, SMOL], n=4, max_tokens=99, directory=tmp_path)
    assert isinstance(stale, Stale) and stale.reason == "changed: max_tokens 640 → 99" and stale.profile == stored
    assert stored_profile(GSM8K, pool, n=4, split="test", directory=tmp_path / "elsewhere") is None
    assert load_profile(stored.key, tmp_path / "missing.json") is None
    fewer = ProfileKey.model_validate({**stored.key.model_dump(), "models": {QWEN: stored.key.models[QWEN]}})
    stale = load_profile(fewer, path)
    assert isinstance(stale, Stale) and stale.reason == f"changed: models {QWEN},{SMOL} → {QWEN}"
    path.write_text(json.dumps({**stored.model_dump(mode="json"), "schema_version": 99}))
    with pytest.raises(ValueError, match="schema_version 99"):
        Profile.load(path)
    assert load_profile(stored.key, path) is None  # measured again
    path.write_text("{}")
    assert load_profile(stored.key, path) is None


def test_failed_calls_raise_and_store_nothing(tmp_path):
    def down(model, messages, kwargs):
        import httpx
        import openai

        raise openai.APIConnectionError(request=httpx.Request("POST", "http://127.0.0.1:9/v1"))

    pool, _ = fake_pool(down)
    pool.max_retries, pool.retry_wait = 1, 0.0
    with pytest.raises(CallsFailedError):
        profile(GSM8K, pool, [QWEN], n=2, directory=tmp_path, progress=False)
    assert not profile_path(GSM8K, directory=tmp_path).exists()


def _profile(chance_floor, *intervals, flops=(1e9, 4e9)):
    key = ProfileKey(
        task="t", task_options={}, split="test", seed=0, question_ids=[str(i) for i in range(100)],
        questions_sha256="", prompts_sha256="", settings={}, models={},
    )  # fmt: skip
    fields = {"n": 100, "n_scored": 100, "n_correct": 0, "n_errors": 0, "calls": 100, "cache_hits": 0}
    fields |= dict.fromkeys(("prompt_tokens_mean", "completion_tokens_mean", "latency_mean_s"), 0.0)
    fields |= dict.fromkeys(("extraction_failure_rate", "truncation_rate"), 0.0)
    models = [
        ModelProfile(model=f"m{i}", accuracy=(lo + hi) / 2, ci_low=lo, ci_high=hi, flops_per_question=f, **fields)
        for i, ((lo, hi), f) in enumerate(zip(intervals, flops, strict=False))
    ]
    return Profile(key=key, chance_floor=chance_floor, models=models, measured_at="", wall_time_s=0)


def test_warnings_when_no_model_is_distinguishable_from_chance():
    at_chance = _profile(0.25, (0.20, 0.38), (0.25, 0.43))
    (warning,) = at_chance.warnings()
    assert "no model is distinguishable from chance" in warning and "chance floor of 25%" in warning
    assert _profile(0.25, (0.20, 0.38), (0.26, 0.45)).warnings() == []
    assert "interval reaching 5%" in _profile(None, (0.0, 0.04), (0.0, 0.049)).warnings()[0]
    assert _profile(None, (0.0, 0.04), (0.01, 0.05)).warnings() == []
    assert get_task("mmlu").chance_floor == 0.25 and GSM8K.chance_floor is None


def test_warnings_when_the_budget_affords_only_the_single_best_model():
    above = _profile(0.25, (0.20, 0.38), (0.30, 0.50))  # m1 is the best (4e9 FLOPs), m0 the cheapest (1e9)
    (warning,) = above.warnings(Budget.from_flops(4.9e9))
    assert "nothing beyond the single best model m1" in warning and "needs 5e+09" in warning
    assert above.warnings(5e9) == []


def test_search_warnings_read_the_stored_profile_of_the_searched_models(tmp_path):
    pool, _ = fake_pool(responder({}))
    budget = Budget.from_flops(1.0)  # affords no more than one call
    warnings = search_warnings(GSM8K, pool, [QWEN], budget, directory=tmp_path)
    assert warnings == [f"no profile of these models on gsm8k: `langtts profile gsm8k --models {QWEN}` measures it"]
    with pytest.raises(ValueError, match="lengths from the profile: no profile of these models on gsm8k"):
        profile_lengths(GSM8K, pool, [QWEN], directory=tmp_path)
    profile(GSM8K, pool, [QWEN, SMOL], n=10, seed=3, directory=tmp_path, progress=False)
    # a profile of more models, at any N and seed, serves a search over some of them
    (warning,) = search_warnings(GSM8K, pool, [QWEN], budget, directory=tmp_path)
    assert warning.startswith("the budget (1 FLOPs per question) affords nothing beyond the single best model")
    assert profile_lengths(GSM8K, pool, [QWEN], directory=tmp_path).output_tokens == 5.0
    changed = search_warnings(GSM8K, pool, [QWEN], budget, max_tokens=99, directory=tmp_path)
    assert len(changed) == 1 and "does not fit (changed: max_tokens 640 → 99)" in changed[0]
    profile(GSM8K, pool, [QWEN], n=10, directory=tmp_path / "qwen", progress=False)
    (fewer,) = search_warnings(GSM8K, pool, [QWEN, SMOL], budget, directory=tmp_path / "qwen")
    assert f"changed: models {QWEN} → {QWEN},{SMOL}" in fewer


def test_task_lengths_are_the_profiled_means_bounded_by_max_tokens(tmp_path):
    pool, _ = fake_pool(responder({}))
    result = profile(GSM8K, pool, [QWEN, SMOL], n=10, directory=tmp_path, progress=False)
    qwen, smol = result.model(QWEN), result.model(SMOL)
    lengths = result.task_lengths()
    assert lengths.input_tokens == pytest.approx((qwen.prompt_tokens_mean + smol.prompt_tokens_mean) / 2)
    assert lengths.output_tokens == 5.0  # the fake's replies have 5 words
    assert result.task_lengths([QWEN]).input_tokens == qwen.prompt_tokens_mean
    capped = result.model_copy(update={"key": result.key.model_copy(update={"settings": {"max_tokens": 3}})})
    assert capped.task_lengths().output_tokens == 3.0

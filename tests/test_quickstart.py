"""The quick start offline (issue 15 item 5): a scripted agent and workers on a fake pool; the three-way comparison,
the FLOPs-matched self-consistency, the detectable difference, the time estimate before the work, the CLI."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from langtts import quickstart as qs
from langtts import shapes
from langtts.cli import build_parser
from langtts.cli import quickstart_command as cli
from langtts.compare import DEFAULT_DISCORDANT_RATE, detectable_difference, mcnemar_sample_size
from langtts.cost import default_catalog, graph_cost, task_lengths, unit_flops
from langtts.models.cache import CallCache
from langtts.tasks import get_task
from tests.fakes import fake_pool
from tests.search.synthetic_run import agent_answer
from tests.search.test_agent_profile import store

QWEN, AGENT = "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"
GSM8K = get_task("gsm8k")
GOLD = {ex.question: ex.answer for ex in GSM8K.load()}


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private user cache (profiles live under it)."""
    monkeypatch.setenv("LANGTTS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


class Recorder:
    """The report lines and the model calls, in the order they happened."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def say(self, line: str) -> None:
        self.events.append(("line", line))

    def respond(self, model: str, messages: list, kwargs: Mapping[str, Any]) -> str:
        prompt = "\n".join(str(m.content) for m in messages)
        probe = "Say OK." in prompt or "Count from 1 to 100" in prompt
        self.events.append(("probe" if probe else "call", model))
        if probe:
            return "OK" if "Say OK." in prompt else " ".join(str(i) for i in range(1, 101))
        if "extra_body" in kwargs:  # the agent's structured answers (the workers always write an answer line)
            return agent_answer(model, messages, kwargs)
        question = next(q for q in GOLD if q in prompt)
        right = int(hashlib.sha256(question.encode()).hexdigest(), 16) % 2 == 0
        return f"Step by step. The final answer is $\\boxed{{{GOLD[question] if right else '-1'}}}$"

    def index(self, kind: str, text: str = "") -> int:
        return next(i for i, (k, value) in enumerate(self.events) if k == kind and value.startswith(text))


def run(tmp_path: Path, recorder: Recorder, **options: Any) -> qs.QuickstartReport:
    pool, _ = fake_pool(recorder.respond, {QWEN: QWEN, AGENT: AGENT}, cache=CallCache(tmp_path / "calls.sqlite"))
    return qs.run_quickstart(tmp_path / "out", pool=pool, report=recorder.say, **options)


def test_the_comparison_holds_the_three_graphs_on_the_held_out_questions(tmp_path: Path) -> None:
    recorder = Recorder()
    report = run(tmp_path, recorder)
    comparison = report.comparison
    chosen_flops = graph_cost(report.search.graph, default_catalog(), report.search.config.lengths).flops
    k = report.k
    assert list(comparison.results) == [qs.CHOSEN, f"single {QWEN}", f"self-consistency {QWEN} k={k}"]
    test_ids = report.search.test.outcome.question_ids
    assert len(test_ids) == qs.N_TEST and sorted(comparison.question_ids) == sorted(test_ids)
    for result in comparison.results.values():
        assert [r.id for r in result.records] == comparison.question_ids
    assert list(comparison.comparisons) == [f"single {QWEN}", f"self-consistency {QWEN} k={k}"]
    assert comparison.reference == qs.CHOSEN
    # k: self-consistency costs k no-input calls exactly, so the closest k is the chosen graph's units rounded
    unit = unit_flops(default_catalog().get(QWEN), report.search.config.lengths)
    assert k == max(2, round(chosen_flops / unit))
    assert report.modelled_flops[f"self-consistency {QWEN} k={k}"] == pytest.approx(k * unit)
    assert report.search.graph.fingerprint() == comparison.results[qs.CHOSEN].fingerprint
    # the chosen graph's held-out calls replay from the cache: its comparison answers equal the search's test
    assert [r.correct for r in comparison.results[qs.CHOSEN].records] == [
        dict(zip(test_ids, report.search.test.outcome.correct, strict=True))[q] for q in comparison.question_ids
    ]
    summary = report.summary()
    assert f"single best model {QWEN}: the largest worker (no profile of these models on gsm8k" in summary
    assert f"self-consistency k = {k}: the modelled FLOPs closest to the chosen graph's" in summary
    assert "with 4 held-out questions, only differences of about ±100 points are detectable at 80% power" in summary
    assert f"{qs.CHOSEN} − single {QWEN}: " in summary and "McNemar p = " in summary
    assert json.loads((tmp_path / "out" / "comparison.json").read_text())["reference"] == qs.CHOSEN
    assert (tmp_path / "out" / "run" / "result.json").is_file()


def test_the_time_estimate_is_printed_before_the_first_model_call_of_the_work(tmp_path: Path) -> None:
    recorder = Recorder()
    run(tmp_path, recorder)
    estimate = recorder.index("line", "time estimate: at most about")
    assert estimate < recorder.index("call")  # only the speed probes come before it
    assert {kind for kind, _ in recorder.events[:estimate]} <= {"line", "probe"}
    assert [model for kind, model in recorder.events if kind == "probe"] == [QWEN, QWEN, AGENT, AGENT]
    line = recorder.events[estimate][1]
    assert "63 worker calls × " in line and " + 6 agent calls × " in line and "tok/s measured" in line
    assert recorder.index("line", "budget: 5 units of qwen2.5-coder-0.5b") < estimate
    assert recorder.index("line", "with 4 held-out questions") < recorder.index("call")


def test_with_a_stored_profile_nothing_is_called_before_the_estimate_and_it_picks_the_best_model(
    tmp_path: Path,
) -> None:
    recorder = Recorder()
    pool, _ = fake_pool(recorder.respond, {QWEN: QWEN, AGENT: AGENT})
    store(GSM8K, pool, {QWEN: 12, AGENT: 16})  # latency 1.0 s per question, 250.5 completion tokens
    report = qs.run_quickstart(tmp_path / "out", pool=pool, report=recorder.say, n_test=5)
    estimate = recorder.index("line", "time estimate")
    assert all(kind == "line" for kind, _ in recorder.events[:estimate])
    assert "probe" not in {kind for kind, _ in recorder.events}
    # no pretest (the profile decides it): search 2×1×5 + test 5×5 + comparison 5×(1+5) worker calls
    line = recorder.events[estimate][1]
    assert f"65 worker calls × 1.0s + 6 agent calls × {250 / 250.5:.1f}s" in line and "stored profile" in line
    assert report.best_model == QWEN  # the only worker
    assert report.best_rule.startswith("best accuracy in the stored profile (30.0% on 40 questions")
    assert (tmp_path / "out" / "run-gsm8k-n5" / "result.json").is_file()


def test_the_best_single_model_is_the_best_profiled_worker_else_the_largest(tmp_path: Path) -> None:
    pool, _ = fake_pool(Recorder().respond, {QWEN: QWEN, AGENT: AGENT, "smollm2-135m": "smollm2-135m"})
    config = qs.run_config(GSM8K, pool, 5.0, models=[QWEN, "smollm2-135m"])
    best, rule, profile = qs.best_single_model(GSM8K, pool, [QWEN, "smollm2-135m"], config)
    assert (best, profile) == (QWEN, None) and rule.startswith("the largest worker (no profile")
    store(GSM8K, pool, {QWEN: 12, "smollm2-135m": 14})
    best, rule, profile = qs.best_single_model(GSM8K, pool, [QWEN, "smollm2-135m"], config)
    assert best == "smollm2-135m" and profile is not None and "35.0% on 40 questions" in rule


@pytest.mark.parametrize(
    ("target_units", "k"),
    [(1.0, 2), (2.4, 2), (3.0, 3), (4.2035, 4), (4.5, 4), (4.51, 5), (5.8256, 6)],  # 4.5: a tie goes to the smaller
)
def test_the_self_consistency_k_is_the_flops_closest(target_units: float, k: int) -> None:
    catalog, lengths = default_catalog(), task_lengths("math")
    unit = unit_flops(catalog.get(QWEN), lengths)
    assert qs.matched_self_consistency(QWEN, target_units * unit, catalog, lengths) == (k, pytest.approx(k * unit))


def test_the_self_consistency_k_of_standard_graphs_within_the_default_budget() -> None:
    catalog, lengths = default_catalog(), task_lengths("math")
    moa2 = graph_cost(shapes.self_moa(QWEN, 2), catalog, lengths).flops  # 4.20 units: 2 samples + a decider
    assert qs.matched_self_consistency(QWEN, moa2, catalog, lengths)[0] == 4
    sc5 = graph_cost(shapes.self_consistency(QWEN, 5), catalog, lengths).flops
    assert qs.matched_self_consistency(QWEN, sc5, catalog, lengths)[0] == 5


def test_what_the_default_budget_affords() -> None:
    pool, _ = fake_pool(Recorder().respond, {QWEN: QWEN, AGENT: AGENT})
    config = qs.run_config(GSM8K, pool, qs.BUDGET_UNITS, models=list(qs.WORKERS))
    line = qs.budget_affords(config.budget, QWEN, pool.catalog_for(), config.lengths)
    assert line.startswith("budget: 5 units of qwen2.5-coder-0.5b, 2.41e+12 FLOPs per question (A = 202, B = 275")
    assert "self-consistency up to k = 5 (2.41e+12)" in line and "decider over up to 2 samples (2.02e+12)" in line


def test_plan_of_the_defaults_without_a_profile() -> None:
    pool, _ = fake_pool(Recorder().respond, {QWEN: QWEN, AGENT: AGENT})
    options = {
        "iterations": 2,
        "batch_size": 1,
        "race_max_questions": 1,
        "validation_size": 0,
        "n_test": 4,
        "models": [QWEN],
    }
    plan = qs.plan_calls(qs.run_config(GSM8K, pool, 5.0, **options), GSM8K, pool, profile_decides=False)
    assert plan == qs.QuickstartPlan(
        graph_calls=5, pretest_calls=9, search_calls=10, validation_calls=0, test_calls=20, comparison_calls=24,
        agent_calls=6,
    )  # fmt: skip
    assert plan.worker_calls == 63 and plan.seconds(12.0, 23.0) == 63 * 12 + 6 * 23  # the docstring's arithmetic


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (3, None),  # n (n + b² − a²) < 0: nothing detectable
        (4, 0.997962),  # ψ = 0.3 is too few discordant questions: every discordant one favouring one side
        (10, 0.615838),  # c = 0.619808, δ = 1 − c² (> ψ at 30 %)
        (100, 0.151647),  # c = 0.960908, δ = √(0.3 · (1 − c²))
        (400, 0.076499),
    ],
)
def test_detectable_difference_hand_computed(n: int, expected: float | None) -> None:
    delta = detectable_difference(n)
    assert delta == expected if expected is None else delta == pytest.approx(expected, abs=2e-6)


def test_detectable_difference_inverts_connors_sample_size() -> None:
    assert DEFAULT_DISCORDANT_RATE == 0.3
    assert mcnemar_sample_size(0.10) == 234  # (1.959964·√.3 + 0.841621·√.29)² / .01 = 233.09
    assert mcnemar_sample_size(-0.10) == 234
    for n in (4, 10, 37, 100, 250):
        delta = detectable_difference(n)
        assert delta is not None and mcnemar_sample_size(delta) == n
        if n > 4:
            assert mcnemar_sample_size(delta * 1.01) <= n <= mcnemar_sample_size(delta * 0.99)
    assert detectable_difference(100, 0.5) > detectable_difference(100, 0.3)  # more discordance, more noise
    assert detectable_difference(100, power=0.9) > detectable_difference(100)
    with pytest.raises(ValueError):
        detectable_difference(0)
    with pytest.raises(ValueError):
        mcnemar_sample_size(0.0)


def test_the_cli_help_and_defaults_match_the_library() -> None:
    parser = build_parser()._subparsers._group_actions[0].choices["quickstart"]
    help_text = " ".join(parser.format_help().split())
    for text in (
        "--task TASK gsm8k or mmlu (default gsm8k)",
        "--workers WORKERS comma-separated worker models (default qwen2.5-coder-0.5b; the sink defaults to the "
        "largest)",
        "--budget BUDGET budget in units of the smallest worker (default 5)",
        "--iterations ITERATIONS search rounds (default 2)",
        "--batch-size BATCH_SIZE questions per round (default 1)",
        "--validation-size VALIDATION_SIZE questions re-evaluating the best graphs before the choice (default 0: none)",
        "--n-test N_TEST held-out questions of the three-way comparison (default 4); more for a powered comparison: a "
        "time estimate and the detectable difference are printed first",
        "--agent-model AGENT_MODEL the optimizer agent's model (default qwen2.5-coder-1.5b)",
    ):
        assert text in help_text, text
    description = " ".join(parser.description.split())
    assert "compare it on the run's held-out questions with the single best model and FLOPs-matched" in description
    assert "a time estimate and the smallest difference the held-out questions can detect" in description
    d = cli._Defaults
    assert (d.TASK, d.WORKERS, d.AGENT_MODEL, d.BUDGET_UNITS) == (qs.TASK, qs.WORKERS, qs.AGENT_MODEL, qs.BUDGET_UNITS)
    assert (d.ITERATIONS, d.BATCH_SIZE, d.VALIDATION_SIZE, d.N_TEST) == (
        qs.ITERATIONS, qs.BATCH_SIZE, qs.VALIDATION_SIZE, qs.N_TEST,
    )  # fmt: skip
    args = build_parser().parse_args(["quickstart", "--workers", "a,b", "--n-test", "100"])
    assert args.workers == ["a", "b"] and args.n_test == 100 and args.validation_size == 0

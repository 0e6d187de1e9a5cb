"""``benchmarks/profile_self_consistency.py`` offline: end to end against the stub server (``--smoke``, resume,
parts in separate runs), and in-process on the scripted fake pool (shared samples counted call by call, verdicts
that follow the paired numbers)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from langtts.models import CallCache
from langtts.tasks import get_task
from tests.fakes import fake_pool

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import profile_self_consistency as psc  # noqa: E402
import stub_server  # noqa: E402

MODELS = ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "smollm2-135m")
WORKER, LARGE = MODELS[0], MODELS[1]
GSM8K = get_task("gsm8k")
PROFILE_MODEL_FIELDS = {
    "accuracy", "ci_low", "ci_high", "n", "mean_completion_tokens", "flops_per_question", "extraction_failure_rate",
    "truncation_rate", "latency_mean_s",
}  # fmt: skip
GRAPH_FIELDS = {
    "name", "graph", "n", "accuracy", "ci_low", "ci_high", "flops_per_question", "mean_completion_tokens",
    "latency_mean_s", "new_calls", "new_calls_by_node",
}  # fmt: skip
COMPARISON_FIELDS = {"a", "b", "n", "difference", "ci_low", "ci_high", "p_value", "flops_matched", "verdict", "winner"}


@pytest.fixture(scope="module")
def stub_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A pool file with the three default models, all answered by the stub server (every reply ends in 42)."""
    proc, base_url = stub_server.start_subprocess(latency=0.005, reply_words=20)
    path = tmp_path_factory.mktemp("stub") / "pool.yaml"
    lines = ["models:"] + [
        f"  - {{id: {m}, context_window: 32768, endpoints: [{{base_url: '{base_url}'}}]}}" for m in MODELS
    ]
    path.write_text("\n".join(lines) + "\n")
    yield path
    proc.terminate()
    proc.wait(timeout=10)


def run_script(tmp_path: Path, pool: Path, *extra: str) -> tuple[dict[str, Any], str]:
    out = tmp_path / "profile_self_consistency.json"
    cmd = [
        sys.executable, str(BENCHMARKS / "profile_self_consistency.py"), "--smoke", "--quiet", "--pool", str(pool),
        "--cache", str(tmp_path / "calls.sqlite"), "--profile-dir", str(tmp_path / "profiles"), "--out", str(out),
        *extra,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=BENCHMARKS.parent)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert f"wrote {out}" in proc.stdout
    return json.loads(out.read_text()), proc.stdout


@pytest.mark.timeout(240)
def test_smoke_writes_every_field_and_resumes_without_calls(tmp_path: Path, stub_pool: Path) -> None:
    data, stdout = run_script(tmp_path, stub_pool)
    # the time estimate comes before any measurement
    assert stdout.index("estimated time with an empty cache") < stdout.index("--- part 1")
    assert data["benchmark"] == "profile_self_consistency" and data["date"] and data["machine"]["nproc"] >= 1
    assert "profile_self_consistency.py" in data["command"] and data["settings"]["smoke"] is True
    assert data["settings"]["profile_n"] == 2 and data["settings"]["n"] == 2
    assert set(data["speeds_tok_s"]) == set(MODELS) and data["estimated_minutes_empty_cache"] >= 0
    assert set(data["profiles"]) == {"gsm8k", "mmlu"}
    for prof in data["profiles"].values():
        assert set(prof["models"]) == set(MODELS) and prof["questions"] == 2
        for m in prof["models"].values():
            assert set(m) >= PROFILE_MODEL_FIELDS and m["n"] == 2 and m["flops_per_question"] > 0
    sc = data["self_consistency"]
    assert sc["worker"] == WORKER and sc["decider"] == LARGE and not sc["parallel_is_self_moa"]
    # held-out questions never overlap the profile's
    assert not set(sc["question_ids"]) & set(data["profiles"]["gsm8k"]["question_ids"])
    graphs = {g["name"]: g for g in sc["graphs"]}
    # the stub answers alike everywhere: the profile's best is its cheapest model (ties go to fewer FLOPs)
    assert sc["best_model"] == "smollm2-135m" and "profile" in sc["best_model_reason"]
    assert list(graphs) == ["single", "single-best", "sc3", "sc5", "self-moa3", "parallel3"]
    for g in graphs.values():
        assert set(g) >= GRAPH_FIELDS and g["n"] == 2 and 0.0 <= g["ci_low"] <= g["accuracy"] <= g["ci_high"] <= 1.0
    assert graphs["sc5"]["graph"]["sink"] == "sink"
    assert [n["model"] for n in graphs["parallel3"]["graph"]["nodes"]] == [WORKER] * 3 + [LARGE]
    # samples shared through the call cache: SC-5 adds 2 samples, the deciders only their own call
    assert graphs["sc3"]["new_calls_by_node"] == {"n0": 2, "n1": 2, "n2": 2}
    assert graphs["sc5"]["new_calls_by_node"] == {"n3": 2, "n4": 2}
    assert graphs["self-moa3"]["new_calls_by_node"] == graphs["parallel3"]["new_calls_by_node"] == {"sink": 2}
    # measured FLOPs: SC-5 is 5 single calls (the stub's prompt and reply lengths are the same for every sample)
    assert graphs["sc5"]["flops_per_question"] == pytest.approx(5 * graphs["single"]["flops_per_question"])
    pairs = {(c["a"], c["b"]): c for c in sc["comparisons"]}
    for reference in ("single", "single-best", "sc5"):
        for name in graphs.keys() - {reference}:
            assert set(pairs[(name, reference)]) >= COMPARISON_FIELDS
    assert "| graph | accuracy" in data["markdown"] and "| model | accuracy" in data["markdown"]
    assert data["new_calls"] > 0
    # the stub's reply is the same everywhere: nothing can win, and the summary says so
    assert sc["which_wins"].startswith("no graph is shown better than another on these 2 questions")

    again, stdout = run_script(tmp_path, stub_pool)
    assert again["new_calls"] == 0, "a second run replays everything from the call cache"
    assert all(s["from_cache"] for s in again["speeds_tok_s"].values())
    assert "replayed from the call cache" in stdout and "stored profile is current" in stdout
    assert "stored profiles (gsm8k, mmlu) cost nothing" in stdout
    assert all(g["new_calls"] == 0 for g in again["self_consistency"]["graphs"])
    replayed = {g["name"]: g for g in again["self_consistency"]["graphs"]}
    for name, g in graphs.items():
        assert (replayed[name]["fingerprint"], replayed[name]["correct"]) == (g["fingerprint"], g["correct"])
        assert replayed[name]["flops_per_question"] == pytest.approx(g["flops_per_question"])


@pytest.mark.timeout(240)
def test_parts_run_separately_keep_each_other(tmp_path: Path, stub_pool: Path) -> None:
    first, _ = run_script(tmp_path, stub_pool, "--parts", "profile")
    assert "profiles" in first and "self_consistency" not in first
    second, _ = run_script(tmp_path, stub_pool, "--parts", "sc")
    assert second["profiles"] == first["profiles"] and second["earlier_parts"]["profile"]["date"] == first["date"]
    assert second["earlier_parts"]["profile"]["settings"]["parts"] == ["profile"]
    assert {g["name"] for g in second["self_consistency"]["graphs"]} >= {"single", "sc3", "sc5", "self-moa3"}
    assert second["self_consistency"]["best_model"] == "smollm2-135m", "the stored profile names the best model"


# -- in-process, on the scripted fake pool -------------------------------------------------------------------------


def sampling_responder(right_when_sampling: bool = True):
    """Replies ``#### gold`` when sampled (temperature 0.7) and a wrong number at the search's temperature 0.1
    (or the reverse); anything that is not a question (the speed probes) gets a short reply."""
    by_question = {GSM8K.format_question(ex): ex for ex in GSM8K.load()}

    def respond(model: str, messages: list[Any], kwargs: dict[str, Any]) -> str:
        prompt = "\n".join(str(m.content) for m in messages)
        ex = next((ex for q, ex in by_question.items() if q in prompt), None)
        if ex is None:
            return "1 2 3 4"
        sampled = kwargs.get("temperature") == psc.SAMPLE_TEMPERATURE
        answer = ex.answer if sampled == right_when_sampling else str(int(ex.answer) + 1)
        return f"so it is #### {answer}"

    return respond


def args_for(tmp_path: Path, *extra: str):
    return psc.parse_args(["--pool", "unused", "--quiet", "--profile-dir", str(tmp_path / "profiles"), *extra])


def test_sc3_samples_are_sc5s_first_three_and_the_deciders_read_them(tmp_path: Path) -> None:
    pool, log = fake_pool(sampling_responder(), dict(zip(MODELS, MODELS, strict=True)), cache=CallCache(tmp_path / "c"))
    args = args_for(tmp_path, "--n", "4", "--profile-n", "4")
    examples = psc.held_out(GSM8K.load(), 4, 4, 0)
    graphs = psc.sc_graphs(args, best=WORKER, decider=LARGE)
    assert "single-best" not in graphs, "the best model is the worker: one single row"
    sampled = []
    for name in ("sc3", "sc5", "self-moa3", "parallel3"):
        before = len(log.calls)
        psc.evaluate(graphs[name][1], GSM8K, pool, examples=examples, progress=False)
        new = log.calls[before:]
        sampled.append(sum(kw.get("temperature") == psc.SAMPLE_TEMPERATURE for _, _, kw, _, _ in new))
        if name in ("self-moa3", "parallel3"):  # one decider call per question, no sample
            assert [m for m, *_ in new] == [WORKER if name == "self-moa3" else LARGE] * 4
    assert sampled == [3 * 4, 2 * 4, 0, 0]
    # with the decider on the worker the parallel graph is Self-MoA itself
    assert psc.parallel_decider(WORKER, 3, WORKER).fingerprint() == graphs["self-moa3"][1].fingerprint()


def test_verdict_follows_the_paired_numbers(tmp_path: Path) -> None:
    pool, log = fake_pool(sampling_responder(), dict(zip(MODELS, MODELS, strict=True)), cache=CallCache(tmp_path / "c"))
    args = args_for(tmp_path, "--n", "8", "--profile-n", "4", "--parts", "sc")
    body = psc.run(args, pool)
    sc = body["self_consistency"]
    assert sc["best_model"] == LARGE and "largest" in sc["best_model_reason"], "no profile stored"
    acc = {g["name"]: g["accuracy"] for g in sc["graphs"]}
    assert acc == {"single": 0.0, "single-best": 0.0, "sc3": 1.0, "sc5": 1.0, "self-moa3": 0.0, "parallel3": 0.0}
    pairs = {(c["a"], c["b"]): c for c in sc["comparisons"]}
    won = pairs[("sc5", "single")]
    assert (won["difference"], won["only_a"], won["only_b"]) == (1.0, 8, 0)
    assert won["p_value"] == pytest.approx(2 / 2**8) and won["winner"] == "sc5"
    assert won["verdict"].startswith("sc5 beats single (+100.0 pp")
    lost = pairs[("self-moa3", "sc5")]
    assert lost["winner"] == "sc5" and lost["verdict"].startswith("sc5 beats self-moa3 (-100.0 pp")
    tie = pairs[("sc3", "sc5")]
    assert tie["winner"] is None and tie["verdict"].startswith("no significant difference between sc3 and sc5")
    assert not tie["flops_matched"] and "0.60x the FLOPs of sc5" in tie["verdict"]
    assert "**sc5 wins**" in psc.markdown(body)
    assert sc["which_wins"].startswith(
        "sc3 beats single; sc5 beats single; sc3 beats single-best; sc5 beats single-best; sc5 beats self-moa3; "
        "sc5 beats parallel3 (paired 95% interval excludes 0"
    )
    assert "**Which wins:** sc3 beats single" in psc.markdown(body)
    # per question: 5 distinct samples, 1 single, 1 single-best and 2 deciders (no recovery needed); plus 2 speed
    # probes per model
    assert body["new_calls"] == 9 * 8 and len(log.calls) == 9 * 8 + 2 * len(MODELS)


def test_verdict_rule_and_flops_match_on_constructed_outcomes() -> None:
    def rows(a: list[bool], b: list[bool], fa: float, fb: float) -> dict[str, dict[str, Any]]:
        return {"a": {"correct": a, "flops_per_question": fa}, "b": {"correct": b, "flops_per_question": fb}}

    # 5 discordant questions all for a: p = 2/32 = 0.0625, not significant although the interval excludes 0
    c = psc.comparison(rows([True] * 5 + [False] * 5, [False] * 10, 1.0, 1.1), "a", "b")
    assert c["ci_low"] > 0 and c["p_value"] == pytest.approx(0.0625) and c["winner"] is None
    assert c["flops_matched"] and "FLOPs-matched" in c["verdict"]
    assert c["verdict"].startswith("no significant difference between a and b (+50.0 pp")
    # 6 of them: p = 2/64 < 0.05 and the interval excludes 0
    c = psc.comparison(rows([False] * 10, [True] * 6 + [False] * 4, 1.0, 1.2), "a", "b")
    assert c["winner"] == "b" and c["verdict"].startswith("b beats a (-60.0 pp") and not c["flops_matched"]
    # questions undetermined in either graph leave the pairing
    c = psc.comparison(rows([True, None, False], [False, True, None], 1.0, 1.0), "a", "b")
    assert (c["n"], c["undetermined"], c["difference"]) == (1, 2, 1.0)

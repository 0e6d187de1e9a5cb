"""Smoke runs of the benchmark scripts: each runs for real at its ``--smoke`` size and writes a result file.

``overhead.py`` needs only its own stub server, ``search_efficiency.py`` runs offline on a pool of catalog models
served by that stub (every answer the same, so only the bookkeeping is checked) and ``sandbox.py`` needs no model
at all (offline); ``throughput.py``,
``cache.py``, ``harness_fidelity.py`` and the others use the session's embedded server through ``--pool``
(integration); ``vllm_path.py`` runs only
when a vLLM environment is given (opt-in, as for the vLLM launcher's real test).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def run_script(name: str, out: Path, *args: str, timeout: float = 120) -> dict[str, Any]:
    cmd = [sys.executable, str(BENCHMARKS / name), "--smoke", "--out", str(out), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=BENCHMARKS.parent)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    assert f"wrote {out}" in proc.stdout
    data = json.loads(out.read_text())
    assert data["machine"]["nproc"] >= 1 and data["date"] and name in data["command"]
    assert data["settings"]["smoke"] is True
    return data


@pytest.mark.timeout(120)
def test_overhead_smoke(tmp_path: Path) -> None:
    data = run_script("overhead.py", tmp_path / "overhead.json")
    assert data["benchmark"] == "overhead" and data["target_ratio"] == 1.05
    cases = data["cases"]
    assert [c["shape"] for c in cases] == ["layered 3x2", "parallel 4"]
    for case in cases:
        assert case["graph_wall_s"] > 0 and case["hand_wall_s"] > 0
        assert case["ratio"] == pytest.approx(case["graph_wall_s"] / case["hand_wall_s"])
        assert set(case["overhead_per_node_ms"]) == {"cpu", "wall_amortised", "question_latency"}
        # both modes made every node's call: nodes x questions per run
        assert {run["calls"] for run in case["runs"]} == {case["node_executions"]}
        # the stub answers after 50 ms: no run can beat one stub delay per layer
        assert min(run["mean_latency_s"] for run in case["runs"]) >= case["layers"] * 0.05
    assert cases[0]["nodes"] == 7 and cases[0]["layers"] == 4
    assert cases[1]["nodes"] == 5 and cases[1]["layers"] == 2


@pytest.fixture
def stub_pool(tmp_path: Path) -> Iterator[Path]:
    """A pool file of two workers and the agent model, catalog ids all served by the benchmarks' stub server."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from stub_server import MODEL, start_subprocess
    finally:
        sys.path.remove(str(BENCHMARKS))
    proc, base_url = start_subprocess(0.005, 30)
    endpoint = {"base_url": base_url, "max_concurrency": 4}
    models = [
        {"id": model, "served_name": MODEL, "endpoints": [endpoint]}
        for model in ("smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")
    ]
    path = tmp_path / "pool.json"
    path.write_text(json.dumps({"models": models}))
    try:
        yield path
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.timeout(600)
def test_search_efficiency_smoke_offline(stub_pool: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    args = (
        "--pool", str(stub_pool), "--models", "smollm2-135m,qwen2.5-coder-0.5b", "--agent-model",
        "qwen2.5-coder-1.5b", "--methods", "agent-reinforce,maas,reinforce,random", "--seeds", "0,1",
        "--work-dir", str(runs),
    )  # fmt: skip
    data = run_script("search_efficiency.py", tmp_path / "search_efficiency.json", *args, timeout=600)
    settings = data["settings"]
    assert settings["task"] == "gsm8k" and settings["n_heldout"] == 3 and settings["seeds"] == [0, 1]
    assert settings["equal_cost"] == "flops"
    assert settings["flops_per_run"] == pytest.approx(2 * 1 * settings["budget_flops_per_question"])
    heldout = data["heldout"]["ids"]
    assert len(heldout) == 3 and len(set(heldout)) == 3
    methods = data["methods"]
    assert list(methods) == ["agent-reinforce", "maas", "reinforce", "random"]
    for name, record in methods.items():
        assert [s["seed"] for s in record["seeds"]] == [0, 1]
        for seed in record["seeds"]:
            config = json.loads((Path(seed["run_dir"]) / "config.json").read_text())
            assert config["split"] == "search" and config["n_test"] == 0  # no search sees a held-out question
            assert seed["heldout"]["n"] == 3 and 0 <= seed["heldout"]["accuracy"] <= 1
            assert seed["evaluation_calls"] > 0 and seed["evaluation_flops"] > 0
            for key in ("optimizer_calls", "optimizer_flops", "wall_time_s", "agent_wall_share", "cached_prompt_share"):
                assert key in seed, key
            if name in ("reinforce", "random"):
                assert seed["optimizer_calls"] == 0 and seed["agent_wall_share"] is None
            assert seed["stop_reason"].endswith("FLOPs used"), "the FLOPs stop binds, not the round cap"
        pooled = record["pooled"]
        assert pooled["heldout"]["n"] == 6 and pooled["runs"] == 2
        assert pooled["total_flops"] == pytest.approx(pooled["evaluation_flops"] + pooled["optimizer_flops"])
    assert methods["agent-reinforce"]["pooled"]["optimizer_calls"] > 0, "the agent asked its model"
    assert all(isinstance(s["proposals"], dict) for s in methods["agent-reinforce"]["seeds"])
    assert all(s["proposals"] is None for s in methods["random"]["seeds"])
    references = [name for name in data["references"] if name != "single_best_rule"]
    assert references[0] == "single qwen2.5-coder-0.5b" or "profile" in data["references"]["single_best_rule"]
    assert any(name.startswith("self-consistency ") for name in references)
    chosen = {s["chosen"] for r in methods.values() for s in r["seeds"]}
    assert data["graphs_evaluated_on_heldout"] == len(chosen) + len(references), "each distinct graph once"
    pooled_tests = data["comparisons"]["pooled"]
    assert set(pooled_tests) == {"agent-reinforce", *references}
    assert set(pooled_tests["agent-reinforce"]["against"]) == {"maas", "reinforce", "random", *references}
    assert pooled_tests["agent-reinforce"]["n"] == 6 and data["comparisons"]["seed1"]["agent-reinforce"]["n"] == 3
    assert len(data["verdict"]["text"]) == 3 and set(data["verdict"]["beats"]) == {"reinforce", "random"}
    curves = any(s["curve"] for r in methods.values() for s in r["seeds"])
    assert (data["plot"] is not None and Path(data["plot"]).is_file()) if curves else data["plot"] is None
    # resumable: a second call reads the finished runs back instead of searching again
    again = run_script("search_efficiency.py", tmp_path / "again.json", *args, timeout=600)
    assert [s["chosen"] for s in again["methods"]["random"]["seeds"]] == [
        s["chosen"] for s in methods["random"]["seeds"]
    ]
    assert [s["wall_time_s"] for s in again["methods"]["maas"]["seeds"]] == [
        s["wall_time_s"] for s in methods["maas"]["seeds"]
    ]


@pytest.mark.timeout(120)
def test_sandbox_smoke(tmp_path: Path) -> None:
    data = run_script("sandbox.py", tmp_path / "sandbox.json")
    backends = data["backends"]
    assert "rlimits only" in backends and data["auto_selects"] in backends
    assert set(backends) | set(data["unavailable"]) == {"rlimits only", "bwrap", "unshare", "syscall"}
    for stats in backends.values():
        assert set(stats) == {"empty", "humaneval"}
        assert all(s["runs"] == 3 and 0 < s["min_ms"] <= s["median_ms"] <= s["p95_ms"] for s in stats.values())


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_throughput_smoke(embedded_server, tmp_path: Path) -> None:
    data = run_script("throughput.py", tmp_path / "throughput.json", "--pool", str(embedded_server.pool_file))
    evaluation, generator = data["evaluate"], data["load_generator"]
    assert evaluation["shape"] == "parallel:2" and evaluation["errors"] == 0
    # two assistants and the sink, plus the recovery of the sink's reply when 16 tokens cut it
    assert evaluation["questions"] == 1 and evaluation["calls"] == 3 + evaluation["recovery_calls"]
    assert evaluation["completion_tokens"] > 0 and evaluation["tokens_per_s"] > 0
    assert [level["concurrency"] for level in generator["sweep"]] == [1, 2]
    for level in generator["sweep"]:  # the replay generates exactly the evaluate run's tokens
        assert level["requests"] == evaluation["calls"]
        assert level["completion_tokens"] == evaluation["completion_tokens"]
    assert data["ratio"] == pytest.approx(evaluation["tokens_per_s"] / generator["best_tokens_per_s"])


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_cache_smoke(embedded_server, tmp_path: Path) -> None:
    data = run_script("cache.py", tmp_path / "cache.json", "--pool", str(embedded_server.pool_file))
    runs = {run["run"]: run for run in data["runs"]}
    assert set(runs) == {"uncached", "cold", "warm"}
    assert runs["uncached"]["cache_hits"] == 0
    assert runs["cold"]["calls"] == runs["warm"]["calls"] == runs["uncached"]["calls"] > 0
    assert runs["warm"]["cache_hits"] == runs["warm"]["calls"] and data["warm_hit_share"] == 1.0
    assert data["replay_identical"] is True


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_search_efficiency_smoke(embedded_server, tmp_path: Path) -> None:
    pool, runs = str(embedded_server.pool_file), str(tmp_path / "runs")
    args = ("--pool", pool, "--methods", "reinforce,random", "--work-dir", runs)
    data = run_script("search_efficiency.py", tmp_path / "search_efficiency.json", *args, timeout=600)
    methods = data["methods"]
    assert list(methods) == ["reinforce", "random"]
    for record in methods.values():
        [seed] = record["seeds"]
        assert seed["seed"] == 0 and seed["heldout"]["n"] == 3
        assert seed["evaluation_calls"] > 0 and seed["optimizer_calls"] == 0, "numeric methods ask no LLM"
        assert seed["agent_wall_share"] is None
    comparison = data["comparisons"]["pooled"]["reinforce"]
    assert comparison["reference"] == "reinforce" and "random" in comparison["against"]
    # resumable: a second call reads the finished runs back instead of searching again
    again = run_script("search_efficiency.py", tmp_path / "again.json", *args, timeout=600)
    assert again["methods"]["random"]["seeds"][0]["chosen"] == methods["random"]["seeds"][0]["chosen"]


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_harness_fidelity_smoke(embedded_server, tmp_path: Path) -> None:
    out = tmp_path / "harness_fidelity.json"
    pool, cache = str(embedded_server.pool_file), str(tmp_path / "calls.sqlite")
    args = ("--pool", pool, "--cache", cache, "--models", "qwen2.5-coder-0.5b", "--quiet")
    data = run_script("harness_fidelity.py", out, *args, timeout=900)
    rows = {row["task"]: row for row in data["rows"]}
    assert set(rows) == {"gsm8k", "mmlu"}
    for row in rows.values():
        assert row["model"] == "qwen2.5-coder-0.5b" and row["n"] == 2
        assert 0 <= row["ci_low"] <= row["accuracy"] <= row["ci_high"] <= 1
        for key in ("extraction_failure_rate", "truncation_rate", "mean_completion_tokens", "published_source"):
            assert row[key] is not None, key
        assert "recovery_rate" in row and "published_accuracy" in row
        assert row["reference_accuracy"] is not None and row["paired_ci_low"] <= row["paired_ci_high"]
    assert (rows["mmlu"]["reference_n"], rows["gsm8k"]["reference_n"]) == (2, 1)
    # the dev slice compares the shipped prompt with the other variant, per task
    assert sorted((d["task"], d["prompt"]) for d in data["dev"]) == [
        ("gsm8k", "cot (shipped)"), ("gsm8k", "direct"), ("mmlu", "cot"), ("mmlu", "direct (shipped)"),
    ]  # fmt: skip


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_insights_smoke(embedded_server, tmp_path: Path) -> None:
    out = tmp_path / "insights.json"
    data = run_script(
        "insights.py",
        out,
        "--pool",
        str(embedded_server.pool_file),
        "--cache",
        str(tmp_path / "calls.sqlite"),
        timeout=300,
    )
    assert data["benchmark"] == "insights"
    settings = data["settings"]
    assert settings["n"] == 2 and settings["widths"] == [1, 2] and settings["depths"] == [1, 2]
    ids = data["questions"]["ids"]
    assert len(ids) == 2 and len(set(ids)) == 2
    insights = data["insights"]
    assert list(insights) == ["insight1", "insight2", "insight3"]
    for key, insight in insights.items():
        assert insight["results"], key
        for r in insight["results"]:
            assert r["question_ids"] == ids, "every graph runs on the same questions"
            assert r["n"] == 2 and len(r["correct"]) == 2
            assert 0.0 <= r["ci_low"] <= r["accuracy"] <= r["ci_high"] <= 1.0
            assert r["accuracy"] == pytest.approx(sum(r["correct"]) / 2)
            assert r["modelled_flops_per_question"] > 0 and r["measured_flops_per_question"] > 0
            assert r["calls"] > 0 and r["latency_mean_s"] > 0
        assert insight["verdict"]["status"] in {"reproduces", "partly", "no", "untestable"}
        assert isinstance(insight["verdict"]["text"], str) and insight["verdict"]["text"]
        assert data["verdicts"][key] == insight["verdict"]["text"]
        assert Path(insight["plot"]).is_file()
        for c in insight["comparisons"].values():
            assert c["n"] == 2 and 0.0 <= c["p_value"] <= 1.0 and c["ci_low"] <= c["difference"] <= c["ci_high"]

    # insight 1: budget-maximal mixes at (about) equal modelled cost, never over the budget; smoke keeps two
    one = insights["insight1"]
    mixes = [r for r in one["results"] if r["role"] == "mix"]
    budget = one["budget"]["units"]
    assert len(mixes) == 2 and {m["kind"] for m in mixes} == {"all-large", "all-small"}
    assert all(budget * 0.5 < m["modelled_units"] <= budget + 1e-9 for m in mixes)
    assert {r["name"] for r in one["results"] if r["role"] == "reference"} == {
        "single smollm2-135m",
        "single qwen2.5-coder-0.5b",
    }
    assert "best vs worst mix" in one["comparisons"]

    # insight 2: one model; more width or depth costs more modelled FLOPs
    two = insights["insight2"]
    width = [r for r in two["results"] if r["sweep"] == "width"]
    depth = [r for r in two["results"] if r["sweep"] == "depth"]
    assert [r["width"] for r in width] == [1, 2] and [r["depth"] for r in depth] == [1, 2]
    for sweep in (width, depth):
        assert sweep[0]["modelled_flops_per_question"] < sweep[1]["modelled_flops_per_question"]
        assert sweep[0]["nodes"] + 1 == sweep[1]["nodes"]
    assert width[0]["fingerprint"] == depth[0]["fingerprint"], "width 1 and depth 1 are the same graph"

    # insight 3: the full grid, with its optima and interaction contrast
    three = insights["insight3"]
    assert {(r["width"], r["depth"]) for r in three["results"]} == {(1, 1), (2, 1), (1, 2), (2, 2)}
    assert set(three["best_depth_by_width"]) == {"1", "2"} and set(three["best_width_by_depth"]) == {"1", "2"}
    contrast = three["interaction"]
    assert contrast["ci_low"] <= contrast["mean"] <= contrast["ci_high"]
    assert data["graphs_evaluated"] < sum(len(i["results"]) for i in insights.values()), "shared graphs run once"


@pytest.mark.integration
@pytest.mark.timeout(900)
@pytest.mark.skipif(
    os.environ.get("LANGTTS_TEST_VLLM") != "1" or not os.environ.get("LANGTTS_VLLM_PYTHON"),
    reason="opt-in: LANGTTS_TEST_VLLM=1 and LANGTTS_VLLM_PYTHON=<python of a vLLM environment>",
)
def test_vllm_path_smoke(tmp_path: Path) -> None:
    python = os.environ["LANGTTS_VLLM_PYTHON"]
    args = ("--vllm-python", python, "--hf-dir", str(tmp_path / "hf"))
    data = run_script("vllm_path.py", tmp_path / "vllm_path.json", *args, timeout=900)
    assert [e["engine"] for e in data["engines"]] == ["llama-server", "vllm-cpu"]
    assert data["settings"]["shape"] == "parallel:2" and data["settings"]["slots"] == 2
    for engine in data["engines"]:
        assert engine["startup_s"] > 0
        [level] = engine["levels"]
        assert level["concurrency"] == 1 and level["questions"] == 1 and level["errors"] == 0
        assert level["calls"] == 3, "parallel:2: two assistants and the sink"
        assert 0 < level["completion_tokens"] <= 3 * 16 and level["tokens_per_s"] > 0
        assert level["rss_mib"] > 100, "the engine's processes were found"
        assert all(text for text in level["texts"].values()), "each engine answered with text"
    llama, vllm = (e["levels"][0] for e in data["engines"])
    assert list(llama["predictions"]) == list(vllm["predictions"]), "the same question on both engines"
    [agreement] = data["agreement"]
    assert agreement["concurrency"] == 1 and 0.0 <= agreement["same_answer"] <= 1.0

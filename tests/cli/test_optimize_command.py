"""``langtts optimize``: a short real search loop against an OpenAI-compatible stub; resume; usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from langtts.cli import main
from langtts.models.config import Endpoint, PoolConfig, PoolModel
from tests.models.stub_server import StubServer

MODELS = ("smollm2-135m", "qwen2.5-coder-0.5b")


@pytest.fixture
def pool_file(tmp_path: Path):
    with StubServer(models=MODELS, reply=lambda request: "The answer is 18. #### 18") as server:
        path = tmp_path / "pool.yaml"
        endpoints = [Endpoint(base_url=server.base_url)]
        PoolConfig(models=[PoolModel(id=m, endpoints=endpoints, context_window=4096) for m in MODELS]).save(path)
        yield path


def test_optimize_then_resume_a_finished_run(pool_file: Path, tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    argv = ["optimize", "--task", "gsm8k", "--budget", "10", "--method", "random", "--iterations", "3"]
    argv += ["--batch-size", "2", "--top-k", "2", "--validation-size", "2", "--n-test", "3", "--seed", "1"]
    argv += ["--run-dir", str(run_dir), "--pool", str(pool_file), "--no-cache"]
    assert main([*argv, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rounds"] == 3 and summary["config"]["method"] == "random"
    assert summary["config"]["paper_faithful"] is False  # new runs search the extended space
    assert summary["test"]["phase"] == "test" and len(summary["test"]["outcome"]["question_ids"]) == 3
    assert {p.name for p in run_dir.iterdir()} >= {"config.json", "state.json", "result.json", "graph.json"}
    resume = ["optimize", "--resume", str(run_dir), "--pool", str(pool_file), "--no-cache"]
    assert main(resume) == 0
    assert "random on gsm8k: 3 rounds" in capsys.readouterr().out
    assert main([*resume, "--iterations", "5", "--json"]) == 0  # extend the finished run
    extended = json.loads(capsys.readouterr().out)
    assert (
        extended["rounds"] == 5
        and extended["test"]["outcome"]["question_ids"] == summary["test"]["outcome"]["question_ids"]
    )
    assert main([*resume, "--batch-size", "3", "--iterations", "9"]) == 2
    assert "batch_size: 2 there vs 3 now" in capsys.readouterr().err
    assert main([*resume, "--budget", "3"]) == 2
    assert json.loads((run_dir / "config.json").read_text())["iterations"] == 5
    assert main([*resume, "--iterations", "9", "--max-flops", "1"]) == 0  # the FLOPs are spent: no more search
    assert "random on gsm8k: 5 rounds" in capsys.readouterr().out
    assert json.loads((run_dir / "config.json").read_text())["max_flops"] == 1


def test_paper_faithful_is_stored_with_the_run(pool_file: Path, tmp_path: Path, capsys) -> None:
    argv = ["optimize", "--task", "gsm8k", "--budget", "10", "--method", "random", "--iterations", "2"]
    argv += ["--batch-size", "1", "--top-k", "1", "--validation-size", "0", "--n-test", "0", "--paper-faithful"]
    assert main([*argv, "--run-dir", str(tmp_path / "run"), "--pool", str(pool_file), "--no-cache", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["config"]["paper_faithful"] is True
    graph = json.loads((tmp_path / "run" / "graph.json").read_text())
    assert [n["model"] for n in graph["nodes"] if n["id"] == graph["sink"]] == [summary["config"]["sink_model"]]


def test_bad_method_options_leave_no_run_behind(pool_file: Path, tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    argv = ["optimize", "--task", "gsm8k", "--budget", "10", "--method", "reinforce", "--option", "fusers=false"]
    assert main([*argv, "--run-dir", str(run_dir), "--pool", str(pool_file), "--no-cache"]) == 2
    assert "reinforce options {'fusers': False}" in capsys.readouterr().err
    assert not run_dir.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["optimize", "--budget", "5"], "--task is required"),
        (["optimize", "--task", "gsm8k"], "--budget UNITS or --budget-flops"),
        (["optimize", "--task", "gsm8k", "--budget", "5", "--method", "nope"], "unknown method 'nope'"),
        (["optimize", "--task", "gsm8k", "--budget", "5", "--option", "lr"], "expected KEY=VALUE"),
        (["optimize", "--resume", "/nonexistent/run"], "not a langtts run directory"),
    ],
)
def test_usage_errors(argv: list[str], message: str, pool_file: Path, capsys) -> None:
    assert main([*argv, "--pool", str(pool_file)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_lengths_from_the_stored_profile(pool_file: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    from langtts.profile import Profile, profile_path
    from langtts.tasks import get_task

    monkeypatch.setenv("LANGTTS_CACHE_DIR", str(tmp_path / "cache"))
    argv = ["optimize", "--task", "gsm8k", "--budget", "10", "--method", "random", "--iterations", "1"]
    argv += ["--batch-size", "2", "--top-k", "1", "--validation-size", "0", "--n-test", "0", "--lengths", "profile"]
    argv += ["--pool", str(pool_file), "--no-cache"]
    assert main([*argv, "--run-dir", str(tmp_path / "none")]) == 2
    assert "lengths from the profile: no profile of these models on gsm8k" in capsys.readouterr().err
    assert main(["profile", "gsm8k", "--n", "4", "--pool", str(pool_file), "--no-cache"]) == 0
    capsys.readouterr()
    assert main([*argv, "--run-dir", str(tmp_path / "run"), "--json"]) == 0
    lengths = json.loads(capsys.readouterr().out)["config"]["lengths"]
    measured = Profile.load(profile_path(get_task("gsm8k"), directory=tmp_path / "cache" / "profiles"))
    assert lengths == measured.task_lengths().model_dump() != {"input_tokens": 202.0, "output_tokens": 275.0}

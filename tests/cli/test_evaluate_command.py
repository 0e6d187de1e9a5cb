"""``langtts evaluate``: a graph over real GSM8K questions against an OpenAI-compatible stub (offline)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from langtts.cli import main
from langtts.models.config import Endpoint, PoolConfig, PoolModel
from langtts.tasks import get_task
from tests.models.stub_server import StubServer

GRAPHS = Path(__file__).resolve().parents[2] / "examples" / "graphs"
MODELS = ("qwen2.5-coder-0.5b", "smollm2-135m", "gemma3-270m", "qwen2.5-coder-1.5b")


def _answer_key() -> dict[str, str]:
    return {ex.question: ex.answer for ex in get_task("gsm8k").load("test")[:3]}


@pytest.fixture
def pool_file(tmp_path: Path) -> Path:
    key = _answer_key()

    def reply(request: dict) -> str:  # the right number for questions 0 and 1, nonsense otherwise
        text = " ".join(m["content"] for m in request["messages"])
        for i, (question, answer) in enumerate(key.items()):
            if question in text and i < 2:
                return f"The answer is {answer}. #### {answer}"
        return "I am not sure."

    with StubServer(models=MODELS, reply=reply) as server:
        path = tmp_path / "pool.yaml"
        models = [PoolModel(id=m, endpoints=[Endpoint(base_url=server.base_url)], context_window=4096) for m in MODELS]
        PoolConfig(models=models).save(path)
        yield path


def test_evaluate_prints_accuracy_and_writes_the_result(pool_file: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "result.json"
    argv = ["evaluate", str(GRAPHS / "parallel3.json"), "--task", "gsm8k", "--n", "3", "--pool", str(pool_file)]
    assert main([*argv, "--no-cache", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"accuracy\s+66\.7%", text), text
    assert re.search(r"answer recovery\s+1 without an answer and 0 cut before recovery; 0 of 1 recovered", text), text
    # per node: the stub answers alike for every node, so each is right on 2 of 3; the sink's inputs agree fully on
    # those 2 and give no answer on the third (agreement 0): mean 2/3
    assert re.search(r"\n    n0\s+assistant\s+qwen2\.5-coder-0\.5b\s+66\.7%\s+-\n", text), text
    assert re.search(r"\n    sink\s+decider\s+qwen2\.5-coder-1\.5b\s+66\.7%\s+0\.67\n", text), text
    saved = json.loads(out.read_text())
    assert saved["n"] == 3 and saved["n_correct"] == 2 and len(saved["records"]) == 3
    assert main([*argv, "--no-cache", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    # 4 nodes x 3 questions, and one answer-recovery call for the reply without a number (the stub's answer to it
    # is not JSON, so nothing is recovered)
    assert summary["calls"] == 13 and "records" not in summary
    assert (summary["n_recovery_calls"], summary["n_recovered"], summary["n_no_answer_before_recovery"]) == (1, 0, 1)


def test_missing_pool_is_a_usage_error(monkeypatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setenv("LANGTTS_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("LANGTTS_POOL", raising=False)
    assert main(["evaluate", str(GRAPHS / "parallel3.json"), "--task", "gsm8k"]) == 2
    assert "no model pool" in capsys.readouterr().err


def test_pool_without_the_graphs_models_is_a_usage_error(tmp_path: Path, capsys) -> None:
    with StubServer(models=["smollm2-135m"]) as server:
        path = tmp_path / "pool.yaml"
        PoolConfig(models=[PoolModel(id="smollm2-135m", endpoints=[Endpoint(base_url=server.base_url)])]).save(path)
        argv = ["evaluate", str(GRAPHS / "parallel3.json"), "--task", "gsm8k", "--pool", str(path), "--no-cache"]
        assert main(argv) == 2
    assert "qwen2.5-coder-0.5b" in capsys.readouterr().err


def test_humaneval_names_its_sandbox_and_strict_refuses_without_one(monkeypatch, tmp_path: Path, capsys) -> None:
    from langtts.tasks import sandbox

    ex = get_task("humaneval").load()[0]
    with StubServer(models=MODELS, reply=lambda request: f"```python\n{ex.meta['prompt']}{ex.answer}```") as server:
        path = tmp_path / "pool.yaml"
        PoolConfig(models=[PoolModel(id=m, endpoints=[Endpoint(base_url=server.base_url)]) for m in MODELS]).save(path)
        argv = ["evaluate", str(GRAPHS / "single.json"), "--task", "humaneval", "--n", "1", "--pool", str(path)]
        assert main([*argv, "--no-cache"]) == 0
        text = capsys.readouterr().out
        assert re.search(r"accuracy\s+100\.0%", text), text
        assert re.search(rf"sandbox\s+{sandbox.confinement()[0]}", text), text
        monkeypatch.setattr(sandbox, "confinement", lambda: (sandbox.RLIMITS_ONLY, "forced by the test"))
        assert main([*argv, "--no-cache", "--sandbox", "strict"]) == 1
    assert "strict sandbox" in capsys.readouterr().err


def test_a_dead_server_is_a_failure_not_zero_accuracy(tmp_path: Path, capsys) -> None:
    with StubServer(models=MODELS, fail_first=10**6) as server:  # answers GET /models, fails every chat call
        path = tmp_path / "pool.yaml"
        PoolConfig(models=[PoolModel(id=m, endpoints=[Endpoint(base_url=server.base_url)]) for m in MODELS]).save(path)
        out = tmp_path / "result.json"
        argv = ["evaluate", str(GRAPHS / "single.json"), "--task", "gsm8k", "--n", "2", "--pool", str(path)]
        assert main([*argv, "--no-cache", "--out", str(out)]) == 1
        captured = capsys.readouterr()
        assert re.search(r"accuracy\s+undetermined", captured.out) and "0.0%" not in captured.out, captured.out
        assert "failed: 2 of 2 questions failed after the pool's retries" in captured.err
        assert "HTTP 503" in captured.err and captured.err.count("\n") == 1
        saved = json.loads(out.read_text())
        assert saved["accuracy"] is None and saved["n_errors"] == 2 and not saved["errors_as_wrong"]
        assert [r["correct"] for r in saved["records"]] == [None, None]
        assert main([*argv, "--no-cache", "--json"]) == 1
        assert json.loads(capsys.readouterr().out)["accuracy"] is None


def test_a_jsonl_task_with_a_declared_scorer(tmp_path: Path, capsys) -> None:
    mine = tmp_path / "sums.jsonl"
    mine.write_text("".join(f'{{"id": {i}, "question": "What is {i} + {i}?", "answer": {2 * i}}}\n' for i in range(3)))

    def reply(request: dict) -> str:  # right for 0 and 1, wrong for 2
        text = " ".join(m["content"] for m in request["messages"])
        i = next(i for i in range(3) if f"What is {i} + {i}?" in text)
        return f"Sum done.\nAnswer: {2 * i if i < 2 else 99}.0"

    with StubServer(models=MODELS, reply=reply) as server:
        path = tmp_path / "pool.yaml"
        PoolConfig(models=[PoolModel(id=m, endpoints=[Endpoint(base_url=server.base_url)]) for m in MODELS]).save(path)
        argv = ["evaluate", str(GRAPHS / "single.json"), "--task", str(mine), "--n", "3", "--pool", str(path)]
        assert main([*argv, "--no-cache", "--scorer", "number", "--json"]) == 0
        summary = json.loads(capsys.readouterr().out)
        assert summary["task"] == "sums" and summary["n_correct"] == 2
        assert main([*argv, "--no-cache"]) == 2
        assert "needs --scorer" in capsys.readouterr().err
        assert main([*argv, "--no-cache", "--scorer", "fuzzy"]) == 2
        assert "unknown scorer 'fuzzy'" in capsys.readouterr().err
    assert main([*argv[:3], "gsm8k", "--scorer", "exact", "--pool", str(path)]) == 2
    assert "--scorer is only for --task FILE.jsonl" in capsys.readouterr().err

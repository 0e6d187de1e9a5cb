"""``langtts profile``: two models on MMLU questions against an OpenAI-compatible stub (offline)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from langtts.cli import build_parser, main
from langtts.models.config import Endpoint, PoolConfig, PoolModel
from langtts.profile import profile_questions
from langtts.tasks import get_task
from tests.models.stub_server import StubServer

MODELS = ("qwen2.5-coder-0.5b", "smollm2-135m")
MMLU = get_task("mmlu")


def test_parsing_defaults_and_positional_task() -> None:
    args = build_parser().parse_args(["profile", "mmlu", "--models", "a,b", "--split", "val", "--max-tokens", "64"])
    assert (args.task, args.models, args.n, args.seed) == ("mmlu", "a,b", 100, 0)
    assert (args.split, args.max_tokens) == ("val", 64)
    assert (args.temperature, args.concurrency, args.sandbox, args.json) == (0.1, 4, "auto", False)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["profile"])


def test_profile_prints_the_table_reuses_the_stored_profile_and_warns_at_chance(
    monkeypatch, tmp_path: Path, capsys
) -> None:
    monkeypatch.setenv("LANGTTS_CACHE_DIR", str(tmp_path / "cache"))
    golds = [ex.answer for ex in profile_questions(MMLU.load("val"), 8, 0)]
    letter = {MODELS[0]: "D", MODELS[1]: "C"}
    with StubServer(models=MODELS, reply=lambda request: f"Answer: {letter[request['model']]}") as server:
        pool = tmp_path / "pool.yaml"
        PoolConfig(models=[PoolModel(id=m, endpoints=[Endpoint(base_url=server.base_url)]) for m in MODELS]).save(pool)
        argv = ["profile", "mmlu", "--split", "val", "--n", "8", "--pool", str(pool)]
        assert main([*argv, "--models", ",".join(MODELS)]) == 0
        out, err = capsys.readouterr()
        assert "no stored profile at" in err and "measuring 2 model(s) on 8 questions" in err
        assert "mmlu (val split): 8 questions outside the test splits of seed 0" in out and "chance 25%" in out
        # D is right on 5 of 8 (Wilson 95%: 30.6% to 86.3%), C on 1; the replies are 2 words long
        assert (golds.count("D"), golds.count("C")) == (5, 1)
        assert re.search(r"\nqwen2\.5-coder-0\.5b\s+62\.5%\s+\[30\.6%, 86\.3%\]\s+[\d.]+\s+2\.0\s", out), out
        assert re.search(r"\nsmollm2-135m\s+12\.5%\s+\[2\.2%, 47\.1%\].*\s0\.0%\s+0\.0%\n", out), out
        assert "warning" not in out  # qwen's lower bound is above 25%
        saved = re.search(r"profile saved to (\S+)", out)
        assert saved and Path(saved[1]).parent == tmp_path / "cache" / "profiles"
        assert len(server.requests) == 16

        assert main([*argv, "--models", ",".join(MODELS)]) == 0
        out, err = capsys.readouterr()
        assert f"stored profile is current: {saved[1]}" in err and len(server.requests) == 16

        assert main([*argv, "--models", MODELS[1]]) == 0  # replayed from the call cache
        out, err = capsys.readouterr()
        assert f"stored profile is stale (changed: models {','.join(MODELS)} → {MODELS[1]})" in err
        assert "warning: no model is distinguishable from chance on mmlu (8 questions" in out
        assert len(server.requests) == 16

        assert main([*argv, "--models", MODELS[1], "--max-tokens", "100", "--json"]) == 0
        out, err = capsys.readouterr()
        assert "stored profile is stale (changed: max_tokens 512 → 100)" in err
        profile = json.loads(out)
        assert [m["model"] for m in profile["models"]] == [MODELS[1]] and profile["models"][0]["n_correct"] == 1
        assert profile["key"]["settings"]["max_tokens"] == 100 and len(server.requests) == 24


def test_bad_arguments_are_usage_errors(tmp_path: Path, capsys) -> None:
    with StubServer(models=MODELS) as server:
        pool = tmp_path / "pool.yaml"
        PoolConfig(models=[PoolModel(id=m, endpoints=[Endpoint(base_url=server.base_url)]) for m in MODELS]).save(pool)
        base = ["profile", "gsm8k", "--pool", str(pool), "--no-cache"]
        assert main([*base, "--n", "0"]) == 2
        assert main([*base, "--n", "2", "--models", "no-such-model"]) == 2
        assert main([*base, "--n", "100000"]) == 2
    err = capsys.readouterr().err
    assert "--n and --concurrency must be >= 1" in err and "no-such-model" in err and "between 1 and" in err

"""Agent-REINFORCE for 2 rounds on GSM8K on the real embedded server, ``qwen2.5-coder-0.5b`` as the agent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from langtts.models import CallCache, ModelPool
from langtts.search import optimize

pytestmark = pytest.mark.integration
MODELS = ["smollm2-135m", "qwen2.5-coder-0.5b"]


def test_two_agent_rounds_on_gsm8k(embedded_server, tmp_path: Path) -> None:
    cache = CallCache(tmp_path / "calls.sqlite")
    with ModelPool.from_file(embedded_server.pool_file, cache=cache) as pool:
        result = optimize(
            "gsm8k",
            pool,
            10,
            method="agent-reinforce",
            method_options={"agent_model": "qwen2.5-coder-0.5b"},
            models=MODELS,
            iterations=2,
            batch_size=2,
            race_max_questions=2,  # one chunk a round: the candidate on the incumbent's first questions
            top_k=1,
            validation_size=2,
            n_test=2,
            max_tokens=160,  # room for most reasoning replies: recovery fires on cut ones only
            run_dir=tmp_path / "run",
            progress=print,
        )
    print(result.summary())
    report = result.method_report
    print({k: v for k, v in report.items() if k not in ("rounds",)})
    assert result.rounds == 2
    search = [e for e in result.ledger if e.phase == "search"]
    phases = [e.phase for e in result.ledger if e.phase not in ("calibrate", "search")]
    # validation: the top graph, plus the other search graph when it is on the accuracy-latency front
    assert {e.round for e in search} == {0, 1} and phases in (["validate", "test"], ["validate"] * 2 + ["test"])
    assert result.test is not None and len(result.test.outcome.question_ids) == 2
    assert result.optimizer_cost.calls > 0 and result.optimizer_cost.flops > 0
    assert result.evaluation_cost.calls > 0
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["optimizer_state"]["agent"]["history"], "the agent's state is the method's, saved with the run"
    history, pending = report["history"], report["pending"]
    # round 1 fed back (it led to round 2's proposal); the last round is evaluated, the agent not asked after it
    assert [h["round"] for h in history] == [1] and pending["round"] == 2 and report["rounds"] == 2
    assert history[0]["proposal"]["status"] == "sampled", "round 1 draws from the initial distribution"
    # round 2 is the agent's proposal: valid as written (not repaired, coerced or replaced by a draw)
    assert report["proposals"]["valid"] >= 1, pending["proposal"]
    # every agent call starts with the same system message: the server serves that prefix from its cache
    assert report["prompt_cache"]["cached_share"] > 0, report["prompt_cache"]
    assert report["agent_driven_rounds"] >= 1
    assert any(h["feedback_status"] != "fallback" and h["feedback"].strip() for h in history), "a textual gradient"
    for h in history:  # the distribution after each round's update, readable
        assert h["tables"].startswith("Edge probabilities")
    assert report["initialise"]["pretests"], "the pretest evaluated the initial variants"

"""``benchmarks/search_efficiency.py`` in process: the held-out split, the equal-cost run options (with and without
the ``max_flops`` run option), the verdict. The script end to end: ``test_smoke.py``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from langtts.search.run import run_config
from langtts.tasks import get_task

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import search_efficiency as se  # noqa: E402

GSM8K = get_task("gsm8k")
WORKERS = ["smollm2-135m", "qwen2.5-coder-0.5b"]


def test_the_held_out_questions_are_fixed_and_no_search_sees_them() -> None:
    ids = se.held_out_ids(GSM8K, None, 100)
    assert ids == se.held_out_ids(get_task("gsm8k"), None, 100) and len(set(ids)) == 100
    task = se.with_held_out_split(GSM8K, ids, None)
    assert [ex.id for ex in task.load("heldout")] == [ex.id for ex in GSM8K.load() if ex.id in set(ids)]
    search = task.load("search")
    assert len(search) == len(GSM8K.load()) - 100 and not {ex.id for ex in search} & set(ids)
    assert task.load() == GSM8K.load() and task.name == "gsm8k" and task.family == GSM8K.family
    assert "search" not in GSM8K.splits, "the plain task is left as it was"
    for seed in (0, 1, 2):  # every seed's run draws its questions from the search split only
        config = run_config(task, None, 12.0, models=WORKERS, split="search", n_test=0, seed=seed)
        assert config.split == "search" and config.n_test == 0


def args(**given: object) -> argparse.Namespace:
    values = {"evaluations": 10, "flops": None, "models": WORKERS, "batch_size": 4, "top_k": 3, "validation_size": 12}
    return argparse.Namespace(**values | given)


def test_equal_flops_with_a_round_cap_above_what_they_buy() -> None:
    config = run_config(GSM8K, None, 12.0, models=WORKERS, batch_size=4)
    given = args()
    given.flops = se.default_flops(given, config)
    assert given.flops == pytest.approx(10 * 4 * config.budget.flops)
    options = se.run_options(given, config)
    assert options["max_flops"] == given.flops and "max_evaluations" not in options
    # the cheapest round: one graph of one unit on 4 questions; --flops buys at most 10 × 12 of those
    assert options["iterations"] == 4 * 10 * 12
    assert (options["split"], options["n_test"], options["batch_size"]) == ("search", 0, 4)


def comparison(difference: float, low: float, high: float, p: float) -> dict[str, float]:
    return {"difference": difference, "ci_low": low, "ci_high": high, "p_value": p, "n": 300}


def test_the_verdict_says_when_the_agent_does_not_beat_the_baselines_and_where_its_cost_goes() -> None:
    pooled = {
        "agent-reinforce": {
            "against": {
                "reinforce": comparison(-0.10, -0.16, -0.04, 0.001),  # reinforce − agent: the agent is better
                "random": comparison(0.02, -0.03, 0.07, 0.5),
            }
        }
    }
    records = {
        "agent-reinforce": {
            "pooled": {
                "optimizer_flops": 3e14, "total_flops": 4e14, "optimizer_calls": 60, "evaluation_calls": 200,
                "agent_wall_share": 0.7,
            }
        }
    }  # fmt: skip
    result = se.verdict(pooled, records)
    assert result is not None and result["beats"] == {"reinforce": True, "random": False}
    beats, misses, cost = result["text"]
    assert beats.startswith("agent-reinforce beats reinforce") and misses.startswith("agent-reinforce does not beat")
    assert "60 agent calls (75% of its FLOPs)" in cost and "70% of the search's wall time" in cost
    assert se.verdict(pooled, {}) is None

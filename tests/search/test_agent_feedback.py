"""The agent's calls per round (none after the last evaluation), its bounded answers, the prompt prefix its calls
share, and the structured feedback checked against the evaluation's figures."""

from __future__ import annotations

import asyncio
from collections import Counter

from tests.search.test_agent_reinforce import Setup, drive, evaluation


def agent_calls(setup: Setup) -> Counter[str]:
    return Counter(r.tags["node"] for r in setup.pool.ledger.records(purpose="optimizer"))


def test_k_rounds_make_k_proposals_worth_of_agent_calls_and_none_after_the_last_evaluation():
    setup = Setup()
    optimizer = setup.build()
    k = 3

    async def run() -> Counter[str]:
        for index in range(k):
            graph = await optimizer.propose()
            assert graph is not None
            before = agent_calls(setup)
            await optimizer.observe(graph, evaluation(graph, index))
            assert agent_calls(setup) == before  # observe records the evaluation only
        return agent_calls(setup)

    calls = asyncio.run(run())
    # round 1 is drawn from p_theta; rounds 2..k: feedback on the round before, update, then place and wire
    assert calls == {"initialise": 1, "feedback": k - 1, "update": k - 1, "sample": 2 * (k - 1)}
    report = optimizer.report()
    assert report["rounds"] == k and report["fed_back_rounds"] == k - 1
    assert report["pending"]["round"] == k and report["pending"]["fed_back"] is False
    assert not any(line.startswith(f"[agent round {k}] feedback") for line in setup.lines)
    # the state holds the unfed evaluation: a rebuilt optimizer feeds it back when asked for round k + 1
    resumed = setup.build()
    resumed.load_state_dict(optimizer.state_dict())
    assert resumed.report()["pending"] == report["pending"]
    assert asyncio.run(resumed.propose()) is not None
    assert agent_calls(setup) - calls == {"feedback": 1, "update": 1, "sample": 2}
    assert [r["round"] for r in resumed.report()["history"]] == list(range(1, k + 1))


def test_max_rounds_ends_after_the_last_evaluation_without_feedback():
    setup = Setup()
    optimizer = setup.build(init="random", max_rounds=2)
    asyncio.run(drive(optimizer, 2, ask_next=False))
    calls = agent_calls(setup)
    assert asyncio.run(optimizer.propose()) is None
    assert agent_calls(setup) == calls == {"feedback": 1, "update": 1, "sample": 2}

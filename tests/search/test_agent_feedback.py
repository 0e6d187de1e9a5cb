"""The agent's calls per round (none after the last evaluation), its bounded answers, the prompt prefix its calls
share, and the structured feedback checked against the evaluation's figures."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter

import pytest

from langtts.graph import CollaborationGraph, Node
from langtts.models.ledger import Usage
from langtts.search.agent_reinforce import claims
from langtts.search.agent_reinforce.schemas import (
    FEEDBACK_SCHEMA,
    PROPOSAL_MAX_TOKENS,
    answer_token_bound,
    compact_token_bound,
    placement_schema,
    update_schema,
    wiring_schema,
)
from langtts.search.base import Evaluation
from langtts.space import worker_id
from tests.search.helpers import MODELS, make_space
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


# ---- bounded answers ----------------------------------------------------------------------------------------


def test_proposal_calls_get_at_most_250_tokens_up_to_five_workers_and_the_bounds_are_stated():
    models = list(MODELS)
    for n in range(1, 9):  # make_space(8.0), the largest space the tests build, has multisets of up to 8 workers
        workers = [worker_id(i) for i in range(n)]
        placement = placement_schema(workers, models, True, [MODELS[0]] * n)
        wiring = wiring_schema(workers, dict.fromkeys(workers, "assistant"))
        rooms = [
            min(answer_token_bound(s), max(PROPOSAL_MAX_TOKENS, compact_token_bound(s))) for s in (placement, wiring)
        ]
        if n <= 5:
            assert max(rooms) <= PROPOSAL_MAX_TOKENS == 250
        else:  # a compact answer of 6+ workers needs more: the room grows with it (a compact wiring format: left)
            assert rooms == [compact_token_bound(placement), max(PROPOSAL_MAX_TOKENS, compact_token_bound(wiring))]
    # the largest space: 8 workers; what its calls get (compact bound), and the whitespace bounds after a cut answer
    workers = [worker_id(i) for i in range(8)]
    assert compact_token_bound(placement_schema(workers, models, True, [MODELS[0]] * 8)) == 341
    assert compact_token_bound(wiring_schema(workers, dict.fromkeys(workers, "assistant"))) == 346
    assert (answer_token_bound(FEEDBACK_SCHEMA), compact_token_bound(FEEDBACK_SCHEMA)) == (544, 314)
    assert compact_token_bound(update_schema(workers, models, True)) == 1018


def test_a_scripted_run_of_up_to_five_workers_sends_proposals_of_at_most_250_tokens():
    setup = Setup()
    setup.space = make_space(6.5)  # the budget affords up to 5 workers beside the sink
    optimizer = setup.build()
    asyncio.run(drive(optimizer, 3))
    placed = [r["schema"] for r in setup.agent.requests if r["name"] == "graph_placement"]
    sizes = {len((s["anyOf"][0] if "anyOf" in s else s)["properties"]) - 1 for s in placed}  # less "reasoning"
    assert sizes and max(sizes) <= 5
    sample = [r["max_tokens"] for r in setup.agent.requests if r["name"] in ("graph_placement", "graph_wiring")]
    assert sample and max(sample) <= 250


def test_an_answer_cut_at_max_tokens_is_repaired_with_the_whole_bound():
    setup = Setup()
    optimizer = setup.build(init="random")
    asyncio.run(drive(optimizer, 1))
    schema = FEEDBACK_SCHEMA
    wordy = json.dumps({"claims": [], "summary": "word " * 400})  # the fake cuts answers at max_tokens words
    setup.agent.script["textual_gradient"] = [wordy]
    asyncio.run(drive(optimizer, 1, start=1))
    tokens = [r["max_tokens"] for r in setup.agent.requests if r["name"] == "textual_gradient"]
    assert tokens[-2:] == [compact_token_bound(schema), answer_token_bound(schema)]
    assert "write compact JSON on one line" in setup.agent.prompts["textual_gradient"][-1]


# ---- prompt prefix ----------------------------------------------------------------------------------------------


def test_every_agent_call_of_a_run_starts_with_the_same_long_system_message():
    setup = Setup()
    optimizer = setup.build()
    asyncio.run(drive(optimizer, 3))
    requests = setup.agent.requests
    assert {r["name"] for r in requests} >= {"multiset_choice", "graph_placement", "graph_wiring"} | {
        "textual_gradient",
        "probability_update",
    }
    first = {tuple(r["messages"][0]) for r in requests}
    assert len(first) == 1  # byte-identical across the run's calls: initialise, sample, feedback, update
    kind, system = first.pop()
    assert kind == "SystemMessage" and len(system) > 1500  # task, budget, objective, insights, pilot data, roles
    assert "Insights from pilot" in system and "Pilot accuracies" in system and "Round" not in system
    # successive calls (feedback, update, placement, wiring of a round) share that prefix, then differ per round
    feedback, update = (
        next(r for r in reversed(requests) if r["name"] == n) for n in ("textual_gradient", "probability_update")
    )
    assert feedback["messages"][0] == update["messages"][0] and feedback["messages"][1] != update["messages"][1]


def test_the_report_gives_the_share_of_prompt_tokens_served_from_the_server_cache():
    setup = Setup()
    optimizer = setup.build(init="random")
    asyncio.run(drive(optimizer, 2))
    cache = optimizer.report()["prompt_cache"]
    assert cache["calls"] == 8 and cache["prompt_tokens"] > 0  # rounds 2 and 3: feedback, update, place, wire
    assert cache["cached_prompt_tokens"] == 0 and cache["cached_share"] == 0.0  # the fake model reports no cache

    totals = Usage(calls=4, prompt_tokens=1000, cached_prompt_tokens=750)
    optimizer.pool.ledger.totals = lambda **tags: totals  # type: ignore[method-assign]
    assert optimizer.report()["prompt_cache"]["cached_share"] == 0.75


# ---- structured feedback, checked against the figures ------------------------------------------------------------


def figures_graph(models: tuple[str, str, str] = ("a", "a", "b"), sink: str = "s") -> CollaborationGraph:
    """n0, n1 -> n2 -> sink (n2 a fuser), n3 not run."""
    nodes = [Node(f"n{i}", "fuser" if i == 2 else "assistant", m) for i, m in enumerate(models)]
    return CollaborationGraph(
        nodes=(*nodes, Node("n3", "assistant", models[0]), Node("sink", "decider", sink)),
        edges=(("n0", "n2"), ("n1", "n2"), ("n2", "sink")),
        sink_id="sink",
    )


RESULT = {
    "accuracy": 0.75,
    "questions": 4,
    "question_ids": ["q0", "q1", "q2", "q3"],
    "correct": [True, True, True, False],
    "node_accuracy": {"n0": 0.5, "n1": 0.25, "n2": 0.75, "sink": 0.75},
}


@pytest.mark.parametrize(
    ("target", "effect", "supported"),
    [
        ("n2", "helped", True),  # own 75% >= the graph's 75%
        ("n1", "hurt", True),  # own 25% < 75%
        ("n0", "helped", False),  # own 50% < 75%, no inputs
        ("n2", "hurt", False),
        ("n9", "helped", False),  # not in the graph
        ("n3", "helped", False),  # not run
        ("n0->n2", "helped", True),  # the reader (75%) did at least as well as what it read (50%)
        ("n2->n0", "helped", False),  # not an edge
        ("n2->sink", "neutral", True),
        ("sink", "helped", False),  # the sink's 75% is not above its input's 75%
        ("sink", "neutral", True),
        ("mix", "helped", False),  # no incumbent
    ],
)
def test_the_rule_checks_each_claim_against_the_figures(target, effect, supported):
    claim = {"target": target, "effect": effect, "evidence": "from the figures"}
    assert claims.check_claim(claim, figures_graph(), RESULT, None)[0] is supported


def test_mix_claims_need_the_paired_comparison_and_size_claims_need_two_models():
    paired = claims.paired_counts(RESULT, {"question_ids": ["q2", "q3", "q9"], "correct": [False, True, True]})
    assert paired == {"shared": 2, "both_right": 0, "only_new": 1, "only_incumbent": 1, "both_wrong": 0}
    mix = {"target": "mix", "effect": "neutral", "evidence": "as good as the incumbent"}
    assert claims.check_claim(mix, figures_graph(), RESULT, paired)[0]
    assert not claims.check_claim({**mix, "effect": "helped"}, figures_graph(), RESULT, paired)[0]
    assert claims.paired_counts(RESULT, {"question_ids": ["x"], "correct": [True]}) is None

    size = {"target": "n2", "effect": "helped", "evidence": "the larger models were placed on nodes with many inputs"}
    one_model = figures_graph(("a", "a", "a"), sink="a")
    assert claims.check_claim(size, figures_graph(), RESULT, None)[0]
    ok, why = claims.check_claim(size, one_model, RESULT, None)
    assert not ok and "one model" in why
    named = {"target": "n2", "effect": "helped", "evidence": "n2 (a) beat its inputs, smollm2-135m copies"}
    assert claims.check_claim(named, one_model, RESULT, None)[0]  # a model's name is not a size claim


def test_near_duplicates_are_found_beyond_identical_text():
    a = claims.comparable([{"evidence": "the larger models were placed on nodes with many inputs"}], "keep n2")
    b = claims.comparable([{"evidence": "The larger models were placed on nodes with many  inputs."}], "keep n3")
    c = claims.comparable([{"evidence": "n1 read two copies of one model and lost a question"}], "drop n1 -> n2")
    assert claims.similarity(a, b) >= claims.NEAR_DUPLICATE > claims.similarity(a, c)


def scored(graph: CollaborationGraph, index: int, own: dict[str, float], correct: list[bool]) -> Evaluation:
    base = evaluation(graph, index)
    ids = [f"q{index % 2 + k}" for k in range(len(correct))]  # rounds share some questions, not all
    outcome = base.outcome.model_copy(
        update={
            "question_ids": ids,
            "correct": correct,
            "accuracy": sum(correct) / len(correct),
            "node_accuracy": own,
            "node_agreement": {"sink": 0.5},
        }
    )
    return base.model_copy(update={"outcome": outcome, "score": outcome.accuracy})


def test_the_feedback_prompt_carries_the_figures_and_the_update_the_checked_claims():
    setup = Setup()
    setup.agent.script["textual_gradient"] = [
        json.dumps(
            {
                "claims": [
                    {"target": "sink", "effect": "hurt", "evidence": "the sink (33%) lost to its input (50%)"},
                    {"target": "n7->n0", "effect": "hurt", "evidence": "no such edge"},
                ],
                "summary": "keep n0 on the sink",
            }
        )
    ]
    optimizer = setup.build(init="random")

    async def run() -> None:
        for index, correct in enumerate([[True, False, False], [True, True, False, True]]):
            graph = await optimizer.propose()
            own = {n.id: 0.5 for n in graph.workers} | {"sink": sum(correct) / len(correct)}
            await optimizer.observe(graph, scored(graph, index, own, correct))
        await optimizer.propose()  # round 3 asked: round 2 fed back

    asyncio.run(run())
    first, second = setup.agent.prompts["textual_gradient"]
    assert "Against the best graph so far: (none yet: the first round)" in first
    assert (
        re.search(r"^n\d: own 50%, 0.28 units$", first, re.M) and "sink: own 33%, inputs' mean 50%, agree 50%" in first
    )
    assert "median latency per question" in first
    # round 2 against round 1 on the questions both answered (q1, q2)
    assert "Against the best graph so far: round 1 (score 0.333); on the 2 questions both answered" in second
    assert "Rounds so far (round | graph | accuracy | questions | units | proposal):\n1 | " in second
    assert "| 33% | 3 | " in second and "| sampled best" in second
    update = setup.agent.prompts["probability_update"][0]
    assert "- sink hurt (supported): the sink (33%) lost to its input (50%)" in update
    assert "- n7->n0 hurt (unsupported: n7->n0 is not an edge of the graph that ran): no such edge" in update
    assert "Summary: keep n0 on the sink" in update

    report = optimizer.report()["feedback"]
    assert report["per_round"][0] == {"round": 1, "claims": 2, "supported": 1}
    # round 2: the scripted default, "n0->sink helped", on the proposed n0 -> sink (the sink's 75% >= n0's 50%)
    assert report["per_round"][1] == {"round": 2, "claims": 1, "supported": 1}
    assert report["claims"] == 3 and report["supported_claims"] == 2
    assert report["supported_share"] == pytest.approx(2 / 3) and report["all_supported_share"] == 0.5
    assert any("1/2 claims supported" in line for line in setup.lines)

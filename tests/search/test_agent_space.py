"""Agent-REINFORCE in langtts's extended space (not ``paper_faithful``): the agent chooses the sink, may revise its
model mix under the measured rule of :mod:`langtts.search.agent_reinforce.revision`, and a ``paper_faithful``
space sends the paper's prompts and schemas byte for byte."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from collections import Counter
from typing import Any

import numpy as np
import pytest

from langtts.cost import Budget, node_flops
from langtts.graph import CollaborationGraph, Node
from langtts.search.agent_reinforce import initial_distribution
from langtts.search.agent_reinforce.graph import MAX_CANDIDATES
from langtts.search.agent_reinforce.parsing import AgentOutputError, check_answer, parse_proposal
from langtts.search.agent_reinforce.revision import MIN_ANSWERS, judge, model_evidence, rebuild
from langtts.search.agent_reinforce.schemas import wiring_schema
from langtts.search.agent_reinforce.space import sink_options
from langtts.search.agent_reinforce.update import apply_update
from langtts.search.base import Evaluation, Outcome, SearchSpace
from langtts.space import VOTE, ProbabilisticGraph, SinkOption
from tests.search.helpers import MODELS, SINK, make_space
from tests.search.test_agent_reinforce import Setup, drive, multiset_of, proposal, update
from tests.search.test_agent_reinforce import sink_options as offered

QWEN = "qwen2.5-coder-0.5b"
EXTENDED_SINKS = [SINK, "smollm2-135m", "gemma3-270m", QWEN, "vote"]  # the sink model, the others smallest first


def extended_setup(space: SearchSpace | None = None) -> Setup:
    setup = Setup()
    setup.space = space or make_space(8.0, extended=True)
    return setup


def small_sink_space(units: float = 6.0, *, vote: bool = True) -> SearchSpace:
    """The default sink on qwen2.5-coder-0.5b; the 1.5B model is a further sink option that a decider reading one
    input affords on its own (4.93 units) but not beside a budget-maximal worker mix."""
    base = make_space(8.0)
    return SearchSpace(
        models=MODELS,
        sink_model=QWEN,
        budget=Budget.from_flops(base.budget.flops * units / 8.0),
        lengths=base.lengths,
        catalog=base.catalog,
        sink_models=(*MODELS, SINK),
        vote_sink=vote,
        paper_faithful=False,
    )


def placement_sinks(setup: Setup) -> list[str]:
    return offered(setup.agent.schemas["graph_placement"])


# ---- the sink is the agent's choice -----------------------------------------------------------------------


def test_the_placement_schema_offers_exactly_the_affordable_sink_options():
    setup = extended_setup()
    optimizer = setup.build()
    asyncio.run(drive(optimizer, 2))
    assert placement_sinks(setup) == EXTENDED_SINKS
    placement = setup.agent.prompts["graph_placement"][0]
    assert 'You choose the sink ("sink"): "qwen2.5-coder-1.5b", "smollm2-135m", "gemma3-270m"' in placement
    assert '"vote" makes no LLM call and costs nothing' in placement and "self-consistency" in placement
    assert 'its "role", then "sink".' in placement
    pg = ProbabilisticGraph.from_dict(optimizer.report()["history"][0]["distribution"], setup.space.catalog)
    assert [o.label for o in pg.sink_options] == EXTENDED_SINKS  # round 1's draw covered the sink too

    setup = extended_setup(small_sink_space())
    optimizer = setup.build()
    asyncio.run(drive(optimizer, 2))
    assert len(optimizer.report()["multiset"]) >= 2
    assert placement_sinks(setup) == [QWEN, "smollm2-135m", "gemma3-270m", "vote"]  # no 1.5B decider: over budget


def test_sink_options_follow_the_budget_the_workers_and_the_vote_switch():
    space = small_sink_space()
    maximal = list(space.multisets()[0])
    assert SearchSpace.sink_options(space)[-2:] == (SinkOption("decider", SINK), VOTE)
    assert sink_options(space, maximal) == (
        SinkOption("decider", QWEN),
        SinkOption("decider", "smollm2-135m"),
        SinkOption("decider", "gemma3-270m"),
        VOTE,
    )
    assert VOTE not in sink_options(space, ["smollm2-135m"])  # a vote needs two workers feeding it
    assert VOTE not in sink_options(small_sink_space(vote=False), maximal)
    assert sink_options(make_space(8.0), maximal) == (SinkOption("decider", SINK),)  # paper_faithful: fixed
    pg = initial_distribution(space, ["smollm2-135m"])
    assert "vote" not in [o.label for o in pg.sink_options]


@pytest.mark.parametrize("sink", ["vote", "smollm2-135m"])
def test_a_proposal_with_another_sink_becomes_that_graph_within_the_budget(sink):
    setup = extended_setup()
    both = (("n0", "sink"), ("n1", "sink"))
    setup.agent.script["graph_proposal"] = [lambda p: proposal(p, both, sink=sink)]
    optimizer = setup.build()
    asyncio.run(drive(optimizer, 2))
    record = optimizer.report()["history"][1]["proposal"]
    assert record["status"] == "valid"
    graph = CollaborationGraph.from_dict(record["graph"])
    assert SinkOption.of_node(graph.sink) == SinkOption.of(sink)
    assert list(graph.predecessors("sink")) == ["n0", "n1"] and setup.space.feasible(graph)
    wiring = setup.agent.prompts["graph_wiring"][0]
    round_2 = next(r for r in setup.agent.requests if r["name"] == "graph_wiring")  # round 3's: the default sink
    sink_flags = round_2["schema"]["properties"]["sink_inputs"]
    if sink == "vote":
        assert "(at least two: the sink is a vote)" in wiring and "The vote sink and its inputs cost nothing" in wiring
        assert len(sink_flags["anyOf"]) == 8 * 7 // 2  # one alternative per pair of first true inputs
        workers = [setup.space.catalog.get(graph.node(n).model) for n in ("n0", "n1")]
        assert setup.space.cost(graph) == pytest.approx(sum(node_flops(w, 0, setup.space.lengths) for w in workers))
    else:
        assert "(at least one)" in wiring and "into the sink (0.19 units each)" in wiring
    assert "sink: " + sink + " <- n0, n1" in setup.agent.prompts["textual_gradient"][-1]


def test_a_vote_with_one_input_is_sent_back_for_a_repair():
    setup = extended_setup()
    setup.agent.script["graph_proposal"] = [lambda p: proposal(p, (("n0", "sink"),), sink="vote")]
    optimizer = setup.build()
    asyncio.run(drive(optimizer, 2))
    record = optimizer.report()["history"][1]["proposal"]
    assert record["status"] == "repaired"
    assert record["errors"] == ['the sink reads 1 input(s): set at least 2 of "n0", "n1", "n2", "n3", "n4", "n5", '
                                '"n6", "n7" to true']  # fmt: skip


def test_a_vote_sink_proposal_parses_and_fits_the_budget():
    space = make_space(8.0, extended=True)
    placement = {"reasoning": "r", **{f"n{i}": {"model": "smollm2-135m", "role": "assistant"} for i in range(3)}}
    roles = {f"n{i}": "assistant" for i in range(3)}
    schema = wiring_schema(list(roles), roles, sink_min=2)
    with pytest.raises(AgentOutputError, match="the sink reads 1 input"):
        check_answer({"n1": {"n0": False}, "n2": {"n0": False, "n1": False}, "sink_inputs": {"n0": True}}, schema)
    wiring = check_answer(
        {"n1": {"n0": False}, "n2": {"n0": False, "n1": False}, "sink_inputs": {"n0": True, "n1": False, "n2": True}},
        schema,
    )
    graph = parse_proposal(placement, wiring, space=space, unit_flops=1.0, sink=VOTE)
    assert graph.sink.role == "vote" and graph.sink_id == "sink" and graph.edges == (("n0", "sink"), ("n2", "sink"))
    assert space.feasible(graph)


def test_the_update_sets_the_sink_probabilities():
    setup = extended_setup()
    setup.agent.script["probability_update"] = [
        update(sinks=(("vote", 0.6), (SINK, 0.1), ("smollm2-135m", 0.1), ("gemma3-270m", 0.1), (QWEN, 0.1)))
    ]
    optimizer = setup.build()
    asyncio.run(drive(optimizer, 1))
    history = optimizer.report()["history"]
    pg = ProbabilisticGraph.from_dict(history[0]["distribution"], setup.space.catalog)
    assert pg.sink_probabilities() == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.6])
    shown = "qwen2.5-coder-1.5b 0.10, smollm2-135m 0.10, gemma3-270m 0.10, qwen2.5-coder-0.5b 0.10, vote 0.60"
    assert f"Sink probabilities (before the budget mask): {shown}" in history[0]["tables"]
    schema = setup.agent.schemas["probability_update"]
    assert list(schema["properties"])[-3:] == ["sink_inputs", "sink", "mix"]
    assert list(schema["properties"]["sink"]["properties"]) == EXTENDED_SINKS


def test_sink_probabilities_that_do_not_sum_to_one_are_renormalised():
    space = make_space(8.0, extended=True)
    multiset = ["smollm2-135m"] * 3
    pg = initial_distribution(space, multiset)
    sampled = pg.sample(0).graph
    data = {
        "reasoning": "r",
        "n0": {"inputs": {}},
        "n1": {"inputs": {"n0": pg.edge_probability(0, 1)}},
        "n2": {"inputs": {"n0": pg.edge_probability(0, 2), "n1": pg.edge_probability(1, 2)}},
        "sink_inputs": {f"n{i}": pg.edge_probability(i, 3) for i in range(3)},
        "sink": {label: 0.5 for label in [o.label for o in pg.sink_options]},
    }
    updated, coercions = apply_update(pg, data, sampled=sampled, multiset=multiset)
    assert coercions == [f"sink probabilities summed to {0.5 * len(pg.sink_options):.2f}: renormalised"]
    assert updated.sink_probabilities() == pytest.approx(np.full(len(pg.sink_options), 1 / len(pg.sink_options)))
    with pytest.raises(AgentOutputError, match="sink probabilities are all zero"):
        apply_update(pg, {**data, "sink": dict.fromkeys(data["sink"], 0.0)}, sampled=sampled, multiset=multiset)


# ---- the model mix may be revised --------------------------------------------------------------------------


def scored(graph: CollaborationGraph, index: int, accuracy: dict[str, float]) -> Evaluation:
    """An evaluation on two questions whose every worker scored ``accuracy[its model]`` on its own."""
    outcome = Outcome(
        question_ids=["q0", "q1"],
        correct=[True, False],
        accuracy=0.5,
        ci_low=0.0,
        ci_high=1.0,
        flops=1.0,
        latency_s=1.0,
        prompt_tokens=0,
        completion_tokens=0,
        calls=len(graph.nodes),
        cache_hits=0,
        wall_time_s=0.0,
        node_accuracy={n.id: accuracy[n.model] for n in graph.workers},
    )
    return Evaluation(
        index=index,
        phase="search",
        round=index,
        fingerprint=graph.fingerprint(),
        graph=graph.to_dict(),
        modelled_flops=1.0,
        score=0.5,
        outcome=outcome,
    )


async def drive_scored(optimizer, rounds: int, accuracy: dict[str, float], start: int = 0) -> None:
    for index in range(start, start + rounds):
        graph = await optimizer.propose()
        await optimizer.observe(graph, scored(graph, index, accuracy))
    await optimizer.propose()  # the next round asked: the last one is fed back


def all_into_a_vote(prompt: str) -> str:
    ids = [f"n{i}" for i in range(len(multiset_of(prompt)))]
    return proposal(prompt, tuple((u, "sink") for u in ids), sink="vote")


MORE_GEMMA = 1  # candidate 1: 4× gemma3-270m + 3× smollm2-135m (the kept mix: 3× gemma3-270m + 5× smollm2-135m)


def revising_setup(accuracy: dict[str, float]) -> tuple[Setup, Any]:
    """Round 2 evaluates every worker (a vote reads them all), and its update asks for candidate MORE_GEMMA."""
    setup = extended_setup()
    setup.agent.script["graph_proposal"] = [all_into_a_vote]
    setup.agent.script["probability_update"] = [update(), update(mix=MORE_GEMMA)]
    optimizer = setup.build()
    asyncio.run(drive_scored(optimizer, 3, accuracy))
    return setup, optimizer


def test_a_mix_revision_the_measurements_back_is_applied_and_reported():
    setup, optimizer = revising_setup({"gemma3-270m": 0.75, "smollm2-135m": 0.25})
    report = optimizer.report()
    old = ["gemma3-270m"] * 3 + ["smollm2-135m"] * 5
    new = list(optimizer.candidates[MORE_GEMMA])
    assert Counter(new) == {"gemma3-270m": 4, "smollm2-135m": 3}
    assert [{k: r[k] for k in ("round", "old", "new", "accepted")} for r in report["revisions"]] == [
        {"round": 2, "old": old, "new": new, "accepted": True}
    ]
    assert report["revisions"][0]["reason"].startswith("every model gaining copies measured more accurate")
    assert report["multiset"] == new
    line = next(line for line in setup.lines if "mix revision" in line)
    assert line.startswith("[agent round 2] mix revision accepted: 3× gemma3-270m + 5× smollm2-135m -> ")
    # round 3 proposes and draws with the new mix; p_theta was rebuilt for its 7 workers
    assert "run exactly 4× gemma3-270m + 3× smollm2-135m" in setup.agent.prompts["graph_placement"][-1]
    graph = CollaborationGraph.from_dict(report["history"][2]["graph"])
    assert Counter(n.model for n in graph.workers) == Counter(new)
    assert ProbabilisticGraph.from_dict(report["history"][1]["distribution"], setup.space.catalog).n_nodes == 7
    update_prompt = setup.agent.prompts["probability_update"][1]
    assert "gemma3-270m 75% of " in update_prompt and '"mix": a number below' in update_prompt


def test_a_mix_revision_the_measurements_do_not_back_is_refused_and_reported():
    setup, optimizer = revising_setup({"gemma3-270m": 0.25, "smollm2-135m": 0.75})
    report = optimizer.report()
    assert [r["accepted"] for r in report["revisions"]] == [False]
    assert report["revisions"][0]["reason"].startswith("a model gaining copies is not measured more accurate")
    assert report["multiset"] == ["gemma3-270m"] * 3 + ["smollm2-135m"] * 5
    assert any(line.startswith("[agent round 2] mix revision refused: ") for line in setup.lines)


def test_the_revision_rule():
    current = ["b", "a", "a"]
    assert judge(current, ["b", "b", "a"], {"a": (1.0, 10), "b": (9.0, 10)}) == (
        True,
        "every model gaining copies measured more accurate than every model losing copies (b 90% of 10 against a "
        "10% of 10)",
    )
    assert judge(current, ["b", "b", "a"], {"a": (9.0, 10), "b": (1.0, 10)})[0] is False
    assert judge(current, ["b", "b", "a"], {"a": (1.0, 10), "b": (5.0, MIN_ANSWERS - 1)}) == (
        False,
        f"too few measured answers (b {MIN_ANSWERS - 1}; at least {MIN_ANSWERS} each)",
    )
    # only additions: a gained model must beat the least accurate model of the current mix
    assert judge(["b"], ["b", "c"], {"b": (6.0, 10), "c": (7.0, 10)})[0] is True
    assert judge(["b"], ["b", "c"], {"b": (6.0, 10), "c": (6.0, 10)})[0] is False


def test_the_evidence_pools_the_profile_and_input_less_workers():
    nodes = (Node("n0", "assistant", "a"), Node("n1", "assistant", "b"), Node("sink", "decider", "c"))
    graph = CollaborationGraph(nodes=nodes, edges=(("n0", "n1"), ("n1", "sink")))
    evaluations = [{"graph": graph.to_dict(), "node_accuracy": {"n0": 0.5, "n1": 1.0, "sink": 1.0}, "questions": 4}]
    profile = {"models": {"a": {"accuracy": 0.25, "n_scored": 8}, "b": {"accuracy": None, "n_scored": 0}}}
    assert model_evidence(evaluations, profile) == {"a": (4.0, 12)}  # n1 read n0: not on its own


def test_a_rebuilt_distribution_keeps_the_logits_of_surviving_nodes_and_sinks():
    space = make_space(8.0, extended=True)
    old = initial_distribution(space, ["smollm2-135m"] * 5 + ["gemma3-270m"] * 3)
    old.edge_logits[:] = np.arange(old.edge_logits.size).reshape(old.edge_logits.shape)
    old.sink_logits[:] = [0.0, 1.0, 2.0, 3.0, 4.0]
    old.role_logits[2] = (1.0, -1.0)
    new = rebuild(old, initial_distribution(space, ["smollm2-135m"] * 3 + ["gemma3-270m"] * 4))
    assert new.n_nodes == 7 and np.array_equal(new.edge_logits[:7, :7], old.edge_logits[:7, :7])
    assert np.array_equal(new.edge_logits[:7, 7], old.edge_logits[:7, 8])  # sink inputs
    assert np.array_equal(new.sink_logits, old.sink_logits) and tuple(new.role_logits[2]) == (1.0, -1.0)
    assert new.models[int(np.argmax(new.model_logits[6]))] == "gemma3-270m"


def test_no_revision_and_no_sink_choice_in_a_paper_faithful_space():
    setup = Setup()
    setup.agent.script["probability_update"] = [update(), update(mix=MORE_GEMMA)]
    optimizer = setup.build()
    asyncio.run(drive(optimizer, 3))
    assert optimizer.report()["revisions"] == []
    assert "mix" not in setup.agent.schemas["probability_update"]["properties"]
    assert "sink" not in setup.agent.schemas["probability_update"]["properties"]
    assert placement_sinks(setup) == []
    assert '"mix"' not in "".join(setup.agent.prompts["probability_update"])


# ---- paper_faithful: the paper's prompts and schemas, byte for byte -----------------------------------------

# sha256 of every request (schema name, messages, schema, max_tokens) of a 3-round scripted run (and the proposal of
# round 4) in a paper_faithful space: unchanged by the extended space (commit f7fc825), then changed on purpose by
# issue 16 (the shared system message first, structured feedback with the round's figures, short proposal
# reasoning, compact-answer max_tokens); the extended space must still leave them unchanged.
FAITHFUL_REQUESTS = {
    "default": "0599e2c6b66eb9a76656ce29c379042c339b226ee50d35360b976851491c0b2f",
    "joint": "2f6ca9730db4a51b6d8d6f50eaa4b27ed24976b552407b8179bf7debea484e23",
    "no fusers, random mix": "a0bfab20ed96d711ee8bca731374bbcba1d7f1214fb9ca39f932da08ee3cbef8",
}
OPTIONS: dict[str, dict[str, Any]] = {
    "default": {},
    "joint": {"objective_kind": "joint"},
    "no fusers, random mix": {"fusers": False, "init": "random"},
}


@pytest.mark.parametrize("case", list(FAITHFUL_REQUESTS))
def test_a_paper_faithful_space_sends_the_papers_prompts_and_schemas_byte_for_byte(case):
    setup = Setup()
    assert setup.space.paper_faithful
    asyncio.run(drive(setup.build(**OPTIONS[case]), 3))
    transcript = json.dumps(setup.agent.requests, sort_keys=True)
    assert hashlib.sha256(transcript.encode()).hexdigest() == FAITHFUL_REQUESTS[case]


def test_the_extended_space_state_is_json_and_resumes():
    setup, optimizer = revising_setup({"gemma3-270m": 0.75, "smollm2-135m": 0.25})
    state = json.loads(json.dumps(optimizer.state_dict()))
    pending = asyncio.run(optimizer.propose())
    resumed = setup.build()
    resumed.load_state_dict(state)
    calls = Counter(setup.agent.calls)
    assert asyncio.run(resumed.propose()) == pending and setup.agent.calls == calls
    assert resumed.report()["revisions"] == optimizer.report()["revisions"]
    assert len(optimizer.candidates[:MAX_CANDIDATES]) > MORE_GEMMA


def test_the_placement_offers_no_vote_to_a_single_worker_or_without_vote_sinks():
    setup = extended_setup(make_space(5.3, extended=True))  # the budget affords one smollm2-135m beside the sink
    optimizer = setup.build()
    asyncio.run(drive(optimizer, 2))
    assert optimizer.report()["multiset"] == ["smollm2-135m"]
    assert placement_sinks(setup) == [SINK, "smollm2-135m", "gemma3-270m", QWEN]

    setup = extended_setup(dataclasses.replace(make_space(8.0, extended=True), vote_sink=False))
    asyncio.run(drive(setup.build(), 2))
    assert placement_sinks(setup) == [SINK, "smollm2-135m", "gemma3-270m", QWEN]

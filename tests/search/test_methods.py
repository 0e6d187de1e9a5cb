"""The search methods driven directly through the Optimizer protocol against the synthetic evaluator."""

from __future__ import annotations

import asyncio
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from optuna.trial import TrialState

from langtts import shapes
from langtts.cost import maximal_multisets
from langtts.graph import CollaborationGraph, Node
from langtts.search.base import METHODS, MethodContext
from langtts.search.bayes import Bayes
from langtts.search.grid import GridSearch
from tests.search.helpers import (
    MODELS,
    SINK,
    build,
    drive,
    evaluation,
    fingerprints,
    json_round_trip,
    make_evaluator,
    make_space,
)

OPTIONS = {"random": {}, "reinforce": {}, "bayes": {"n_startup_trials": 3}, "grid": {}}
ALL = sorted(OPTIONS)
SAMPLING = ["bayes", "random", "reinforce"]
ROUNDS = 8


def run(method: str, seed: int, rounds: int = ROUNDS, units: float = 8.0) -> list[CollaborationGraph]:
    space = make_space(units)
    return drive(build(method, space, seed, **OPTIONS[method]), space, rounds)


def test_the_methods_are_registered():
    assert set(ALL) <= set(METHODS)
    assert METHODS["bayes"] is Bayes and Bayes.name == "bayes"


# ---- (a) seeded determinism


@pytest.mark.parametrize("method", ALL)
def test_same_seed_same_proposals_and_other_seeds_differ(method):
    first, again, other = run(method, 1), run(method, 1), run(method, 2)
    assert len(first) == ROUNDS
    assert [g.to_dict() for g in first] == [g.to_dict() for g in again]
    if method == "grid":  # deterministic by design: the seed plays no part
        assert fingerprints(other) == fingerprints(first)
    else:
        assert fingerprints(other) != fingerprints(first)
    assert len(set(fingerprints(first))) > 1  # the method does move around


# ---- (b) every proposal is valid and budget-feasible


def assert_valid(graph: CollaborationGraph, space, strict: bool = False, sink: str | None = SINK) -> None:
    graph.check([*MODELS, SINK], strict=strict)  # raises on an unknown model (or, if strict, unreachable nodes)
    assert space.feasible(graph), f"{space.cost(graph):.4g} FLOPs over {space.budget.flops:.4g}"
    assert sink is None or graph.sink.model == sink
    assert len(graph.pruned().workers) <= space.max_nodes
    if graph.workers:
        assert graph.predecessors(graph.sink.id)


@settings(max_examples=24, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    method=st.sampled_from(SAMPLING),
    seed=st.integers(0, 2**32 - 1),
    units=st.floats(5.3, 20),
    max_nodes=st.integers(1, 8),
    extended=st.booleans(),
)
def test_every_proposal_is_valid_and_within_budget(method, seed, units, max_nodes, extended):
    space = make_space(units, max_nodes, extended=extended)
    graphs = drive(build(method, space, seed, **OPTIONS[method]), space, 5)
    assert len(graphs) == 5
    for graph in graphs:
        assert_valid(graph, space, strict=method == "bayes", sink=None if extended else SINK)  # bayes: pruned


@pytest.mark.parametrize("method", SAMPLING)
def test_the_extended_space_proposes_votes_and_other_sink_models(method):
    space = make_space(8.0, extended=True)
    graphs = [g for seed in (0, 1) for g in drive(build(method, space, seed, **OPTIONS[method]), space, 12)]
    sinks = Counter(g.sink.model or "vote" for g in graphs)
    assert sinks["vote"] > 0 and len(sinks) >= 3, sinks
    for graph in (g for g in drive(build(method, space, 0, **OPTIONS[method]), space, 12) if g.sink.role == "vote"):
        assert len(graph.predecessors("sink")) >= 2 and space.cost(graph) == space.cost(graph.pruned())
    paper = make_space(8.0)
    assert {g.sink.model for g in drive(build(method, paper, 0, **OPTIONS[method]), paper, 12)} == {SINK}


@settings(max_examples=60, deadline=None)
@given(units=st.floats(5.3, 14), seed=st.integers(0, 1000), bits=st.integers(0, 2**64 - 1))
def test_bayes_repairs_every_assignment_into_a_feasible_graph_that_maps_back(units, seed, bits):
    space = make_space(units, extended=bool(bits & 1))
    opt = Bayes(MethodContext(space=space, seed=seed))
    rng = np.random.default_rng(bits)
    params = {name: rng.choice(d.choices).item() for name, d in opt.distributions.items()}
    graph = opt.graph_of(params)
    assert_valid(graph, space, strict=True, sink=None)
    assert graph.sink.role == "vote" if params.get("sink") == "vote" else graph.sink.model == params.get("sink", SINK)
    assert Counter(n.model for n in graph.workers) <= Counter(opt.multiset)
    again = opt.graph_of(opt.params_of(graph))
    assert again == graph


def test_bayes_drops_edges_that_break_the_budget():
    space = make_space(8.0)
    opt = Bayes(MethodContext(space=space, seed=0), multiset=["qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b"])
    everything = opt.graph_of(dict.fromkeys(opt.distributions, 1))
    full = CollaborationGraph(
        nodes=(Node("n0", "assistant", MODELS[2]), Node("n1", "fuser", MODELS[2]), Node("sink", "decider", SINK)),
        edges=(("n0", "n1"), ("n0", "sink"), ("n1", "sink")),
    )
    assert not space.feasible(full)  # all three edges do not fit next to the sink ...
    assert space.feasible(everything)  # ... so the repair dropped one
    assert set(everything.edges) < set(full.edges)
    assert ("n1", "sink") in everything.edges  # nearest the sink first


# ---- (c) state_dict round trip


@pytest.mark.parametrize("extended", [False, True])
@pytest.mark.parametrize("method", ALL)
def test_resuming_from_the_state_dict_continues_the_run(method, extended):
    space = make_space(extended=extended)
    uninterrupted = drive(build(method, space, 3, **OPTIONS[method]), space, ROUNDS)

    first = build(method, space, 3, **OPTIONS[method])
    head = drive(first, space, ROUNDS // 2)
    state = json_round_trip(first.state_dict())
    second = build(method, space, 3, **OPTIONS[method])
    second.load_state_dict(state)
    assert json_round_trip(second.state_dict()) == state
    tail = drive(second, space, ROUNDS - ROUNDS // 2, start=ROUNDS // 2)

    assert len(head) + len(tail) == ROUNDS
    assert fingerprints(head + tail) == fingerprints(uninterrupted)
    if method == "bayes":
        observed = second.state_dict()["observations"]
        assert len(observed) == ROUNDS and observed[: ROUNDS // 2] == state["observations"]
        complete = second.study.get_trials(states=(TrialState.COMPLETE,))
        assert [t.params for t in complete] == [o["params"] for o in observed]
        assert [t.value for t in complete] == [o["value"] for o in observed]


def test_bayes_resumed_from_a_different_seed_state_keeps_the_saved_multiset():
    space = make_space()
    first = build("bayes", space, 0)
    drive(first, space, 2)
    second = build("bayes", space, 1)
    assert second.multiset != first.multiset
    second.load_state_dict(json_round_trip(first.state_dict()))
    assert second.multiset == first.multiset
    for graph in drive(second, space, 2, start=2):
        assert Counter(n.model for n in graph.workers) <= Counter(first.multiset)


# ---- (d) observe a graph other than the one proposed


@pytest.mark.parametrize("method", ["reinforce", "bayes"])
def test_resume_after_a_crash_between_record_and_save(method):
    """The loop's resume case: round k was evaluated and recorded, the state after observe was not saved."""
    space = make_space()
    evaluator = make_evaluator(space)
    opt = build(method, space, 5, **OPTIONS[method])
    drive(opt, space, 4)
    state = json_round_trip(opt.state_dict())
    recorded_graph = asyncio.run(opt.propose())
    recorded = asyncio.run(evaluation(evaluator, recorded_graph, 4, space))
    # the process dies here; a fresh optimizer resumes from the last saved state
    resumed = build(method, space, 5, **OPTIONS[method])
    resumed.load_state_dict(state)
    asyncio.run(resumed.propose())
    asyncio.run(resumed.observe(recorded_graph, recorded))
    after = json_round_trip(resumed.state_dict())
    assert after != state
    for graph in drive(resumed, space, 3, start=5):
        assert_valid(graph, space)
    if method == "bayes":
        assert after["observations"][-1]["value"] == recorded.score
        assert resumed.graph_of(after["observations"][-1]["params"]) == recorded_graph


def test_reinforce_learns_from_the_observed_graph_not_the_proposed_one():
    space = make_space()
    evaluator = make_evaluator(space)
    other = asyncio.run(build("random", space, 99).propose())
    ev = asyncio.run(evaluation(evaluator, other, 0, space))

    proposed_first = build("reinforce", space, 0, baseline="none")  # the first EMA advantage would be 0
    proposed = asyncio.run(proposed_first.propose())
    assert proposed.fingerprint() != other.fingerprint()
    asyncio.run(proposed_first.observe(other, ev))
    cold = build("reinforce", space, 0, baseline="none")
    asyncio.run(cold.observe(other, ev))  # no proposal at all

    learned, initial = proposed_first.state_dict()["logits"], build("reinforce", space, 0).state_dict()["logits"]
    assert learned != initial
    assert learned == cold.state_dict()["logits"]


def test_bayes_observes_a_graph_it_did_not_propose():
    space = make_space()
    evaluator = make_evaluator(space)
    opt = build("bayes", space, 0, n_startup_trials=3)
    drive(opt, space, 3)
    proposed = asyncio.run(opt.propose())
    last = len(opt.multiset) - 1
    choices = [  # the last worker alone; a chain of the last two; everyone feeding the sink (budget permitting)
        {f"edge_{last}_sink"},
        {f"edge_{last - 1}_{last}", f"edge_{last}_sink"},
        {name for name in opt.distributions if name.endswith("_sink")},
    ]
    graphs = [opt.graph_of({name: int(name in ones) for name in opt.distributions}) for ones in choices]
    other = next(g for g in graphs if g.fingerprint() != proposed.fingerprint())
    params = opt.params_of(other)
    assert opt.graph_of(params) == other
    ev = asyncio.run(evaluation(evaluator, other, 3, space))
    asyncio.run(opt.observe(other, ev))

    trials = opt.study.get_trials()
    assert [t.state for t in trials[-2:]] == [TrialState.FAIL, TrialState.COMPLETE]  # the pending one, the added
    assert trials[-1].params == params and trials[-1].value == ev.score
    assert opt.state_dict()["observations"][-1] == {"params": params, "value": ev.score}
    assert len(opt.state_dict()["observations"]) == 4
    for graph in drive(opt, space, 2, start=4):
        assert_valid(graph, space, strict=True)


def test_bayes_rejects_a_graph_outside_its_layout():
    space = make_space()
    opt = build("bayes", space, 0, multiset=["gemma3-270m", "smollm2-135m"])
    ev = asyncio.run(evaluation(make_evaluator(space), shapes.single(SINK), 0, space))
    wrong_model = shapes.parallel(["gemma3-270m", "gemma3-270m"], sink_model=SINK)  # n0 must run smollm2
    backwards = CollaborationGraph(
        nodes=(
            Node("n0", "assistant", "smollm2-135m"),
            Node("n1", "assistant", "gemma3-270m"),
            Node("sink", "decider", SINK),
        ),
        edges=(("n1", "n0"), ("n0", "sink")),
    )
    for graph in (wrong_model, backwards, shapes.single(SINK), shapes.single(MODELS[0])):
        with pytest.raises(ValueError):
            asyncio.run(opt.observe(graph, ev))
    assert opt.state_dict()["observations"] == []


# ---- (e) the bayes model multiset


def test_bayes_honours_a_given_multiset():
    space = make_space(12.0)
    multiset = ["smollm2-135m", "gemma3-270m", "smollm2-135m"]
    opt = build("bayes", space, 4, multiset=multiset, n_startup_trials=3)
    assert opt.multiset == ("smollm2-135m", "smollm2-135m", "gemma3-270m")  # smallest model first
    graphs = drive(opt, space, 8)
    for graph in graphs:
        assert Counter(n.model for n in graph.workers) <= Counter(multiset)
        for node in graph.workers:
            assert node.model == opt.multiset[int(node.id[1:])]
    assert any(Counter(n.model for n in g.workers) == Counter(multiset) for g in graphs)


@pytest.mark.parametrize(
    ("multiset", "message"),
    [
        (["qwen2.5-coder-0.5b"] * 4, "over the budget"),  # 4 + 4.9 sink units > 8
        (["qwen2.5-7b"], "outside the search space"),
        ([], "at least one"),
        (["smollm2-135m"] * 9, "max_nodes"),
    ],
)
def test_bayes_rejects_a_bad_multiset(multiset, message):
    with pytest.raises(ValueError, match=message):
        build("bayes", make_space(8.0), 0, multiset=multiset)


def test_bayes_picks_the_budget_maximal_multiset_from_the_seed():
    space = make_space(8.0)
    specs = [space.catalog.get(m) for m in MODELS]
    found = maximal_multisets(specs, space.catalog.get(SINK), space.budget, space.lengths, space.max_nodes)
    assert len(found) > 2 and space.multisets() == found
    for seed in (0, 1, len(found) + 1):
        assert Counter(build("bayes", space, seed).multiset) == Counter(found[seed % len(found)])
    with pytest.raises(ValueError, match="affords no worker"):
        build("bayes", make_space(5.0), 0)  # the sink alone: nothing to search


# ---- (f) grid


def test_grid_proposes_the_standard_shapes_then_stops():
    space = make_space(8.0)
    opt = GridSearch(MethodContext(space=space, seed=0))
    graphs = drive(opt, space, 1000)
    assert asyncio.run(opt.propose()) is None and asyncio.run(opt.propose()) is None

    expected = set()
    for model in (*MODELS, SINK):
        builders = [
            lambda n, m=model: shapes.parallel(m, n),
            lambda n, m=model: shapes.chain(m, n),
            lambda n, m=model: shapes.fused(m, n + 1),
            *[lambda d, m=model, w=w: shapes.layered(m, w, d + 1) for w in range(2, 9)],
        ]
        candidates = [shapes.single(model), *(b(n) for b in builders for n in range(1, 9))]
        expected |= {g.fingerprint() for g in candidates if len(g.workers) <= 8 and space.feasible(g)}
    assert sorted(fingerprints(graphs)) == sorted(expected)  # each fitting shape exactly once
    assert graphs[0] == shapes.single(MODELS[0])  # smallest model first
    for graph in graphs:
        assert_valid(graph, space, strict=True, sink=None)  # a grid shape runs one model throughout


def test_grid_resumed_at_its_end_proposes_nothing():
    space = make_space(8.0)
    opt = GridSearch(MethodContext(space=space, seed=0))
    opt.load_state_dict({"next": len(opt.candidates)})
    assert asyncio.run(opt.propose()) is None


def test_grid_in_the_extended_space_adds_self_consistency():
    paper, extended = make_space(8.0), make_space(8.0, extended=True)
    grid = {g.fingerprint() for g in drive(GridSearch(MethodContext(space=extended, seed=0)), extended, 1000)}
    before = {g.fingerprint() for g in drive(GridSearch(MethodContext(space=paper, seed=0)), paper, 1000)}
    added = grid - before
    votes = {
        shapes.self_consistency(m, k).fingerprint()
        for m in (*MODELS, SINK)
        for k in range(2, 9)
        if extended.feasible(shapes.self_consistency(m, k))
    }
    assert added == votes and shapes.self_consistency(MODELS[0], 8).fingerprint() in added

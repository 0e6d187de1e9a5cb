import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from langtts.cost import Budget, ModelCatalog, ModelSpec, TaskLengths, feasible, graph_cost, node_flops, unit_flops
from langtts.graph import CollaborationGraph, Node
from langtts.space import VOTE, ProbabilisticGraph, SinkOption, worker_id, worker_index

MMLU = TaskLengths(input_tokens=213, output_tokens=215)
SPECS = [
    ModelSpec(id="small", params=1e9, layers=16, hidden=2048),
    ModelSpec(id="medium", params=3e9, layers=28, hidden=3072),
    ModelSpec(id="large", params=8e9, layers=32, hidden=4096),
]
CATALOG = ModelCatalog(SPECS)
UNIT = unit_flops(SPECS[0], MMLU)


def space(units: float = 18, **kwargs) -> ProbabilisticGraph:
    budget = Budget.from_units(units, SPECS[0], MMLU)
    return ProbabilisticGraph.for_budget(["small", "medium", "large"], "medium", budget, MMLU, CATALOG, **kwargs)


def random_logits(pg: ProbabilisticGraph, seed: int) -> ProbabilisticGraph:
    rng = np.random.default_rng(seed)
    pg.edge_logits = rng.normal(0, 2, pg.edge_logits.shape)
    pg.role_logits = rng.normal(0, 2, pg.role_logits.shape)
    pg.model_logits = rng.normal(0, 2, pg.model_logits.shape)
    return pg


def test_n_nodes_is_what_the_budget_affords_capped():
    sink = node_flops(SPECS[1], 1, MMLU)  # the 3B sink with one input: about 4.5 units
    for units in (6, 9, 12.5):
        assert space(units).n_nodes == int((units * UNIT - sink) // UNIT)
    assert space(18).n_nodes == 8
    assert space(18, max_nodes=12).n_nodes == 12
    with pytest.raises(ValueError, match="affords no worker"):
        space(5)


def test_initial_edges_are_sparse():
    pg = space()
    assert pg.edge_probability(0, 1) == pytest.approx(1 / (1 + math.exp(2)))
    assert pg.edge_probability(0, 1) == pytest.approx(0.119, abs=1e-3)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), units=st.floats(5.6, 60), logit_seed=st.integers(0, 1000))
def test_every_sample_is_a_valid_dag_within_budget(seed, units, logit_seed):
    pg = random_logits(space(units), logit_seed)
    sample = pg.sample(seed)
    graph = sample.graph
    assert isinstance(graph, CollaborationGraph)  # construction validated DAG and role rules
    assert graph.predecessors("sink")
    assert feasible(graph, Budget.from_flops(pg.budget_flops), CATALOG, MMLU)
    full_cost = sum(
        graph_cost(graph, CATALOG, MMLU).per_node.values()
    )  # pruned cost; the sampler also bounds the unpruned one
    assert full_cost <= pg.budget_flops * (1 + 1e-9)
    assert math.isfinite(pg.log_prob(sample))


def test_a_forced_sink_input_keeps_the_sample_within_budget():
    pg = random_logits(space(9.0), 110)  # no draw of 50 feeds the sink; n0 -> n2 -> sink would break the budget
    sample = pg.sample(128236)
    assert sample.forced_edges == ((0, pg.n_nodes),)  # n0 has no inputs: it fits
    assert feasible(sample.graph, Budget.from_flops(pg.budget_flops), CATALOG, MMLU)


def test_sampling_is_seeded_and_reproducible():
    pg = random_logits(space(30), 1)
    first = [pg.sample(seed).graph for seed in range(20)]
    again = [pg.sample(seed).graph for seed in range(20)]
    assert first == again
    assert len({g.fingerprint() for g in first}) > 5


def test_budget_drops_nodes_and_skips_costly_edges():
    pg = space(8)
    pg.edge_logits[:] = 50.0  # every draw would include its edge
    for seed in range(30):
        sample = pg.sample(seed)
        assert feasible(sample.graph, Budget.from_flops(pg.budget_flops), CATALOG, MMLU)
        assert len(sample.edges) < pg.n_nodes * (pg.n_nodes + 1)  # cycles and over-budget edges were skipped


def test_high_sink_logit_always_feeds_the_sink():
    pg = space(200)  # room for every edge into the sink
    pg.edge_logits[:, -1] = 30.0
    sample = pg.sample(3)
    assert set(sample.graph.predecessors("sink")) == {n.id for n in sample.graph.workers}


def test_model_logits_steer_the_mix():
    pg = space(30)
    pg.model_logits[:, 0] = 20.0  # "small" everywhere it is affordable
    models = [n.model for n in pg.sample(0).graph.workers]
    assert models and set(models) == {"small"}


def _finite_difference(pg: ProbabilisticGraph, sample, table: str, eps: float = 1e-6) -> np.ndarray:
    array = getattr(pg, table)
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        old = array[index]
        array[index] = old + eps
        up = pg.log_prob(sample)
        array[index] = old - eps
        down = pg.log_prob(sample)
        array[index] = old
        grad[index] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_gradient_matches_finite_differences(seed):
    pg = random_logits(space(40), seed)
    sample = pg.sample(seed)
    analytic = pg.grad_log_prob(sample)
    for table, grad in (
        ("edge_logits", analytic.edge),
        ("role_logits", analytic.role),
        ("model_logits", analytic.model),
    ):
        np.testing.assert_allclose(grad, _finite_difference(pg, sample, table), atol=1e-5)


def test_reinforce_step_raises_probability_of_a_rewarded_graph():
    pg = random_logits(space(30), 5)
    sample = pg.sample(7)
    before = pg.log_prob(sample)
    grads = pg.grad_log_prob(sample)
    pg.edge_logits += 0.1 * grads.edge
    pg.role_logits += 0.1 * grads.role
    pg.model_logits += 0.1 * grads.model
    assert pg.log_prob(sample) > before


def test_explain_scores_a_foreign_graph():
    pg = random_logits(space(30), 2)
    graph = CollaborationGraph(
        nodes=(
            Node(id="n0", role="assistant", model="small"),
            Node(id="n3", role="assistant", model="medium"),
            Node(id="n5", role="fuser", model="small"),
            Node(id="sink", role="decider", model="medium"),
        ),
        edges=(("n0", "n5"), ("n3", "n5"), ("n5", "sink"), ("n3", "sink")),
    )
    sample = pg.explain(graph)
    assert math.isfinite(pg.log_prob(sample))
    assert any(d.fuser for d in sample.roles)
    np.testing.assert_allclose(pg.grad_log_prob(sample).edge, _finite_difference(pg, sample, "edge_logits"), atol=1e-5)


def test_explain_rejects_graphs_outside_the_space():
    pg = space(30)
    wrong_sink = CollaborationGraph(
        nodes=(
            Node(id="n0", role="assistant", model="small"),
            Node(id="sink", role="decider", model="large"),
        ),
        edges=(("n0", "sink"),),
    )
    with pytest.raises(ValueError, match="not one of the sink options"):
        pg.explain(wrong_sink)
    wrong_id = CollaborationGraph(
        nodes=(
            Node(id="x", role="assistant", model="small"),
            Node(id="sink", role="decider", model="medium"),
        ),
        edges=(("x", "sink"),),
    )
    with pytest.raises(ValueError, match="not one of n0"):
        pg.explain(wrong_id)
    over_budget = CollaborationGraph(
        nodes=(
            *(Node(id=f"n{i}", role="assistant", model="large") for i in range(5)),
            Node(id="sink", role="decider", model="medium"),
        ),
        edges=tuple((f"n{i}", "sink") for i in range(5)),
    )
    with pytest.raises(ValueError, match="budget"):
        pg.explain(over_budget)


def test_serialisation_round_trip():
    pg = random_logits(space(25), 9)
    again = ProbabilisticGraph.from_dict(pg.to_dict(), CATALOG)
    np.testing.assert_array_equal(again.edge_logits, pg.edge_logits)
    assert again.sample(4).graph == pg.sample(4).graph


def test_tables_are_readable():
    text = space(10).tables()
    assert "Edge probabilities" in text and "sink" in text and "P(fuser" in text and "small 0.33" in text


def test_bad_parameters_are_clear_errors():
    with pytest.raises(ValueError, match="edge_logits has shape"):
        ProbabilisticGraph(("small",), "medium", 2, 30 * UNIT, MMLU, CATALOG, edge_logits=np.zeros((3, 3)))
    with pytest.raises(KeyError, match="nope"):
        ProbabilisticGraph(("nope",), "medium", 2, 30 * UNIT, MMLU, CATALOG)
    with pytest.raises(ValueError, match="cannot pay for any sink option"):
        ProbabilisticGraph(("small",), "large", 2, 2 * UNIT, MMLU, CATALOG)


def test_worker_index_reads_back_worker_ids_only():
    assert [worker_index(worker_id(i)) for i in (0, 7, 12)] == [0, 7, 12]
    assert [worker_index(x) for x in ("sink", "n", "n01", "n-1", "m3", "n1a", "n²")] == [None] * 7


SINKS = (SinkOption("decider", "medium"), SinkOption("decider", "small"), SinkOption("decider", "large"), VOTE)


def extended(units: float = 18, **kwargs) -> ProbabilisticGraph:
    """The space with every sink option: deciders on the three models and a vote."""
    return space(units, sink_options=SINKS, **kwargs)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), units=st.floats(2.1, 60), logit_seed=st.integers(0, 1000))
def test_samples_with_sink_options_are_valid_and_within_budget(seed, units, logit_seed):
    pg = random_logits(extended(units), logit_seed)
    pg.sink_logits = np.random.default_rng(logit_seed).normal(0, 2, len(SINKS))
    sample = pg.sample(seed)
    graph = sample.graph
    assert SinkOption.of_node(graph.sink) == SINKS[sample.sink.choice]
    assert sample.sink.choice in sample.sink.allowed == pg.affordable_sinks()
    needed = 2 if graph.sink.role == "vote" else 1 if graph.workers else 0  # a decider alone: the single model
    assert len(graph.predecessors("sink")) >= needed
    assert feasible(graph, Budget.from_flops(pg.budget_flops), CATALOG, MMLU)
    assert math.isfinite(pg.log_prob(sample))


def test_every_sink_option_is_sampled_and_a_vote_costs_nothing():
    pg = extended(18)
    sinks = [pg.sample(seed).graph.sink for seed in range(200)]
    assert {SinkOption.of_node(n) for n in sinks} == set(SINKS)
    votes = [pg.sample(seed).graph for seed in range(200) if pg.sample(seed).graph.sink.role == "vote"]
    assert graph_cost(votes[0], CATALOG, MMLU).per_node["sink"] == 0


def test_the_budget_decides_which_sinks_may_be_drawn():
    # 2.1 units: two small workers (a vote) or a small decider with one input, but no medium/large decider call
    assert [SINKS[k].label for k in extended(2.1).affordable_sinks()] == ["small", "vote"]
    one_worker = extended(18, max_nodes=1)
    assert "vote" not in [SINKS[k].label for k in one_worker.affordable_sinks()]
    tight = extended(2.1)
    for seed in range(30):  # the vote's second input is reserved: its first worker is never the large model
        graph = tight.sample(seed).graph
        if graph.sink.role == "vote":
            assert len(graph.predecessors("sink")) == 2 and {n.model for n in graph.workers} == {"small"}


def test_sink_logits_steer_the_sink_and_the_gradient_is_exact():
    pg = extended(30)
    pg.sink_logits[SINKS.index(VOTE)] = 6.0
    assert sum(pg.sample(s).graph.sink.role == "vote" for s in range(40)) >= 35
    for seed in range(4):
        pg = random_logits(extended(40), seed)
        pg.sink_logits = np.random.default_rng(seed).normal(0, 2, len(SINKS))
        sample = pg.sample(seed)
        np.testing.assert_allclose(
            pg.grad_log_prob(sample).sink, _finite_difference(pg, sample, "sink_logits"), atol=1e-5
        )


def test_explain_reads_a_vote_sink_and_other_decider_models():
    pg = random_logits(extended(30), 3)
    for seed in range(30):
        sample = pg.sample(seed)
        again = pg.explain(sample.graph)
        assert again.sink == sample.sink and again.graph == sample.graph
    self_consistency = CollaborationGraph(
        nodes=(*(Node(f"n{i}", "assistant", "small") for i in range(3)), Node("sink", "vote")),
        edges=tuple((f"n{i}", "sink") for i in range(3)),
        sink_id="sink",
    )
    assert pg.sink_options[pg.explain(self_consistency).sink.choice] == VOTE
    with pytest.raises(ValueError, match="not one of the sink options"):
        space(30).explain(self_consistency)  # the paper's fixed sink


def test_sink_options_survive_serialisation_and_old_data_reads_as_the_fixed_sink():
    pg = random_logits(extended(25), 9)
    pg.sink_logits = np.array([0.5, -1.0, 2.0, 1.0])
    again = ProbabilisticGraph.from_dict(pg.to_dict(), CATALOG)
    assert again.sink_options == SINKS
    np.testing.assert_array_equal(again.sink_logits, pg.sink_logits)
    assert [again.sample(s).graph for s in range(5)] == [pg.sample(s).graph for s in range(5)]
    old = {k: v for k, v in space(25).to_dict().items() if k not in ("sink_options", "sink_logits")}
    assert ProbabilisticGraph.from_dict(old, CATALOG).sink_options == (SinkOption("decider", "medium"),)
    assert "Sink probabilities" in again.tables() and "Sink probabilities" not in space(25).tables()


def test_sink_options_are_checked():
    with pytest.raises(ValueError, match="decider sink needs a model"):
        SinkOption("decider")
    with pytest.raises(ValueError, match="duplicate sink options"):
        space(30, sink_options=(VOTE, VOTE))
    assert SinkOption.of("vote") == VOTE and SinkOption.of("small") == SinkOption("decider", "small")

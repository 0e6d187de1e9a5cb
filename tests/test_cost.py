"""The cost model: Theorem 1, the catalog and its sources, budgets, repair, model multisets, latency."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from langtts.cost import (
    TASK_LENGTHS,
    VOTE_TEXT_TOKENS,
    Budget,
    BudgetError,
    ModelCatalog,
    ModelSpec,
    SpeedProfile,
    TaskLengths,
    UnknownModelError,
    by_size,
    call_flops,
    critical_path,
    decode_flops,
    default_catalog,
    estimate_latency,
    feasible,
    fits,
    graph_cost,
    input_flops,
    largest_model,
    maximal_multisets,
    measure_task_lengths,
    multiset_flops,
    node_flops,
    node_latency,
    prefill_flops,
    repair,
    smallest_model,
    task_lengths,
    unit_flops,
    unpruned_flops,
)
from langtts.graph import CollaborationGraph, Node
from langtts.shapes import chain, parallel, self_consistency, self_moa, single

SPEC_1B = ModelSpec(id="1b", params=1e9, layers=16, hidden=2048)
SPEC_3B = ModelSpec(id="3b", params=3e9, layers=28, hidden=3072)
SPEC_8B = ModelSpec(id="8b", params=8e9, layers=32, hidden=4096)
MMLU = TaskLengths(input_tokens=213, output_tokens=215)
MATH = TaskLengths(input_tokens=202, output_tokens=275)
HUMANEVAL = TaskLengths(input_tokens=180, output_tokens=115)
CATALOG = ModelCatalog([SPEC_1B, SPEC_3B, SPEC_8B])
SOURCES = Path(__file__).resolve().parents[1] / "langtts" / "data" / "catalog_sources.md"


# --- Theorem 1 ----------------------------------------------------------------------------------------------


def test_one_call_golden_values():
    assert node_flops(SPEC_1B, 0, MMLU) == pytest.approx(8.680e11, rel=1e-3)
    assert node_flops(SPEC_1B, 0, HUMANEVAL) == pytest.approx(5.957e11, rel=1e-3)


def test_input_flops_is_what_one_more_input_adds():
    assert input_flops(SPEC_3B, 2, MMLU) == node_flops(SPEC_3B, 3, MMLU) - node_flops(SPEC_3B, 2, MMLU)


def test_formula_by_hand():
    spec = ModelSpec(id="tiny", params=1, layers=1, hidden=1)
    assert prefill_flops(spec, 2) == 2 * 2 + 2 * 2 * 3
    assert decode_flops(spec, 2, 3) == 2 * 3 + 2 * 3 * (2 * 2 + 3 + 1)
    assert call_flops(spec, 2, 3) == 16 + 54


@given(
    params=st.floats(1e6, 1e12),
    layers=st.integers(1, 128),
    hidden=st.integers(64, 16384),
    a=st.floats(1, 4000),
    b=st.floats(1, 4000),
    d=st.integers(0, 30),
)
def test_flops_grow_strictly_with_in_degree(params, layers, hidden, a, b, d):
    spec = ModelSpec(id="m", params=params, layers=layers, hidden=hidden)
    lengths = TaskLengths(input_tokens=a, output_tokens=b)
    assert node_flops(spec, d + 1, lengths) > node_flops(spec, d, lengths)


@pytest.mark.parametrize("d", [0, 1, 3, 7])
def test_call_flops_matches_node_flops(d):
    prompt = MATH.input_tokens + d * MATH.output_tokens
    assert call_flops(SPEC_3B, prompt, MATH.output_tokens) == node_flops(SPEC_3B, d, MATH)


def test_negative_in_degree_rejected():
    with pytest.raises(ValueError):
        node_flops(SPEC_1B, -1, MMLU)


# --- task lengths -------------------------------------------------------------------------------------------


def test_task_length_presets():
    assert task_lengths("math") == MATH
    assert task_lengths("MMLU") == MMLU
    assert task_lengths("humaneval") == HUMANEVAL
    assert set(TASK_LENGTHS) == {"math", "mmlu", "humaneval"}


def test_unknown_task_points_to_measuring():
    with pytest.raises(KeyError, match="measure_task_lengths"):
        task_lengths("gsm8k")


def test_measure_task_lengths():
    assert measure_task_lengths([(100, 10), (300, 30)]) == TaskLengths(input_tokens=200, output_tokens=20)
    with pytest.raises(ValueError):
        measure_task_lengths([])


# --- catalog ------------------------------------------------------------------------------------------------

BUILTIN_IDS = {
    "llama-3.2-1b",
    "llama-3.2-3b",
    "llama-3.1-8b",
    "llama-3.1-70b",
    "gemma-3-1b",
    "gemma-2b",
    "gemma-7b",
    "smollm2-135m",
    "gemma3-270m",
    "qwen2.5-coder-0.5b",
    "qwen2.5-coder-1.5b",
    "qwen2.5-7b",
    "qwen2.5-14b",
    "qwen2.5-32b",
    "qwen2.5-72b",
}


def test_catalog_lookup_and_errors():
    catalog = default_catalog()
    assert set(catalog.ids()) == BUILTIN_IDS
    assert catalog.get("llama-3.1-8b").layers == 32
    assert catalog.get("gemma3-270m").weak
    with pytest.raises(UnknownModelError) as info:
        catalog.get("gpt-5")
    assert isinstance(info.value, KeyError)
    assert "gpt-5" in str(info.value) and "llama-3.2-1b" in str(info.value)


def test_catalog_register_and_merge():
    catalog = default_catalog()
    catalog.register(SPEC_1B)
    assert "1b" in catalog and "1b" not in default_catalog()
    override = ModelCatalog([ModelSpec(id="llama-3.2-1b", params=1e9, layers=16, hidden=2048)])
    merged = default_catalog().merged(override)
    assert merged.get("llama-3.2-1b").params == 1e9
    assert len(merged) == len(BUILTIN_IDS)
    assert SPEC_1B.display_name == "1b"


def test_catalog_from_user_files(tmp_path):
    entry = {"params": 2e9, "layers": 20, "hidden": 2560, "family": "mine"}
    listed = tmp_path / "specs.yaml"
    listed.write_text(yaml.safe_dump([{"id": "my-2b", **entry}]))
    mapped = tmp_path / "specs.json"
    mapped.write_text(json.dumps({"my-2b": entry}))
    for path in (listed, mapped):
        spec = ModelCatalog.from_file(path).get("my-2b")
        assert (spec.params, spec.layers, spec.hidden, spec.family) == (2e9, 20, 2560, "mine")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"a": {"id": "b", **entry}}))
    with pytest.raises(ValueError, match="does not match"):
        ModelCatalog.from_file(bad)


def _source_rows() -> dict[str, dict[str, str]]:
    lines = [line for line in SOURCES.read_text(encoding="utf-8").splitlines() if line.startswith("| `")]
    header = ("id", "repo", "layers", "hidden", "intermediate", "heads", "kv_heads", "head_dim", "vocab")
    header += ("tied", "extra", "total", "M")
    rows = {}
    for line in lines:
        cells = [c.strip().strip("`") for c in line.strip("|").split("|")]
        row = dict(zip(header, cells, strict=True))
        rows[row["id"]] = row
    return rows


def test_catalog_matches_sources_file():
    rows = _source_rows()
    catalog = default_catalog()
    assert set(rows) == BUILTIN_IDS
    for model_id, row in rows.items():
        spec = catalog.get(model_id)
        assert spec.layers == int(row["layers"]), model_id
        assert spec.hidden == int(row["hidden"]), model_id
        assert spec.vocab_size == int(row["vocab"]), model_id
        assert spec.tied_embeddings == (row["tied"] == "yes"), model_id
        assert spec.total_params == int(row["total"]), model_id
        assert spec.params == int(row["M"]), model_id


def test_sources_totals_follow_from_the_configs():
    for model_id, row in _source_rows().items():
        h, layers, inter = int(row["hidden"]), int(row["layers"]), int(row["intermediate"])
        q_width = int(row["heads"]) * int(row["head_dim"])
        kv_width = int(row["kv_heads"]) * int(row["head_dim"])
        per_layer = 2 * h * q_width + 2 * h * kv_width + 3 * h * inter + int(row["extra"])
        embedding = int(row["vocab"]) * h
        tied = row["tied"] == "yes"
        total = layers * per_layer + h + embedding * (1 if tied else 2)
        assert total == int(row["total"]), model_id
        assert int(row["M"]) == total - (0 if tied else embedding), model_id


def test_m_excludes_the_input_embedding_only_when_untied():
    for spec in (default_catalog().get(i) for i in BUILTIN_IDS):
        assert spec.total_params is not None and spec.vocab_size is not None
        if spec.tied_embeddings:
            assert spec.params == spec.total_params
        else:
            assert spec.params == spec.total_params - spec.vocab_size * spec.hidden < spec.total_params


# --- budgets and multisets ----------------------------------------------------------------------------------


def test_budget_constructors():
    budget = Budget.from_units(18, SPEC_1B, MMLU)
    assert budget.flops == pytest.approx(18 * unit_flops(SPEC_1B, MMLU))
    assert (budget.units, budget.unit_model) == (18, "1b")
    raw = Budget.from_flops(1e13)
    assert (raw.flops, raw.units, raw.unit_model) == (1e13, None, None)


def test_multiset_flops_floor():
    assert multiset_flops([], SPEC_3B, MMLU) == node_flops(SPEC_3B, 0, MMLU)
    expected = 2 * node_flops(SPEC_1B, 0, MMLU) + node_flops(SPEC_3B, 1, MMLU)
    assert multiset_flops([SPEC_1B, SPEC_1B], SPEC_3B, MMLU) == expected


def _brute_force_maximal(candidates, sink, budget, lengths, max_nodes):
    def fits(ids):
        return multiset_flops([by_id[i] for i in ids], sink, lengths) <= budget

    by_id = {s.id: s for s in candidates}
    fitting = {
        ids
        for k in range(max_nodes + 1)
        for ids in itertools.combinations_with_replacement(sorted(by_id), k)
        if fits(ids)
    }
    return {
        ids for ids in fitting if len(ids) == max_nodes or not any(tuple(sorted((*ids, c))) in fitting for c in by_id)
    }


@pytest.mark.parametrize("units", [5, 9, 18, 30])
def test_maximal_multisets_match_brute_force(units):
    candidates = [SPEC_1B, SPEC_3B, SPEC_8B]
    budget = Budget.from_units(units, SPEC_1B, MATH).flops
    found = maximal_multisets(candidates, SPEC_3B, Budget.from_flops(budget), MATH, max_nodes=5)
    assert len(found) == len(set(found))
    assert set(found) == _brute_force_maximal(candidates, SPEC_3B, budget, MATH, 5)
    by_id = {s.id: s for s in candidates}
    for ids in found:
        assert list(ids) == sorted(ids)
        assert multiset_flops([by_id[i] for i in ids], SPEC_3B, MATH) <= budget
    costs = [multiset_flops([by_id[i] for i in ids], SPEC_3B, MATH) for ids in found]
    assert costs == sorted(costs, reverse=True)


def test_maximal_multisets_edges():
    sink_only = node_flops(SPEC_3B, 0, MMLU)
    assert maximal_multisets([SPEC_1B], SPEC_3B, Budget.from_flops(sink_only * 0.5), MMLU) == []
    assert maximal_multisets([SPEC_1B], SPEC_3B, Budget.from_flops(sink_only), MMLU) == [()]
    assert maximal_multisets([SPEC_1B], SPEC_3B, Budget.from_flops(1e30), MMLU, max_nodes=3) == [("1b", "1b", "1b")]


# --- graph costs ------------------------------------------------------------------------------------------


def _graph(nodes: list[tuple[str, str, str]], edges: list[tuple[str, str]]) -> CollaborationGraph:
    return CollaborationGraph(nodes=tuple(Node(*n) for n in nodes), edges=tuple(edges))


def _complete_dag(k: int = 4) -> CollaborationGraph:
    """k 1B assistants, node j fed by every earlier one, all feeding a 3B sink."""
    nodes = [(f"a{i}", "assistant", "1b") for i in range(k)] + [("sink", "decider", "3b")]
    edges = [(f"a{i}", f"a{j}") for j in range(k) for i in range(j)] + [(f"a{i}", "sink") for i in range(k)]
    return _graph(nodes, edges)


@pytest.mark.parametrize(("lengths", "units"), [(MMLU, 16.34), (MATH, 17.79)])
def test_complete_dag_golden_units(lengths, units):
    cost = graph_cost(_complete_dag(), CATALOG, lengths, unit_model="1b")
    assert cost.units == pytest.approx(units, abs=0.005)
    assert cost.unit_model == "1b" and cost.unit_flops == unit_flops(SPEC_1B, lengths)
    assert cost.flops == pytest.approx(sum(cost.per_node.values()))
    assert cost.per_node["sink"] == node_flops(SPEC_3B, 4, lengths)
    assert graph_cost(_complete_dag(), CATALOG, lengths) == cost  # default unit: the smallest model


def test_unpruned_flops_count_nodes_that_do_not_run():
    graph = _graph(
        [("a", "assistant", "1b"), ("lost", "assistant", "8b"), ("sink", "decider", "3b")],
        [("a", "sink"), ("a", "lost")],
    )
    lost = node_flops(SPEC_8B, 1, MMLU)
    assert unpruned_flops(graph, CATALOG, MMLU) == pytest.approx(graph_cost(graph, CATALOG, MMLU).flops + lost)


def test_models_by_size_tie_by_id():
    catalog = ModelCatalog([SPEC_1B, SPEC_3B, SPEC_3B.model_copy(update={"id": "3a"})])
    assert by_size(["3b", "1b", "", "3a", "1b"], catalog) == ["1b", "1b", "3a", "3b"]
    assert by_size(["3b", "1b", "3a"], catalog, largest_first=True) == ["3a", "3b", "1b"]
    assert (smallest_model(["3b", "1b", ""], catalog), largest_model(["3b", "1b", "3a"], catalog)) == ("1b", "3a")


def test_graph_cost_counts_only_nodes_that_run():
    base = parallel(["1b", "1b"], sink_model="3b")
    dead = _graph([*((n.id, n.role, n.model) for n in base.nodes), ("idle", "assistant", "8b")], list(base.edges))
    cost = graph_cost(dead, CATALOG, MMLU, unit_model="1b")
    assert "idle" not in cost.per_node
    assert cost.flops == graph_cost(base, CATALOG, MMLU).flops
    assert graph_cost(single("3b"), CATALOG, MMLU).units == 1.0


def test_a_vote_costs_nothing_and_adds_a_short_line_to_its_successors():
    sc = self_consistency("1b", 5)
    cost = graph_cost(sc, CATALOG, MMLU)
    assert cost.per_node == {**{f"n{i}": node_flops(SPEC_1B, 0, MMLU) for i in range(5)}, "sink": 0.0}
    assert cost.units == 5.0 and cost.unit_model == "1b"
    judged = CollaborationGraph(
        nodes=(*sc.workers, Node("v", "vote"), Node("sink", "decider", "3b")),
        edges=(*((f"n{i}", "v") for i in range(5)), ("v", "sink"), ("n0", "sink")),
    )
    per_node = graph_cost(judged, CATALOG, MMLU).per_node
    assert per_node["v"] == 0.0
    # the decider reads one answer (B tokens) and one vote line (VOTE_TEXT_TOKENS), not two answers
    prompt = MMLU.input_tokens + MMLU.output_tokens + VOTE_TEXT_TOKENS
    assert per_node["sink"] == call_flops(SPEC_3B, prompt, MMLU.output_tokens)
    assert per_node["sink"] == node_flops(SPEC_3B, 1, MMLU, vote_inputs=1) < node_flops(SPEC_3B, 2, MMLU)
    moa = graph_cost(self_moa("1b", 3), CATALOG, MMLU)
    assert moa.flops == 3 * node_flops(SPEC_1B, 0, MMLU) + node_flops(SPEC_1B, 3, MMLU)


def test_repair_keeps_votes_at_two_inputs_or_more():
    sc = self_consistency("1b", 4)
    one = node_flops(SPEC_1B, 0, MMLU)
    fixed = repair(sc, Budget.from_flops(2.5 * one), CATALOG, MMLU)
    assert fixed == CollaborationGraph(
        nodes=(*sc.workers[2:], Node("sink", "vote")), edges=(("n2", "sink"), ("n3", "sink")), sink_id="sink"
    )
    with pytest.raises(BudgetError, match="below the cost of any graph that keeps its votes"):
        repair(sc, Budget.from_flops(1.5 * one), CATALOG, MMLU)


def test_fits_allows_float_rounding_only():
    assert fits(1e15 * (1 + 1e-12), 1e15)
    assert not fits(1e15 * (1 + 1e-6), 1e15)


def test_feasible():
    graph = parallel(["1b"] * 3, sink_model="3b")
    flops = graph_cost(graph, CATALOG, MMLU).flops
    assert feasible(graph, Budget.from_flops(flops), CATALOG, MMLU)
    assert not feasible(graph, Budget.from_flops(flops * 0.999), CATALOG, MMLU)


def test_repair_keeps_a_feasible_graph():
    graph = _complete_dag()
    assert repair(graph, Budget.from_units(20, SPEC_1B, MMLU), CATALOG, MMLU) is graph


@pytest.mark.parametrize("units", [4, 6, 9, 12, 15, 20])
def test_repair_deletes_smallest_models_first(units):
    graph = parallel(["1b", "8b", "1b", "3b", "1b"], sink_model="3b")
    budget = Budget.from_units(units, SPEC_1B, MATH)
    fixed = repair(graph, budget, CATALOG, MATH)
    assert feasible(fixed, budget, CATALOG, MATH)
    assert fixed.sink == graph.sink
    kept = {n.id for n in fixed.workers}
    deleted = [n for n in graph.workers if n.id not in kept]
    if deleted and kept:
        assert max(CATALOG.get(n.model).params for n in deleted) <= min(
            CATALOG.get(n.model).params for n in fixed.workers
        )
    ones = [n.id for n in graph.workers if n.model == "1b"]
    assert [i for i in ones if i not in kept] == ones[: len([i for i in ones if i not in kept])]  # ties: by id


def test_repair_order_and_role_fix():
    graph = _graph(
        [("a", "assistant", "1b"), ("f", "fuser", "3b"), ("b", "assistant", "8b"), ("sink", "decider", "3b")],
        [("a", "f"), ("f", "sink"), ("b", "sink")],
    )
    full = graph_cost(graph, CATALOG, MMLU).flops
    fixed = repair(graph, Budget.from_flops(full * 0.999), CATALOG, MMLU)
    assert {n.id: n.role for n in fixed.nodes} == {"f": "assistant", "b": "assistant", "sink": "decider"}
    # ties between equal models: the later node in topological order goes first
    tied = _graph(
        [("a", "assistant", "1b"), ("b", "assistant", "1b"), ("sink", "decider", "3b")],
        [("a", "b"), ("a", "sink"), ("b", "sink")],
    )
    once = repair(tied, Budget.from_flops(graph_cost(tied, CATALOG, MMLU).flops * 0.999), CATALOG, MMLU)
    assert [n.id for n in once.workers] == ["a"]
    # nodes cut off from the sink by a deletion are dropped: n1 goes first, which strands n0
    chained = chain(["1b", "1b"], sink_model="3b")
    cut = repair(chained, Budget.from_flops(graph_cost(chained, CATALOG, MMLU).flops * 0.999), CATALOG, MMLU)
    assert cut == single("3b")


def test_repair_raises_when_the_sink_cannot_fit():
    with pytest.raises(BudgetError, match="sink alone"):
        repair(_complete_dag(), Budget.from_flops(node_flops(SPEC_3B, 0, MMLU) * 0.9), CATALOG, MMLU)
    assert repair(_complete_dag(), Budget.from_flops(node_flops(SPEC_3B, 0, MMLU)), CATALOG, MMLU) == single("3b")


# --- latency ----------------------------------------------------------------------------------------------


PROFILES = {
    "1b": SpeedProfile(prefill_tps=2000, decode_tps=100),
    "3b": SpeedProfile(prefill_tps=800, decode_tps=40),
    "8b": SpeedProfile(prefill_tps=300, decode_tps=15),
}


def test_latency_parallel_vs_chain():
    def t(model: str, d: int) -> float:
        return node_latency(d, MMLU, PROFILES[model])

    wide = estimate_latency(parallel("1b", 3, sink_model="3b"), MMLU, PROFILES)
    deep = estimate_latency(chain("1b", 3, sink_model="3b"), MMLU, PROFILES)
    assert wide == pytest.approx(t("1b", 0) + t("3b", 3))
    assert deep == pytest.approx(t("1b", 0) + 2 * t("1b", 1) + t("3b", 1))
    assert deep > wide


def test_latency_takes_the_critical_path():
    graph = _graph(
        [
            ("big", "assistant", "8b"),
            ("x", "assistant", "1b"),
            ("y", "assistant", "1b"),
            ("sink", "decider", "3b"),
        ],
        [("big", "sink"), ("x", "y"), ("y", "sink")],
    )
    slow = node_latency(0, MMLU, PROFILES["8b"])
    fast = node_latency(0, MMLU, PROFILES["1b"]) + node_latency(1, MMLU, PROFILES["1b"])
    expected = max(slow, fast) + node_latency(2, MMLU, PROFILES["3b"])
    assert estimate_latency(graph, MMLU, PROFILES) == pytest.approx(expected)
    with pytest.raises(KeyError, match="no speed profile"):
        estimate_latency(graph, MMLU, {"1b": PROFILES["1b"]})


def test_critical_path_starts_each_node_when_its_last_input_is_done():
    inputs = {"a": [], "b": [], "c": ["a"], "d": ["b", "c"]}
    finish = critical_path({"a": 1.0, "b": 5.0, "c": 2.0, "d": 0.5}, inputs.__getitem__)
    assert finish == {"a": 1.0, "b": 5.0, "c": 3.0, "d": 5.5}


def test_a_vote_takes_no_time():
    assert estimate_latency(self_consistency("1b", 3), MMLU, PROFILES) == node_latency(0, MMLU, PROFILES["1b"])
    judged = CollaborationGraph(
        nodes=(
            Node("a", "assistant", "1b"),
            Node("b", "assistant", "1b"),
            Node("v", "vote"),
            Node("s", "decider", "3b"),
        ),
        edges=(("a", "v"), ("b", "v"), ("v", "s")),
    )
    expected = node_latency(0, MMLU, PROFILES["1b"]) + node_latency(0, MMLU, PROFILES["3b"], vote_inputs=1)
    assert estimate_latency(judged, MMLU, PROFILES) == pytest.approx(expected)

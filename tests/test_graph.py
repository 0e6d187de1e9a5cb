"""CollaborationGraph: validation errors, reports, derived views, files, Mermaid, model relabelling."""

from __future__ import annotations

from pathlib import Path

import pytest

from langtts.graph import (
    SCHEMA_VERSION,
    CollaborationGraph,
    GraphError,
    Node,
    ValidationReport,
    load_graph,
    reaching,
)
from langtts.shapes import fused, parallel, self_consistency, single

GRAPHS = Path(__file__).resolve().parents[1] / "examples" / "graphs"
VALID = sorted(p for p in GRAPHS.iterdir() if p.is_file())
INVALID = GRAPHS / "invalid"

# file in examples/graphs/invalid -> text the one-line error must contain (naming the culprit)
EXPECTED_ERRORS = {
    "empty.json": "graph has no nodes",
    "duplicate_id.json": "duplicate node id 'a'",
    "blank_id.yaml": "nodes[0]: node id must be a non-blank string, got '  '",
    "unknown_node.json": "edge ghost -> sink refers to unknown node 'ghost'",
    "self_loop.json": "self-loop on node 'a'",
    "duplicate_edge.json": "duplicate edge a -> sink",
    "cycle.yaml": "not a DAG: cycle a -> b -> c -> a",
    "no_sink.json": "graph has no sink",
    "two_sinks.json": "graph has 2 sinks 'sink', 'judge'",
    "sink_out_edge.json": "edge sink -> a leaves the sink 'sink'",
    "fuser_no_assistant.json": "fuser 'merge' has no assistant predecessor",
    "fuser_chain.yaml": "edge f1 -> f2 joins two fusers",
    "no_assistant.json": "graph has no assistant node (workers: 'merge')",
    "sink_unfed.json": "sink 'sink' has no predecessors",
    "bad_schema_version.json": "unsupported schema_version 3",
    "vote_one_input.json": "vote 'v' has 1 input(s); a vote needs at least 2",
    "vote_with_model.json": "nodes[2]: vote 'v' makes no LLM call: it takes no model",
    "vote_chain.json": "edge v1 -> v2 joins two votes",
    "sink_assistant.json": "sink 'a' has role 'assistant'; the sink is a decider or a vote",
    "decider_not_sink.json": "decider 'd' is not the sink 'v'",
    "missing_sink_key.json": "missing key(s) 'sink' in graph",
    "bad_temperature.json": "nodes[0]: node 'sink': temperature must be a number in [0, 2], got 3",
    "bad_role.json": "node 'a' has unknown role 'critic'",
    "missing_key.json": "missing key(s) 'model' in nodes[0]",
    "unknown_key.json": "unknown key(s) 'budget' in graph",
    "bad_edge.json": "edges[0] must be a pair of node ids",
    "wrong_type.yaml": "'edges' must be a list, got str",
    "not_json.json": "invalid JSON",
    "bad_yaml.yaml": "invalid YAML at line 4",
    "not_a_mapping.yaml": "graph must be a mapping",
}


def a(node_id: str, model: str = "m") -> Node:
    return Node(node_id, "assistant", model)


def f(node_id: str, model: str = "m") -> Node:
    return Node(node_id, "fuser", model)


def s(node_id: str = "sink", model: str = "m") -> Node:
    return Node(node_id, "decider", model)


def v(node_id: str = "v") -> Node:
    return Node(node_id, "vote")


def graph(*nodes: Node, edges: str = "", sink: str | None = None) -> CollaborationGraph:
    """Build a graph from nodes and edges written as ``"a>b b>sink"``."""
    return CollaborationGraph(nodes=nodes, edges=tuple(tuple(e.split(">")) for e in edges.split()), sink_id=sink)


def test_every_invalid_file_has_an_expected_error() -> None:
    assert {p.name for p in INVALID.iterdir()} == set(EXPECTED_ERRORS)
    assert len(EXPECTED_ERRORS) >= 8


@pytest.mark.parametrize("name", sorted(EXPECTED_ERRORS))
def test_invalid_file_raises_one_line_error_naming_the_culprit(name: str) -> None:
    path = INVALID / name
    with pytest.raises(GraphError) as err:
        load_graph(path)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert EXPECTED_ERRORS[name] in message


def test_graph_error_is_a_value_error_and_constructor_raises_it() -> None:
    with pytest.raises(ValueError, match=r"fuser 'x' has no assistant predecessor"):
        graph(a("a"), f("x"), s(), edges="a>sink x>sink")
    with pytest.raises(GraphError, match=r"^edges\[0\] must be a pair"):
        CollaborationGraph(nodes=(s(),), edges=("ab",))  # type: ignore[arg-type]
    with pytest.raises(GraphError, match=r"nodes\[0\] must be a Node"):
        CollaborationGraph(nodes=({"id": "sink"},))  # type: ignore[arg-type]
    with pytest.raises(GraphError, match=r"needs a non-blank model id"):
        Node("a", "assistant", " ")
    with pytest.raises(GraphError, match=r"unsupported schema_version True"):
        CollaborationGraph(nodes=(s(),), schema_version=True)


def test_sink_alone_is_valid_and_fuser_may_feed_the_sink() -> None:
    baseline = graph(s())
    assert baseline.workers == () and baseline.layers() == [["sink"]]
    assert (baseline.width, baseline.depth) == (0, 0)
    g = graph(a("a"), f("m"), s(), edges="a>m m>sink a>sink")
    assert g.predecessors("sink") == ("m", "a")
    with pytest.raises(GraphError, match="edge f1 -> f2 joins two fusers"):
        graph(a("a"), f("f1"), f("f2"), s(), edges="a>f1 a>f2 f1>f2 f2>sink")


def test_unreachable_nodes_are_reported_pruned_and_strict_raises() -> None:
    g = graph(a("a"), a("b"), a("lost"), a("lost2"), s(), edges="a>b b>sink lost>lost2")
    report = g.check()
    assert report == ValidationReport(
        unreachable=("lost", "lost2"),
        warnings=(
            "node 'lost' has no path to the sink and will not run",
            "node 'lost2' has no path to the sink and will not run",
        ),
    )
    with pytest.raises(GraphError, match=r"^nodes with no path to the sink: 'lost', 'lost2'$"):
        g.check(strict=True)
    pruned = g.pruned()
    assert [n.id for n in pruned.nodes] == ["a", "b", "sink"] and pruned.edges == (("a", "b"), ("b", "sink"))
    assert pruned.pruned() is pruned and pruned.check(strict=True) == ValidationReport()
    assert g.layers() == [["a"], ["b"], ["sink"]] and (g.width, g.depth) == (1, 2)
    assert reaching("sink", g.edges) == {"a", "b", "sink"} and reaching("lost2", g.edges) == {"lost", "lost2"}


def test_single_input_fuser_gets_a_warning() -> None:
    report = fused("m", n=1).check()
    assert report.unreachable == () and report.warnings == ("fuser 'n1' has a single input: there is nothing to merge",)


def test_unknown_model_id_names_the_node_and_the_known_ids() -> None:
    g = parallel(["q", "smol"], sink_model="q")
    assert g.check({"q", "smol"}) == ValidationReport()
    with pytest.raises(GraphError, match=r"^node 'n1' uses unknown model 'smol' \(known models: gemma, q\)$"):
        g.check(["q", "gemma"])


def test_accessors_and_derived_views() -> None:
    g = graph(
        a("x", "m1"),
        a("y", "m2"),
        f("z", "m2"),
        a("w", "m1"),
        s("out", "m3"),
        edges="x>z y>z x>w z>w z>out w>out",
    )
    assert g.sink == s("out", "m3")
    assert [n.id for n in g.workers] == ["x", "y", "z", "w"]
    assert g.node("z") == f("z", "m2")
    with pytest.raises(KeyError, match="no node 'q' in the graph"):
        g.node("q")
    with pytest.raises(KeyError):
        g.predecessors("q")
    assert g.predecessors("w") == ("x", "z") and g.successors("z") == ("w", "out") and g.successors("out") == ()
    assert g.in_degree("w") == 2
    assert g.in_degrees() == {"x": 0, "y": 0, "z": 2, "w": 2, "out": 2}
    assert g.layers() == [["x", "y"], ["z"], ["w"], ["out"]]
    assert (g.width, g.depth) == (2, 3)
    nxg = g.to_networkx()
    assert list(nxg.nodes) == ["x", "y", "z", "w", "out"] and set(nxg.edges) == set(g.edges)
    assert nxg.nodes["z"] == {"role": "fuser", "model": "m2"} and nxg.nodes["out"]["role"] == "decider"


def test_vote_nodes_make_no_call_need_two_inputs_and_may_be_the_sink_or_feed_a_decider() -> None:
    sc = graph(a("a"), a("b"), a("c"), v("sink"), edges="a>sink b>sink c>sink", sink="sink")
    assert sc.sink == Node("sink", "vote") and [n.id for n in sc.workers] == ["a", "b", "c"]
    assert (sc.width, sc.depth) == (3, 1) and not sc.sink.calls_model
    judged = graph(a("a"), a("b"), v("v"), s(), edges="a>v b>v v>sink a>sink")
    assert judged.sink_id == "sink" and judged.layers() == [["a", "b"], ["v"], ["sink"]] and judged.depth == 2
    assert graph(a("a"), a("b"), v("v"), a("r"), s(), edges="a>v b>v v>r r>sink").depth == 3
    with pytest.raises(GraphError, match=r"^vote 'v' has 1 input\(s\); a vote needs at least 2$"):
        graph(a("a"), v("v"), s(), edges="a>v v>sink")
    with pytest.raises(GraphError, match="graph has no sink"):
        graph(a("a"), a("b"), v("v"), edges="a>v b>v")
    with pytest.raises(GraphError, match=r"vote 'v' makes no LLM call: it takes no model and no temperature"):
        Node("v", "vote", "m")
    with pytest.raises(GraphError, match=r"sink 'x' is not a node of the graph"):
        graph(a("a"), a("b"), v("v"), edges="a>v b>v", sink="x")
    assert sc.check({"m"}) == ValidationReport()  # a vote has no model to check


def test_temperatures_are_per_node_checked_kept_and_fingerprinted() -> None:
    hot = Node("a", "assistant", "m", 0.7)
    assert hot != a("a") and Node("a", "assistant", "m", 0).temperature == 0
    for bad in (-0.1, 2.5, True, "0.7"):
        with pytest.raises(GraphError, match="temperature must be a number in"):
            Node("a", "assistant", "m", bad)  # type: ignore[arg-type]
    g, cold = graph(hot, s(), edges="a>sink"), graph(a("a"), s(), edges="a>sink")
    assert g.fingerprint() != cold.fingerprint()
    assert g.relabel_models({"m": "q"}).node("a") == Node("a", "assistant", "q", 0.7)
    assert CollaborationGraph.from_json(g.to_json()) == g


def test_version_1_files_are_read_and_written_as_version_2() -> None:
    old = (
        '{"schema_version": 1, "nodes": [{"id": "a", "role": "assistant", "model": "m"}, '
        '{"id": "out", "role": "decider", "model": "m"}], "edges": [["a", "out"]]}'
    )
    g = CollaborationGraph.from_json(old)
    assert g == graph(a("a"), s("out"), edges="a>out") and g.sink_id == "out"
    assert g.to_dict() == {
        "schema_version": 2,
        "sink": "out",
        "nodes": [{"id": "a", "role": "assistant", "model": "m"}, {"id": "out", "role": "decider", "model": "m"}],
        "edges": [["a", "out"]],
    }
    with pytest.raises(GraphError, match=r"unknown key\(s\) 'temperature' in nodes\[0\]"):
        CollaborationGraph.from_dict(
            {
                "schema_version": 1,
                "nodes": [{"id": "o", "role": "decider", "model": "m", "temperature": 1}],
                "edges": [],
            }
        )
    # old fingerprints are kept: labels of graphs without votes or temperatures did not change
    assert single("m").fingerprint() == "8d71384bb4b9fdb592c638f692a9b1dfaededaa850ffaf59358953edd3ecd31e"


def test_vote_graph_files_round_trip_and_the_sink_is_fingerprinted() -> None:
    sc = self_consistency("m", 3)
    assert sc.to_dict()["nodes"][-1] == {"id": "sink", "role": "vote"}
    assert CollaborationGraph.from_yaml(sc.to_yaml()) == sc and CollaborationGraph.from_json(sc.to_json()) == sc
    # two symmetric votes: which one is the sink changes what runs, and the fingerprint
    nodes = (a("a0"), a("a1"), a("b0"), a("b1"), v("va"), v("vb"))
    edges = "a0>va a1>va b0>vb b1>vb"
    first, second = graph(*nodes, edges=edges, sink="va"), graph(*nodes, edges=edges, sink="vb")
    assert first.fingerprint() == second.fingerprint()  # isomorphic: swap the a's with the b's
    mixed = graph(
        a("a0"), a("a1"), a("b0"), Node("b1", "assistant", "m", 0.7), v("va"), v("vb"), edges=edges, sink="va"
    )
    assert mixed.fingerprint() != graph(*mixed.nodes, edges=edges, sink="vb").fingerprint()


def test_graph_is_immutable_and_hashable() -> None:
    g = parallel("m", n=2)
    with pytest.raises(AttributeError):
        g.nodes = ()  # type: ignore[misc]
    assert hash(g) == hash(parallel("m", n=2)) and g == parallel("m", n=2)
    assert g.schema_version == SCHEMA_VERSION


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_example_files_round_trip_exactly(path: Path, tmp_path: Path) -> None:
    g = load_graph(path)
    g.save(tmp_path / path.name)
    assert (tmp_path / path.name).read_text() == path.read_text()
    for other in ("g.json", "g.yaml", "g.yml"):
        g.save(tmp_path / other)
        again = load_graph(tmp_path / other)
        assert again == g
        again.save(tmp_path / f"again-{other}")
        assert (tmp_path / f"again-{other}").read_text() == (tmp_path / other).read_text()
    assert CollaborationGraph.from_dict(g.to_dict()) == g
    assert CollaborationGraph.from_json(g.to_json()) == g and CollaborationGraph.from_yaml(g.to_yaml()) == g


def test_example_files_have_the_advertised_shapes() -> None:
    assert (
        load_graph(GRAPHS / "parallel3.json").fingerprint()
        == parallel(
            ["qwen2.5-coder-0.5b", "smollm2-135m", "gemma3-270m"], sink_model="qwen2.5-coder-1.5b"
        ).fingerprint()
    )
    assert (load_graph(GRAPHS / "chain2.yaml").width, load_graph(GRAPHS / "chain2.yaml").depth) == (1, 2)
    assert load_graph(GRAPHS / "layered2x2.json").layers() == [["n0", "n1"], ["n2", "n3"], ["sink"]]
    assert load_graph(GRAPHS / "single.json").depth == 0


def test_save_and_load_reject_unknown_extensions(tmp_path: Path) -> None:
    with pytest.raises(GraphError, match=r"g\.txt: unsupported graph file extension '\.txt'"):
        load_graph(tmp_path / "g.txt")
    with pytest.raises(GraphError, match="unsupported graph file extension"):
        single("m").save(tmp_path / "g.toml")
    (tmp_path / "bad.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(GraphError, match=r"bad\.json: .*utf-8"):
        load_graph(tmp_path / "bad.json")


def test_yaml_needs_quoted_ids_that_yaml_reads_as_other_types() -> None:
    text = "schema_version: 2\nsink: 'no'\nnodes:\n- {id: no, role: decider, model: m}\nedges: []\n"
    with pytest.raises(GraphError, match=r"nodes\[0\]\.id must be a string, got bool"):
        CollaborationGraph.from_yaml(text)
    g = graph(s("no"))
    assert CollaborationGraph.from_yaml(g.to_yaml()) == g


def test_mermaid_shows_roles_models_and_styles() -> None:
    g = CollaborationGraph(
        nodes=(a("n0", "qwen2.5-coder-0.5b"), a("n 1"), f("fz"), a("lost"), s()),
        edges=(("n0", "fz"), ("n 1", "fz"), ("fz", "sink")),
    )
    text = g.to_mermaid()
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    assert '    n0["n0: assistant<br/>qwen2.5-coder-0.5b"]' in lines
    assert '    fz{{"fz: fuser<br/>m"}}' in lines
    assert '    sink(["sink: decider<br/>m"])' in lines
    assert '    _n1["n 1: assistant<br/>m"]' in lines  # unsafe id gets a Mermaid-safe name
    assert "    _n1 --> fz" in lines and "    fz --> sink" in lines
    assert {"    class fz fuser", "    class sink decider", "    class lost pruned"} <= set(lines)
    assert not any("vote" in line for line in lines)  # graphs without votes draw as before
    voted = graph(Node("x", "assistant", "m", 0.7), a("y"), v("v"), s(), edges="x>v y>v v>sink").to_mermaid()
    assert '    x["x: assistant<br/>m<br/>T 0.7"]' in voted and '    v(("v: vote<br/>majority"))' in voted
    assert "    class v vote" in voted.splitlines()
    assert "    class sink votesink" in self_consistency("m", 2).to_mermaid().splitlines()
    assert graph(a("end"), s('s"q'), edges='end>s"q').to_mermaid().count("#quot;") == 1


def test_relabel_models_retargets_the_pool() -> None:
    g = load_graph(GRAPHS / "hybrid.yaml")
    moved = g.relabel_models({"qwen2.5-coder-0.5b": "llama-1b", "qwen2.5-coder-1.5b": "llama-3b", "x": "y"})
    assert [n.model for n in moved.nodes] == [
        "llama-1b",
        "gemma3-270m",
        "llama-3b",
        "llama-1b",
        "smollm2-135m",
        "llama-3b",
    ]
    assert moved.edges == g.edges and moved.sink.model == "llama-3b"
    assert g.relabel_models({}) == g

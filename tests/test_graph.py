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
)
from langtts.shapes import fused, parallel, single

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
    "bad_schema_version.json": "unsupported schema_version 2",
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


def graph(*nodes: Node, edges: str = "") -> CollaborationGraph:
    """Build a graph from nodes and edges written as ``"a>b b>sink"``."""
    return CollaborationGraph(nodes=nodes, edges=tuple(tuple(e.split(">")) for e in edges.split()))


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
    text = "schema_version: 1\nnodes:\n- {id: no, role: decider, model: m}\nedges: []\n"
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

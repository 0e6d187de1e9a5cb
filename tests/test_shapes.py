"""Standard TTS shapes: sizes, roles, models, width/depth and argument errors."""

from __future__ import annotations

import pytest

from langtts.graph import SAMPLE_TEMPERATURE, CollaborationGraph, Node
from langtts.shapes import chain, fused, layered, parallel, self_consistency, self_moa, single


def roles(g: CollaborationGraph) -> list[str]:
    return [n.role for n in g.nodes]


def models(g: CollaborationGraph) -> list[str]:
    return [n.model for n in g.nodes]


def test_single_is_the_sink_alone() -> None:
    g = single("q")
    assert [(n.id, n.role, n.model) for n in g.nodes] == [("sink", "decider", "q")] and g.edges == ()
    assert (g.width, g.depth) == (0, 0)


@pytest.mark.parametrize("n", [1, 2, 5, 16])
def test_parallel(n: int) -> None:
    g = parallel("m", n=n)
    assert [x.id for x in g.nodes] == [*(f"n{i}" for i in range(n)), "sink"]
    assert roles(g) == ["assistant"] * n + ["decider"]
    assert g.edges == tuple((f"n{i}", "sink") for i in range(n))
    assert (g.width, g.depth) == (n, 1)


@pytest.mark.parametrize("d", [1, 2, 4])
def test_chain(d: int) -> None:
    g = chain("m", depth=d)
    assert len(g.nodes) == d + 1 and roles(g) == ["assistant"] * d + ["decider"]
    assert [list(e) for e in g.edges] == [[f"n{i}", f"n{i + 1}"] for i in range(d - 1)] + [[f"n{d - 1}", "sink"]]
    assert (g.width, g.depth) == (1, d)


@pytest.mark.parametrize(("width", "depth"), [(1, 1), (2, 2), (3, 2), (2, 3)])
def test_layered(width: int, depth: int) -> None:
    g = layered("m", width=width, depth=depth)
    assert len(g.nodes) == width * depth + 1 and len(g.edges) == width * width * (depth - 1) + width
    assert (g.width, g.depth) == (width, depth)
    layers = g.layers()
    assert layers[:-1] == [[f"n{layer * width + i}" for i in range(width)] for layer in range(depth)]
    assert layers[-1] == ["sink"]
    assert all(g.in_degree(x) == width for layer in layers[1:] for x in layer)


@pytest.mark.parametrize("n", [1, 3])
def test_fused(n: int) -> None:
    g = fused("m", n=n, sink_model="big")
    assert roles(g) == ["assistant"] * n + ["fuser", "decider"]
    assert models(g) == ["m"] * n + ["big", "big"]
    assert g.predecessors(f"n{n}") == tuple(f"n{i}" for i in range(n)) and g.predecessors("sink") == (f"n{n}",)
    assert (g.width, g.depth) == (n, 2)


def test_per_node_model_lists_and_default_sink_model() -> None:
    assert models(parallel(["a", "b", "c"])) == ["a", "b", "c", "a"]
    assert models(parallel(("a", "b"), n=2, sink_model="z")) == ["a", "b", "z"]
    assert models(chain(["a", "b"], sink_model="z")) == ["a", "b", "z"]
    assert models(layered(["a", "b", "c", "d"], 2, 2)) == ["a", "b", "c", "d", "a"]
    assert models(fused(["a", "b"])) == ["a", "b", "a", "a"]
    assert models(parallel("a", n=2)) == ["a", "a", "a"]


def test_argument_errors() -> None:
    with pytest.raises(ValueError, match="n is required when a single model id is given"):
        parallel("m")
    with pytest.raises(ValueError, match="depth is required"):
        chain("m")
    with pytest.raises(ValueError, match=r"got 2 model ids for n = 3 worker nodes"):
        parallel(["a", "b"], n=3)
    with pytest.raises(ValueError, match=r"got 3 model ids for width \* depth = 4 worker nodes"):
        layered(["a", "b", "c"], 2, 2)
    with pytest.raises(ValueError, match="width and depth must be at least 1"):
        layered("m", 0, 2)
    with pytest.raises(ValueError, match="need at least one worker node"):
        parallel([])
    with pytest.raises(ValueError, match="need at least one worker node"):
        chain("m", depth=0)
    with pytest.raises(ValueError, match="non-blank model id"):
        single("")


def test_self_consistency_samples_one_model_into_a_vote() -> None:
    g = self_consistency("q", 3)
    samples = [Node(f"n{i}", "assistant", "q", SAMPLE_TEMPERATURE) for i in range(3)]
    assert g.nodes == (*samples, Node("sink", "vote")) and g.sink_id == "sink"
    assert g.edges == (("n0", "sink"), ("n1", "sink"), ("n2", "sink")) and (g.width, g.depth) == (3, 1)
    assert SAMPLE_TEMPERATURE == 0.7


def test_self_moa_samples_one_model_into_a_decider_on_it() -> None:
    g = self_moa("q", 4)
    assert roles(g) == ["assistant"] * 4 + ["decider"] and set(models(g)) == {"q"}
    assert [n.temperature for n in g.nodes] == [SAMPLE_TEMPERATURE] * 4 + [None] and (g.width, g.depth) == (4, 1)


@pytest.mark.parametrize("shape", [self_consistency, self_moa])
def test_repeated_sampling_needs_two_samples(shape) -> None:
    with pytest.raises(ValueError, match="k must be at least 2 samples, got 1"):
        shape("q", 1)

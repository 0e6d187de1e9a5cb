"""The fingerprint is an exact canonical form: equal fingerprints <=> labelled isomorphism (per networkx)."""

from __future__ import annotations

import itertools
import random
import time
from collections import defaultdict
from collections.abc import Iterator

import networkx as nx
import pytest

from langtts.graph import CollaborationGraph, GraphError, Node
from langtts.shapes import chain, fused, layered, parallel

WORKER_LABELS = [(role, model) for role in ("assistant", "fuser") for model in ("m1", "m2")]


def node_match(x: dict, y: dict) -> bool:
    return x["role"] == y["role"] and x["model"] == y["model"]


def isomorphic(g: CollaborationGraph, h: CollaborationGraph) -> bool:
    return nx.is_isomorphic(g.to_networkx(), h.to_networkx(), node_match=node_match)


def cheap_invariant(g: CollaborationGraph) -> tuple:
    """An isomorphism invariant computed without the fingerprint code: per-node label and neighbour labels."""
    label = {n.id: (n.role, n.model) for n in g.nodes}
    return tuple(
        sorted(
            (
                label[n.id],
                tuple(sorted(label[p] for p in g.predecessors(n.id))),
                tuple(sorted(label[q] for q in g.successors(n.id))),
            )
            for n in g.nodes
        )
    )


def expected_valid(labels: tuple[tuple[str, str], ...], edges: list[tuple[int, int]]) -> bool:
    """The role rules, restated for a DAG whose nodes are in topological order with the sink last."""
    k = len(labels)
    roles = [r for r, _ in labels]
    preds = defaultdict(list)
    for u, v in edges:
        preds[v].append(u)
        if v < k and roles[u] == roles[v] == "fuser":
            return False
    if k and ("assistant" not in roles or not preds[k]):
        return False
    return all(r != "fuser" or any(roles[p] == "assistant" for p in preds[i]) for i, r in enumerate(roles))


def all_small_graphs() -> Iterator[CollaborationGraph]:
    """Every valid graph up to 5 nodes on labelled nodes: workers ``v0..v{k-1}``, sink ``v{k}`` last, edges
    only forward (every DAG has such an order, and the sink has no successors); sink model m1, and m1 or m2 up
    to 4 nodes. Only graphs that satisfy the role rules are built."""
    for k in range(5):
        pairs = [(i, j) for i in range(k) for j in range(i + 1, k + 1)]
        for sink_model in ("m1", "m2") if k <= 3 else ("m1",):
            sink = Node(f"v{k}", "decider", sink_model)
            for labels in itertools.product(WORKER_LABELS, repeat=k):
                nodes = (*(Node(f"v{i}", r, m) for i, (r, m) in enumerate(labels)), sink)
                for mask in range(1 << len(pairs)):
                    edges = [p for b, p in enumerate(pairs) if mask >> b & 1]
                    if not expected_valid(labels, edges):
                        continue
                    yield CollaborationGraph(nodes=nodes, edges=tuple((f"v{u}", f"v{v}") for u, v in edges))


def shuffled(g: CollaborationGraph, rng: random.Random) -> CollaborationGraph:
    """The same graph with fresh node ids and nodes and edges in random order."""
    names = [f"x{i}" for i in range(len(g.nodes))]
    rng.shuffle(names)
    rename = {n.id: names[i] for i, n in enumerate(g.nodes)}
    nodes = [Node(rename[n.id], n.role, n.model) for n in g.nodes]
    edges = [(rename[u], rename[v]) for u, v in g.edges]
    rng.shuffle(nodes)
    rng.shuffle(edges)
    return CollaborationGraph(nodes=tuple(nodes), edges=tuple(edges))


def random_dag(rng: random.Random, workers: int, p: float, models: str = "ab") -> CollaborationGraph:
    """A random valid graph: assistants (some made fusers where allowed) in a random DAG feeding the sink."""
    nodes = [Node(f"v{i}", "assistant", rng.choice(models)) for i in range(workers)]
    edges = [(f"v{i}", f"v{j}") for i in range(workers) for j in range(i + 1, workers) if rng.random() < p]
    edges += [(f"v{i}", "sink") for i in range(workers) if i == workers - 1 or rng.random() < p]
    for i in range(workers):
        candidate = [*nodes[:i], Node(f"v{i}", "fuser", nodes[i].model), *nodes[i + 1 :]]
        try:
            CollaborationGraph(nodes=(*candidate, Node("sink", "decider", "a")), edges=tuple(edges))
        except GraphError:
            continue
        if rng.random() < 0.3:
            nodes = candidate
    return CollaborationGraph(nodes=(*nodes, Node("sink", "decider", "a")), edges=tuple(edges))


def assert_classes_are_isomorphism_classes(graphs: list[CollaborationGraph]) -> tuple[int, int, int]:
    """Same fingerprint => isomorphic (each member vs its class's first); different fingerprints => not
    isomorphic (class representatives with equal cheap invariants compared pairwise). Returns the counts."""
    classes: dict[str, list[CollaborationGraph]] = defaultdict(list)
    for g in graphs:
        classes[g.fingerprint()].append(g)
    for members in classes.values():
        for other in members[1:]:
            assert isomorphic(members[0], other), (members[0].to_dict(), other.to_dict())
    buckets: dict[tuple, list[CollaborationGraph]] = defaultdict(list)
    for members in classes.values():
        buckets[cheap_invariant(members[0])].append(members[0])
    pairs = 0
    for reps in buckets.values():
        for g, h in itertools.combinations(reps, 2):
            pairs += 1
            assert not isomorphic(g, h), (g.to_dict(), h.to_dict())
    return len(graphs), len(classes), pairs


def test_exhaustive_small_graphs_fingerprint_iff_isomorphic() -> None:
    start = time.perf_counter()
    graphs = list(all_small_graphs())
    for g in graphs:
        g.pruned()  # predecessors of kept nodes are kept: pruning never breaks a role rule
    n, classes, pairs = assert_classes_are_isomorphism_classes(graphs)
    print(f"\n{n} graphs, {classes} classes, {pairs} cross-class pairs in {time.perf_counter() - start:.1f}s")
    assert n > 50_000 and classes > 20_000


def test_rejected_small_graphs_are_exactly_the_invalid_ones() -> None:
    rng = random.Random(1)
    k, checked = 4, 0
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k + 1)]
    for labels in rng.sample(list(itertools.product(WORKER_LABELS, repeat=k)), 16):
        nodes = (*(Node(f"v{i}", r, m) for i, (r, m) in enumerate(labels)), Node(f"v{k}", "decider", "m1"))
        for mask in range(1 << len(pairs)):
            edges = [p for b, p in enumerate(pairs) if mask >> b & 1]
            if expected_valid(labels, edges):
                continue
            checked += 1
            with pytest.raises(GraphError):
                CollaborationGraph(nodes=nodes, edges=tuple((f"v{u}", f"v{v}") for u, v in edges))
    assert checked > 1000


def regular_bipartite(rng: random.Random, n: int, k: int) -> CollaborationGraph:
    """``n`` assistants each feeding ``k`` of ``n`` others, each fed by ``k``, which feed the sink: all such
    graphs look alike to colour refinement, so telling them apart needs the individualisation search."""
    while True:
        perms = [rng.sample(range(n), n) for _ in range(k)]
        edges = {(i, p[i]) for p in perms for i in range(n)}
        if len(edges) == n * k:
            break
    nodes = [Node(f"{x}{i}", "assistant", "m") for x in "ab" for i in range(n)]
    return CollaborationGraph(
        nodes=(*nodes, Node("s", "decider", "m")),
        edges=(*((f"a{i}", f"b{j}") for i, j in sorted(edges)), *((f"b{i}", "s") for i in range(n))),
    )


def test_random_larger_graphs_fingerprint_iff_isomorphic() -> None:
    rng = random.Random(7)
    graphs = [random_dag(rng, rng.randint(5, 7), 0.3, models="a") for _ in range(1000)]
    graphs += [random_dag(rng, rng.randint(5, 8), 0.35, models="ab") for _ in range(500)]
    graphs += [regular_bipartite(rng, n, k) for n, k in [(4, 2), (5, 2), (6, 2), (6, 3), (7, 3)] for _ in range(60)]
    graphs += [shuffled(g, rng) for g in graphs[::5]]
    n, classes, pairs = assert_classes_are_isomorphism_classes(graphs)
    print(f"\n{n} random graphs, {classes} classes, {pairs} cross-class pairs")
    assert classes < n and pairs > 50


SYMMETRIC = {
    "parallel16": parallel("m", n=16),
    "layered4x4": layered("m", 4, 4),
    "fused8": fused(["a", "b"] * 4),
    "chain5": chain(["a", "b", "a", "b", "a"]),
}


@pytest.mark.parametrize("name", sorted(SYMMETRIC))
def test_fingerprint_ignores_ids_and_order(name: str) -> None:
    rng = random.Random(name)
    g = SYMMETRIC[name]
    assert all(shuffled(g, rng).fingerprint() == g.fingerprint() for _ in range(10))


def test_fingerprint_ignores_ids_and_order_of_random_graphs() -> None:
    rng = random.Random(3)
    for _ in range(200):
        g = random_dag(rng, rng.randint(1, 12), rng.random())
        assert shuffled(g, rng).fingerprint() == g.fingerprint()


def disjoint_chains(k: int, move: int | None = None) -> CollaborationGraph:
    """``k`` two-node chains into the sink; ``move`` re-attaches one chain's head to the next chain's tail."""
    nodes = [Node(f"{x}{i}", "assistant", "m") for i in range(k) for x in "ab"]
    edges = [(f"a{i}", f"b{i}") if i != move else (f"a{i}", f"b{(i + 1) % k}") for i in range(k)]
    return CollaborationGraph(
        nodes=(*nodes, Node("s", "decider", "m")), edges=(*edges, *((f"b{i}", "s") for i in range(k)))
    )


def test_fingerprint_distinguishes_near_twins() -> None:
    assert parallel("m", n=3).fingerprint() != parallel("m", n=4).fingerprint()
    assert parallel(["a", "b"]).fingerprint() == parallel(["b", "a"], sink_model="a").fingerprint()
    assert parallel(["a", "b"]).fingerprint() != parallel(["a", "b"], sink_model="b").fingerprint()
    assert chain("m", depth=2).fingerprint() != fused("m", n=1).fingerprint()  # same shape, different roles
    assert disjoint_chains(6).fingerprint() != disjoint_chains(6, move=2).fingerprint()
    assert disjoint_chains(6).fingerprint() == shuffled(disjoint_chains(6), random.Random(0)).fingerprint()


def best_ms(make, repeat: int = 3) -> float:
    """Best wall time of fingerprinting a freshly built graph (the fingerprint is cached per object)."""
    times = []
    for _ in range(repeat):
        g = make()
        start = time.perf_counter()
        g.fingerprint()
        times.append((time.perf_counter() - start) * 1e3)
    return min(times)


def test_fingerprint_is_fast_on_symmetric_and_random_graphs() -> None:
    rng = random.Random(5)
    random12 = [random_dag(rng, 11, 0.3) for _ in range(20)]
    timings = {
        "parallel16": best_ms(lambda: parallel("m", n=16)),
        "layered4x4": best_ms(lambda: layered("m", 4, 4)),
        "chains8": best_ms(lambda: disjoint_chains(8)),
        "random12": max(best_ms(lambda g=g: shuffled(g, rng)) for g in random12),
    }
    print("\nfingerprint ms:", {k: round(v, 2) for k, v in timings.items()})
    assert all(v < 50 for v in timings.values()), timings

"""Collaboration graphs: nodes (role, model) joined by edges; validation, files, fingerprints.

A collaboration graph is a DAG. An edge ``u -> v`` gives u's answer to v. Roles: ``assistant`` (one LLM call
that answers the question; with inputs, refines or synthesises them), ``fuser`` (an LLM call that reviews and
merges the answers it receives), ``decider`` (the LLM call that gives the graph's answer) and ``vote`` (no LLM
call and no model: the majority of its inputs' answers, method.md §8). One node, the **sink**, produces the
graph's answer: a decider or a vote. Worker nodes with no path to the sink are not run. A decider sink alone is
the single-model baseline. An LLM node may carry its own sampling ``temperature``.

Role rules: a fuser needs an assistant predecessor, no fuser feeds a fuser, a decider is the sink, a vote has at
least 2 inputs and feeds no vote, the sink has no successors, and a graph with workers has at least one
assistant and feeds its sink.

Files (JSON or YAML): ``schema_version`` 2 names the sink (``sink``); a node is ``{id, role, model}`` plus an
optional ``temperature``, a vote ``{id, role}``. Version 1 files (no ``sink`` key: the sink is the decider) are
read too; graphs are always written as version 2.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

import networkx as nx
import yaml

from langtts.files import write_text_atomic

SCHEMA_VERSION = 2
READ_VERSIONS = (1, 2)
Role = Literal["assistant", "fuser", "decider", "vote"]
ROLES: tuple[str, ...] = get_args(Role)
SINK_ROLES = ("decider", "vote")
_NODE_KEYS = {1: ("id", "role", "model"), 2: ("id", "role", "model", "temperature")}
_REQUIRED_NODE_KEYS = ("id", "role")
_GRAPH_KEYS = {1: ("schema_version", "nodes", "edges"), 2: ("schema_version", "sink", "nodes", "edges")}
MAX_TEMPERATURE = 2.0
SAMPLE_TEMPERATURE = 0.7
"""Temperature of repeated samples: nodes feeding a vote that set none, and the samples of the self-consistency
and self-MoA shapes (the paper's 0.1 makes samples of one model near-identical, so a vote would learn nothing)."""


class GraphError(ValueError):
    """An invalid collaboration graph or graph file; the message is one line naming the culprit."""


@dataclass(frozen=True)
class Node:
    """One node: its id, its role, the id of the model that runs it (``""`` for a vote, which calls none) and
    its own sampling temperature (None: the compile settings')."""

    id: str
    role: Role
    model: str = ""
    temperature: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id.strip():
            raise GraphError(f"node id must be a non-blank string, got {self.id!r}")
        if self.role not in ROLES:
            expected = ", ".join(ROLES)
            raise GraphError(f"node {self.id!r} has unknown role {self.role!r} (expected one of {expected})")
        if self.role == "vote":
            if self.model != "" or self.temperature is not None:
                raise GraphError(f"vote {self.id!r} makes no LLM call: it takes no model and no temperature")
            return
        if not isinstance(self.model, str) or not self.model.strip():
            raise GraphError(f"node {self.id!r} needs a non-blank model id, got {self.model!r}")
        t = self.temperature
        if t is not None and (type(t) not in (int, float) or not 0 <= t <= MAX_TEMPERATURE):
            raise GraphError(f"node {self.id!r}: temperature must be a number in [0, {MAX_TEMPERATURE:g}], got {t!r}")

    @property
    def calls_model(self) -> bool:
        """Whether the node is an LLM call (every role but ``vote``)."""
        return self.role != "vote"


@dataclass(frozen=True)
class ValidationReport:
    """Findings of :meth:`CollaborationGraph.check` that do not make a graph invalid."""

    unreachable: tuple[str, ...] = ()  # worker nodes with no path to the sink: pruned at run time
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class CollaborationGraph:
    """An immutable, validated collaboration graph; constructing an invalid one raises :class:`GraphError`."""

    nodes: tuple[Node, ...]
    edges: tuple[tuple[str, str], ...] = ()
    schema_version: int = SCHEMA_VERSION
    sink_id: str | None = None  # None: the graph's one decider
    _pred: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _succ: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _cache: dict[str, Any] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        nodes, edges = tuple(self.nodes), tuple(_edge(i, e) for i, e in enumerate(self.edges))
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "edges", edges)
        sink, pred, succ = _validate(nodes, edges, self.schema_version, self.sink_id)
        object.__setattr__(self, "sink_id", sink)
        object.__setattr__(self, "_pred", pred)
        object.__setattr__(self, "_succ", succ)

    # ----- accessors

    @property
    def sink(self) -> Node:
        """The node (a decider or a vote) that produces the graph's answer."""
        return self.node(self.sink_id)  # type: ignore[arg-type]

    @property
    def workers(self) -> tuple[Node, ...]:
        """All nodes but the sink, in node order (unreachable ones included)."""
        return tuple(n for n in self.nodes if n.id != self.sink_id)

    def node(self, node_id: str) -> Node:
        """The node with this id; KeyError naming the known ids if there is none."""
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(f"no node {node_id!r} in the graph (nodes: {', '.join(n.id for n in self.nodes)})")

    def predecessors(self, node_id: str) -> tuple[str, ...]:
        """Ids of the nodes feeding ``node_id``, in edge order."""
        self.node(node_id)
        return self._pred[node_id]

    def successors(self, node_id: str) -> tuple[str, ...]:
        """Ids of the nodes ``node_id`` feeds, in edge order."""
        self.node(node_id)
        return self._succ[node_id]

    def in_degree(self, node_id: str) -> int:
        """Number of inputs ``node_id`` receives."""
        return len(self.predecessors(node_id))

    def in_degrees(self) -> dict[str, int]:
        """In-degree of every node (of this graph, not of the pruned one)."""
        return {n.id: len(self._pred[n.id]) for n in self.nodes}

    def to_networkx(self) -> nx.DiGraph[str]:
        """A networkx view: node attributes ``role`` and ``model``, nodes and edges in this graph's order."""
        g: nx.DiGraph[str] = nx.DiGraph()
        g.add_nodes_from((n.id, {"role": n.role, "model": n.model}) for n in self.nodes)
        g.add_edges_from(self.edges)
        return g

    # ----- validation and derived views

    def check(self, models: Collection[str] | None = None, *, strict: bool = False) -> ValidationReport:
        """Check model ids against ``models`` (if given); report unreachable nodes (an error if strict)."""
        if models is not None:
            known = set(models)
            for n in self.nodes:
                if n.calls_model and n.model not in known:
                    listed = ", ".join(sorted(known))
                    raise GraphError(f"node {n.id!r} uses unknown model {n.model!r} (known models: {listed})")
        kept = self._reachable()
        unreachable = tuple(n.id for n in self.nodes if n.id not in kept)
        if strict and unreachable:
            raise GraphError(f"nodes with no path to the sink: {', '.join(map(repr, unreachable))}")
        warnings = [f"node {u!r} has no path to the sink and will not run" for u in unreachable]
        warnings += [
            f"fuser {n.id!r} has a single input: there is nothing to merge"
            for n in self.nodes
            if n.role == "fuser" and len(self._pred[n.id]) == 1
        ]
        return ValidationReport(unreachable=unreachable, warnings=tuple(warnings))

    def pruned(self) -> CollaborationGraph:
        """The graph without the worker nodes that have no path to the sink (``self`` if there are none).

        Every predecessor of a kept node is kept, so pruning never breaks a role rule.
        """
        kept = self._reachable()
        if len(kept) == len(self.nodes):
            return self
        return CollaborationGraph(
            nodes=tuple(n for n in self.nodes if n.id in kept),
            edges=tuple(e for e in self.edges if e[1] in kept),
            schema_version=self.schema_version,
            sink_id=self.sink_id,
        )

    def layers(self) -> list[list[str]]:
        """Topological generations of the pruned graph, each in node order; the last layer is the sink alone.

        A node's layer is the length of the longest path into it, so a layer's nodes can run in parallel.
        """
        g = self.pruned()
        order = {n.id: i for i, n in enumerate(g.nodes)}
        return [sorted(gen, key=order.__getitem__) for gen in nx.topological_generations(g.to_networkx())]

    @property
    def width(self) -> int:
        """Size of the largest worker layer of the pruned graph (0 for the sink alone; ``parallel(n)``: n)."""
        return max(map(len, self.layers()[:-1]), default=0)

    @property
    def depth(self) -> int:
        """Worker nodes on the longest path into the sink (0 for the sink alone; ``chain(d)``: d)."""
        return len(self.layers()) - 1

    def _reachable(self) -> set[str]:
        return reaching(self.sink.id, self.edges)

    # ----- identity

    def fingerprint(self) -> str:
        """Hex sha256 of a canonical form: equal exactly for isomorphic graphs with the same roles and models.

        Node ids and the order of nodes and edges do not matter; unreachable nodes and temperatures do
        (fingerprint ``pruned()`` to ignore unreachable nodes).
        """
        if "fingerprint" not in self._cache:
            labels = [_label(n, self.sink_id) for n in self.nodes]
            index = {n.id: i for i, n in enumerate(self.nodes)}
            edges = _canonical_edges(labels, [(index[u], index[v]) for u, v in self.edges])
            form = {"format": "langtts-graph/1", "nodes": sorted(labels), "edges": edges}
            text = json.dumps(form, separators=(",", ":"))
            self._cache["fingerprint"] = hashlib.sha256(text.encode()).hexdigest()
        return self._cache["fingerprint"]

    def relabel_models(self, mapping: Mapping[str, str]) -> CollaborationGraph:
        """The same graph with each model id replaced through ``mapping`` (ids not in it are kept)."""
        nodes = tuple(replace(n, model=mapping.get(n.model, n.model)) if n.calls_model else n for n in self.nodes)
        return CollaborationGraph(nodes, self.edges, self.schema_version, self.sink_id)

    # ----- serialisation

    def to_dict(self) -> dict[str, Any]:
        """Plain data: ``schema_version``, ``sink`` (its id), ``nodes`` (id, role, model unless a vote,
        temperature when set) and ``edges`` (pairs of ids)."""
        return {
            "schema_version": self.schema_version,
            "sink": self.sink_id,
            "nodes": [_node_dict(n) for n in self.nodes],
            "edges": [[u, v] for u, v in self.edges],
        }

    @classmethod
    def from_dict(cls, data: Any) -> CollaborationGraph:
        """Build a graph from :meth:`to_dict` output (or a version 1 file's data); any problem raises a one-line
        :class:`GraphError`."""
        version = data.get("schema_version", SCHEMA_VERSION) if isinstance(data, Mapping) else SCHEMA_VERSION
        if type(version) is not int or version not in READ_VERSIONS:
            raise GraphError(f"unsupported schema_version {version!r} (this langtts reads 1 and 2)")
        raw_nodes = _fields(data, _GRAPH_KEYS[version], "graph")["nodes"]
        if not isinstance(raw_nodes, list):
            raise GraphError(f"'nodes' must be a list, got {type(raw_nodes).__name__}")
        if not isinstance(data["edges"], list):
            raise GraphError(f"'edges' must be a list, got {type(data['edges']).__name__}")
        sink = data.get("sink")
        if version > 1 and not isinstance(sink, str):
            raise GraphError(f"'sink' must be a node id, got {type(sink).__name__}")
        nodes = [_node(raw, i, version) for i, raw in enumerate(raw_nodes)]
        return cls(nodes=tuple(nodes), edges=tuple(data["edges"]), sink_id=sink)

    def to_json(self) -> str:
        """JSON text, one node or edge per line."""
        d = self.to_dict()
        nodes = ",\n".join(f"    {json.dumps(n)}" for n in d["nodes"])
        edges = ",\n".join(f"    {json.dumps(e)}" for e in d["edges"])
        head = f'{{\n  "schema_version": {d["schema_version"]},\n  "sink": {json.dumps(d["sink"])},\n'
        return f'{head}  "nodes": [\n{nodes}\n  ],\n' + (
            f'  "edges": [\n{edges}\n  ]\n}}\n' if edges else '  "edges": []\n}\n'
        )

    @classmethod
    def from_json(cls, text: str) -> CollaborationGraph:
        """Parse :meth:`to_json` text; any problem raises a one-line :class:`GraphError`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise GraphError(f"invalid JSON: {e}") from None
        return cls.from_dict(data)

    def to_yaml(self) -> str:
        """YAML text, one node or edge per line."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None, width=10_000)

    @classmethod
    def from_yaml(cls, text: str) -> CollaborationGraph:
        """Parse :meth:`to_yaml` text; any problem raises a one-line :class:`GraphError`."""
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = " ".join(str(getattr(e, "problem", None) or e).split())
            raise GraphError(f"invalid YAML{where}: {problem}") from None
        return cls.from_dict(data)

    def save(self, path: str | Path) -> None:
        """Write the graph atomically as JSON or YAML, chosen by the extension (.json, .yaml, .yml)."""
        path = Path(path)
        text = self.to_json() if _format(path) == "json" else self.to_yaml()
        write_text_atomic(path, text)

    def to_mermaid(self) -> str:
        """Mermaid ``flowchart TD`` text: labels show id, role, model and temperature (when set); fusers,
        votes (circles, no model), the sink and unreachable nodes are styled apart."""
        ids = _mermaid_ids([n.id for n in self.nodes])
        kept = self._reachable()
        shapes = {"assistant": '["{}"]', "fuser": '{{{{"{}"}}}}', "decider": '(["{}"])', "vote": '(("{}"))'}
        lines = ["flowchart TD"]
        for n in self.nodes:
            label = f"{n.id}: {n.role}" + (f"<br/>{n.model}" if n.calls_model else "<br/>majority")
            label += "" if n.temperature is None else f"<br/>T {n.temperature:g}"
            label = label.replace('"', "#quot;")
            lines.append(f"    {ids[n.id]}{shapes[n.role].format(label)}")
        lines += [f"    {ids[u]} --> {ids[v]}" for u, v in self.edges]
        lines += [
            "    classDef fuser fill:#fff3cd,stroke:#b7791f",
            "    classDef decider fill:#d4edda,stroke:#1e7e34,stroke-width:3px",
            "    classDef pruned fill:#eeeeee,stroke:#999999,stroke-dasharray:4 3,color:#777777",
        ]
        if any(n.role == "vote" for n in self.nodes):
            lines += [
                "    classDef vote fill:#e2d9f3,stroke:#6f42c1",
                "    classDef votesink fill:#e2d9f3,stroke:#6f42c1,stroke-width:3px",
            ]
        for n in self.nodes:
            cls: str | None = "pruned" if n.id not in kept else None if n.role == "assistant" else n.role
            cls = "votesink" if cls == "vote" and n.id == self.sink_id else cls
            if cls:
                lines.append(f"    class {ids[n.id]} {cls}")
        return "\n".join(lines) + "\n"


def load_graph(path: str | Path) -> CollaborationGraph:
    """Read a graph file (.json, .yaml or .yml); a bad file raises :class:`GraphError` led by its path."""
    path = Path(path)
    try:
        fmt = _format(path)
        text = path.read_text(encoding="utf-8")
        return CollaborationGraph.from_json(text) if fmt == "json" else CollaborationGraph.from_yaml(text)
    except (GraphError, UnicodeDecodeError) as e:
        raise GraphError(f"{path}: {e}") from None


# ----- helpers


def reaching(target: str, edges: Iterable[tuple[str, str]]) -> set[str]:
    """``target`` and every node with a path to it along ``edges`` (source, destination)."""
    pred: dict[str, list[str]] = {}
    for source, destination in edges:
        pred.setdefault(destination, []).append(source)
    kept, todo = {target}, [target]
    while todo:
        for p in pred.get(todo.pop(), ()):
            if p not in kept:
                kept.add(p)
                todo.append(p)
    return kept


def _format(path: Path) -> str:
    fmt = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}.get(path.suffix.lower())
    if fmt is None:
        raise GraphError(f"unsupported graph file extension {path.suffix!r} (use .json, .yaml or .yml)")
    return fmt


def _fields(data: Any, keys: tuple[str, ...], what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise GraphError(f"{what} must be a mapping with keys {', '.join(keys)}, got {type(data).__name__}")
    if missing := [k for k in keys if k not in data]:
        raise GraphError(f"missing key(s) {', '.join(map(repr, missing))} in {what}")
    if extra := [k for k in data if k not in keys]:
        raise GraphError(f"unknown key(s) {', '.join(map(repr, extra))} in {what} (expected {', '.join(keys)})")
    return data


def _node(raw: Any, i: int, version: int) -> Node:
    """A node from file data (version 1: exactly id, role, model; later: model unless a vote, temperature)."""
    keys = _NODE_KEYS[version]
    if not isinstance(raw, Mapping):
        raise GraphError(f"nodes[{i}] must be a mapping with keys {', '.join(keys)}, got {type(raw).__name__}")
    required = keys if version == 1 else (*_REQUIRED_NODE_KEYS, *(() if raw.get("role") == "vote" else ("model",)))
    if missing := [k for k in required if k not in raw]:
        raise GraphError(f"missing key(s) {', '.join(map(repr, missing))} in nodes[{i}]")
    if extra := [k for k in raw if k not in keys]:
        raise GraphError(f"unknown key(s) {', '.join(map(repr, extra))} in nodes[{i}] (expected {', '.join(keys)})")
    for key in ("id", "role", "model"):
        if key in raw and not isinstance(raw[key], str):
            raise GraphError(f"nodes[{i}].{key} must be a string, got {type(raw[key]).__name__}")
    try:
        return Node(**raw)
    except GraphError as e:
        raise GraphError(f"nodes[{i}]: {e}") from None


def _node_dict(n: Node) -> dict[str, Any]:
    out: dict[str, Any] = {"id": n.id, "role": n.role}
    if n.calls_model:
        out["model"] = n.model
    if n.temperature is not None:
        out["temperature"] = n.temperature
    return out


def _label(n: Node, sink: str | None) -> tuple[Any, ...]:
    """A node's label for the fingerprint: (role, model), plus the temperature when set; a vote's second
    field says whether it is the sink (a decider always is). Labels of version-1 graphs are unchanged."""
    if not n.calls_model:
        return ("vote", "sink" if n.id == sink else "")
    return (n.role, n.model) if n.temperature is None else (n.role, n.model, float(n.temperature))


def _edge(i: int, e: Any) -> tuple[str, str]:
    if not (isinstance(e, list | tuple) and len(e) == 2 and all(isinstance(x, str) for x in e)):
        raise GraphError(f"edges[{i}] must be a pair of node ids, got {e!r}")
    return (e[0], e[1])


def _validate(
    nodes: tuple[Node, ...], edges: tuple[tuple[str, str], ...], version: Any, sink: str | None
) -> tuple[str, dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """Check the structural rules; return the sink's id and predecessor and successor tuples (in edge order)
    per node id."""
    if type(version) is not int or version != SCHEMA_VERSION:
        raise GraphError(f"unsupported schema_version {version!r} (this langtts reads {SCHEMA_VERSION})")
    if not nodes:
        raise GraphError("graph has no nodes (it needs at least a sink: a node with role 'decider')")
    role: dict[str, str] = {}
    for i, n in enumerate(nodes):
        if not isinstance(n, Node):
            raise GraphError(f"nodes[{i}] must be a Node, got {type(n).__name__}")
        if n.id in role:
            raise GraphError(f"duplicate node id {n.id!r}")
        role[n.id] = n.role
    pred: dict[str, list[str]] = {n: [] for n in role}
    succ: dict[str, list[str]] = {n: [] for n in role}
    for u, v in edges:
        if unknown := [x for x in (u, v) if x not in role]:
            raise GraphError(f"edge {u} -> {v} refers to unknown node {unknown[0]!r}")
        if u == v:
            raise GraphError(f"self-loop on node {u!r}")
        if v in succ[u]:
            raise GraphError(f"duplicate edge {u} -> {v}")
        succ[u].append(v)
        pred[v].append(u)
    deciders = [n for n, r in role.items() if r == "decider"]
    if sink is None:
        if not deciders:
            raise GraphError("graph has no sink (name one, or give exactly one node role 'decider')")
        if len(deciders) > 1:
            raise GraphError(
                f"graph has {len(deciders)} sinks {', '.join(map(repr, deciders))}; exactly one is allowed"
            )
        sink = deciders[0]
    if sink not in role:
        raise GraphError(f"sink {sink!r} is not a node of the graph")
    if role[sink] not in SINK_ROLES:
        raise GraphError(f"sink {sink!r} has role {role[sink]!r}; the sink is a decider or a vote")
    if others := [n for n in deciders if n != sink]:
        raise GraphError(f"decider {others[0]!r} is not the sink {sink!r} (only the sink may be a decider)")
    if succ[sink]:
        raise GraphError(f"edge {sink} -> {succ[sink][0]} leaves the sink {sink!r}; the sink has no successors")
    if cycle := _find_cycle(succ):
        raise GraphError(f"graph is not a DAG: cycle {' -> '.join(cycle)}")
    workers = [n for n in role if n != sink]
    if workers and not any(role[n] == "assistant" for n in workers):
        raise GraphError(f"graph has no assistant node (workers: {', '.join(map(repr, workers))})")
    for u, v in edges:
        if role[u] == role[v] == "fuser":
            raise GraphError(f"edge {u} -> {v} joins two fusers (a fuser may not feed a fuser)")
        if role[u] == role[v] == "vote":
            raise GraphError(f"edge {u} -> {v} joins two votes (a vote may not feed a vote)")
    for node_id in role:
        if role[node_id] == "vote" and len(pred[node_id]) < 2:
            raise GraphError(f"vote {node_id!r} has {len(pred[node_id])} input(s); a vote needs at least 2")
    for node_id in workers:
        if role[node_id] == "fuser" and not any(role[p] == "assistant" for p in pred[node_id]):
            raise GraphError(f"fuser {node_id!r} has no assistant predecessor")
    if workers and not pred[sink]:
        raise GraphError(f"sink {sink!r} has no predecessors although the graph has {len(workers)} worker node(s)")
    return sink, {n: tuple(p) for n, p in pred.items()}, {n: tuple(s) for n, s in succ.items()}


def _find_cycle(succ: dict[str, list[str]]) -> list[str]:
    """A cycle as ``[a, b, ..., a]`` found by depth-first search in node and edge order, or ``[]``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    for root in succ:
        if root in state:
            continue
        path, todo = [root], [iter(succ[root])]
        state[root] = 1
        while todo:
            v = next(todo[-1], None)
            if v is None:
                state[path.pop()] = 2
                todo.pop()
            elif state.get(v) == 1:
                return [*path[path.index(v) :], v]
            elif v not in state:
                state[v] = 1
                path.append(v)
                todo.append(iter(succ[v]))
    return []


def _mermaid_ids(node_ids: list[str]) -> dict[str, str]:
    """Node ids usable as Mermaid identifiers: the id itself when safe, else a fresh ``_n<i>``."""
    reserved = {"end", "graph", "flowchart", "subgraph", "class", "classdef", "style", "click", "linkstyle"}
    out = {n: n for n in node_ids if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n) and n.lower() not in reserved}
    used = set(out)
    for i, n in enumerate(node_ids):
        if n not in out:
            name = f"_n{i}"
            while name in used:
                name += "_"
            out[n] = name
            used.add(name)
    return out


def _canonical_edges(labels: list[tuple[str, str]], edges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Edges of the canonical relabelling of a vertex-labelled digraph (nodes ``0..n-1``, labels sorted).

    Individualisation/refinement: refine colours by (colour, predecessor colours, successor colours); while
    some colour class has several nodes, branch on each of its nodes; keep the lexicographically smallest edge
    list among the discrete leaves. Known automorphisms prune the search: twin transpositions (same label,
    predecessors and successors) from the start, and the automorphism between two leaves with equal
    certificates, after which the search backs up to where the two leaves' paths diverge (as in nauty).
    """
    n = len(labels)
    pred: list[list[int]] = [[] for _ in range(n)]
    succ: list[list[int]] = [[] for _ in range(n)]
    for u, v in edges:
        succ[u].append(v)
        pred[v].append(u)
    rank = {lab: i for i, lab in enumerate(sorted(set(labels)))}
    start = [rank[lab] for lab in labels]

    twins: dict[tuple, list[int]] = {}
    for v in range(n):
        twins.setdefault((start[v], frozenset(pred[v]), frozenset(succ[v])), []).append(v)
    autos: list[list[int]] = []
    for group in twins.values():
        for a, b in itertools.pairwise(group):
            perm = list(range(n))
            perm[a], perm[b] = b, a
            autos.append(perm)

    def refine(c: list[int]) -> list[int]:
        classes = len(set(c))
        while True:
            sig = [(c[v], sorted(c[u] for u in pred[v]), sorted(c[u] for u in succ[v])) for v in range(n)]
            order = sorted(range(n), key=sig.__getitem__)
            new, k = [0] * n, 0
            for i, v in enumerate(order):
                if i and sig[v] != sig[order[i - 1]]:
                    k += 1
                new[v] = k
            c = new
            if k + 1 == classes:
                return c
            classes = k + 1

    best: dict[str, Any] = {}

    def orbit_roots(prefix: list[int]) -> list[int]:
        root = list(range(n))

        def find(x: int) -> int:
            while root[x] != x:
                root[x] = root[root[x]]
                x = root[x]
            return x

        for g in autos:
            if all(g[p] == p for p in prefix):
                for x in range(n):
                    root[find(x)] = find(g[x])
        return [find(x) for x in range(n)]

    def search(prefix: list[int], colours: list[int]) -> int | None:
        """Explore the subtree below ``prefix``; return a depth to back up to, or None."""
        c = refine(colours)
        cells: dict[int, list[int]] = {}
        for v in range(n):
            cells.setdefault(c[v], []).append(v)
        if len(cells) == n:
            cert = sorted((c[u], c[v]) for u, v in edges)
            if not best or cert < best["cert"]:
                best.update(cert=cert, colours=c, prefix=prefix)
                return None
            if cert == best["cert"]:
                at = {col: v for v, col in enumerate(c)}
                autos.append([at[best["colours"][v]] for v in range(n)])
                return next(i for i, (a, b) in enumerate(zip(prefix, best["prefix"], strict=False)) if a != b)
            return None
        cell = cells[min(cells, key=lambda col: (len(cells[col]) < 2, len(cells[col]), col))]
        done: list[int] = []
        for v in cell:
            if done:
                roots = orbit_roots(prefix)
                if roots[v] in {roots[u] for u in done}:
                    continue
            done.append(v)
            individual = [2 * x + 1 for x in c]
            individual[v] -= 1
            back = search([*prefix, v], individual)
            if back is not None and back < len(prefix):
                return back
        return None

    search([], start)
    return best["cert"]

"""The probabilistic graph p_θ(G) of method.md §3: logits over models, edges and roles of up to N workers.

Sampling is budget-feasible by construction:

0. **Sink.** When there is more than one sink option (a decider on one of several models, or a vote: see
   :class:`SinkOption`), the sink draws one from the softmax of ``sink_logits`` restricted to the options the
   budget affords: a decider whose call with one input fits, a vote when two calls of the cheapest worker fit.
   With one option there is no draw (the paper's fixed sink).
1. **Models.** Worker nodes are visited in a random order; each draws a model from the softmax of its model
   logits restricted to the models the remaining budget can still pay for (at in-degree 0). A node for which
   nothing is affordable is dropped; this sets the width. The budget reserves a decider sink's call at
   in-degree 1; under a vote sink (0 FLOPs) it reserves the cheapest worker for the vote's second input until
   two workers are kept.
2. **Edges.** Every potential edge (worker → worker, worker → sink) among the kept nodes is visited in a
   random order and included with probability σ(logit − ``edge_offset``) (σ(−2) ≈ 0.12: graphs start
   sparse). An edge that would close a cycle or break the budget is skipped *before* its draw, so it adds
   nothing to log p. The edge pass is redrawn (up to ``max_edge_attempts``) until the sink has its inputs (one
   for a decider, two for a vote); after that the most likely affordable sink inputs are added (forced).
3. **Roles.** In topological order. A node may be a fuser only if all its predecessors are assistants (and it
   has at least one); then P(fuser) = σ(l_fuser − l_assistant + ``fuser_bonus``). Otherwise it is an
   assistant, with no draw.

log p(G) is the sum of the log-probabilities of the draws (conditioned on the visiting orders, which do not
depend on θ), and :meth:`ProbabilisticGraph.grad_log_prob` gives its exact gradient for a REINFORCE step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import networkx as nx
import numpy as np

from langtts.cost import (
    Budget,
    ModelCatalog,
    TaskLengths,
    feasible,
    fits,
    input_flops,
    node_flops,
    unpruned_flops,
)
from langtts.graph import CollaborationGraph, Node

SINK_ID = "sink"
DEFAULT_MAX_NODES = 8
DEFAULT_FUSER_BONUS = 0.5


@dataclass(frozen=True)
class SinkOption:
    """What a sampled graph's sink can be: a ``decider`` running ``model``, or a ``vote`` (no model, 0 FLOPs,
    at least two inputs)."""

    role: Literal["decider", "vote"]
    model: str = ""

    def __post_init__(self) -> None:
        if (self.role == "vote") != (self.model == ""):
            raise ValueError(f"a decider sink needs a model and a vote takes none, got {self.role} {self.model!r}")

    @property
    def label(self) -> str:
        """``vote`` or the decider's model id (how options are stored and shown)."""
        return self.model or "vote"

    @property
    def min_inputs(self) -> int:
        return 2 if self.role == "vote" else 1

    @classmethod
    def of(cls, label: str) -> SinkOption:
        """The option :attr:`label` names."""
        return cls("vote") if label == "vote" else cls("decider", label)

    @classmethod
    def of_node(cls, node: Node) -> SinkOption:
        return cls("vote") if node.role == "vote" else cls("decider", node.model)


VOTE = SinkOption("vote")


def worker_id(index: int) -> str:
    """The id of worker node ``index`` in graphs sampled from a probabilistic graph."""
    return f"n{index}"


def worker_index(node_id: str) -> int | None:
    """The index ``i`` of a node id that is :func:`worker_id` (i), else None."""
    digits = node_id.removeprefix("n")
    if node_id[:1] != "n" or not digits.isdecimal() or worker_id(int(digits)) != node_id:
        return None
    return int(digits)


@dataclass(frozen=True)
class ModelDraw:
    node: int
    allowed: tuple[int, ...]  # indices of the affordable models at that moment
    choice: int


@dataclass(frozen=True)
class SinkDraw:
    allowed: tuple[int, ...]  # indices of the affordable sink options
    choice: int


@dataclass(frozen=True)
class EdgeDraw:
    source: int  # worker index
    target: int  # worker index, or N for the sink
    included: bool


@dataclass(frozen=True)
class RoleDraw:
    node: int
    fuser: bool


@dataclass(frozen=True)
class Sample:
    """A sampled graph with the draws that produced it (what log p and its gradient are computed from)."""

    graph: CollaborationGraph
    models: tuple[ModelDraw, ...]
    edges: tuple[EdgeDraw, ...]
    roles: tuple[RoleDraw, ...]
    forced_edges: tuple[tuple[int, int], ...] = ()
    sink: SinkDraw | None = None  # None: one sink option, no draw


@dataclass
class Gradients:
    """∂ log p(G) / ∂θ, one array per parameter table."""

    edge: np.ndarray
    role: np.ndarray
    model: np.ndarray
    sink: np.ndarray


@dataclass
class ProbabilisticGraph:
    """Logits over the models, edges and roles of up to ``n_nodes`` worker nodes and over the sink's options.

    ``edge_logits[i, j]`` is worker i → worker j (j < N) or worker i → sink (j = N); the diagonal is unused.
    ``role_logits[i] = (assistant, fuser)``; ``model_logits[i, k]`` scores ``models[k]`` for worker i;
    ``sink_logits[s]`` scores ``sink_options[s]``. ``sink_options`` defaults to a decider on ``sink_model``
    alone (the paper's fixed sink).
    """

    models: tuple[str, ...]
    sink_model: str
    n_nodes: int
    budget_flops: float
    lengths: TaskLengths
    catalog: ModelCatalog
    edge_offset: float = 2.0
    fuser_bonus: float = DEFAULT_FUSER_BONUS
    max_edge_attempts: int = 50
    sink_options: tuple[SinkOption, ...] = ()
    edge_logits: np.ndarray = field(default=None)  # type: ignore[arg-type]  # None: zeros, set in __post_init__
    role_logits: np.ndarray = field(default=None)  # type: ignore[arg-type]  # None: zeros, set in __post_init__
    model_logits: np.ndarray = field(default=None)  # type: ignore[arg-type]  # None: zeros, set in __post_init__
    sink_logits: np.ndarray = field(default=None)  # type: ignore[arg-type]  # None: zeros, set in __post_init__

    def __post_init__(self) -> None:
        self.models = tuple(self.models)
        if not self.models:
            raise ValueError("a probabilistic graph needs at least one worker model")
        if len(set(self.models)) != len(self.models):
            raise ValueError(f"duplicate worker models: {list(self.models)}")
        if self.n_nodes < 1:
            raise ValueError(f"n_nodes must be >= 1, got {self.n_nodes}")
        self.sink_options = tuple(self.sink_options) or (SinkOption("decider", self.sink_model),)
        if len(set(self.sink_options)) != len(self.sink_options):
            raise ValueError(f"duplicate sink options: {[o.label for o in self.sink_options]}")
        for model_id in (*self.models, self.sink_model, *(o.model for o in self.sink_options if o.model)):
            self.catalog.get(model_id)  # unknown ids fail here, listing the known ones
        n, k = self.n_nodes, len(self.models)
        self.edge_logits = _table(self.edge_logits, (n, n + 1), "edge_logits")
        self.role_logits = _table(self.role_logits, (n, 2), "role_logits")
        self.model_logits = _table(self.model_logits, (n, k), "model_logits")
        self.sink_logits = _vector(self.sink_logits, len(self.sink_options), "sink_logits")
        if not self.affordable_sinks():
            raise ValueError(
                f"budget {self.budget_flops:.4g} FLOPs cannot pay for any sink option "
                f"({', '.join(o.label for o in self.sink_options)}) with its inputs"
            )

    # ---- construction ---------------------------------------------------------------------------------

    @classmethod
    def for_budget(
        cls,
        models: Sequence[str],
        sink_model: str,
        budget: Budget,
        lengths: TaskLengths,
        catalog: ModelCatalog,
        *,
        max_nodes: int = DEFAULT_MAX_NODES,
        **options: Any,
    ) -> ProbabilisticGraph:
        """N = how many calls of the cheapest model the budget affords next to the cheapest sink option (a
        decider reading one input, or a vote), at most max_nodes."""
        budget_flops = budget.flops
        sinks = tuple(options.get("sink_options", ())) or (SinkOption("decider", sink_model),)
        sink_cost = min(node_flops(catalog.get(o.model), 1, lengths) if o.model else 0.0 for o in sinks)
        cheapest = min(node_flops(catalog.get(m), 0, lengths) for m in models)
        affordable = int((budget_flops - sink_cost) // cheapest) if budget_flops >= sink_cost else 0
        if affordable < 1:
            raise ValueError(
                f"budget {budget_flops:.4g} FLOPs affords no worker next to the sink "
                f"(sink {sink_cost:.4g}, cheapest worker {cheapest:.4g})"
            )
        return cls(
            models=tuple(models),
            sink_model=sink_model,
            n_nodes=min(max_nodes, affordable),
            budget_flops=budget_flops,
            lengths=lengths,
            catalog=catalog,
            **options,
        )

    # ---- probabilities --------------------------------------------------------------------------------

    def edge_probability(self, source: int, target: int) -> float:
        return _sigmoid(self.edge_logits[source, target] - self.edge_offset)

    def fuser_probability(self, node: int) -> float:
        """P(fuser) for a node whose predecessors are all assistants."""
        logits = self.role_logits[node]
        return _sigmoid(logits[1] - logits[0] + self.fuser_bonus)

    def model_probabilities(self, node: int, allowed: Sequence[int] | None = None) -> np.ndarray:
        """Softmax of the node's model logits over ``allowed`` (all models by default); 0 elsewhere."""
        return _masked_softmax(self.model_logits[node], allowed)

    def sink_probabilities(self, allowed: Sequence[int] | None = None) -> np.ndarray:
        """Softmax of the sink logits over ``allowed`` (all options by default); 0 elsewhere."""
        return _masked_softmax(self.sink_logits, allowed)

    def affordable_sinks(self) -> tuple[int, ...]:
        """Indices of the sink options the budget affords: a decider reading one input (with or without a worker
        next to it: alone it is the single-model graph), a vote with two inputs from the cheapest worker."""
        cheapest = min(self._worker_costs(0))
        return tuple(
            k
            for k, option in enumerate(self.sink_options)
            if (option.model or self.n_nodes >= 2)
            and fits(self._sink_cost(option, 1) if option.model else 2 * cheapest, self.budget_flops)
        )

    # ---- sampling -------------------------------------------------------------------------------------

    def sample(self, rng: np.random.Generator | int | None = None) -> Sample:
        """Draw a budget-feasible graph; ``rng`` (a Generator or a seed) makes it reproducible."""
        rng = np.random.default_rng(rng)
        sink_draw = None
        option = self.sink_options[0]
        if len(self.sink_options) > 1:
            allowed_sinks = self.affordable_sinks()
            pick = allowed_sinks[0]
            if len(allowed_sinks) > 1:
                pick = int(rng.choice(len(self.sink_options), p=self.sink_probabilities(allowed_sinks)))
            sink_draw, option = SinkDraw(allowed_sinks, pick), self.sink_options[pick]
        spent = self._sink_cost(option, 1)
        model_draws: list[ModelDraw] = []
        assigned: dict[int, int] = {}
        for node in rng.permutation(self.n_nodes):
            node = int(node)
            allowed = self._affordable_models(spent, option, len(assigned))
            if not allowed:
                continue
            choice = int(rng.choice(len(self.models), p=self.model_probabilities(node, allowed)))
            model_draws.append(ModelDraw(node, allowed, choice))
            assigned[node] = choice
            spent += self._worker_costs(0)[choice]

        kept = sorted(assigned)
        sink = self.n_nodes
        edge_draws: list[EdgeDraw] = []
        edges: list[tuple[int, int]] = []
        forced: list[tuple[int, int]] = []
        for _ in range(self.max_edge_attempts if kept else 0):
            edge_draws, edges = self._draw_edges(kept, assigned, option, rng)
            if sum(t == sink for _, t in edges) >= option.min_inputs:
                break
        else:
            if not kept:  # nothing affordable next to a decider sink: the single-model graph
                graph = self._build([], {}, [], set(), option)
                return Sample(graph, tuple(model_draws), (), (), (), sink_draw)
            # The sink must have its inputs: keep the last draw and add its most likely affordable inputs (inputs
            # with no inputs of their own always are: the models were drawn with the sink's inputs reserved).
            for i in sorted(kept, key=lambda i: -self.edge_logits[i, sink]):
                if sum(t == sink for _, t in edges) >= option.min_inputs:
                    break
                if (i, sink) not in edges and self._fits(kept, assigned, [*edges, (i, sink)], option):
                    edges.append((i, sink))
                    forced.append((i, sink))

        role_draws, fusers = self._draw_roles(kept, edges, rng)
        graph = self._build(kept, assigned, edges, fusers, option)
        return Sample(graph, tuple(model_draws), tuple(edge_draws), tuple(role_draws), tuple(forced), sink_draw)

    def _affordable_models(self, spent: float, sink: SinkOption, kept: int) -> tuple[int, ...]:
        """Indices of the models the next worker may run: what fits after ``spent``, keeping the cheapest worker
        affordable for each further input the sink still needs (a vote's second)."""
        costs = self._worker_costs(0)
        reserve = max(0, sink.min_inputs - kept - 1) * min(costs)
        return tuple(k for k, cost in enumerate(costs) if fits(spent + cost + reserve, self.budget_flops))

    def _draw_edges(
        self, kept: list[int], assigned: dict[int, int], option: SinkOption, rng: np.random.Generator
    ) -> tuple[list[EdgeDraw], list[tuple[int, int]]]:
        sink = self.n_nodes
        candidates = [(i, j) for i in kept for j in [*kept, sink] if i != j]
        order = rng.permutation(len(candidates))
        dag: nx.DiGraph[int] = nx.DiGraph()
        dag.add_nodes_from([*kept, sink])
        in_degree = dict.fromkeys([*kept, sink], 0)
        spent = self._sink_cost(option, 0) + sum(self._worker_costs(0)[assigned[i]] for i in kept)
        draws: list[EdgeDraw] = []
        edges: list[tuple[int, int]] = []
        for index in order:
            i, j = candidates[int(index)]
            if j != sink and nx.has_path(dag, j, i):
                continue  # would close a cycle
            extra = self._in_degree_step(j, in_degree[j], assigned, option)
            if not fits(spent + extra, self.budget_flops):
                continue  # would break the budget
            included = bool(rng.random() < self.edge_probability(i, j))
            draws.append(EdgeDraw(i, j, included))
            if included:
                dag.add_edge(i, j)
                edges.append((i, j))
                in_degree[j] += 1
                spent += extra
        return draws, edges

    def _draw_roles(
        self, kept: list[int], edges: list[tuple[int, int]], rng: np.random.Generator
    ) -> tuple[list[RoleDraw], set[int]]:
        dag: nx.DiGraph[int] = nx.DiGraph()
        dag.add_nodes_from(kept)
        dag.add_edges_from((i, j) for i, j in edges if j != self.n_nodes)
        fusers: set[int] = set()
        draws: list[RoleDraw] = []
        for node in nx.lexicographical_topological_sort(dag):
            preds = list(dag.predecessors(node))
            if not preds or any(p in fusers for p in preds):
                continue  # must be an assistant: no draw
            fuser = bool(rng.random() < self.fuser_probability(node))
            draws.append(RoleDraw(node, fuser))
            if fuser:
                fusers.add(node)
        return draws, fusers

    def _build(
        self,
        kept: list[int],
        assigned: dict[int, int],
        edges: list[tuple[int, int]],
        fusers: set[int],
        sink: SinkOption,
    ) -> CollaborationGraph:
        nodes = [
            Node(id=worker_id(i), role="fuser" if i in fusers else "assistant", model=self.models[assigned[i]])
            for i in kept
        ]
        nodes.append(Node(id=SINK_ID, role=sink.role, model=sink.model))
        named = [(worker_id(i), SINK_ID if j == self.n_nodes else worker_id(j)) for i, j in sorted(edges)]
        return CollaborationGraph(nodes=tuple(nodes), edges=tuple(named), sink_id=SINK_ID)

    # ---- log-probability and its gradient -------------------------------------------------------------

    def log_prob(self, sample: Sample) -> float:
        """log p of the draws in ``sample`` under the current parameters."""
        total = 0.0
        if sample.sink is not None:
            total += math.log(self.sink_probabilities(sample.sink.allowed)[sample.sink.choice])
        for model_draw in sample.models:
            total += math.log(self.model_probabilities(model_draw.node, model_draw.allowed)[model_draw.choice])
        for edge_draw in sample.edges:
            p = self.edge_probability(edge_draw.source, edge_draw.target)
            total += math.log(p if edge_draw.included else 1.0 - p)
        for role_draw in sample.roles:
            p = self.fuser_probability(role_draw.node)
            total += math.log(p if role_draw.fuser else 1.0 - p)
        return total

    def grad_log_prob(self, sample: Sample) -> Gradients:
        """The exact gradient of :meth:`log_prob` with respect to the four logit tables."""
        grads = Gradients(
            np.zeros_like(self.edge_logits),
            np.zeros_like(self.role_logits),
            np.zeros_like(self.model_logits),
            np.zeros_like(self.sink_logits),
        )
        if sample.sink is not None:
            grads.sink -= self.sink_probabilities(sample.sink.allowed)
            grads.sink[sample.sink.choice] += 1.0
        for model_draw in sample.models:
            probs = self.model_probabilities(model_draw.node, model_draw.allowed)
            grads.model[model_draw.node] -= probs
            grads.model[model_draw.node, model_draw.choice] += 1.0
        for edge_draw in sample.edges:
            p = self.edge_probability(edge_draw.source, edge_draw.target)
            grads.edge[edge_draw.source, edge_draw.target] += (1.0 - p) if edge_draw.included else -p
        for role_draw in sample.roles:
            p = self.fuser_probability(role_draw.node)
            step = (1.0 - p) if role_draw.fuser else -p
            grads.role[role_draw.node, 1] += step
            grads.role[role_draw.node, 0] -= step
        return grads

    def explain(self, graph: CollaborationGraph) -> Sample:
        """The draws that produce ``graph`` in a canonical visiting order (node index order; edges sorted).

        For graphs not sampled here (e.g. proposed by an agent) whose worker ids are ``n<i>`` with i < N,
        models among :attr:`models` and a sink among :attr:`sink_options`. Raises ValueError otherwise.
        """
        index = self._worker_indices(graph)
        option = SinkOption.of_node(graph.sink)
        if option not in self.sink_options:
            raise ValueError(
                f"sink {option.label!r} is not one of the sink options {[o.label for o in self.sink_options]}"
            )
        sink_draw = None
        if len(self.sink_options) > 1:
            allowed_sinks = self.affordable_sinks()
            if (choice := self.sink_options.index(option)) not in allowed_sinks:
                raise ValueError(f"the budget does not afford the sink {option.label!r}")
            sink_draw = SinkDraw(allowed_sinks, choice)
        assigned = {i: self.models.index(graph.node(worker_id(i)).model) for i in index.values()}
        spent = self._sink_cost(option, 1)
        model_draws: list[ModelDraw] = []
        for i in sorted(assigned):
            allowed = self._affordable_models(spent, option, len(model_draws))
            if assigned[i] not in allowed:
                raise ValueError(f"graph exceeds the budget at node {worker_id(i)}")
            model_draws.append(ModelDraw(i, allowed, assigned[i]))
            spent += self._worker_costs(0)[assigned[i]]

        sink = self.n_nodes
        present = {(index[u], sink if v == graph.sink.id else index[v]) for u, v in graph.edges}
        kept = sorted(assigned)
        dag: nx.DiGraph[int] = nx.DiGraph()
        dag.add_nodes_from([*kept, sink])
        dag.add_edges_from(present)
        in_degree = {j: dag.in_degree(j) for j in dag}
        spent = unpruned_flops(graph, self.catalog, self.lengths)
        if not fits(spent, self.budget_flops):
            raise ValueError(f"graph costs {spent:.4g} FLOPs, over the budget of {self.budget_flops:.4g}")
        edge_draws = []
        for i in kept:
            for j in [*kept, sink]:
                if i == j:
                    continue
                if (i, j) not in present and (
                    (j != sink and nx.has_path(dag, j, i))
                    or not fits(spent + self._in_degree_step(j, in_degree[j], assigned, option), self.budget_flops)
                ):
                    continue  # skipped, as the sampler skips edges that close a cycle or break the budget
                edge_draws.append(EdgeDraw(i, j, (i, j) in present))

        role_draws = []
        for node_id in nx.lexicographical_topological_sort(graph.to_networkx()):
            node = graph.node(node_id)
            preds = graph.predecessors(node_id)
            if node_id == graph.sink.id or not preds:
                continue
            if all(graph.node(p).role == "assistant" for p in preds):
                role_draws.append(RoleDraw(index[node_id], node.role == "fuser"))
        return Sample(graph, tuple(model_draws), tuple(edge_draws), tuple(role_draws), sink=sink_draw)

    def _worker_indices(self, graph: CollaborationGraph) -> dict[str, int]:
        index: dict[str, int] = {}
        for node in graph.workers:
            if (i := worker_index(node.id)) is None or i >= self.n_nodes:
                raise ValueError(f"node {node.id!r} is not one of n0..n{self.n_nodes - 1}")
            if node.model not in self.models:
                raise ValueError(f"node {node.id!r} uses {node.model!r}, not one of {list(self.models)}")
            index[node.id] = i
        return index

    # ---- costs ----------------------------------------------------------------------------------------

    def _worker_costs(self, in_degree: int) -> list[float]:
        return [node_flops(self.catalog.get(m), in_degree, self.lengths) for m in self.models]

    def _sink_cost(self, sink: SinkOption, in_degree: int) -> float:
        return node_flops(self.catalog.get(sink.model), in_degree, self.lengths) if sink.model else 0.0

    def _fits(self, kept: list[int], assigned: dict[int, int], edges: list[tuple[int, int]], sink: SinkOption) -> bool:
        """Whether the graph of these draws fits the budget (roles cost nothing)."""
        if sink.role == "vote" and sum(j == self.n_nodes for _, j in edges) < 2:
            return True  # a vote's inputs cost nothing; a vote with one input is not a graph yet
        graph = self._build(kept, assigned, edges, set(), sink)
        return feasible(graph, Budget.from_flops(self.budget_flops), self.catalog, self.lengths)

    def _in_degree_step(self, target: int, in_degree: int, assigned: dict[int, int], sink: SinkOption) -> float:
        if target == self.n_nodes and not sink.model:
            return 0.0  # a vote's inputs cost nothing
        model = sink.model if target == self.n_nodes else self.models[assigned[target]]
        return input_flops(self.catalog.get(model), in_degree, self.lengths)

    # ---- serialisation and display --------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "models": list(self.models),
            "sink_model": self.sink_model,
            "n_nodes": self.n_nodes,
            "budget_flops": self.budget_flops,
            "lengths": self.lengths.model_dump(),
            "edge_offset": self.edge_offset,
            "fuser_bonus": self.fuser_bonus,
            "max_edge_attempts": self.max_edge_attempts,
            "sink_options": [o.label for o in self.sink_options],
            "edge_logits": self.edge_logits.tolist(),
            "role_logits": self.role_logits.tolist(),
            "model_logits": self.model_logits.tolist(),
            "sink_logits": self.sink_logits.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], catalog: ModelCatalog) -> ProbabilisticGraph:
        """Read :meth:`to_dict` output (data written before sink options: the fixed decider sink)."""
        fields = dict(data)
        fields["lengths"] = TaskLengths.model_validate(fields["lengths"])
        fields["sink_options"] = tuple(SinkOption.of(label) for label in fields.get("sink_options", ()))
        for name in ("edge_logits", "role_logits", "model_logits", "sink_logits"):
            if fields.get(name) is not None:
                fields[name] = np.asarray(fields[name], dtype=float)
        return cls(catalog=catalog, **fields)

    def tables(self) -> str:
        """Readable probability tables: edges (rows = from, columns = to), roles and models per node."""
        n = self.n_nodes
        names = [worker_id(i) for i in range(n)]
        width = max(6, *(len(x) for x in names))
        lines = [
            "Edge probabilities P(from -> to):",
            " " * width + "".join(f"{c:>{width}}" for c in [*names, SINK_ID]),
        ]
        for i in range(n):
            cells = ["-" if i == j else f"{self.edge_probability(i, j):.2f}" for j in range(n + 1)]
            lines.append(f"{names[i]:<{width}}" + "".join(f"{c:>{width}}" for c in cells))
        lines.append("Role probability P(fuser | all inputs are assistants):")
        lines.extend(f"  {names[i]}: {self.fuser_probability(i):.2f}" for i in range(n))
        lines.append("Model probabilities (before the budget mask):")
        for i in range(n):
            probs = self.model_probabilities(i)
            lines.append(f"  {names[i]}: " + ", ".join(f"{m} {p:.2f}" for m, p in zip(self.models, probs, strict=True)))
        if len(self.sink_options) > 1:
            probs = self.sink_probabilities()
            labels = (o.label for o in self.sink_options)
            lines.append("Sink probabilities (before the budget mask): " + ", ".join(
                f"{label} {p:.2f}" for label, p in zip(labels, probs, strict=True)
            ))  # fmt: skip
        return "\n".join(lines)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _masked_softmax(logits: np.ndarray, allowed: Sequence[int] | None) -> np.ndarray:
    """Softmax of ``logits`` over the indices ``allowed`` (all by default); 0 elsewhere."""
    if allowed is None:
        return _softmax(logits)
    mask = np.full(len(logits), -np.inf)
    mask[list(allowed)] = 0.0
    return _softmax(logits + mask)


def _vector(value: Any, size: int, name: str) -> np.ndarray:
    array = np.zeros(size) if value is None else np.array(value, dtype=float)
    if array.shape != (size,):
        raise ValueError(f"{name} has shape {array.shape}, expected ({size},)")
    return array


def _softmax(x: np.ndarray) -> np.ndarray:
    shifted = np.exp(x - np.max(x))
    return shifted / shifted.sum()


def _table(value: Any, shape: tuple[int, int], name: str) -> np.ndarray:
    if value is None:
        return np.zeros(shape)
    array = np.array(value, dtype=float)
    if array.shape != shape:
        raise ValueError(f"{name} has shape {array.shape}, expected {shape}")
    return array

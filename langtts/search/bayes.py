"""``bayes``: Bayesian optimisation with Optuna's TPE over the edges and roles of a fixed model multiset (method.md §6).

The worker nodes ``n0 .. n{k-1}`` run a fixed multiset of models, laid out smallest model first (by params, then
id), so later nodes, which can receive more inputs, run the larger models. One binary variable per potential edge
(``edge_i_j`` for i < j, and ``edge_i_sink``) and one role variable per node that can have inputs (``fuser_i``,
i ≥ 1) make the search space; when the space offers several sinks (not ``paper_faithful``), a categorical
``sink`` variable picks among those the multiset affords (a decider on a model, labelled by its id, or
``vote`` when there are at least two workers). Each round asks TPE for an assignment, turns it into a graph
(see :meth:`Bayes.graph_of`) and tells TPE the evaluation's score.

The multiset is the ``multiset`` option, or else one of the budget-maximal multisets of
:func:`langtts.cost.maximal_multisets` (sorted by floor cost, most expensive first): number ``seed mod count``, so
seed 0 takes the multiset that spends the most of the budget and seeds 1, 2, ... the next ones.

Resume: Optuna's sampler state is not saved. Instead each ask uses a fresh ``TPESampler`` seeded from (``seed``,
number of asks so far), so a proposal depends only on the seed and the observed (params, score) history; a run
resumed from :meth:`Bayes.state_dict` (which rebuilds the study with ``add_trial``) neither loses nor repeats an
evaluation and, with the same Optuna version, proposes what the uninterrupted run would have. A graph observed
other than the one proposed is mapped back to its variables (:meth:`Bayes.params_of`) and added as a completed
trial; the pending trial is told as failed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.trial import Trial, TrialState

from langtts.cost import by_size, fits, multiset_flops
from langtts.graph import CollaborationGraph, Node, Role
from langtts.search.base import Evaluation, MethodContext, SearchSpace, register
from langtts.space import SINK_ID, SinkOption, worker_id, worker_index

BINARY = CategoricalDistribution((0, 1))


def choose_multiset(space: SearchSpace, seed: int) -> tuple[str, ...]:
    """The budget-maximal multiset number ``seed mod count`` (most expensive first); ValueError if none fits."""
    found = space.multisets()
    if not found:
        raise ValueError(
            f"the budget of {space.budget.flops:.4g} FLOPs affords no worker model next to the sink "
            f"{space.sink_model!r}: bayes needs at least one worker"
        )
    return found[seed % len(found)]


@register("bayes")
class Bayes:
    """Optuna TPE over the edge and role variables of a fixed model multiset (see the module docstring).

    Options: ``multiset`` (worker model ids; default: chosen from the seed), ``n_startup_trials`` (random
    assignments before TPE takes over), ``multivariate`` (Optuna's multivariate TPE, modelling the variables
    jointly) and ``n_ei_candidates`` (candidates TPE scores per ask).
    """

    name: ClassVar[str]

    def __init__(
        self,
        context: MethodContext,
        *,
        multiset: Sequence[str] | None = None,
        n_startup_trials: int = 5,
        multivariate: bool = False,
        n_ei_candidates: int = 24,
    ) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.space = context.space
        self.seed = context.seed
        self.report_line = context.report
        self.n_startup_trials = n_startup_trials
        self.multivariate = multivariate
        self.n_ei_candidates = n_ei_candidates
        if multiset is None:
            chosen = choose_multiset(self.space, self.seed)
            context.report(f"bayes: model multiset {', '.join(chosen)} (seed {self.seed})")
        else:
            chosen = tuple(multiset)
        self._set_multiset(chosen)
        self.asks = 0
        self.observations: list[dict[str, Any]] = []
        self._pending: tuple[Trial, CollaborationGraph] | None = None
        self.study = self._new_study()

    # ---- layout -----------------------------------------------------------------------------------------

    def _set_multiset(self, multiset: Sequence[str]) -> None:
        """Check ``multiset`` against the space and lay out its nodes and variables."""
        space, catalog = self.space, self.space.catalog
        ids = list(multiset)
        if not ids:
            raise ValueError("the bayes multiset needs at least one worker model")
        if unknown := sorted({m for m in ids if m not in space.models}):
            raise ValueError(
                f"bayes multiset uses model(s) {', '.join(unknown)} outside the search space's worker models "
                f"({', '.join(space.models)})"
            )
        if len(ids) > space.max_nodes:
            raise ValueError(f"bayes multiset has {len(ids)} workers, more than max_nodes = {space.max_nodes}")
        floor = multiset_flops([catalog.get(m) for m in ids], catalog.get(space.sink_model), space.lengths)
        if not fits(floor, space.budget.flops):
            raise ValueError(
                f"bayes multiset {', '.join(ids)} with the sink {space.sink_model!r} costs at least {floor:.4g} FLOPs, "
                f"over the budget of {space.budget.flops:.4g}"
            )
        self.multiset = tuple(by_size(ids, catalog))
        k = len(self.multiset)
        self.sink = k  # the sink's slot index in edge pairs
        self.sinks = [o for o in space.sink_options() if self._affords(o)]
        distributions: dict[str, BaseDistribution] = {}
        if len(self.sinks) > 1:
            distributions["sink"] = CategoricalDistribution(tuple(o.label for o in self.sinks))
        for j in range(1, k):
            distributions |= {f"edge_{i}_{j}": BINARY for i in range(j)}
        distributions |= {f"edge_{i}_sink": BINARY for i in range(k)}
        distributions |= {f"fuser_{i}": BINARY for i in range(1, k)}
        self.distributions = distributions

    def _affords(self, sink: SinkOption) -> bool:
        """Whether the multiset can run with ``sink`` within the budget (a vote needs ``min_inputs`` workers)."""
        if sink.role == "vote":
            return len(self.multiset) >= sink.min_inputs
        catalog = self.space.catalog
        floor = multiset_flops([catalog.get(m) for m in self.multiset], catalog.get(sink.model), self.space.lengths)
        return fits(floor, self.space.budget.flops)

    def _new_study(self) -> optuna.Study:
        return optuna.create_study(direction="maximize", sampler=self._sampler())

    def _sampler(self) -> optuna.samplers.TPESampler:
        """The TPE sampler for the next ask, seeded from (seed, asks so far)."""
        seed = int(np.random.SeedSequence([self.seed, self.asks]).generate_state(1)[0])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                seed=seed,
                n_startup_trials=self.n_startup_trials,
                multivariate=self.multivariate,
                n_ei_candidates=self.n_ei_candidates,
            )

    # ---- assignment <-> graph ---------------------------------------------------------------------------

    def graph_of(self, params: Mapping[str, Any]) -> CollaborationGraph:
        """The budget-feasible graph of an assignment, repaired deterministically and pruned.

        Edges are admitted in a fixed order, nearest the sink first: the worker → sink edges (last worker
        first), then the worker → worker edges by target, then source, both descending; a chosen edge is kept
        only if the graph (nodes reaching the sink) still fits the budget. If no worker feeds the sink, the
        edge from the last worker (the largest model) is added first; the multiset's floor cost guarantees that
        it fits. A vote sink reads every chosen sink edge (they cost nothing; the floor fits), at least its
        ``min_inputs`` (two): the edges from the last workers are added until it has them. Roles in node order: a
        node is a fuser iff its variable says so and all its inputs (at least one) are assistants; otherwise it is
        an assistant. Nodes with no path to the sink are pruned.
        """
        k, sink = len(self.multiset), self.sink
        option = SinkOption.of(params["sink"]) if "sink" in params else self.sinks[0]
        sink_edges = [(i, sink) for i in reversed(range(k)) if params[f"edge_{i}_sink"]]
        worker_edges = [(i, j) for j in reversed(range(k)) for i in reversed(range(j)) if params[f"edge_{i}_{j}"]]
        edges: list[tuple[int, int]] = []
        if option.role == "vote":  # admitted unchecked: a vote's inputs cost nothing
            missing = [(i, sink) for i in reversed(range(k)) if (i, sink) not in sink_edges]
            edges = sink_edges + missing[: max(0, option.min_inputs - len(sink_edges))]
            candidates = worker_edges
        else:
            candidates = [*(sink_edges or [(k - 1, sink)]), *worker_edges]
        for edge in candidates:
            if self.space.feasible(self._graph([*edges, edge], ["assistant"] * k, option)):  # roles cost nothing
                edges.append(edge)
        roles: list[Role] = []
        for i in range(k):
            inputs = [roles[s] for s, t in edges if t == i]
            fuser = i > 0 and bool(params[f"fuser_{i}"]) and bool(inputs) and all(r == "assistant" for r in inputs)
            roles.append("fuser" if fuser else "assistant")
        return self._graph(edges, roles, option).pruned()

    def _graph(self, edges: Sequence[tuple[int, int]], roles: Sequence[Role], sink: SinkOption) -> CollaborationGraph:
        """The graph of the multiset's nodes with these roles and edges between slot indices."""
        nodes = [Node(worker_id(i), roles[i], m) for i, m in enumerate(self.multiset)]
        nodes.append(Node(SINK_ID, sink.role, sink.model))
        named = [(worker_id(i), SINK_ID if j == self.sink else worker_id(j)) for i, j in sorted(edges)]
        return CollaborationGraph(nodes=tuple(nodes), edges=tuple(named), sink_id=SINK_ID)

    def params_of(self, graph: CollaborationGraph) -> dict[str, int | str]:
        """The assignment that :meth:`graph_of` turns into ``graph`` (up to pruning); ValueError if there is
        none (worker ``n<i>`` must run the i-th model of the multiset, edges go from lower to higher i, and the
        graph must fit the budget and have workers)."""
        option = SinkOption.of_node(graph.sink)
        if option not in self.sinks:
            raise ValueError(f"graph's sink {option.label!r} is not one of {[o.label for o in self.sinks]}")
        slot: dict[str, int] = {graph.sink.id: self.sink}
        for node in graph.workers:
            i = worker_index(node.id)
            if i is None or i >= len(self.multiset) or node.model != self.multiset[i]:
                layout = ", ".join(f"{worker_id(i)}={m}" for i, m in enumerate(self.multiset))
                raise ValueError(f"graph node {node.id!r} ({node.model}) is not in the bayes layout {layout}")
            slot[node.id] = i
        params: dict[str, int | str] = dict.fromkeys(self.distributions, 0)
        if "sink" in params:
            params["sink"] = option.label
        for u, v in graph.edges:
            i, j = slot[u], slot[v]
            if i >= j:
                raise ValueError(f"edge {u} -> {v} goes against the bayes node order")
            params[f"edge_{i}_sink" if j == self.sink else f"edge_{i}_{j}"] = 1
        for node in graph.workers:
            if node.role == "fuser":
                params[f"fuser_{slot[node.id]}"] = 1
        if self.graph_of(params).fingerprint() != graph.pruned().fingerprint():
            raise ValueError("graph is not one that bayes proposes (no workers, or edges over the budget)")
        return params

    # ---- the Optimizer protocol -------------------------------------------------------------------------

    async def propose(self) -> CollaborationGraph:
        if self._pending is not None:  # proposed but never observed
            self.study.tell(self._pending[0], state=TrialState.FAIL)
        self.study.sampler = self._sampler()
        self.asks += 1
        trial = self.study.ask(dict(self.distributions))
        graph = self.graph_of(trial.params)
        self._pending = (trial, graph)
        return graph

    async def observe(self, graph: CollaborationGraph, evaluation: Evaluation) -> None:
        pending, self._pending = self._pending, None
        value = float(evaluation.score)
        if pending is not None and pending[1].fingerprint() == graph.fingerprint():
            params = {k: v if k == "sink" else int(v) for k, v in pending[0].params.items()}
            if math.isfinite(value):
                self.study.tell(pending[0], value)
            else:
                self.study.tell(pending[0], state=TrialState.FAIL)
        else:  # a recorded graph after a resume: fail the pending trial, add the graph as a completed one
            params = self.params_of(graph)
            if pending is not None:
                self.study.tell(pending[0], state=TrialState.FAIL)
            if math.isfinite(value):
                self._add(params, value)
        if math.isfinite(value):
            self.observations.append({"params": params, "value": value})
        else:
            self.report_line(f"bayes: score {value} of graph {graph.fingerprint()[:12]} not told to TPE")

    def _add(self, params: Mapping[str, int | str], value: float) -> None:
        trial = optuna.trial.create_trial(params=dict(params), distributions=dict(self.distributions), value=value)
        self.study.add_trial(trial)

    def state_dict(self) -> dict[str, Any]:
        return {"multiset": list(self.multiset), "asks": self.asks, "observations": list(self.observations)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._set_multiset(state["multiset"])
        self.asks = int(state["asks"])
        self.observations = [{"params": dict(o["params"]), "value": float(o["value"])} for o in state["observations"]]
        self._pending = None
        self.study = self._new_study()
        for o in self.observations:
            self._add(o["params"], o["value"])

    def report(self) -> dict[str, Any]:
        best = max(self.observations, key=lambda o: o["value"], default=None)
        if best is not None:
            best = {"value": best["value"], "graph": self.graph_of(best["params"]).to_dict()}
        return {
            "multiset": list(self.multiset),
            "variables": len(self.distributions),
            "observed": len(self.observations),
            "best": best,
        }

"""p_θ over a fixed worker multiset (Agent-REINFORCE after its initialisation): worker ``n<i>`` starts on
``multiset[i]``, and every draw uses each model exactly as often as the multiset says.

Its sink options (:func:`sink_options`) are the paper's fixed decider on ``space.sink_model`` in a
``paper_faithful`` space; otherwise those of ``space.sink_options()`` the budget affords with every worker of the
multiset running (a decider reading one input, a vote with at least two workers), so any draw of the multiset
fits under any of them.

Model draws visit the nodes in random order; each draws from its model softmax restricted to the models with
count left (so log p and its gradient stay exact); edges and roles are then drawn by
:meth:`~langtts.space.ProbabilisticGraph.sample` with that assignment pinned.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from langtts.cost import fits, multiset_flops, node_flops, unpruned_flops
from langtts.graph import CollaborationGraph
from langtts.search.base import SearchSpace
from langtts.space import DEFAULT_FUSER_BONUS, ModelDraw, ProbabilisticGraph, Sample, SinkOption

ASSIGN_LOGIT = 4.0  # initial model logit of a worker's own model (p ≈ 0.98 against one other model)
NO_FUSER_BONUS = -30.0  # fusers=False: P(fuser) ≈ 1e-13


def sink_options(space: SearchSpace, multiset: Sequence[str]) -> tuple[SinkOption, ...]:
    """The sinks a graph of ``multiset``'s workers may end in: the decider on ``space.sink_model`` alone when the
    space is ``paper_faithful``; else each of ``space.sink_options()`` whose floor with every worker running fits
    the budget (a decider reading one input; a vote, 0 FLOPs, when there are at least two workers)."""
    fixed = SinkOption("decider", space.sink_model)
    if space.paper_faithful:
        return (fixed,)
    catalog, lengths = space.catalog, space.lengths
    workers = [catalog.get(m) for m in multiset]
    affordable = tuple(
        option
        for option in space.sink_options()
        if fits(
            multiset_flops(workers, catalog.get(option.model), lengths)
            if option.model
            else sum(node_flops(w, 0, lengths) for w in workers),
            space.budget.flops,
        )
        and len(workers) >= option.min_inputs
    )
    return affordable or (fixed,)


def initial_distribution(
    space: SearchSpace,
    multiset: Sequence[str],
    *,
    fusers: bool = True,
    sinks: Sequence[SinkOption] | None = None,
) -> ProbabilisticGraph:
    """Sparse edges, the role prior and uniform sink logits over ``len(multiset)`` workers; worker i favours
    ``multiset[i]``; the sink options are ``sinks`` (default :func:`sink_options`)."""
    models = tuple(dict.fromkeys(multiset))
    model_logits = np.zeros((len(multiset), len(models)))
    for i, model in enumerate(multiset):
        model_logits[i, models.index(model)] = ASSIGN_LOGIT
    return ProbabilisticGraph(
        models=models,
        sink_model=space.sink_model,
        n_nodes=len(multiset),
        budget_flops=space.budget.flops,
        lengths=space.lengths,
        catalog=space.catalog,
        model_logits=model_logits,
        fuser_bonus=DEFAULT_FUSER_BONUS if fusers else NO_FUSER_BONUS,
        sink_options=tuple(sink_options(space, multiset) if sinks is None else sinks),
    )


def draw(pg: ProbabilisticGraph, multiset: Sequence[str], rng: np.random.Generator) -> Sample:
    """A graph from ``pg`` whose workers use exactly ``multiset``: nodes draw their models in random order from
    the models with count left; edges and roles are drawn by ``pg`` with that assignment pinned."""
    left = Counter(multiset)
    draws = []
    for node in rng.permutation(pg.n_nodes):
        allowed = tuple(k for k, m in enumerate(pg.models) if left[m] > 0)
        choice = int(rng.choice(len(pg.models), p=pg.model_probabilities(int(node), allowed)))
        draws.append(ModelDraw(int(node), allowed, choice))
        left[pg.models[choice]] -= 1
    pinned = np.full_like(pg.model_logits, -1e3)
    for d in draws:
        pinned[d.node, d.choice] = 0.0
    return replace(replace(pg, model_logits=pinned).sample(rng), models=tuple(draws))


def explain(pg: ProbabilisticGraph, graph: CollaborationGraph, multiset: Sequence[str]) -> Sample:
    """The draws of ``graph`` under :func:`draw` (nodes in index order); ValueError if it cannot be drawn.

    The sampler reserves budget for every worker, while a graph only pays for the nodes that reach the sink:
    a graph that fits only once pruned is explained under a budget raised to its unpruned cost (its draws are
    exact; log p approximates, as the sampler would skip some of its edges).
    """
    unpruned = unpruned_flops(graph, pg.catalog, pg.lengths)
    sample = replace(pg, budget_flops=max(pg.budget_flops, unpruned)).explain(graph)
    assigned = {d.node: d.choice for d in sample.models}
    used = Counter(pg.models[c] for c in assigned.values())
    if sorted(assigned) != list(range(pg.n_nodes)) or used != Counter(multiset):
        raise ValueError("the graph does not use exactly the worker multiset")
    left = Counter(multiset)
    draws = []
    for node in range(pg.n_nodes):
        draws.append(ModelDraw(node, tuple(k for k, m in enumerate(pg.models) if left[m] > 0), assigned[node]))
        left[pg.models[assigned[node]]] -= 1
    return replace(sample, models=tuple(draws))

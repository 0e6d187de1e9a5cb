"""A small search space, a synthetic evaluator and a driver that runs optimizers through the protocol."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from langtts import shapes
from langtts.cost import Budget, default_catalog, task_lengths
from langtts.graph import CollaborationGraph
from langtts.search import bayes, grid, random_search, reinforce  # noqa: F401  (register the methods)
from langtts.search.base import METHODS, Evaluation, MethodContext, Optimizer, SearchSpace
from langtts.search.synthetic import SyntheticEvaluator
from langtts.tasks.base import Example

MODELS = ("smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b")
SINK = "qwen2.5-coder-1.5b"
UNIT_MODEL = "qwen2.5-coder-0.5b"  # the sink with one input costs about 4.9 units; smollm2 0.28, gemma3 0.54
EXAMPLES = [Example(id=f"q{i}", question=f"question {i}", answer="0") for i in range(6)]


def make_space(units: float = 8.0, max_nodes: int = 8, *, extended: bool = False) -> SearchSpace:
    """The paper's space (a decider sink on SINK), or with ``extended`` langtts's: the sink may also be a decider
    on any worker model or a vote."""
    catalog = default_catalog()
    lengths = task_lengths("math")
    budget = Budget.from_units(units, catalog.get(UNIT_MODEL), lengths)
    return SearchSpace(
        models=MODELS,
        sink_model=SINK,
        budget=budget,
        lengths=lengths,
        catalog=catalog,
        max_nodes=max_nodes,
        sink_models=MODELS if extended else (),
        vote_sink=extended,
        paper_faithful=not extended,
    )


def make_evaluator(space: SearchSpace) -> SyntheticEvaluator:
    target = shapes.parallel(["gemma3-270m", "smollm2-135m"], sink_model=SINK)
    if not space.feasible(target):  # a tight budget
        target = shapes.parallel(["smollm2-135m"], sink_model=SINK)
    return SyntheticEvaluator(target, space, seed=7)


def build(method: str, space: SearchSpace, seed: int, **options: Any) -> Optimizer:
    return METHODS[method](MethodContext(space=space, seed=seed), **options)


async def evaluation(
    evaluator: SyntheticEvaluator, graph: CollaborationGraph, index: int, space: SearchSpace
) -> Evaluation:
    outcome = await evaluator.evaluate(graph, EXAMPLES)
    return Evaluation(
        index=index,
        phase="search",
        round=index,
        fingerprint=graph.fingerprint(),
        graph=graph.to_dict(),
        modelled_flops=space.cost(graph),
        score=outcome.accuracy,
        outcome=outcome,
    )


async def adrive(optimizer: Optimizer, space: SearchSpace, rounds: int, start: int = 0) -> list[CollaborationGraph]:
    """``rounds`` rounds of propose → evaluate → observe; the proposed graphs (stops early on None)."""
    evaluator = make_evaluator(space)
    graphs = []
    for r in range(start, start + rounds):
        graph = await optimizer.propose()
        if graph is None:
            break
        graphs.append(graph)
        await optimizer.observe(graph, await evaluation(evaluator, graph, r, space))
    return graphs


def drive(optimizer: Optimizer, space: SearchSpace, rounds: int, start: int = 0) -> list[CollaborationGraph]:
    return asyncio.run(adrive(optimizer, space, rounds, start))


def fingerprints(graphs: list[CollaborationGraph]) -> list[str]:
    return [g.fingerprint() for g in graphs]


def json_round_trip(state: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(state))

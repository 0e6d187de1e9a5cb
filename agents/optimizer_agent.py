"""LangGraph entry point: the Agent-REINFORCE optimizer agent, configured from the environment.

``make_graph`` builds the agent's graph for ``langgraph dev`` (which supplies the checkpointer):

- ``LANGTTS_POOL`` (required): the pool file; ``LANGTTS_TASK`` (default ``gsm8k``);
- ``LANGTTS_BUDGET``: budget in units, no-input calls of the smallest worker model (default 18);
- ``LANGTTS_MODELS``: comma-separated worker model ids (default: every pool model); ``LANGTTS_SINK_MODEL``
  (default: the largest worker); ``LANGTTS_AGENT_MODEL`` (default: the pool's largest model);
- ``LANGTTS_VARIANT`` (``agent``, ``textgrad``, ``maas``), ``LANGTTS_OBJECTIVE`` (``accuracy``, ``joint``),
  ``LANGTTS_SEED`` (default 0), ``LANGTTS_MAX_ROUNDS`` (default: no limit).

Each round pauses at ``evaluate`` with the proposed graph; resume it with ``{"score": ...}`` (optionally
``"outcome": {"accuracy": ..., "latency_s": ...}``) or an :class:`~langtts.search.base.Evaluation` as JSON.
The pre-tests of ``initialise`` run one question of the task's default split on the pool.
"""

from __future__ import annotations

import os

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

from langtts.graph import CollaborationGraph
from langtts.models import ModelPool
from langtts.search.agent_reinforce import AgentReinforce
from langtts.search.base import Evaluation, MethodContext
from langtts.search.evaluator import PoolEvaluator
from langtts.search.run import run_config, search_space
from langtts.tasks import get_task


def make_graph(config: RunnableConfig) -> CompiledStateGraph:
    """The optimizer agent over the pool, task and budget named by the ``LANGTTS_*`` variables."""
    env = os.environ
    if not env.get("LANGTTS_POOL"):
        raise ValueError("set LANGTTS_POOL to a pool file (see `langtts serve`)")
    pool = ModelPool.from_file(env["LANGTTS_POOL"])
    task = get_task(env.get("LANGTTS_TASK", "gsm8k"))
    run = run_config(
        task,
        pool,
        float(env.get("LANGTTS_BUDGET", "18")),
        models=[m.strip() for m in env["LANGTTS_MODELS"].split(",")] if env.get("LANGTTS_MODELS") else None,
        sink_model=env.get("LANGTTS_SINK_MODEL") or None,
        seed=int(env.get("LANGTTS_SEED", "0")),
    )
    space = search_space(run, pool, task)
    evaluator = PoolEvaluator(task, pool, tags={"purpose": "evaluate"})

    async def calibrate(graph: CollaborationGraph, n: int) -> Evaluation:
        outcome = await evaluator.evaluate(graph, task.load()[:n])
        return Evaluation(
            index=0,
            phase="calibrate",
            fingerprint=graph.fingerprint(),
            graph=graph.to_dict(),
            modelled_flops=space.cost(graph),
            score=outcome.accuracy,
            outcome=outcome,
        )

    context = MethodContext(
        space=space,
        seed=run.seed,
        pool=pool,
        task=task,
        tags={"purpose": "optimizer"},
        calibrate=calibrate,
        report=print,
        settings={k: getattr(run, k) for k in ("split", "temperature", "max_tokens")},
    )
    agent = AgentReinforce(
        context,
        agent_model=env.get("LANGTTS_AGENT_MODEL") or None,
        variant=env.get("LANGTTS_VARIANT", "agent"),  # type: ignore[arg-type]
        objective_kind=env.get("LANGTTS_OBJECTIVE", "accuracy"),  # type: ignore[arg-type]
        max_rounds=int(env["LANGTTS_MAX_ROUNDS"]) if env.get("LANGTTS_MAX_ROUNDS") else None,
    )
    return agent.agent_graph()

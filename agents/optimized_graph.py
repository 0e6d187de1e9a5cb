"""LangGraph entry point: an optimized collaboration graph served as a LangGraph app, configured from the
environment.

``make_graph`` compiles the graph file for ``langgraph dev``:

- ``LANGTTS_POOL`` (required): the pool file of the servers the graph's models run on;
- ``LANGTTS_GRAPH``: the graph file, JSON or YAML, e.g. an optimize run's ``graph.json`` (default: this
  repository's ``examples/graphs/duo.json``);
- ``LANGTTS_TASK``: the task whose answer format the sink uses (default: none, a generic answer);
- ``LANGTTS_MAX_TOKENS``: max tokens per node (default: the task family's default).

Invoke it with ``{"question": "..."}``; the answer is in ``"answer"``, with ``trace``, ``calls``, ``flops`` and
``latency_s`` next to it.
"""

from __future__ import annotations

import os
from pathlib import Path

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

from langtts.compile import GenerationSettings, compile_graph
from langtts.graph import load_graph
from langtts.models import ModelPool
from langtts.tasks import get_task

DEFAULT_GRAPH = Path(__file__).resolve().parents[1] / "examples" / "graphs" / "duo.json"


def make_graph(config: RunnableConfig) -> CompiledStateGraph:
    """The graph named by ``LANGTTS_GRAPH``, compiled over the pool named by ``LANGTTS_POOL``."""
    env = os.environ
    if not env.get("LANGTTS_POOL"):
        raise ValueError("set LANGTTS_POOL to a pool file (see `langtts serve`)")
    graph = load_graph(env.get("LANGTTS_GRAPH") or DEFAULT_GRAPH)
    task = get_task(env["LANGTTS_TASK"]) if env.get("LANGTTS_TASK") else None
    settings = GenerationSettings(max_tokens=int(env["LANGTTS_MAX_TOKENS"])) if env.get("LANGTTS_MAX_TOKENS") else None
    return compile_graph(graph, ModelPool.from_file(env["LANGTTS_POOL"]), task, settings=settings)

"""langtts: compute-optimal multi-LLM collaboration graphs for LangChain/LangGraph.

Find the best collaboration graph for a task under a FLOPs budget (Agent-REINFORCE) and run it as a LangGraph app.
Everything public is importable from here; submodules load on first use, so ``import langtts`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "langtts.compile": ("GenerationSettings", "compile_graph"),
    "langtts.cost": (
        "Budget",
        "ModelCatalog",
        "ModelSpec",
        "TaskLengths",
        "default_catalog",
        "graph_cost",
        "task_lengths",
    ),
    "langtts.evaluation": ("EvaluationResult", "aevaluate", "evaluate"),
    "langtts.graph": ("CollaborationGraph", "GraphError", "Node", "load_graph"),
    "langtts.models": ("CallCache", "ModelPool"),
    "langtts.prompts": ("PromptLibrary",),
    "langtts.search": ("OptimizationResult", "RunConfig", "aoptimize", "aresume", "optimize", "resume"),
    "langtts.shapes": ("chain", "fused", "layered", "parallel", "self_consistency", "self_moa", "single"),
    "langtts.space": ("ProbabilisticGraph",),
    "langtts.tasks": ("Example", "JsonlTask", "Task", "get_task"),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'langtts' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])

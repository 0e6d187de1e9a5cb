"""Search for the best collaboration graph: one loop (:func:`optimize`), methods behind one protocol.

Methods register themselves in :data:`METHODS` when their module is imported; importing this package imports
the built-in ones: ``random``, ``reinforce``, ``bayes``, ``grid`` and ``agent-reinforce``.
"""

from langtts.search import agent_reinforce, base, bayes, grid, random_search, reinforce  # noqa: F401  (register)
from langtts.search.base import *  # noqa: F403  (the optimizer protocol and records, listed in base.__all__)
from langtts.search.objectives import Accuracy, AccuracyLatency, CustomObjective, make_objective
from langtts.search.records import OptimizationResult, RunConfig, RunState
from langtts.search.run import aoptimize, aresume, optimize, pareto, resume
from langtts.search.stoppers import Evaluations, FlopsSpent, Iterations, NoImprovement, StopFile, WallTime

__all__ = [
    "Accuracy",
    "AccuracyLatency",
    "CustomObjective",
    "Evaluations",
    "FlopsSpent",
    "Iterations",
    "NoImprovement",
    "OptimizationResult",
    "RunConfig",
    "RunState",
    "StopFile",
    "WallTime",
    "aoptimize",
    "aresume",
    "make_objective",
    "optimize",
    "pareto",
    "resume",
    *base.__all__,
]

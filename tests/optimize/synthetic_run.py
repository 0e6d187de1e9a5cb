"""A search on the synthetic evaluator, runnable as a script (``python -m tests.optimize.synthetic_run METHOD
RUN_DIR [DELAY_S]``) so tests can SIGKILL it midway; :func:`run` with the same arguments is the reference."""

from __future__ import annotations

import sys
from typing import Any

from langtts import shapes
from langtts.optimize import OptimizationResult, SearchSpace, optimize
from langtts.optimize.synthetic import SyntheticEvaluator

MODELS = ["smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b"]
BUDGET_UNITS = 30.0


def settings(method: str, **overrides: Any) -> dict[str, Any]:
    return {
        "method": method,
        "models": MODELS,
        "iterations": 12,
        "batch_size": 4,
        "top_k": 3,
        "validation_size": 8,
        "n_test": 10,
        "seed": 7,
        "progress": False,
        **overrides,
    }


def evaluator(delay_s: float = 0.0):
    def build(space: SearchSpace) -> SyntheticEvaluator:
        target = shapes.layered("smollm2-135m", 2, 2, sink_model=space.sink_model)
        return SyntheticEvaluator(target, space, delay_s=delay_s)

    return build


def run(method: str, run_dir: str, delay_s: float = 0.0, **overrides: Any) -> OptimizationResult:
    return optimize(
        "gsm8k", None, BUDGET_UNITS, run_dir=run_dir, evaluator=evaluator(delay_s), **settings(method, **overrides)
    )


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 0.0)

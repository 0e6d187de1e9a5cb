"""``langtts quickstart``: the README's main job on the embedded server."""

from __future__ import annotations

import argparse
from pathlib import Path

from langtts.cli.common import add_command, add_sandbox_argument, arguments


class _Defaults:
    """The defaults of :func:`langtts.quickstart.run_quickstart` (repeated here so that the command line does not
    import the search machinery to build its parser; a test checks they agree)."""

    TASK = "gsm8k"
    WORKERS = ("qwen2.5-coder-0.5b",)
    AGENT_MODEL = "qwen2.5-coder-1.5b"
    BUDGET_UNITS = 5.0
    ITERATIONS = 2
    BATCH_SIZE = 1
    VALIDATION_SIZE = 0
    N_TEST = 4


def register(commands: argparse._SubParsersAction) -> None:
    q = _Defaults
    parser = add_command(commands, "quickstart", run)
    parser.add_argument("--out", type=Path, default=Path("langtts-quickstart"), help="results folder")
    parser.add_argument("--task", default=q.TASK, help=f"gsm8k or mmlu (default {q.TASK})")
    parser.add_argument(
        "--workers",
        type=lambda text: [m for m in text.split(",") if m],
        default=list(q.WORKERS),
        help=f"comma-separated worker models (default {','.join(q.WORKERS)}; the sink defaults to the largest)",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=q.BUDGET_UNITS,
        help=f"budget in units of the smallest worker (default {q.BUDGET_UNITS:g})",
    )
    parser.add_argument("--iterations", type=int, default=q.ITERATIONS, help=f"search rounds (default {q.ITERATIONS})")
    parser.add_argument(
        "--batch-size", type=int, default=q.BATCH_SIZE, help=f"questions per round (default {q.BATCH_SIZE})"
    )
    parser.add_argument(
        "--validation-size",
        type=int,
        default=q.VALIDATION_SIZE,
        help=f"questions re-evaluating the best graphs before the choice (default {q.VALIDATION_SIZE}: none)",
    )
    parser.add_argument(
        "--n-test",
        type=int,
        default=q.N_TEST,
        help=f"held-out questions of the three-way comparison (default {q.N_TEST}); more for a powered comparison: "
        "a time estimate and the detectable difference are printed first",
    )
    parser.add_argument("--max-tokens", type=int, help="max tokens per node (default: per task family)")
    parser.add_argument(
        "--agent-model", default=q.AGENT_MODEL, help=f"the optimizer agent's model (default {q.AGENT_MODEL})"
    )
    add_sandbox_argument(parser)


def run(args: argparse.Namespace) -> int:
    """set up the embedded server, search a graph with Agent-REINFORCE and compare it with two baselines

    Build llama-server and fetch the verified weights (first run only), start the embedded server, search a
    collaboration graph with Agent-REINFORCE on GSM8K (worker qwen2.5-coder-0.5b, agent qwen2.5-coder-1.5b), and
    compare it on the run's held-out questions with the single best model and FLOPs-matched self-consistency of
    that model (paired bootstrap CI and McNemar). Prints what the budget affords, a time estimate and the smallest
    difference the held-out questions can detect before the work starts; writes the graph (JSON + PNG), the search
    curve and the comparison to --out. Safe to run twice (builds, weights, the call cache and the run are reused).
    """
    from langtts.quickstart import run_quickstart

    options = arguments(
        args,
        "task",
        "workers",
        "iterations",
        "batch_size",
        "validation_size",
        "n_test",
        "max_tokens",
        "agent_model",
        "sandbox",
    )
    report = run_quickstart(args.out, budget_units=args.budget, **options)
    print(report.summary())
    return 0

"""``langtts quickstart``: the README's main job on the embedded server."""

from __future__ import annotations

import argparse
from pathlib import Path

from langtts.cli.common import add_command, add_sandbox_argument, arguments


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(commands, "quickstart", run)
    parser.add_argument("--out", type=Path, default=Path("langtts-quickstart"), help="results folder")
    parser.add_argument("--task", default="mmlu", help="gsm8k or mmlu (default mmlu)")
    parser.add_argument("--budget", type=float, default=12.0, help="budget in units of the smallest model")
    parser.add_argument("--iterations", type=int, default=3, help="search rounds (default 3)")
    parser.add_argument("--batch-size", type=int, default=3, help="questions per round (default 3)")
    parser.add_argument("--n-test", type=int, default=8, help="held-out questions (default 8)")
    parser.add_argument("--max-tokens", type=int, help="max tokens per node (default: per task family)")
    parser.add_argument("--agent-model", default="qwen2.5-coder-1.5b", help="the optimizer agent's model")
    add_sandbox_argument(parser)


def run(args: argparse.Namespace) -> int:
    """set up the embedded server and run a small real Agent-REINFORCE search end to end

    Build llama-server and fetch the verified weights (first run only), start the embedded server, search a
    collaboration graph with Agent-REINFORCE on a handful of questions, compare it with a single-model baseline on
    held-out questions, and write the graph (JSON + PNG), the search curve and the comparison to --out. Safe to run
    twice (builds, weights, the call cache and the run are reused)."""
    from langtts.quickstart import run_quickstart

    options = arguments(args, "task", "iterations", "batch_size", "n_test", "max_tokens", "agent_model", "sandbox")
    report = run_quickstart(args.out, budget_units=args.budget, **options)
    print(report.summary())
    return 0

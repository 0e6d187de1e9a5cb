"""``langtts quickstart``: the README's main job on the embedded server."""

from __future__ import annotations

import argparse
from pathlib import Path

from langtts.cli.common import add_sandbox_argument


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "quickstart",
        help="set up the embedded server and run a small real Agent-REINFORCE search end to end",
        description="Build llama-server and fetch the verified weights (first run only), start the embedded "
        "server, search a collaboration graph with Agent-REINFORCE on a handful of questions, compare it with "
        "a single-model baseline on held-out questions, and write the graph (JSON + PNG), the search curve and "
        "the comparison to --out. Safe to run twice (builds, weights, the call cache and the run are reused).",
    )
    parser.add_argument("--out", type=Path, default=Path("langtts-quickstart"), help="results folder")
    parser.add_argument("--task", default="mmlu", help="gsm8k or mmlu (default mmlu)")
    parser.add_argument("--budget", type=float, default=12.0, help="budget in units of the smallest model")
    parser.add_argument("--iterations", type=int, default=3, help="search rounds (default 3)")
    parser.add_argument("--batch-size", type=int, default=3, help="questions per round (default 3)")
    parser.add_argument("--n-test", type=int, default=8, help="held-out questions (default 8)")
    parser.add_argument("--max-tokens", type=int, help="max tokens per node (default: per task family)")
    parser.add_argument("--agent-model", default="qwen2.5-coder-1.5b", help="the optimizer agent's model")
    add_sandbox_argument(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from langtts.quickstart import run_quickstart

    report = run_quickstart(
        args.out,
        task=args.task,
        budget_units=args.budget,
        iterations=args.iterations,
        batch_size=args.batch_size,
        n_test=args.n_test,
        max_tokens=args.max_tokens,
        agent_model=args.agent_model,
        sandbox=args.sandbox,
    )
    print(report.summary())
    return 0

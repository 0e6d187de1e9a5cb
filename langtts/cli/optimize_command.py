"""``langtts optimize``: search for the best collaboration graph of a task under a FLOPs budget."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from langtts.cli.common import (
    add_command,
    add_pool_arguments,
    add_task_arguments,
    open_pool,
    sandbox_options,
    task_from_args,
)

METHODS_HELP = "agent-reinforce (default), reinforce, random, bayes, grid"


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(commands, "optimize", run_optimize)
    parser.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue the run in RUN_DIR")
    add_task_arguments(parser, required=False)
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--budget", type=float, help="budget in units: no-input calls of the smallest model")
    budget.add_argument("--budget-flops", type=float, help="budget in FLOPs per question")
    parser.add_argument("--method", help=METHODS_HELP)
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a method option (VALUE as JSON, else a string), e.g. --option lr=0.2 --option agent_model=qwen",
    )
    parser.add_argument("--objective", choices=("accuracy", "joint"), help="accuracy (default) or joint")
    parser.add_argument("--latency-weight", type=float, help="joint: accuracy points per latency ref (default 0.5)")
    parser.add_argument("--iterations", type=int, help="search rounds (default 10)")
    parser.add_argument(
        "--batch-size",
        type=int,
        help="search questions per chunk: a round races the candidate against the best graph on the same questions, "
        "a chunk at a time (default 4)",
    )
    parser.add_argument(
        "--race-max-questions", type=int, help="the most search questions a round gives a candidate (default 4 chunks)"
    )
    parser.add_argument("--top-k", type=int, help="graphs re-evaluated before choosing (default 3)")
    parser.add_argument("--validation-size", type=int, help="validation questions (default 12)")
    parser.add_argument("--n-search", type=int, help="search split size (default: enough for every round)")
    parser.add_argument("--n-test", type=int, help="held-out test questions (default 20)")
    parser.add_argument("--seed", type=int, help="seed of the question draw and the method (default 0)")
    parser.add_argument("--run-dir", type=Path, help="run directory (default langtts-runs/<task>-<method>-<time>)")
    parser.add_argument("--models", type=_names, help="comma-separated worker models (default: every pool model)")
    parser.add_argument(
        "--sink-model", help="the default sink's model (the paper's fixed decider; default: the pool's largest)"
    )
    parser.add_argument(
        "--paper-faithful",
        action="store_const",
        const=True,
        help="search the paper's space: the sink is a decider on --sink-model and agent-reinforce keeps its model "
        "counts (default: every method may also pick the sink's model among the workers and a vote sink)",
    )
    parser.add_argument("--max-evaluations", type=int, help="stop after this many search evaluations")
    parser.add_argument(
        "--wall-time", type=float, dest="wall_time_s", metavar="SECONDS", help="stop the search after this long"
    )
    parser.add_argument(
        "--max-flops", type=float, help="stop the search once evaluations and the optimizer's LLM used this many FLOPs"
    )
    parser.add_argument("--patience", type=int, help="stop after this many rounds without improvement")
    parser.add_argument("--concurrency", type=int, help="questions in flight (default 4)")
    parser.add_argument("--max-tokens", type=int, help="max tokens per node (default: per task family)")
    parser.add_argument("--temperature", type=float, help="sampling temperature (default 0.1)")
    parser.add_argument(
        "--lengths",
        choices=("preset", "profile"),
        help="the cost model's prompt and answer lengths: the task's preset (default) or those measured by the "
        "stored `langtts profile` of these models",
    )
    parser.add_argument("--json", action="store_true", help="print the result summary as JSON")
    add_pool_arguments(parser)


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def method_options(items: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--option {item!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options


def _resumed_code_task(args: argparse.Namespace) -> Any:
    """The resumed run's task rebuilt with --sandbox when it runs code, else None (the run's stored task)."""
    from langtts.tasks import get_task

    config = json.loads((args.resume / "config.json").read_text(encoding="utf-8"))
    sandbox = sandbox_options(config["task"], args)
    return get_task(config["task"], **config.get("task_options", {}), **sandbox) if sandbox else None


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """The run options given on the command line (those left out take the run's, or the defaults): the
    arguments named after an option of :func:`~langtts.search.aoptimize`, the method's ``--option`` and the
    objective."""
    from langtts.search.run import options_in

    options = options_in({**vars(args), "lengths": "profile" if args.lengths == "profile" else None})
    if args.option:
        options["method_options"] = method_options(args.option)
    if args.objective == "joint" or args.latency_weight is not None:
        options["objective"] = {"name": "joint", "weight": 0.5 if args.latency_weight is None else args.latency_weight}
    return options


def run_optimize(args: argparse.Namespace) -> int:
    """search for the best collaboration graph under a budget (resumable)

    Search for the collaboration graph that scores best on a task's search questions within a FLOPs budget,
    re-evaluate the top graphs on a validation set, test the chosen one on held-out questions, and write everything
    to a run directory (resume it with --resume RUN_DIR; `touch RUN_DIR/STOP` ends the search gracefully). With
    --resume, the stop conditions (--iterations, --max-evaluations, --wall-time, --max-flops, --patience) and
    --concurrency may change, which extends a finished or stopped run; any other option given must match the run's."""
    from langtts.cost import Budget
    from langtts.search import aoptimize, aresume
    from langtts.tasks import is_task_file

    if args.resume is not None:
        if not (args.resume / "config.json").is_file():
            raise ValueError(f"{args.resume} is not a langtts run directory (no config.json)")
        fixed = (args.budget, args.budget_flops, args.subjects, args.run_dir, args.scorer, args.lengths)
        if any(value is not None and value != [] for value in fixed):
            raise ValueError(
                "--budget, --budget-flops, --subjects, --scorer, --run-dir and --lengths are fixed by the run"
            )
        options = run_options(args)
        if args.task:  # must be the run's
            options["task"] = str(Path(args.task).resolve()) if is_task_file(args.task) else args.task
        with open_pool(args) as pool:
            result = asyncio.run(aresume(args.resume, pool, task=_resumed_code_task(args), **options))
    else:
        if not args.task:
            raise ValueError("--task is required (or --resume RUN_DIR)")
        if args.budget is None and args.budget_flops is None:
            raise ValueError("give --budget UNITS or --budget-flops FLOPS")
        task = task_from_args(args)
        budget = Budget.from_flops(args.budget_flops) if args.budget_flops else args.budget
        with open_pool(args) as pool:
            result = asyncio.run(aoptimize(task, pool, budget, run_dir=args.run_dir, **run_options(args)))
    if args.json:
        print(json.dumps(result.model_dump(mode="json", exclude={"ledger"}), indent=2))
    else:
        print(result.summary())
        print(f"run directory: {result.run_dir} (result.json, state.json, graph.json)")
    return 0

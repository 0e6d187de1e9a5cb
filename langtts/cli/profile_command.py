"""``langtts profile``: each pool model's single-call accuracy and costs on a task, kept in the user cache."""

from __future__ import annotations

import argparse
import sys

from langtts.cli.common import (
    add_command,
    add_pool_arguments,
    add_run_arguments,
    add_task_arguments,
    open_pool,
    task_from_args,
)


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(commands, "profile", run_profile)
    add_task_arguments(parser, positional=True)
    parser.add_argument("--models", help="comma-separated models (default: every pool model)")
    parser.add_argument("--n", type=int, default=100, help="questions per model (default 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the question draw, as for optimize (default 0)")
    add_run_arguments(parser, per="call")
    parser.add_argument("--json", action="store_true", help="print the profile as JSON")
    add_pool_arguments(parser)


def run_profile(args: argparse.Namespace) -> int:
    """profile each model alone on a task: accuracy with a 95% interval, tokens, latency, FLOPs

    Run each model alone (the single-model graph) on N questions of a task that no test split drawn with the same
    seed holds, and print its accuracy with a 95% Wilson interval, mean prompt and completion tokens, mean latency,
    measured FLOPs per question, and its extraction-failure and truncation rates before answer recovery, with a
    warning when no model is distinguishable from chance. The profile is kept in the user cache (profiles/) and
    reused while the task, questions, prompts, generation settings and models' specs stay the same; otherwise it is
    measured again, replaying earlier calls from the call cache."""
    from langtts.profile import TABLE_LEGEND, profile, profile_path

    if args.n < 1 or args.concurrency < 1:
        raise ValueError("--n and --concurrency must be >= 1")
    task = task_from_args(args)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    with open_pool(args) as pool:
        result = profile(
            task, pool, models, n=args.n, seed=args.seed, split=args.split, temperature=args.temperature,
            max_tokens=args.max_tokens, concurrency=args.concurrency,
            report=lambda line: print(line, file=sys.stderr, flush=True),
        )  # fmt: skip
    path = profile_path(task, args.split)
    if args.json:
        print(result.model_dump_json(indent=2))
        return 0
    key = result.key
    chance = "none" if result.chance_floor is None else f"{result.chance_floor:.0%}"
    print(
        f"{key.task} ({key.split} split): {len(key.question_ids)} questions outside the test splits of seed "
        f"{key.seed}; temperature {key.settings['temperature']}, max_tokens {key.settings['max_tokens']}; "
        f"chance {chance}"
    )
    print(result.table())
    print(f"({TABLE_LEGEND})")
    for warning in result.warnings():
        print(f"warning: {warning}")
    print(f"profile saved to {path} (measured {result.measured_at})")
    return 0

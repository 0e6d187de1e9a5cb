"""What the commands share: building a subcommand, and the options of several: the model pool, the task (and its
code sandbox), the questions and generation settings."""

from __future__ import annotations

import argparse
import inspect
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langtts.compile import GenerationSettings
    from langtts.cost import TaskLengths
    from langtts.models import ModelPool
    from langtts.tasks import Example, Task

POOL_ENV = "LANGTTS_POOL"
TASK_HELP = "gsm8k, mmlu, math500, humaneval, or a JSONL file of your own (FILE.jsonl, with --scorer)"


def add_command(
    commands: argparse._SubParsersAction, name: str, handler: Callable[[argparse.Namespace], int]
) -> argparse.ArgumentParser:
    """The subcommand `name`, run by `handler`: the first paragraph of the handler's docstring is its one-line help,
    the rest its description."""
    summary, _, description = (inspect.getdoc(handler) or "").partition("\n\n")
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=summary.replace("%", "%%"), description=description
    )
    parser.set_defaults(handler=handler)
    return parser


def add_graph_argument(parser: argparse.ArgumentParser) -> None:
    """The positional graph file of the commands that read one."""
    parser.add_argument("graph", type=Path, help="graph file (.json, .yaml, .yml)")


def add_run_arguments(parser: argparse.ArgumentParser, *, per: str = "node") -> None:
    """``--max-tokens`` (per `per`), ``--temperature`` and ``--concurrency`` of the commands that run questions."""
    parser.add_argument("--max-tokens", type=int, help=f"max tokens per {per} (default: per task family)")
    parser.add_argument("--temperature", type=float, default=0.1, help="sampling temperature (default 0.1)")
    parser.add_argument("--concurrency", type=int, default=4, help="questions in flight (default 4)")


def add_question_arguments(parser: argparse.ArgumentParser) -> None:
    """The task, which of its questions (``--n`` from ``--offset``) and how they run: read by `questions_from_args`."""
    add_task_arguments(parser)
    parser.add_argument("--n", type=int, default=20, help="number of questions (default 20)")
    parser.add_argument("--offset", type=int, default=0, help="skip this many questions first")
    add_run_arguments(parser)


def arguments(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The values of the arguments `names`, as keyword arguments of the same names."""
    return {name: getattr(args, name) for name in names}


def add_pool_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pool",
        type=Path,
        metavar="POOL_FILE",
        help=f"pool file (default: ${POOL_ENV}, else the running embedded server's pool; see `langtts serve`)",
    )
    parser.add_argument("--cache", type=Path, metavar="FILE", help="call cache file (default: the user cache)")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the call cache")


def pool_file(args: argparse.Namespace) -> Path:
    """--pool, else $LANGTTS_POOL, else the pool file of the embedded server that is running."""
    if args.pool:
        return args.pool
    if os.environ.get(POOL_ENV):
        return Path(os.environ[POOL_ENV])
    from langtts.serve.embedded import running_server

    info = running_server()
    if info is None:
        raise ValueError(
            f"no model pool: start the embedded server with `langtts serve`, or pass --pool / set ${POOL_ENV}"
        )
    return info.pool_file


def open_pool(args: argparse.Namespace) -> ModelPool:
    from langtts.models import CallCache, ModelPool

    path = pool_file(args)
    if not path.is_file():
        raise FileNotFoundError(f"pool file {path} does not exist")
    cache = None if args.no_cache else CallCache(args.cache) if args.cache else CallCache.default()
    pool = ModelPool.from_file(path, cache=cache)
    pool.check()  # health check: endpoints that do not answer leave the rotation; a model with none fails here
    return pool


def add_task_arguments(parser: argparse.ArgumentParser, *, required: bool = True, positional: bool = False) -> None:
    """The task (``--task``, or the first argument when ``positional``) and its options."""
    if positional:
        parser.add_argument("task", metavar="TASK", help=TASK_HELP)
    else:
        parser.add_argument("--task", required=required, help=TASK_HELP)
    parser.add_argument("--split", help="task split (e.g. mmlu: dev, val, test)")
    parser.add_argument("--subjects", help="mmlu only: comma-separated subjects")
    parser.add_argument(
        "--scorer",
        help="--task FILE.jsonl only: how answers are read and compared: exact, number, choice[:LETTERS], "
        "regex:PATTERN or module:function (a Python function (reply, example) -> bool)",
    )
    add_sandbox_argument(parser)


def add_sandbox_argument(parser: argparse.ArgumentParser) -> None:
    """``--sandbox auto|strict`` for every command that scores model-written code (see `sandbox_options`)."""
    parser.add_argument(
        "--sandbox",
        choices=("auto", "strict"),
        default="auto",
        help="model-written code (humaneval) runs confined in namespaces where the machine allows it; auto "
        "(default) else runs it with rlimits only and says so, strict fails instead",
    )


def sandbox_options(task: str, args: argparse.Namespace) -> dict[str, str]:
    """The task options for --sandbox: ``{"sandbox": ...}`` for a task that runs code, else none."""
    from langtts.tasks import CODE_TASKS

    return {"sandbox": args.sandbox} if task in CODE_TASKS else {}


def task_from_args(args: argparse.Namespace) -> Task:
    """The task named by --task (with --subjects for MMLU); --split is applied when loading."""
    from langtts.tasks import SCORER_KINDS, get_task, is_task_file

    if args.subjects and args.task != "mmlu":
        raise ValueError("--subjects is only for --task mmlu")
    options: dict[str, Any] = {"subjects": args.subjects.split(",")} if args.subjects else {}
    if is_task_file(args.task):
        if not args.scorer:
            raise ValueError(f"--task {args.task} needs --scorer ({SCORER_KINDS})")
        options["scorer"] = args.scorer
    elif args.scorer:
        raise ValueError("--scorer is only for --task FILE.jsonl")
    task = get_task(args.task, **options, **sandbox_options(args.task, args))
    if args.split and args.split not in task.splits:
        raise ValueError(f"task {task.name!r} has no split {args.split!r}; choose from {list(task.splits)}")
    return task


def task_lengths_for(name: str) -> TaskLengths:
    """The lengths a search on task `name` budgets with (see `langtts optimize`): the task's preset, else the math
    preset. `name` is a task of `TASK_HELP`."""
    from langtts.cost import task_lengths
    from langtts.tasks import TASKS, is_task_file

    if is_task_file(name):
        if not Path(name).is_file():
            raise FileNotFoundError(f"task file {name} does not exist")
        return task_lengths("math")
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose from {sorted(TASKS)} or a FILE.jsonl")
    return task_lengths(getattr(TASKS[name], "lengths_key", None) or "math")


def questions_from_args(args: argparse.Namespace) -> tuple[Task, list[Example], GenerationSettings]:
    """The task, its --n questions from --offset of --split, and the generation settings (--temperature,
    --max-tokens over the task family's defaults) shared by evaluate and compare."""
    from langtts.compile import GenerationSettings, default_settings

    if args.n < 1 or args.offset < 0 or args.concurrency < 1:
        raise ValueError("--n and --concurrency must be >= 1 and --offset >= 0")
    task = task_from_args(args)
    examples = task.load(args.split)[args.offset : args.offset + args.n]
    if not examples:
        raise ValueError(f"no questions at offset {args.offset} of {task.name}")
    defaults = default_settings(task.family)
    settings = GenerationSettings(
        temperature=args.temperature, max_tokens=args.max_tokens or defaults.max_tokens, seed=defaults.seed
    )
    return task, examples, settings

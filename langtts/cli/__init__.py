"""The ``langtts`` command line.

Exit codes: 0 success; 1 the work failed (a server, a model call, a run); 2 a usage error (bad arguments, an
invalid or missing file, an unknown model id) — reported as one line on stderr, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from langtts import __version__
from langtts.cli import (
    compare_command,
    evaluate_command,
    export_command,
    graph_commands,
    optimize_command,
    profile_command,
    quickstart_command,
    serve_command,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A mistake of the user's (bad argument, bad file): printed as one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="langtts",
        description="Find compute-optimal multi-LLM collaboration graphs and run them as LangGraph apps.",
        epilog="Exit codes: 0 ok, 1 the work failed, 2 usage error (bad arguments or files).",
    )
    parser.add_argument("--version", action="version", version=f"langtts {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    graph_commands.register(commands)
    evaluate_command.register(commands)
    profile_command.register(commands)
    compare_command.register(commands)
    export_command.register(commands)
    serve_command.register(commands)
    optimize_command.register(commands)
    quickstart_command.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or EXIT_OK)
    except KeyboardInterrupt:
        print("langtts: interrupted", file=sys.stderr)
        return 130
    except (UsageError, ValueError, LookupError, FileNotFoundError, IsADirectoryError) as error:
        print(f"langtts {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as error:  # a failed run (server down, calls failing): one line, exit 1
        from langtts.models.errors import PoolError
        from langtts.serve.process import ServerError

        if not isinstance(error, (PoolError, ServerError, OSError, RuntimeError)):
            raise
        print(f"langtts {args.command}: failed: {_one_line(error)}", file=sys.stderr)
        return EXIT_FAILED


def _one_line(error: BaseException) -> str:
    text = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    return " ".join(str(text).split())


if __name__ == "__main__":
    raise SystemExit(main())

"""Execute the cookbook's notebooks top to bottom and save them with their outputs.

Start a server and point ``$LANGTTS_POOL`` at its pool file, then run this script from the repository root::

    langtts serve --detach --models smollm2-135m,qwen2.5-coder-0.5b --run-dir /tmp/nb-srv
    LANGTTS_POOL=/tmp/nb-srv/pool.yaml python cookbook/execute.py              # all notebooks, in place
    LANGTTS_POOL=/tmp/nb-srv/pool.yaml python cookbook/execute.py 03 --out /tmp/executed   # copies elsewhere
    langtts serve --stop --run-dir /tmp/nb-srv

Notebooks are chosen by a prefix of their file name (``03`` or ``03_langchain_app``). Each runs in a fresh
``python3`` kernel with the cookbook directory as its working directory; the script prints each one's execution
time and exits with status 1 if a cell fails (the failing notebook is not written).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

COOKBOOK = Path(__file__).resolve().parent


def notebooks(prefixes: list[str]) -> list[Path]:
    """The cookbook's notebooks whose names start with one of ``prefixes`` (all of them for none)."""
    found = sorted(COOKBOOK.glob("[0-9][0-9]_*.ipynb"))
    chosen = [p for p in found if not prefixes or any(p.name.startswith(x) for x in prefixes)]
    if not chosen:
        raise SystemExit(f"no notebook matches {prefixes}; the cookbook has {[p.name for p in found]}")
    return chosen


def execute(path: Path, out: Path, *, timeout: int = 900) -> float:
    """Run the notebook at ``path`` and write it with its outputs to ``out``; return the seconds it took."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(COOKBOOK)}},
        record_timing=False,
    )
    started = time.monotonic()
    client.execute()
    elapsed = time.monotonic() - started
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="notebook name prefixes (default: every notebook)")
    parser.add_argument("--out", type=Path, help="write the executed notebooks here (default: in place)")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell (default 900)")
    args = parser.parse_args(argv)
    if not os.environ.get("LANGTTS_POOL"):
        parser.error("set LANGTTS_POOL to the pool file printed by `langtts serve`")
    status = 0
    for path in notebooks(args.names):
        target = (args.out / path.name) if args.out else path
        try:
            seconds = execute(path, target, timeout=args.timeout)
        except CellExecutionError as error:
            print(f"{path.name}: FAILED\n{error}", file=sys.stderr)
            status = 1
            continue
        print(f"{path.name}: {seconds:.0f}s -> {target}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())

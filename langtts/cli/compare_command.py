"""``langtts compare``: run several graphs on the same questions and test each against the first."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from langtts.cli.common import add_command, add_pool_arguments, add_question_arguments, open_pool, questions_from_args

if TYPE_CHECKING:
    from langtts.compare import ComparisonResult


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(commands, "compare", run_compare)
    parser.add_argument("graphs", type=Path, nargs="+", metavar="GRAPH", help="graph files; the first is the reference")
    add_question_arguments(parser)
    parser.add_argument(
        "--out", type=Path, metavar="FILE", help="write the full comparison (records included) as JSON here"
    )
    parser.add_argument("--plot", type=Path, metavar="FILE", help="plot accuracy against FLOPs (.png or .svg)")
    parser.add_argument("--json", action="store_true", help="print the comparison (without records) as JSON")
    add_pool_arguments(parser)


def run_compare(args: argparse.Namespace) -> int:
    """compare graphs on the same questions: accuracy difference, paired CI, McNemar p-value

    Evaluate each graph on the same N questions and compare every graph with the first (the reference): accuracy
    difference with a 95% paired-bootstrap CI and the exact McNemar p-value."""
    from langtts.compare import compare
    from langtts.graph import load_graph
    from langtts.plots import accuracy_vs_cost

    if len(args.graphs) < 2:
        raise ValueError("compare needs at least two graph files")
    if args.plot and args.plot.suffix.lower() not in (".png", ".svg"):
        raise ValueError(f"--plot must name a .png or .svg file, got {args.plot}")
    names = [str(path) for path in args.graphs]
    if len(set(names)) < len(names):
        raise ValueError("each graph file may be given only once")
    graphs = {name: load_graph(path) for name, path in zip(names, args.graphs, strict=True)}
    task, examples, settings = questions_from_args(args)
    with open_pool(args) as pool:
        for graph in graphs.values():
            graph.check(pool.ids())
        result = compare(graphs, task, pool, examples=examples, concurrency=args.concurrency, settings=settings)
    if args.out:
        result.save(args.out)
    if args.json:
        print(json.dumps(result.summary(), indent=2))
    else:
        _print_table(result, task.name, len(examples))
    result.raise_for_call_failures()  # a server down: exit 1, not an accuracy
    if args.plot:
        accuracy_vs_cost(result.results, args.plot, title=f"{task.name}: {len(examples)} questions")
    for path in (args.out, args.plot) if not args.json else ():
        if path:
            print(f"written to {path}")
    return 0


def _print_table(result: ComparisonResult, task: str, n: int) -> None:
    header = ("graph", "accuracy", "95% CI", "FLOPs/q", "latency p50", "Δ vs ref", "Δ 95% CI", "McNemar p")
    rows: list[tuple[str, ...]] = [header]
    for name, res in result.results.items():
        cells = [name, "undetermined", ""]
        if res.accuracy is not None:
            cells[1:] = [f"{res.accuracy:.1%}", f"{res.ci_low:.1%} – {res.ci_high:.1%}"]
        cells += [f"{res.flops / res.n:.3g}", f"{res.latency_p50_s:.2f}s"]
        if name in result.comparisons:
            c = result.comparisons[name]
            cells += [f"{c.difference:+.1%}", f"{c.ci_low:+.1%} – {c.ci_high:+.1%}", f"{c.p_value:.3g}"]
        else:
            cells += ["(reference)", "", ""]
        rows.append(tuple(cells))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    sandboxes = sorted({res.sandbox for res in result.results.values() if res.sandbox})
    sandbox = f"; model-written code ran in sandbox: {', '.join(sandboxes)}" if sandboxes else ""
    print(f"{task}: {n} questions, each graph against {result.reference}{sandbox}")
    for row in rows:
        cells = [
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        print(("  " + "  ".join(cells)).rstrip())

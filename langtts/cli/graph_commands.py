"""``langtts cost`` and ``langtts show``: inspect a graph file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from langtts.cli.common import TASK_HELP, add_command, add_graph_argument, task_lengths_for
from langtts.cost import ModelCatalog, TaskLengths, default_catalog, graph_cost
from langtts.graph import load_graph


def register(commands: argparse._SubParsersAction) -> None:
    cost = add_command(commands, "cost", run_cost)
    add_graph_argument(cost)
    lengths = cost.add_mutually_exclusive_group(required=True)
    lengths.add_argument(
        "--task", help=f"{TASK_HELP}: its preset average lengths, else the math preset (as optimize budgets)"
    )
    lengths.add_argument("--lengths", metavar="A,B", help="average prompt tokens A and answer tokens B, e.g. 150,200")
    cost.add_argument("--models", type=Path, metavar="CATALOG", help="YAML/JSON file of extra model specs")
    cost.add_argument("--unit-model", help="model whose no-input call is 1 unit (default: the graph's smallest)")
    cost.add_argument("--json", action="store_true", help="print JSON (keys: flops, units, width, depth, ...)")

    show = add_command(commands, "show", run_show)
    add_graph_argument(show)
    show.add_argument("--models", type=Path, metavar="CATALOG", help="also check model ids against catalog + file")
    show.add_argument("--strict", action="store_true", help="treat nodes with no path to the sink as an error")


def _catalog(path: Path | None) -> ModelCatalog:
    catalog = default_catalog()
    return catalog.merged(ModelCatalog.from_file(path)) if path else catalog


def _lengths(args: argparse.Namespace) -> TaskLengths:
    if args.task:
        return task_lengths_for(args.task)
    try:
        a, b = (float(x) for x in args.lengths.split(","))
    except ValueError:
        raise ValueError(f"--lengths must be two numbers A,B, got {args.lengths!r}") from None
    return TaskLengths(input_tokens=a, output_tokens=b)


def run_cost(args: argparse.Namespace) -> int:
    """FLOPs of a graph (Theorem 1): total, normalised units, width, depth, per node

    Print the modelled FLOPs of a graph for a task's average prompt and answer lengths."""
    graph = load_graph(args.graph)
    catalog = _catalog(args.models)
    graph.check(catalog.ids())
    cost = graph_cost(graph, catalog, _lengths(args), unit_model=args.unit_model)
    pruned = graph.pruned()
    report: dict[str, Any] = {
        "graph": str(args.graph),
        "flops": cost.flops,
        "units": cost.units,
        "unit_model": cost.unit_model,
        "unit_flops": cost.unit_flops,
        "width": graph.width,
        "depth": graph.depth,
        "lengths": cost.lengths.model_dump(),
        "nodes": [
            {
                "id": node.id,
                "role": node.role,
                "model": node.model or None,  # None: a vote (no LLM call)
                "in_degree": pruned.in_degree(node.id),
                "flops": cost.per_node[node.id],
                "share": cost.per_node[node.id] / cost.flops,
            }
            for node in pruned.nodes
        ],
        "pruned": [n.id for n in graph.nodes if n.id not in cost.per_node],
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    rows = [("node", "role", "model", "in", "FLOPs", "share")]
    rows += [
        (n["id"], n["role"], n["model"] or "-", str(n["in_degree"]), f"{n['flops']:.4g}", f"{n['share']:.1%}")
        for n in report["nodes"]
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = zip(row, widths, strict=True)
        print("  ".join(cell.ljust(w) if i < 3 else cell.rjust(w) for i, (cell, w) in enumerate(cells)))
    print(
        f"total {cost.flops:.4g} FLOPs = {cost.units:.2f} units of {cost.unit_model} "
        f"({cost.unit_flops:.4g} FLOPs per no-input call); width {graph.width}, depth {graph.depth}"
    )
    if report["pruned"]:
        print(f"pruned (no path to the sink, never run): {', '.join(report['pruned'])}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    """validate a graph and print its Mermaid text

    Validate a graph file, report pruned nodes, and print Mermaid flowchart text."""
    graph = load_graph(args.graph)
    models = _catalog(args.models).ids() if args.models else None
    report = graph.check(models, strict=args.strict)
    print(
        f"valid: {len(graph.nodes)} nodes ({len(graph.workers)} workers + sink {graph.sink.id!r}), "
        f"{len(graph.edges)} edges, width {graph.width}, depth {graph.depth}"
    )
    if report.unreachable:
        print(f"unreachable (pruned at run time): {', '.join(report.unreachable)}")
    for warning in report.warnings:
        print(f"warning: {warning}")
    print(graph.to_mermaid())
    return 0

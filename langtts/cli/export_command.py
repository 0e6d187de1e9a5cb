"""``langtts export``: write a graph as JSON, YAML, Mermaid text, a PNG/SVG drawing or a standalone LangGraph
program, optionally retargeted to other model ids."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from langtts.cli.common import TASK_HELP, add_command, task_lengths_for

if TYPE_CHECKING:
    from langtts.graph import CollaborationGraph

FORMATS = ("json", "yaml", "mermaid", "png", "svg", "python")


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(commands, "export", run_export)
    parser.add_argument(
        "graph", type=Path, help="graph file (.json, .yaml, .yml), or an optimize run directory (its chosen graph)"
    )
    parser.add_argument(
        "--pareto",
        type=int,
        metavar="K",
        help="with a run directory: point K of its accuracy-latency Pareto front (0: the fastest; listed by optimize)",
    )
    parser.add_argument("--format", required=True, choices=FORMATS, help="output format")
    parser.add_argument("--out", type=Path, metavar="FILE", help="output file (required for png and svg)")
    parser.add_argument("--map", metavar="OLD=NEW,...", help="model-id mapping, e.g. llama-3.2-1b=my-1b")
    parser.add_argument("--models", type=Path, metavar="CATALOG", help="png/svg: YAML/JSON file of extra model specs")
    parser.add_argument(
        "--task", help=f"{TASK_HELP}; python: the task it answers (required); png/svg: lengths for the FLOPs shares"
    )
    parser.add_argument("--scorer", help="python, with --task FILE.jsonl: its scorer (as for evaluate)")
    parser.add_argument(
        "--pool", type=Path, metavar="POOL_FILE", help="python: the models' served names and stop sequences from here"
    )


def parse_mapping(text: str) -> dict[str, str]:
    """``OLD=NEW,OLD2=NEW2`` as a dict; a malformed or repeated pair raises a one-line ValueError."""
    mapping: dict[str, str] = {}
    for pair in text.split(","):
        old, sep, new = (part.strip() for part in pair.partition("="))
        if not (sep and old and new):
            raise ValueError(f"--map takes OLD=NEW pairs separated by commas, got {pair.strip()!r}")
        if old in mapping:
            raise ValueError(f"--map names model {old!r} twice")
        mapping[old] = new
    return mapping


def _graph(args: argparse.Namespace) -> CollaborationGraph:
    """The graph file, or a run directory's chosen graph or Pareto point."""
    from langtts.graph import load_graph
    from langtts.search.records import OptimizationResult

    if not args.graph.is_dir():
        if args.pareto is not None:
            raise ValueError("--pareto K needs an optimize run directory, not a graph file")
        return load_graph(args.graph)
    result = OptimizationResult.load(args.graph / "result.json")
    return (result.graph if args.pareto is None else result.pareto_graph(args.pareto)).pruned()  # what runs


def _program(graph: CollaborationGraph, args: argparse.Namespace) -> str:
    from langtts.export_python import export_python
    from langtts.models.config import PoolConfig
    from langtts.tasks import get_task, is_task_file

    if not args.task:
        raise ValueError("--format python needs --task (the program inlines the task's prompts and answer reading)")
    task = get_task(args.task, scorer=args.scorer) if is_task_file(args.task) else get_task(args.task)
    return export_python(graph, task, pool=PoolConfig.load(args.pool) if args.pool else None)


def run_export(args: argparse.Namespace) -> int:
    """write a graph as JSON, YAML, Mermaid, PNG, SVG or a standalone Python program; --map retargets it

    Convert a graph file. --map OLD=NEW,... replaces model ids (e.g. to run a graph on another pool). Text formats
    print to stdout unless --out is given; png and svg need --out. --format python writes a LangGraph program for
    --task that needs only langgraph and langchain-openai."""
    graph = _graph(args)
    if args.map:
        mapping = parse_mapping(args.map)
        used = {n.model for n in graph.nodes if n.calls_model}
        if unused := [m for m in mapping if m not in used]:
            raise ValueError(
                f"--map names model {unused[0]!r}, which the graph does not use ({', '.join(sorted(used))})"
            )
        graph = graph.relabel_models(mapping)
    if args.format in ("png", "svg"):
        if args.out is None:
            raise ValueError(f"--format {args.format} writes a drawing: pass --out FILE.{args.format}")
        if args.out.suffix.lower() != f".{args.format}":
            raise ValueError(f"--out must end in .{args.format} for --format {args.format}, got {args.out.name!r}")
        from langtts.cost import ModelCatalog, default_catalog, task_lengths
        from langtts.plots import draw_graph

        lengths = task_lengths_for(args.task) if args.task else task_lengths("math")

        catalog = default_catalog()
        if args.models:
            catalog = catalog.merged(ModelCatalog.from_file(args.models))
        draw_graph(graph, args.out, catalog=catalog, lengths=lengths)
    else:
        writers = {"json": graph.to_json, "yaml": graph.to_yaml, "mermaid": graph.to_mermaid}
        text = _program(graph, args) if args.format == "python" else writers[args.format]()
        if args.out is None:
            print(text, end="")
            return 0
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    print(f"written to {args.out}")
    return 0

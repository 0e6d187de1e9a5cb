"""``langtts evaluate``: run a graph file over a task's questions and print the result table."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from langtts.cli.common import (
    add_command,
    add_graph_argument,
    add_pool_arguments,
    add_question_arguments,
    open_pool,
    questions_from_args,
)

if TYPE_CHECKING:
    from langtts.evaluation import EvaluationResult


def register(commands: argparse._SubParsersAction) -> None:
    parser = add_command(commands, "evaluate", run_evaluate)
    add_graph_argument(parser)
    add_question_arguments(parser)
    parser.add_argument("--out", type=Path, help="write the full result (records included) as JSON here")
    parser.add_argument("--json", action="store_true", help="print the result summary as JSON")
    add_pool_arguments(parser)


def run_evaluate(args: argparse.Namespace) -> int:
    """evaluate a graph on a task: accuracy with a 95% CI, FLOPs, tokens, latency, errors

    Run a collaboration graph over the first N questions of a task split on the model pool."""
    from langtts.evaluation import evaluate
    from langtts.graph import load_graph

    task, examples, settings = questions_from_args(args)
    graph = load_graph(args.graph)
    with open_pool(args) as pool:
        graph.check(pool.ids())
        result = evaluate(graph, task, pool, examples=examples, concurrency=args.concurrency, settings=settings)
    result.split = args.split
    if args.out:
        result.save(args.out)
    summary = result.model_dump(exclude={"records", "graph"})
    if args.json:
        print(json.dumps(summary, indent=2))
        result.raise_for_call_failures()  # a server down: exit 1, not an accuracy
        return 0
    accuracy = "undetermined (every question ended in an error)"
    if result.accuracy is not None:
        accuracy = f"{result.accuracy:.1%}  (95% CI {result.ci_low:.1%} – {result.ci_high:.1%})"
    rows = [
        ("accuracy", accuracy),
        ("questions", f"{result.n}  ({result.n_correct} correct, {result.n_no_answer} without a parsable answer)"),
        ("errors", f"{result.n_errors}  ({'counted as wrong' if result.errors_as_wrong else 'accuracy undetermined'})"),
        ("truncated answers", str(result.n_truncated)),
        (
            "answer recovery",
            f"{result.n_no_answer_before_recovery} without an answer and {result.n_truncated} cut before recovery; "
            f"{result.n_recovered} of {result.n_recovery_calls} recovered"
            + (
                f" (accuracy without recovery {result.accuracy_without_recovery:.1%})"
                if result.accuracy_without_recovery is not None
                else ""
            ),
        ),
        ("tokens", f"{result.prompt_tokens} prompt + {result.completion_tokens} completion"),
        ("FLOPs measured", f"{result.flops:.4g}  (analytic {result.analytic_flops:.4g})"),
        (
            "latency",
            f"mean {result.latency_mean_s:.2f}s  p50 {result.latency_p50_s:.2f}s  p95 {result.latency_p95_s:.2f}s",
        ),
        ("calls", f"{result.calls}  ({result.cache_hits} from the cache)"),
        ("wall time", f"{result.wall_time_s:.1f}s"),
    ]
    if result.sandbox:  # the task ran model-written code
        rows.append(("sandbox", result.sandbox))
    print(f"{task.name}: {graph.sink.model or 'vote'} sink, {len(graph.workers)} workers ({args.graph})")
    for name, value in rows:
        print(f"  {name:<18} {value}")
    _print_nodes(result)
    if args.out:
        print(f"  result written to {args.out}")
    result.raise_for_call_failures()
    return 0


def _print_nodes(result: EvaluationResult) -> None:
    """Per node: its own answers' accuracy and the agreement among its inputs."""
    rows = [("node", "role", "model", "accuracy", "agreement")]
    for node in result.nodes:
        accuracy = "-" if node.accuracy is None else f"{node.accuracy:.1%}"
        agreement = "-" if node.agreement is None else f"{node.agreement:.2f}"
        rows.append((node.id, node.role, node.model or "-", accuracy, agreement))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print("  per node (each node's own answer; agreement: share of its inputs giving their majority answer)")
    for row in rows:
        print("    " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())

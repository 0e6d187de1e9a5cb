"""Figures as PNG or SVG files (matplotlib's Agg canvas; no display needed): a graph drawing, search curves,
accuracy against cost with the Pareto front.

The format is chosen by the file suffix (``.png`` or ``.svg``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch
from matplotlib.ticker import MaxNLocator

from langtts.cost import ModelCatalog, TaskLengths, default_catalog, graph_cost, task_lengths
from langtts.pareto import pareto_front

if TYPE_CHECKING:
    from langtts.evaluation import EvaluationResult
    from langtts.graph import CollaborationGraph
    from langtts.search.base import Evaluation
    from langtts.search.records import CurvePoint

FORMATS = (".png", ".svg")
ROLE_COLOURS = {"assistant": "#cfe2ff", "fuser": "#fff3cd", "decider": "#d4edda", "vote": "#e2d9f3"}
ROLE_LABELS = {"assistant": "assistant", "fuser": "fuser", "decider": "decider (sink)", "vote": "vote (no LLM call)"}
CostAxis = Literal["flops", "latency"]


def draw_graph(
    graph: CollaborationGraph,
    path: str | Path,
    *,
    catalog: ModelCatalog | None = None,
    lengths: TaskLengths | None = None,
    title: str | None = None,
) -> Path:
    """Draw the pruned graph left to right by topological layer; each node shows its id, model (a vote: "majority
    vote") and share of the graph's FLOPs, the sink with a thick border (``catalog`` default: the built-in one;
    ``lengths`` default: the MATH preset)."""
    path = _check_path(path)
    cost = graph_cost(graph, catalog or default_catalog(), lengths or task_lengths("math"))
    pruned = graph.pruned()
    layers = pruned.layers()
    tallest = max(map(len, layers))
    centre = {
        node_id: (float(x), (len(layer) - 1) / 2 - y)
        for x, layer in enumerate(layers)
        for y, node_id in enumerate(layer)
    }
    fig = _figure((2.4 * len(layers) + 0.6, 1.1 * tallest + 1.4))
    ax = fig.add_subplot()
    boxes: dict[str, FancyBboxPatch] = {}
    width, height = 0.72, 0.62
    for node in pruned.nodes:
        x, y = centre[node.id]
        box = FancyBboxPatch(
            (x - width / 2, y - height / 2),
            width,
            height,
            boxstyle="round,pad=0.02",
            facecolor=ROLE_COLOURS[node.role],
            edgecolor="#333333",
            linewidth=2.0 if node.id == pruned.sink_id else 1.0,
        )
        ax.add_patch(box)
        boxes[node.id] = box
        share = cost.per_node[node.id] / cost.flops
        model = node.model or "majority vote"
        ax.text(x, y, f"{node.id}\n{model}\n{share:.1%} FLOPs", ha="center", va="center", fontsize=8)
    for u, v in pruned.edges:
        # an edge that skips a layer bows away from the middle row (left to right, rad > 0 bows downward)
        bow = 0.0 if centre[v][0] - centre[u][0] <= 1 else -0.25 if centre[u][1] + centre[v][1] > 0 else 0.25
        arrow = FancyArrowPatch(
            centre[u],
            centre[v],
            patchA=boxes[u],
            patchB=boxes[v],
            arrowstyle="-|>",
            mutation_scale=12,
            connectionstyle=f"arc3,rad={bow}",
            color="#555555",
        )
        ax.add_patch(arrow)
    ax.set_xlim(-0.6, len(layers) - 0.4)
    ax.set_ylim(-tallest / 2 - 0.1, tallest / 2 + 0.1)
    ax.set_axis_off()
    roles = [r for r in ROLE_COLOURS if any(n.role == r for n in pruned.nodes)]
    handles = [Patch(facecolor=ROLE_COLOURS[r], edgecolor="#333333", label=ROLE_LABELS[r]) for r in roles]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(handles), fontsize=8)
    pruned_ids = [n.id for n in graph.nodes if n.id not in cost.per_node]
    default_title = f"{cost.flops:.3g} FLOPs per question; width {graph.width}, depth {graph.depth}"
    if pruned_ids:
        default_title += f"; pruned: {', '.join(pruned_ids)}"
    ax.set_title(title or default_title, fontsize=9)
    return _save(fig, path)


def search_curves(runs: Mapping[str, Sequence[CurvePoint]], path: str | Path, *, title: str | None = None) -> Path:
    """Best score so far against what the search spent, one colour per method (``runs``: label -> the run's
    ``OptimizationResult.curve``, one point per round), in three panels: LLM calls, FLOPs and wall time.

    Solid lines count everything the search spent, the optimizer's LLM calls and FLOPs and its wall time (an
    LLM optimizer's agent) included; a dashed line of the same colour counts the evaluations alone, so the
    horizontal gap between the two is the optimizer's share (drawn only for a method whose optimizer spent
    anything). A run without curve points (a result written before curves were recorded) is left out; a
    ``ValueError`` if every curve is empty.
    """
    path = _check_path(path)
    curves = {label: sorted(points, key=lambda p: p.round) for label, points in runs.items() if points}
    if not curves:
        raise ValueError(
            f"no curve points to plot: every run's curve is empty ({', '.join(runs) or 'no runs'}); results written "
            "before langtts recorded search curves have none"
        )
    fig = _figure((13, 4.2))
    axes = fig.subplots(1, 3, sharey=True)
    panels: list[tuple[str, Callable[[CurvePoint], float], Callable[[CurvePoint], float]]] = [
        ("LLM calls (evaluation + optimizer)", lambda p: p.evaluation_calls + p.optimizer_calls,
         lambda p: p.evaluation_calls),
        ("FLOPs (evaluation + optimizer)", lambda p: p.evaluation_flops + p.optimizer_flops,
         lambda p: p.evaluation_flops),
        ("wall time, s (optimizer included)", lambda p: p.wall_time_s,
         lambda p: p.wall_time_s - p.optimizer_wall_s),
    ]  # fmt: skip
    colours = [f"C{i % 10}" for i in range(len(curves))]
    for (label, points), colour in zip(curves.items(), colours, strict=True):
        bests = [p.best_score for p in points]
        has_optimizer = any(p.optimizer_calls or p.optimizer_flops or p.optimizer_wall_s for p in points)
        for ax, (_, total, evaluation_only) in zip(axes, panels, strict=True):
            ax.plot([total(p) for p in points], bests, drawstyle="steps-post", marker=".", color=colour, label=label)
            if has_optimizer:
                ax.plot(
                    [evaluation_only(p) for p in points], bests, drawstyle="steps-post", linestyle="--",
                    linewidth=1, color=colour, alpha=0.7,
                )  # fmt: skip
    for ax, (xlabel, _, _) in zip(axes, panels, strict=True):
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.set_xlim(left=0)
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel("best score so far")
    handles, labels = axes[0].get_legend_handles_labels()
    handles.append(Line2D([], [], color="grey", linestyle="--", linewidth=1))
    labels.append("evaluations only (the gap: the optimizer's share)")
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(handles), 4), fontsize=8)
    fig.suptitle(title or "search efficiency: best score so far against what the search spent", fontsize=10)
    return _save(fig, path)


def scatter(
    evaluations: Sequence[Evaluation], path: str | Path, *, x: CostAxis = "flops", title: str | None = None
) -> Path:
    """Accuracy against modelled FLOPs per question (``x="flops"``) or median latency (``x="latency"``), one colour
    per phase, with the Pareto front as a step line."""
    path = _check_path(path)
    _check_axis(x)
    if not evaluations:
        raise ValueError("no evaluations to plot")
    cost = [e.modelled_flops if x == "flops" else e.outcome.latency_s for e in evaluations]
    accuracy = [e.outcome.accuracy for e in evaluations]
    fig = _figure((6, 4.5))
    ax = fig.add_subplot()
    for phase in dict.fromkeys(e.phase for e in evaluations):
        chosen = [i for i, e in enumerate(evaluations) if e.phase == phase]
        ax.scatter([cost[i] for i in chosen], [accuracy[i] for i in chosen], s=18, alpha=0.7, label=phase)
    _front_line(ax, cost, accuracy)
    _finish_cost_axes(fig, ax, x, title, "modelled")
    return _save(fig, path)


def accuracy_vs_cost(
    results: Mapping[str, EvaluationResult], path: str | Path, *, x: CostAxis = "flops", title: str | None = None
) -> Path:
    """Evaluation results, one point per name: accuracy with its 95% CI against measured FLOPs per question
    (``x="flops"``) or median latency (``x="latency"``), with the Pareto front as a step line. A result whose
    accuracy is undetermined (every question ended in an error) has no point."""
    path = _check_path(path)
    _check_axis(x)
    if not results:
        raise ValueError("no results to plot")
    points = [
        (name, r.flops / r.n if x == "flops" else r.latency_p50_s, r.accuracy, r.ci_low, r.ci_high)
        for name, r in results.items()
        if r.accuracy is not None and r.ci_low is not None and r.ci_high is not None
    ]
    if not points:
        raise ValueError(f"no result with a determined accuracy to plot ({', '.join(results)})")
    fig = _figure((6, 4.5 + 0.2 * len(points)))
    ax = fig.add_subplot()
    for name, c, acc, low, high in points:
        yerr = [[max(acc - low, 0.0)], [max(high - acc, 0.0)]]
        ax.errorbar([c], [acc], yerr=yerr, fmt="o", capsize=3, label=name)
    _front_line(ax, [p[1] for p in points], [p[2] for p in points])
    _finish_cost_axes(fig, ax, x, title, "measured", ncol=1)
    return _save(fig, path)


# ----- helpers


def _check_path(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ValueError(f"unsupported plot file {path.name!r}: use a {' or '.join(FORMATS)} suffix")
    return path


def _check_axis(x: str) -> None:
    if x not in ("flops", "latency"):
        raise ValueError(f"x must be 'flops' or 'latency', got {x!r}")


def _figure(size: tuple[float, float]) -> Figure:
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _front_line(ax: Axes, cost: Sequence[float], accuracy: Sequence[float]) -> None:
    front = pareto_front(list(zip(cost, accuracy, strict=True)))
    ax.plot(
        [cost[i] for i in front],
        [accuracy[i] for i in front],
        drawstyle="steps-post",
        color="black",
        linewidth=1,
        label="Pareto front",
    )


def _finish_cost_axes(
    fig: Figure, ax: Axes, x: CostAxis, title: str | None, flops: str, *, ncol: int | None = None
) -> None:
    ax.set_xlabel(f"{flops} FLOPs per question" if x == "flops" else "median latency per question (s)")
    ax.set_ylabel("accuracy")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=ncol or len(handles), fontsize=7)
    if title:
        ax.set_title(title, fontsize=10)


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format=path.suffix.lower().lstrip("."), dpi=150)
    return path


__all__ = ["accuracy_vs_cost", "draw_graph", "pareto_front", "scatter", "search_curves"]

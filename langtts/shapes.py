"""Constructors for the standard test-time-scaling shapes as collaboration graphs.

Each takes ``models``: one model id for every worker node, or one per worker node in creation order; and
``sink_model``: the sink's model (default: the single model, or the first of the list). Worker ids are
``n0, n1, ...`` in creation order; the sink's id is ``sink``. The repeated-sampling shapes (``self_consistency``,
``self_moa``) run one model and sample at :data:`~langtts.graph.SAMPLE_TEMPERATURE`, stored on each sample node.
"""

from __future__ import annotations

from collections.abc import Sequence

from langtts.graph import SAMPLE_TEMPERATURE, CollaborationGraph, Node, Role

SINK_ID = "sink"


def single(model: str) -> CollaborationGraph:
    """The sink alone: one call that answers directly (the single-model baseline); width 0, depth 0."""
    return CollaborationGraph(nodes=(Node(SINK_ID, "decider", model),))


def parallel(models: str | Sequence[str], n: int | None = None, sink_model: str | None = None) -> CollaborationGraph:
    """``n`` independent assistants feeding the sink; width n, depth 1."""
    ms = _models(models, n, "n")
    return _build(models, ms, [(i, None) for i in range(len(ms))], sink_model)


def chain(models: str | Sequence[str], depth: int | None = None, sink_model: str | None = None) -> CollaborationGraph:
    """Sequential refinement ``n0 -> n1 -> ... -> n{depth-1} -> sink``; width 1, depth ``depth``."""
    ms = _models(models, depth, "depth")
    return _build(models, ms, [(i, i + 1 if i + 1 < len(ms) else None) for i in range(len(ms))], sink_model)


def layered(models: str | Sequence[str], width: int, depth: int, sink_model: str | None = None) -> CollaborationGraph:
    """Mixture-of-agents: ``depth`` layers of ``width`` assistants, each layer fully feeding the next and the
    last feeding the sink; models (if a list) are given layer by layer."""
    if width < 1 or depth < 1:
        raise ValueError(f"width and depth must be at least 1, got width={width}, depth={depth}")
    ms = _models(models, width * depth, "width * depth")
    edges: list[tuple[int, int | None]] = []
    for i in range(len(ms)):
        layer = i // width
        if layer + 1 < depth:
            edges += [(i, (layer + 1) * width + j) for j in range(width)]
        else:
            edges.append((i, None))
    return _build(models, ms, edges, sink_model)


def fused(models: str | Sequence[str], n: int | None = None, sink_model: str | None = None) -> CollaborationGraph:
    """Parallel-then-fuse: ``n`` assistants feed one fuser (running the sink's model), which feeds the sink.

    ``models`` gives the assistants' models; the fuser counts as a worker: the shape has width n, depth 2.
    """
    ms = _models(models, n, "n")
    fuser = _sink_model(models, sink_model)
    edges: list[tuple[int, int | None]] = [(i, len(ms)) for i in range(len(ms))]
    return _build(models, [*ms, fuser], [*edges, (len(ms), None)], sink_model, fuser_at=len(ms))


def self_consistency(model: str, k: int) -> CollaborationGraph:
    """Self-consistency: ``k`` samples of ``model`` feeding a vote sink (no LLM call); width k, depth 1."""
    samples = _samples(model, k)
    edges = tuple((n.id, SINK_ID) for n in samples)
    return CollaborationGraph(nodes=(*samples, Node(SINK_ID, "vote")), edges=edges, sink_id=SINK_ID)


def self_moa(model: str, k: int) -> CollaborationGraph:
    """Self-mixture-of-agents: ``k`` samples of ``model`` feeding a decider sink on the same model; width k,
    depth 1."""
    samples = _samples(model, k)
    edges = tuple((n.id, SINK_ID) for n in samples)
    return CollaborationGraph(nodes=(*samples, Node(SINK_ID, "decider", model)), edges=edges)


def _samples(model: str, k: int) -> list[Node]:
    if k < 2:
        raise ValueError(f"k must be at least 2 samples, got {k}")
    return [Node(f"n{i}", "assistant", model, SAMPLE_TEMPERATURE) for i in range(k)]


def _models(models: str | Sequence[str], count: int | None, what: str) -> list[str]:
    """One model id per worker node, checked against ``count`` when both a list and a count are given."""
    if isinstance(models, str):
        if count is None:
            raise ValueError(f"{what} is required when a single model id is given")
        out = [models] * count
    else:
        out = list(models)
        if count is not None and count != len(out):
            raise ValueError(f"got {len(out)} model ids for {what} = {count} worker nodes")
    if not out:
        raise ValueError(f"need at least one worker node ({what} must be at least 1)")
    return out


def _sink_model(models: str | Sequence[str], sink_model: str | None) -> str:
    if sink_model is not None:
        return sink_model
    return models if isinstance(models, str) else models[0]


def _build(
    models: str | Sequence[str],
    worker_models: list[str],
    edges: list[tuple[int, int | None]],
    sink_model: str | None,
    fuser_at: int | None = None,
) -> CollaborationGraph:
    """Workers ``n<i>`` running ``worker_models[i]`` plus the sink; an edge target ``None`` means the sink."""
    roles: list[Role] = ["fuser" if i == fuser_at else "assistant" for i in range(len(worker_models))]
    nodes = [Node(f"n{i}", role, m) for i, (role, m) in enumerate(zip(roles, worker_models, strict=True))]
    nodes.append(Node(SINK_ID, "decider", _sink_model(models, sink_model)))
    return CollaborationGraph(
        nodes=tuple(nodes), edges=tuple((f"n{u}", SINK_ID if v is None else f"n{v}") for u, v in edges)
    )

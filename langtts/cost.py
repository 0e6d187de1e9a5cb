"""The cost model: model specs, Theorem 1 FLOPs, budgets, budget repair and a latency proxy.

Every FLOPs number in langtts comes from this module. Per LLM call with prompt length Np and generated
length Nd (method.md §2), for a model with M matmul parameters, L layers and hidden size D::

    prefill = 2·M·Np + 2·L·D·Np·(Np + 1)
    decode  = 2·M·Nd + 2·L·D·Nd·(2·Np + Nd + 1)

For a graph node of in-degree d on a task with average question length A and answer length B:
Np = A + d·B and Nd = B. A vote node makes no LLM call: 0 FLOPs (and 0 s of latency). Its text is a short count
and answer line, not a worked answer, so as an input it adds :data:`VOTE_TEXT_TOKENS` to a successor's Np
instead of B: Np = A + d·B + v·VOTE_TEXT_TOKENS for d LLM inputs and v vote inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from langtts.graph import GraphError, reaching

if TYPE_CHECKING:
    from langtts.graph import CollaborationGraph

_REL_TOL = 1e-9  # relative slack when comparing a cost with a budget (float rounding only)
VOTE_TEXT_TOKENS = 16
"""Prompt tokens a vote's text adds to each successor (a line like ``Vote: 3 of 5 inputs agree.`` and the task's
answer line)."""


class UnknownModelError(KeyError):
    """A model id that a catalog (or a model pool) does not know; ``known`` lists the ids it has."""

    def __init__(self, model_id: str, known: Iterable[str], *, where: str = "known models", hint: str = "") -> None:
        self.model_id = model_id
        self.known = sorted(known)
        super().__init__(f"unknown model {model_id!r}; {where}: {', '.join(self.known) or '(none)'}{hint}")

    def __str__(self) -> str:
        return str(self.args[0])


class BudgetError(ValueError):
    """A budget too small for any graph (not even the sink alone fits)."""


class ModelSpec(BaseModel):
    """Architecture numbers of one model, as used by the cost model.

    ``params`` is M of Theorem 1: the parameters used in per-token matrix multiplies, i.e. the
    non-embedding parameters plus the output head counted once; the input-embedding lookup is free. With
    tied embeddings this equals the total parameter count; with untied embeddings it is the total minus the
    input embedding table. For a mixture-of-experts model it is the *active* parameters per token. The
    distinction matters for small models, whose embedding tables are a large share of their weights.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    display_name: str = ""
    family: str = ""
    params: float = Field(gt=0, description="M: matmul parameters per token (active ones for MoE)")
    layers: int = Field(gt=0)
    hidden: int = Field(gt=0)
    total_params: float | None = Field(default=None, gt=0, description="published total incl. embeddings")
    vocab_size: int | None = Field(default=None, gt=0)
    tied_embeddings: bool | None = None
    context_window: int | None = Field(default=None, gt=0)
    weak: bool = Field(default=False, description="e.g. a base model: plain template, short inputs")
    notes: str = ""

    @model_validator(mode="before")
    @classmethod
    def _default_display_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("display_name") and "id" in data:
            return {**data, "display_name": data["id"]}
        return data


class ModelCatalog:
    """Model id → ModelSpec: start from `default_catalog()`, add your own with `register` or `from_file`."""

    def __init__(self, specs: Iterable[ModelSpec] = ()) -> None:
        self._specs: dict[str, ModelSpec] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: ModelSpec) -> None:
        """Add a spec, replacing any spec with the same id."""
        self._specs[spec.id] = spec

    def get(self, model_id: str) -> ModelSpec:
        try:
            return self._specs[model_id]
        except KeyError:
            hint = ". Add it with ModelCatalog.register or ModelCatalog.from_file."
            raise UnknownModelError(model_id, self.ids(), hint=hint) from None

    def ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._specs))

    def merged(self, other: ModelCatalog) -> ModelCatalog:
        """A new catalog with this catalog's specs, overridden by ``other``'s where ids collide."""
        return ModelCatalog([*self._specs.values(), *other._specs.values()])

    @classmethod
    def from_file(cls, path: str | Path) -> ModelCatalog:
        """Load specs from YAML or JSON: a list of spec mappings, or a mapping id → spec mapping."""
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))  # YAML is a superset of JSON
        return cls(_parse_specs(data, str(path)))

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._specs

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        return f"ModelCatalog({list(self.ids())})"


def _parse_specs(data: Any, source: str) -> list[ModelSpec]:
    if isinstance(data, list):
        return [ModelSpec.model_validate(item) for item in data]
    if isinstance(data, dict):
        specs = []
        for key, item in data.items():
            if not isinstance(item, dict):
                raise ValueError(f"{source}: the spec of {key!r} must be a mapping")
            if item.get("id", key) != key:
                raise ValueError(f"{source}: key {key!r} does not match id {item['id']!r}")
            specs.append(ModelSpec.model_validate({**item, "id": key}))
        return specs
    raise ValueError(f"{source}: expected a list of model specs or a mapping id -> spec")


# id, display name, family, layers, hidden, vocab, tied embeddings, total params, context window.
# Instruction-tuned variants except gemma3-270m (base); values, sources and the derivation of M:
# langtts/data/catalog_sources.md.
_PUBLISHED: tuple[tuple[str, str, str, int, int, int, bool, int, int], ...] = (
    ("llama-3.2-1b", "Llama 3.2 1B", "llama", 16, 2048, 128256, True, 1_235_814_400, 131072),
    ("llama-3.2-3b", "Llama 3.2 3B", "llama", 28, 3072, 128256, True, 3_212_749_824, 131072),
    ("llama-3.1-8b", "Llama 3.1 8B", "llama", 32, 4096, 128256, False, 8_030_261_248, 131072),
    ("llama-3.1-70b", "Llama 3.1 70B", "llama", 80, 8192, 128256, False, 70_553_706_496, 131072),
    ("gemma-3-1b", "Gemma 3 1B", "gemma", 26, 1152, 262144, True, 999_885_952, 32768),
    ("gemma-2b", "Gemma 2B", "gemma", 18, 2048, 256000, True, 2_506_172_416, 8192),
    ("gemma-7b", "Gemma 7B", "gemma", 28, 3072, 256000, True, 8_537_680_896, 8192),
    ("smollm2-135m", "SmolLM2 135M", "smollm", 30, 576, 49152, True, 134_515_008, 8192),
    ("gemma3-270m", "Gemma 3 270M (base)", "gemma", 18, 640, 262144, True, 268_098_176, 32768),
    ("qwen2.5-coder-0.5b", "Qwen2.5-Coder 0.5B", "qwen", 24, 896, 151936, True, 494_032_768, 32768),
    ("qwen2.5-coder-1.5b", "Qwen2.5-Coder 1.5B", "qwen", 28, 1536, 151936, True, 1_543_714_304, 32768),
    ("qwen2.5-7b", "Qwen2.5 7B", "qwen", 28, 3584, 152064, False, 7_615_616_512, 32768),
    ("qwen2.5-14b", "Qwen2.5 14B", "qwen", 48, 5120, 152064, False, 14_770_033_664, 32768),
    ("qwen2.5-32b", "Qwen2.5 32B", "qwen", 64, 5120, 152064, False, 32_763_876_352, 32768),
    ("qwen2.5-72b", "Qwen2.5 72B", "qwen", 80, 8192, 152064, False, 72_706_203_648, 32768),
)
_WEAK = frozenset({"gemma3-270m"})
_YARN = "131072 tokens with YaRN rope scaling"
_NOTES = {
    "gemma3-270m": "base model: plain User:/Assistant: template and a stop sequence",
    "qwen2.5-7b": _YARN,
    "qwen2.5-14b": _YARN,
    "qwen2.5-32b": _YARN,
    "qwen2.5-72b": _YARN,
}


def _builtin_specs() -> list[ModelSpec]:
    """Specs from published config values: M = total params, minus the input embedding table when untied."""
    return [
        ModelSpec(
            id=model_id,
            display_name=name,
            family=family,
            params=float(total if tied else total - vocab * hidden),
            layers=layers,
            hidden=hidden,
            total_params=float(total),
            vocab_size=vocab,
            tied_embeddings=tied,
            context_window=context,
            weak=model_id in _WEAK,
            notes=_NOTES.get(model_id, ""),
        )
        for model_id, name, family, layers, hidden, vocab, tied, total, context in _PUBLISHED
    ]


def default_catalog() -> ModelCatalog:
    """A fresh catalog of the built-in specs (safe to `register` into)."""
    return ModelCatalog(_builtin_specs())


# --- task lengths -------------------------------------------------------------------------------------------


class TaskLengths(BaseModel):
    """Task-average lengths in tokens: A (the question prompt) and B (one answer)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_tokens: float = Field(gt=0, description="A: prompt tokens of a node with no inputs")
    output_tokens: float = Field(gt=0, description="B: generated tokens per call")


TASK_LENGTHS: Mapping[str, TaskLengths] = {
    "math": TaskLengths(input_tokens=202, output_tokens=275),
    "mmlu": TaskLengths(input_tokens=213, output_tokens=215),
    "humaneval": TaskLengths(input_tokens=180, output_tokens=115),
}


def task_lengths(name: str) -> TaskLengths:
    """The reference's average lengths for a task (math, mmlu, humaneval)."""
    try:
        return TASK_LENGTHS[name.lower()]
    except KeyError:
        raise KeyError(
            f"no preset lengths for task {name!r} (presets: {', '.join(TASK_LENGTHS)}); measure them from "
            "single-model runs with langtts.cost.measure_task_lengths"
        ) from None


def measure_task_lengths(usages: Iterable[tuple[float, float]]) -> TaskLengths:
    """A and B as the means of (prompt_tokens, completion_tokens) of real single-model, no-input calls."""
    pairs = list(usages)
    if not pairs:
        raise ValueError("measure_task_lengths needs at least one (prompt_tokens, completion_tokens) pair")
    return TaskLengths(
        input_tokens=sum(p for p, _ in pairs) / len(pairs),
        output_tokens=sum(c for _, c in pairs) / len(pairs),
    )


# --- Theorem 1 ----------------------------------------------------------------------------------------------


def prefill_flops(spec: ModelSpec, prompt_tokens: float) -> float:
    """2·M·Np + 2·L·D·Np·(Np + 1)."""
    n = prompt_tokens
    return 2 * spec.params * n + 2 * spec.layers * spec.hidden * n * (n + 1)


def decode_flops(spec: ModelSpec, prompt_tokens: float, completion_tokens: float) -> float:
    """2·M·Nd + 2·L·D·Nd·(2·Np + Nd + 1)."""
    n, m = prompt_tokens, completion_tokens
    return 2 * spec.params * m + 2 * spec.layers * spec.hidden * m * (2 * n + m + 1)


def call_flops(spec: ModelSpec, prompt_tokens: float, completion_tokens: float) -> float:
    """FLOPs of one real call from its actual token counts (measured accounting)."""
    return prefill_flops(spec, prompt_tokens) + decode_flops(spec, prompt_tokens, completion_tokens)


def node_flops(spec: ModelSpec, in_degree: int, lengths: TaskLengths, *, vote_inputs: int = 0) -> float:
    """Theorem 1 for an LLM node with ``in_degree`` LLM inputs and ``vote_inputs`` vote inputs:
    Np = A + d·B + v·VOTE_TEXT_TOKENS, Nd = B."""
    if in_degree < 0 or vote_inputs < 0:
        raise ValueError(f"in_degree and vote_inputs must be >= 0, got {in_degree} and {vote_inputs}")
    return call_flops(spec, _prompt_tokens(in_degree, vote_inputs, lengths), lengths.output_tokens)


def _prompt_tokens(in_degree: int, vote_inputs: int, lengths: TaskLengths) -> float:
    return lengths.input_tokens + in_degree * lengths.output_tokens + vote_inputs * VOTE_TEXT_TOKENS


def _inputs(graph: CollaborationGraph, node_id: str) -> tuple[int, int]:
    """(LLM inputs, vote inputs) of a node."""
    votes = sum(not graph.node(p).calls_model for p in graph.predecessors(node_id))
    return graph.in_degree(node_id) - votes, votes


def input_flops(spec: ModelSpec, in_degree: int, lengths: TaskLengths) -> float:
    """What one more LLM input adds to an LLM node that has ``in_degree`` of them."""
    return node_flops(spec, in_degree + 1, lengths) - node_flops(spec, in_degree, lengths)


def unit_flops(spec: ModelSpec, lengths: TaskLengths) -> float:
    """One cost unit: a call of ``spec`` with no inputs."""
    return node_flops(spec, 0, lengths)


# --- graphs and budgets -------------------------------------------------------------------------------------


class GraphCost(BaseModel):
    """The modelled cost of a graph: raw FLOPs, per node, and normalised by a unit model."""

    model_config = ConfigDict(frozen=True)

    flops: float
    per_node: dict[str, float]
    unit_model: str
    unit_flops: float
    units: float
    lengths: TaskLengths


def _node_cost(graph: CollaborationGraph, node_id: str, catalog: ModelCatalog, lengths: TaskLengths) -> float:
    node = graph.node(node_id)
    if not node.calls_model:
        return 0.0
    llm, votes = _inputs(graph, node_id)
    return node_flops(catalog.get(node.model), llm, lengths, vote_inputs=votes)


def by_size(model_ids: Iterable[str], catalog: ModelCatalog, *, largest_first: bool = False) -> list[str]:
    """The ids (repeats kept) by params, smallest first (or largest first), ties by id; empty ids (vote nodes)
    are skipped."""
    sign = -1 if largest_first else 1
    return sorted((m for m in model_ids if m), key=lambda m: (sign * catalog.get(m).params, m))


def smallest_model(model_ids: Iterable[str], catalog: ModelCatalog) -> str:
    """The id with the fewest params (ties by id); empty ids (vote nodes) are skipped."""
    return by_size(model_ids, catalog)[0]


def largest_model(model_ids: Iterable[str], catalog: ModelCatalog) -> str:
    """The id with the most params (ties by id); empty ids (vote nodes) are skipped."""
    return by_size(model_ids, catalog, largest_first=True)[0]


def graph_cost(
    graph: CollaborationGraph, catalog: ModelCatalog, lengths: TaskLengths, unit_model: str | None = None
) -> GraphCost:
    """Cost of the pruned graph (nodes with no path to the sink never run; a vote costs 0).

    ``unit_model`` defaults to the smallest model of the graph; pass it explicitly to compare graphs.
    """
    pruned = graph.pruned()
    per_node = {node.id: _node_cost(pruned, node.id, catalog, lengths) for node in pruned.nodes}
    unit_id = unit_model or smallest_model((n.model for n in graph.nodes), catalog)
    unit = unit_flops(catalog.get(unit_id), lengths)
    total = sum(per_node.values())
    return GraphCost(
        flops=total,
        per_node=per_node,
        unit_model=unit_id,
        unit_flops=unit,
        units=total / unit,
        lengths=lengths,
    )


def unpruned_flops(graph: CollaborationGraph, catalog: ModelCatalog, lengths: TaskLengths) -> float:
    """Modelled FLOPs if every node ran, those with no path to the sink included (an upper bound of
    :func:`graph_cost`)."""
    return sum(_node_cost(graph, node.id, catalog, lengths) for node in graph.nodes)


class Budget(BaseModel):
    """A FLOPs budget; ``units``/``unit_model`` record how it was given when it was given in units."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    flops: float = Field(gt=0)
    units: float | None = None
    unit_model: str | None = None

    @classmethod
    def from_flops(cls, flops: float) -> Budget:
        return cls(flops=flops)

    @classmethod
    def from_units(cls, units: float, unit_spec: ModelSpec, lengths: TaskLengths) -> Budget:
        """``units`` no-input calls of ``unit_spec`` (the paper: 18, 42 and 80 units of the 1B model)."""
        return cls(flops=units * unit_flops(unit_spec, lengths), units=units, unit_model=unit_spec.id)


def fits(flops: float, budget_flops: float) -> bool:
    """Whether a modelled cost is within a FLOPs budget (with a relative slack for float rounding only)."""
    return flops <= budget_flops * (1 + _REL_TOL)


def feasible(graph: CollaborationGraph, budget: Budget, catalog: ModelCatalog, lengths: TaskLengths) -> bool:
    """Whether the graph's modelled FLOPs fit the budget."""
    return fits(graph_cost(graph, catalog, lengths).flops, budget.flops)


def repair(
    graph: CollaborationGraph, budget: Budget, catalog: ModelCatalog, lengths: TaskLengths
) -> CollaborationGraph:
    """Delete nodes until the graph fits the budget (method.md §2); a feasible graph is returned unchanged.

    Otherwise, starting from the pruned graph and while over budget, the non-sink LLM node with the smallest
    model (ties: the latest in topological order, then the smallest id) is deleted with its edges; nodes
    left with no path to the sink are dropped, and a fuser left with no assistant predecessor becomes an
    assistant. A deletion that would leave a vote with fewer than 2 inputs is skipped for the next victim.
    Raises `BudgetError` if the sink alone does not fit, or no deletion is possible.
    """
    limit = budget.flops
    current = graph
    while not fits(flops := graph_cost(current, catalog, lengths).flops, limit):
        current = current.pruned()
        layer_of = {node_id: i for i, layer in enumerate(current.layers()) for node_id in layer}
        victims = sorted(
            (n for n in current.workers if n.calls_model),
            key=lambda n: (catalog.get(n.model).params, -layer_of[n.id], n.id),
        )
        smaller = next((g for n in victims if (g := _without(current, n.id)) is not None), None)
        if smaller is None:
            alone = "the sink alone" if not current.workers else "any graph that keeps its votes"
            raise BudgetError(
                f"budget of {limit:.4g} FLOPs is below the cost of {alone} ({flops:.4g} FLOPs, "
                f"sink {current.sink.id!r})"
            )
        current = smaller
    return current


def _without(graph: CollaborationGraph, node_id: str) -> CollaborationGraph | None:
    """The graph minus one node, its edges and the nodes then cut off from the sink; fusers left with no
    assistant predecessor become assistants. None when the rest is not a valid graph (a vote left with one
    input)."""
    edges = [(s, d) for s, d in graph.edges if node_id not in (s, d)]
    kept = reaching(graph.sink.id, edges)
    edges = [(s, d) for s, d in edges if d in kept]
    role = {n.id: n.role for n in graph.nodes}
    nodes = [
        replace(n, role="assistant")
        if n.role == "fuser" and not any(d == n.id and role[s] == "assistant" for s, d in edges)
        else n
        for n in graph.nodes
        if n.id in kept
    ]
    try:
        return type(graph)(nodes=tuple(nodes), edges=tuple(edges), sink_id=graph.sink_id)
    except GraphError:
        return None


# --- model multisets ----------------------------------------------------------------------------------------


def multiset_flops(worker_specs: Iterable[ModelSpec], sink_spec: ModelSpec, lengths: TaskLengths) -> float:
    """The cost floor of any graph with these nodes: workers at in-degree 0, the sink at in-degree 1 (0 when
    there are no workers). Edges only add cost."""
    workers = list(worker_specs)
    sink = node_flops(sink_spec, 1 if workers else 0, lengths)
    return sum(node_flops(s, 0, lengths) for s in workers) + sink


def maximal_multisets(
    candidates: Sequence[ModelSpec],
    sink_spec: ModelSpec,
    budget: Budget,
    lengths: TaskLengths,
    max_nodes: int = 8,
) -> list[tuple[str, ...]]:
    """Every multiset of worker models (a sorted tuple of ids, at most ``max_nodes``) whose floor cost
    (:func:`multiset_flops`) fits the budget and to which no candidate can be added: the multisets that spend the
    budget maximally.

    Sorted by floor cost (descending), then by ids. The empty tuple appears only when no single worker fits.
    """
    specs = sorted({s.id: s for s in candidates}.values(), key=lambda s: s.id)
    if not specs:
        return []
    # multiset_flops, kept incrementally along the search: the workers' sum, then the sink at in-degree 0 or 1
    cost = {s.id: unit_flops(s, lengths) for s in specs}
    sink0, sink1 = node_flops(sink_spec, 0, lengths), node_flops(sink_spec, 1, lengths)
    cheapest = min(cost.values())
    found: list[tuple[float, tuple[str, ...]]] = []

    def visit(start: int, chosen: list[str], workers_flops: float) -> None:
        total = workers_flops + (sink1 if chosen else sink0)
        grown = workers_flops + cheapest + sink1
        if len(chosen) == max_nodes or not fits(grown, budget.flops):
            found.append((total, tuple(chosen)))
        if len(chosen) == max_nodes:
            return
        for i in range(start, len(specs)):
            flops = workers_flops + cost[specs[i].id]
            if fits(flops + sink1, budget.flops):
                visit(i, [*chosen, specs[i].id], flops)

    if fits(sink0, budget.flops):
        visit(0, [], 0.0)
    return [ids for _, ids in sorted(found, key=lambda item: (-item[0], item[1]))]


# --- latency ------------------------------------------------------------------------------------------------


class SpeedProfile(BaseModel):
    """Throughput of one model as served: prompt tokens/s and generated tokens/s."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prefill_tps: float = Field(gt=0)
    decode_tps: float = Field(gt=0)


def node_latency(in_degree: int, lengths: TaskLengths, profile: SpeedProfile, *, vote_inputs: int = 0) -> float:
    """Seconds for one LLM node: Np / prefill speed + Nd / decode speed."""
    prompt = _prompt_tokens(in_degree, vote_inputs, lengths)
    return prompt / profile.prefill_tps + lengths.output_tokens / profile.decode_tps


def estimate_latency(graph: CollaborationGraph, lengths: TaskLengths, profiles: Mapping[str, SpeedProfile]) -> float:
    """Critical path of the pruned graph in seconds (:func:`critical_path`); a vote takes no time."""
    pruned = graph.pruned()
    seconds: dict[str, float] = {}
    for node_id in (node_id for layer in pruned.layers() for node_id in layer):
        node = pruned.node(node_id)
        if not node.calls_model:
            seconds[node_id] = 0.0
            continue
        if node.model not in profiles:
            raise KeyError(f"no speed profile for model {node.model!r} (have: {', '.join(sorted(profiles))})")
        llm, votes = _inputs(pruned, node_id)
        seconds[node_id] = node_latency(llm, lengths, profiles[node.model], vote_inputs=votes)
    return critical_path(seconds, pruned.predecessors)[pruned.sink.id]


def critical_path(seconds: Mapping[str, float], inputs: Callable[[str], Iterable[str]]) -> dict[str, float]:
    """When each node finishes if it starts as soon as all its ``inputs`` have finished and takes ``seconds``
    (nodes in topological order) to run."""
    finish: dict[str, float] = {}
    for node_id, own in seconds.items():
        finish[node_id] = max((finish[p] for p in inputs(node_id)), default=0.0) + own
    return finish


__all__ = [
    "TASK_LENGTHS",
    "VOTE_TEXT_TOKENS",
    "Budget",
    "BudgetError",
    "GraphCost",
    "ModelCatalog",
    "ModelSpec",
    "SpeedProfile",
    "TaskLengths",
    "UnknownModelError",
    "by_size",
    "call_flops",
    "critical_path",
    "decode_flops",
    "default_catalog",
    "estimate_latency",
    "feasible",
    "fits",
    "graph_cost",
    "input_flops",
    "largest_model",
    "maximal_multisets",
    "measure_task_lengths",
    "multiset_flops",
    "node_flops",
    "node_latency",
    "prefill_flops",
    "repair",
    "smallest_model",
    "task_lengths",
    "unit_flops",
    "unpruned_flops",
]

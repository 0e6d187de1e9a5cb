"""What the Agent-REINFORCE agent reads and writes: the pilot data it is shown, the JSON schemas of its answers,
and the checks that turn an answer into a graph or into new logits (or an :class:`AgentOutputError` whose
message is fed back to the agent for a repair).
"""

from __future__ import annotations

import functools
import json
import math
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

import networkx as nx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from langtts.graph import CollaborationGraph, GraphError, Node
from langtts.optimize.base import SearchSpace
from langtts.space import SINK_ID, ProbabilisticGraph, worker_id

_P_MIN = 1e-3  # probabilities are clipped to [_P_MIN, 1 - _P_MIN] before becoming logits
_SAME = 0.006  # an update value this close to the current probability keeps it (the tables show two decimals)


class AgentOutputError(ValueError):
    """An agent answer that breaks a rule; the message says which, in words the agent can act on."""


# ---- pilot data -----------------------------------------------------------------------------------------


class PilotEntry(BaseModel):
    """One pilot measurement: a model mix (or a single model) and its accuracy on a task."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: str
    mix: str = Field(description="e.g. '2×3B + 3×1B', or one model on its own")
    accuracy: float = Field(description="percent")
    budget_units: float | None = Field(default=None, description="None for a single model on its own")


_PAPER_MIXES: dict[tuple[str, float | None], dict[str, float]] = {  # method.md §4, Insight 1
    ("MATH", 9): {"9×1B": 39, "2×3B + 3×1B": 45, "1×3B + 6×1B": 44, "3×3B": 54, "1×8B": 49},
    ("MMLU", 9): {"9×1B": 30, "2×3B + 3×1B": 45, "1×3B + 6×1B": 39, "3×3B": 41, "1×8B": 64},
    ("HumanEval", 7): {"7×1B": 38, "1×3B + 3×1B": 48, "1×8B": 60},
    ("MATH", None): {"1B": 31, "3B": 40, "8B": 49, "70B": 68},
    ("MMLU", None): {"1B": 31, "3B": 43, "8B": 64, "70B": 84},
    ("HumanEval", None): {"1B": 31, "3B": 48, "8B": 60, "70B": 68},
}


def _paper_entries() -> list[PilotEntry]:
    return [
        PilotEntry(task=task, mix=mix, accuracy=accuracy, budget_units=budget)
        for (task, budget), results in _PAPER_MIXES.items()
        for mix, accuracy in results.items()
    ]


class PilotData(BaseModel):
    """Pilot accuracies shown to the agent when it picks the model mix; the default is the paper's (Llama 3.x,
    budgets in no-input calls of the 1B model). Replace it with measurements of your own pool."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str = "Wang et al. 2025, Llama 3.x models; budgets in no-input calls of the 1B model"
    entries: list[PilotEntry] = Field(default_factory=_paper_entries)

    def render(self) -> str:
        """One line per task and budget: the mixes and their accuracies."""
        groups: dict[tuple[str, float | None], list[str]] = {}
        for e in self.entries:
            groups.setdefault((e.task, e.budget_units), []).append(f"{e.mix} {e.accuracy:g}")
        return "\n".join(
            f"- {task}, {'single models' if budget is None else f'budget {budget:g}'}: {', '.join(items)}"
            for (task, budget), items in groups.items()
        )


# ---- JSON schemas ---------------------------------------------------------------------------------------

REASONING_CHARS = 300  # maxLength of every "reasoning" string
FEEDBACK_CHARS = 600  # maxLength of the textual gradient


def _object(properties: dict[str, Any], title: str | None = None) -> dict[str, Any]:
    """A strict object schema: every property required, in this order, nothing else allowed."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    return {"title": title, **schema} if title else schema


def _enum(values: Sequence[Any], kind: str = "string") -> dict[str, Any]:
    return {"type": kind, "enum": list(values)}


def _text(max_length: int, min_length: int = 0) -> dict[str, Any]:
    """A bounded string: llama.cpp's json-schema-to-grammar (``char{min,max}``) and vLLM's backends end it there."""
    return {"type": "string", **({"minLength": min_length} if min_length else {}), "maxLength": max_length}


_BOOLEAN = {"type": "boolean"}
_PROBABILITY = {"type": "number", "minimum": 0, "maximum": 1}  # llama.cpp does not enforce number bounds: checked


def choice_schema(n_candidates: int) -> dict[str, Any]:
    numbers = _enum(range(n_candidates), "integer")
    return _object({"reasoning": _text(REASONING_CHARS), "first": numbers, "second": numbers}, "multiset_choice")


MAX_PLACEMENT_ORDERS = 24  # above this many arrangements of a fixed multiset, the validator checks the counts


def placement_schema(
    worker_ids: Sequence[str], models: Sequence[str], fusers: bool, multiset: Sequence[str] | None = None
) -> dict[str, Any]:
    """The first half of a proposal, keyed by node: ``{"reasoning", "n0": {"model", "role"}, ...}``. ``n0`` reads
    nothing (inputs only come from lower-numbered nodes), so it can only be an assistant.

    With the worker ``multiset`` fixed, each of its distinct arrangements over the nodes is one ``anyOf``
    alternative (up to :data:`MAX_PLACEMENT_ORDERS`), so a constrained decoder cannot write the wrong model counts.
    """

    def schema(models_at: Callable[[int], Sequence[str]]) -> dict[str, Any]:
        properties: dict[str, Any] = {"reasoning": _text(REASONING_CHARS)}
        for k, node in enumerate(worker_ids):
            roles = ["assistant", "fuser"] if fusers and k > 0 else ["assistant"]
            properties[node] = _object({"model": _enum(models_at(k)), "role": _enum(roles)})
        return _object(properties, "graph_placement")

    if multiset is not None and len(multiset) != len(worker_ids):
        raise ValueError(f"a multiset of {len(multiset)} models for {len(worker_ids)} worker nodes")
    orders = _arrangements(multiset, MAX_PLACEMENT_ORDERS) if multiset is not None else []
    if not orders:
        return schema(lambda k: models)
    if len(orders) == 1:
        return schema(lambda k: [orders[0][k]])
    return {"title": "graph_placement", "anyOf": [schema(functools.partial(_at, o)) for o in orders]}


def _at(order: Sequence[str], k: int) -> list[str]:
    return [order[k]]


def _arrangements(items: Sequence[str], limit: int) -> list[tuple[str, ...]]:
    """The distinct orderings of the multiset ``items`` (sorted), or [] when there are more than ``limit``."""
    counts = Counter(items)
    if math.factorial(len(items)) // math.prod(math.factorial(c) for c in counts.values()) > limit:
        return []
    found: list[tuple[str, ...]] = []

    def extend(prefix: tuple[str, ...]) -> None:
        if len(prefix) == len(items):
            found.append(prefix)
            return
        for item in sorted(counts):
            if counts[item]:
                counts[item] -= 1
                extend((*prefix, item))
                counts[item] += 1

    extend(())
    return found


def wiring_schema(
    worker_ids: Sequence[str],
    roles: Mapping[str, str],
    caps: Mapping[str, int] | None = None,
    sink_cap: int | None = None,
) -> dict[str, Any]:
    """The second half, given the placed roles: ``{"n1": {"n0": true}, ..., "sink_inputs": {...}}``, one boolean
    per lower-numbered node (edges only run upwards: no duplicates or cycles can be written); a fuser's keys are
    the lower-numbered assistants only, at least one true (it never reads a fuser), and at least one worker feeds
    the sink (``anyOf`` alternatives, one per first true flag). ``n0`` has no inputs and is left out.

    ``caps`` (per node) and ``sink_cap`` bound the number of true flags where the bound is 0 or 1 (a one-hot
    ``anyOf``; larger bounds are left to the validator): the inputs the budget affords each node on its own.
    """
    caps = caps or {}
    properties: dict[str, Any] = {}
    for k, node in enumerate(worker_ids[1:], start=1):
        earlier = worker_ids[:k]
        if roles[node] == "fuser":
            properties[node] = _some_true([w for w in earlier if roles[w] == "assistant"], caps.get(node))
        else:
            properties[node] = _at_most(earlier, caps.get(node))
    properties["sink_inputs"] = _some_true(worker_ids, sink_cap)
    return _object(properties, "graph_wiring")


def _flags_schema(keys: Sequence[str]) -> dict[str, Any]:
    return _object({k: _BOOLEAN for k in keys})


def _at_most(keys: Sequence[str], cap: int | None) -> dict[str, Any]:
    """An object of booleans over ``keys``; with ``cap`` 0 all false, with ``cap`` 1 at most one true."""
    if cap is None or cap >= min(2, len(keys)):
        return _flags_schema(keys)
    none = _object({k: _enum([False], "boolean") for k in keys})
    return none if cap <= 0 else {"anyOf": [none, *_one_hot(keys)["anyOf"]]}


def _some_true(keys: Sequence[str], cap: int | None = None) -> dict[str, Any]:
    """An object of booleans over ``keys`` with at least one true (alternative i has the first true at key i);
    with ``cap`` 1 or less, exactly one."""
    if cap is not None and cap <= 1:
        return _one_hot(keys)
    if len(keys) == 1:
        return _object({keys[0]: _enum([True], "boolean")})
    return {
        "anyOf": [
            _object(
                {k: _enum([False], "boolean") for k in keys[:i]}
                | {keys[i]: _enum([True], "boolean")}
                | {k: _BOOLEAN for k in keys[i + 1 :]}
            )
            for i in range(len(keys))
        ]
    }


def _one_hot(keys: Sequence[str]) -> dict[str, Any]:
    """Exactly one of ``keys`` true."""
    alternatives = [_object({k: _enum([k == key], "boolean") for k in keys}) for key in keys]
    return alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}


FEEDBACK_SCHEMA = _object({"feedback": _text(FEEDBACK_CHARS, 1)}, "textual_gradient")


def update_schema(worker_ids: Sequence[str], models: Sequence[str], fusers: bool) -> dict[str, Any]:
    """The new probabilities keyed by node: ``{"reasoning", "n0": {"inputs", "fuser", "models"}, ...,
    "sink_inputs"}``, with P(input) for each lower-numbered worker, P(fuser) (not for ``n0``, which has no
    inputs; left out when fusers are off), P(model) per model (left out with a single model), P(worker feeds
    the sink)."""
    properties: dict[str, Any] = {"reasoning": _text(REASONING_CHARS)}
    for k, node in enumerate(worker_ids):
        fields: dict[str, Any] = {"inputs": _object({w: _PROBABILITY for w in worker_ids[:k]})}
        if fusers and k > 0:
            fields["fuser"] = _PROBABILITY
        if len(models) > 1:
            fields["models"] = _object({m: _PROBABILITY for m in models})
        properties[node] = _object(fields)
    properties["sink_inputs"] = _object({w: _PROBABILITY for w in worker_ids})
    return _object(properties, "probability_update")


def answer_token_bound(schema: Mapping[str, Any]) -> int:
    """Completion-token room for an answer to ``schema`` at its longest: every string at its maxLength (prose, at
    three characters a token), every key and value written, and per key sixteen tokens of punctuation and of the
    whitespace the grammar allows (a newline and up to 20 characters of indentation, which small models use).
    The agent's max_tokens when none is given. Measured on llama.cpp with qwen2.5-coder-0.5b and four workers of
    one model: proposals took about 650 tokens (bound 811), updates about 560 (bound 670)."""
    return 64 + _answer_tokens(schema)


def _answer_tokens(schema: Mapping[str, Any]) -> int:
    """Tokens of the longest pretty-printed answer to the schemas built here (see :func:`answer_token_bound`)."""
    if "anyOf" in schema:
        return max(_answer_tokens(alternative) for alternative in schema["anyOf"])
    if "enum" in schema:
        return 2 + max(len(json.dumps(v)) for v in schema["enum"]) // 2
    kind = schema.get("type")
    if kind == "object":
        return 2 + sum(
            len(json.dumps(key)) // 2 + 16 + _answer_tokens(sub) for key, sub in schema.get("properties", {}).items()
        )
    if kind == "string":
        return 2 + int(schema.get("maxLength", 200)) // 3
    if kind == "boolean":
        return 2
    return 4  # a number: "0.125" and the like


# ---- parsed answers -------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MultisetChoice(_Strict):
    reasoning: str = ""
    first: int
    second: int


class Feedback(_Strict):
    feedback: str


def _validate(model: type[_Strict], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'answer'}: {err['msg']}" for err in e.errors())
        raise AgentOutputError(f"the answer does not match the schema ({problems})") from None


def parse_choice(data: Any, n_candidates: int) -> MultisetChoice:
    choice = _validate(MultisetChoice, data)
    for value in (choice.first, choice.second):
        if not 0 <= value < n_candidates:
            raise AgentOutputError(f"candidate {value} does not exist (choose from 0 to {n_candidates - 1})")
    if choice.first == choice.second:
        raise AgentOutputError("choose two different candidates")
    return choice


def parse_feedback(data: Any) -> str:
    """The feedback text, on one line and cut to FEEDBACK_CHARS; AgentOutputError if it is empty."""
    text = " ".join(_validate(Feedback, data).feedback.split())
    if not text:
        raise AgentOutputError('the feedback is empty: write one to three sentences in "feedback"')
    return text[:FEEDBACK_CHARS]


def _fields(data: Any, keys: Sequence[str], what: str, *, optional: Collection[str] = ()) -> dict[str, Any]:
    """``data`` as a mapping with exactly ``keys`` (those in ``optional`` may be missing), else AgentOutputError."""
    if not isinstance(data, Mapping):
        raise AgentOutputError(f"{what} must be a JSON object with {_listed(keys)}")
    if unknown := [k for k in data if k not in keys]:
        raise AgentOutputError(f"{what} has unknown key {unknown[0]!r} (keys: {_listed(keys)})")
    if missing := [k for k in keys if k not in data and k not in optional]:
        raise AgentOutputError(f"{what} lacks {_listed(missing)}")
    return dict(data)


def _listed(keys: Iterable[str]) -> str:
    return ", ".join(f'"{k}"' for k in keys) or "no keys"


def parse_placement(data: Any, *, multiset: Sequence[str], fusers: bool) -> dict[str, Any]:
    """A :func:`placement_schema` answer as ``{"reasoning", node: {"model", "role"}}``, if its workers run exactly
    the models of ``multiset`` and the roles are allowed; otherwise AgentOutputError naming the first problem."""
    workers = [worker_id(i) for i in range(len(multiset))]
    answer = _fields(data, ["reasoning", *workers], "the answer", optional=["reasoning"])
    placed = {node: _fields(answer[node], ["model", "role"], f"node {node}") for node in workers}
    _check_placement(placed, multiset, fusers)
    return {"reasoning": str(answer.get("reasoning", "")), **placed}


def combine_proposal(placement: Mapping[str, Any], wiring: Any, workers: Sequence[str]) -> dict[str, Any]:
    """A placement and a :func:`wiring_schema` answer as one proposal for :func:`parse_proposal`."""
    wired = _fields(wiring, [*workers, "sink_inputs"], "the answer", optional=workers)  # n0: none or unknown ones
    nodes = {node: {**placement[node], "inputs": wired.get(node, {})} for node in workers}
    return {"reasoning": placement.get("reasoning", ""), **nodes, "sink_inputs": wired["sink_inputs"]}


def _check_placement(placed: Mapping[str, Mapping[str, Any]], multiset: Sequence[str], fusers: bool) -> None:
    roles = ("assistant", "fuser") if fusers else ("assistant",)
    for k, (node, fields) in enumerate(placed.items()):
        model, role = fields["model"], fields["role"]
        if model not in multiset:
            raise AgentOutputError(
                f"node {node} runs {model!r}: a worker runs one of {_listed(dict.fromkeys(multiset))}"
            )
        if role not in roles:
            allowed = "assistant or fuser" if fusers else "assistant (the fuser role is disabled)"
            raise AgentOutputError(f"node {node} has role {role!r}; a worker's role is {allowed}")
        if k == 0 and role != "assistant":
            raise AgentOutputError(f"node {node} has no inputs, so it must be an assistant")
    got = Counter(fields["model"] for fields in placed.values())
    if got != Counter(multiset):
        raise AgentOutputError(
            f"the workers run {multiset_text(got)}, but the model counts are fixed at {multiset_text(multiset)}: "
            "give each model to exactly that many nodes"
        )


def parse_proposal(
    data: Any, *, multiset: Sequence[str], space: SearchSpace, fusers: bool, unit_flops: float
) -> CollaborationGraph:
    """The graph of a whole proposal (:func:`combine_proposal`), if its workers run exactly the models of
    ``multiset``, the roles obey the rules, the sink has an input and the (pruned) graph fits the budget;
    otherwise AgentOutputError naming the first problem. Input flags left out count as false."""
    workers = [worker_id(i) for i in range(len(multiset))]
    answer = _fields(data, ["reasoning", *workers, "sink_inputs"], "the answer", optional=["reasoning"])
    fields = {node: _fields(answer[node], ["model", "role", "inputs"], f"node {node}") for node in workers}
    _check_placement(fields, multiset, fusers)
    nodes, edges = [], []
    roles_by_node: dict[str, str] = {}
    for k, node in enumerate(workers):
        model, role = fields[node]["model"], fields[node]["role"]
        inputs = _flags(
            fields[node]["inputs"], workers[:k], f"the inputs of {node} (it reads only from lower-numbered nodes)"
        )
        if role == "fuser":
            fusers_read = [source for source in inputs if roles_by_node[source] == "fuser"]
            if fusers_read:
                raise AgentOutputError(
                    f"node {node} is a fuser and reads the fuser {fusers_read[0]}: a fuser never reads a fuser; "
                    f'make {node} an "assistant", or set its input {fusers_read[0]} to false'
                )
        roles_by_node[node] = role
        edges += [(source, node) for source in inputs]
        nodes.append(Node(node, role, model))
    sink_inputs = _flags(answer["sink_inputs"], workers, '"sink_inputs"')
    if not sink_inputs:
        raise AgentOutputError('the sink has no input: set at least one node to true in "sink_inputs"')
    try:
        graph = CollaborationGraph(
            nodes=(*nodes, Node(SINK_ID, "decider", space.sink_model)),
            edges=(*edges, *((source, SINK_ID) for source in sink_inputs)),
        )
    except GraphError as e:
        raise AgentOutputError(str(e)) from None
    if not space.feasible(graph):
        raise AgentOutputError(
            f"the graph costs {space.cost(graph) / unit_flops:.2f} units, over the budget of "
            f"{space.budget.flops / unit_flops:.2f}: turn inputs off, especially into nodes with many inputs"
        )
    return graph


def _flags(data: Any, keys: Sequence[str], what: str) -> list[str]:
    """The keys set to true in an object of booleans over ``keys`` (missing ones count as false)."""
    flags = _fields(data, keys, what, optional=keys)
    if wrong := [k for k, v in flags.items() if not isinstance(v, bool)]:
        raise AgentOutputError(f"{what}: {wrong[0]} must be true or false, not {flags[wrong[0]]!r}")
    return [k for k in keys if flags.get(k)]


def multiset_text(models: Iterable[str]) -> str:
    """``2× a + 1× b`` (a Counter or a sequence of model ids, in first-appearance order)."""
    return " + ".join(f"{n}× {m}" for m, n in Counter(models).items())


def apply_update(
    pg: ProbabilisticGraph, data: Any, *, sampled: CollaborationGraph, multiset: Sequence[str], fusers: bool
) -> tuple[ProbabilisticGraph, list[str]]:
    """A copy of ``pg`` with the probabilities of an :func:`update_schema` answer turned into logits, and the
    coercions applied.

    Entries left out keep their value, and so does a value within ``_SAME`` of the current one (the tables
    show two decimals: copying them changes nothing). Coerced (not errors): an edge that was not in the
    ``sampled`` graph may not rise (it keeps its probability); a node's model probabilities are renormalised to
    sum to 1. Errors: unknown keys, an input from a node that is not lower-numbered, probabilities outside
    [0, 1], a fuser probability with fusers off, likely edges (p ≥ 0.5) forming a cycle (with edges from
    higher- to lower-numbered nodes, which only the numeric fallback changes), model probabilities that, when
    changed, no longer sum over the nodes to the model counts (±0.5).
    """
    n, sink = pg.n_nodes, pg.n_nodes
    workers = [worker_id(i) for i in range(n)]
    answer = _fields(
        data, ["reasoning", *workers, "sink_inputs"], "the answer", optional=["reasoning", *workers, "sink_inputs"]
    )
    new = ProbabilisticGraph.from_dict(pg.to_dict(), pg.catalog)
    coercions: list[str] = []
    index = {w: i for i, w in enumerate(workers)}
    sampled_edges = {(index.get(u), sink if v == SINK_ID else index.get(v)) for u, v in sampled.edges}
    keys = ("inputs", "fuser", "models") if fusers else ("inputs", "models")

    edges: list[tuple[int, int, float]] = []
    rows: dict[int, dict[int, float]] = {}
    for j, node in enumerate(workers):
        if node not in answer:
            continue
        fields = _fields(answer[node], keys, f"node {node}", optional=keys)
        inputs = _fields(
            fields.get("inputs", {}),
            workers[:j],
            f"the inputs of {node} (only lower-numbered nodes)",
            optional=workers[:j],
        )
        edges += [(index[u], j, _probability(p, f"P({u} -> {node})")) for u, p in inputs.items()]
        if "fuser" in fields:
            p = _probability(fields["fuser"], f"P(fuser) of {node}")
            if abs(p - pg.fuser_probability(j)) > _SAME:
                new.role_logits[j] = (0.0, _logit(p) - pg.fuser_bonus)
        given = _fields(fields.get("models", {}), pg.models, f"the models of {node}", optional=pg.models)
        row = {pg.models.index(m): _probability(p, f"P({m}) of {node}") for m, p in given.items()}
        if any(abs(p - pg.model_probabilities(j)[k]) > _SAME for k, p in row.items()):
            rows[j] = row
    sink_inputs = _fields(answer.get("sink_inputs", {}), workers, '"sink_inputs"', optional=workers)
    edges += [(index[u], sink, _probability(p, f"P({u} -> sink)")) for u, p in sink_inputs.items()]

    for i, j, p in edges:
        old = pg.edge_probability(i, j)
        if abs(p - old) <= _SAME:
            continue
        if (i, j) not in sampled_edges and p > old:
            target = SINK_ID if j == sink else workers[j]
            coercions.append(f"edge {workers[i]} -> {target} was not sampled: kept at {old:.2f}, not raised to {p:.2f}")
            continue
        new.edge_logits[i, j] = _logit(p) + pg.edge_offset
    likely = nx.DiGraph((i, j) for i in range(n) for j in range(n) if i != j and new.edge_probability(i, j) >= 0.5)
    if cycle := next(iter(nx.simple_cycles(likely)), None):
        names = " -> ".join(worker_id(i) for i in [*cycle, cycle[0]])
        raise AgentOutputError(f"the likely edges (p >= 0.5) form a cycle {names}: lower one of them")

    probabilities = np.array([pg.model_probabilities(i) for i in range(n)])
    for i, given_row in rows.items():
        filled = _fill_row(probabilities[i], given_row)
        if abs(filled.sum() - 1) > 0.02:
            coercions.append(f"model probabilities of {worker_id(i)} summed to {filled.sum():.2f}: renormalised")
        probabilities[i] = filled / filled.sum()
        new.model_logits[i] = np.log(np.clip(probabilities[i], _P_MIN, 1.0))
    for k, model in enumerate(pg.models if rows else ()):
        expected, count = probabilities[:, k].sum(), multiset.count(model)
        if abs(expected - count) > 0.5:
            raise AgentOutputError(
                f"the model probabilities put {expected:.2f} nodes' worth on {model}, but its count is {count}: "
                "move probability between nodes, keeping each model's total equal to its count"
            )
    return new, coercions


def _fill_row(old: np.ndarray, given: dict[int, float]) -> np.ndarray:
    """The given probabilities, with the mass they leave spread over the other models in proportion to ``old``."""
    row = old.copy()
    rest = [k for k in range(len(old)) if k not in given]
    for k, p in given.items():
        row[k] = p
    left, old_rest = 1.0 - sum(given.values()), old[rest].sum()
    if rest and left > 0:
        row[rest] = left * (old[rest] / old_rest if old_rest > 0 else 1 / len(rest))
    elif rest:
        row[rest] = 0.0
    if row.sum() <= 0:
        raise AgentOutputError("a node's model probabilities are all zero")
    return row


def _probability(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AgentOutputError(f"{what}: {value!r} is not a number")
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise AgentOutputError(f"{what}: probability {value} is not between 0 and 1")
    return float(value)


def _logit(p: float) -> float:
    p = min(max(p, _P_MIN), 1 - _P_MIN)
    return math.log(p / (1 - p))

"""The checks that turn an agent answer into a multiset choice, feedback or a graph, or raise an
:class:`AgentOutputError` whose message is fed back to the agent for a repair.

:func:`check_answer` validates an answer against the JSON schema it was asked with (``jsonschema``); what a schema
cannot say is checked by hand: the model counts, the budget (and, in :mod:`.update`, cycles).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from jsonschema import Draft202012Validator, ValidationError, validators

from langtts.graph import CollaborationGraph, GraphError, Node
from langtts.search.agent_reinforce.schemas import EVIDENCE_CHARS, MAX_CLAIMS, SUMMARY_CHARS, TARGET_CHARS
from langtts.search.base import SearchSpace
from langtts.space import SINK_ID, SinkOption, worker_id

# A bounded string or array ends the server's grammar there; a longer one (a server without the grammar) is cut,
# not refused.
_Validator = validators.extend(Draft202012Validator, {"maxLength": None, "maxItems": None})


class AgentOutputError(ValueError):
    """An agent answer that breaks a rule; the message says which, in words the agent can act on."""


def check_answer(data: Any, schema: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` if it is valid under ``schema``, else AgentOutputError naming the first problem (the shallowest)."""
    errors = sorted(_Validator(schema).iter_errors(data), key=lambda e: len(e.absolute_path))
    if errors:
        raise AgentOutputError(_message(errors[0]))
    return dict(data)


def _message(error: ValidationError) -> str:
    path = [str(p) for p in error.absolute_path]
    where = ".".join(path) or "the answer"
    value: Any = error.instance
    schema = cast(Mapping[str, Any], error.schema)  # a sub-schema of the dict schemas built here
    if error.validator == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        unknown = [k for k in value if k not in allowed]
        if _flags(schema):
            return f"{_reader(path)} cannot read {unknown[0]}: it may read only {_listed(allowed)}"
        return f"{where} has unknown key {unknown[0]!r} (keys: {_listed(allowed)})"
    if error.validator == "required":
        return f"{where} lacks {_listed(k for k in schema['required'] if k not in value)}"
    if error.validator == "enum" and len(path) > 1 and schema["enum"] in ([True], [False]):  # an input flag
        if schema["enum"] == [False]:
            return f"{_reader(path[:-1])} cannot read {path[-1]}: the budget affords it no input"
        return f"{_reader(path[:-1])} must read {path[-1]}, its only possible input"
    if error.validator == "enum":
        return f"{where} is {value!r}; allowed: {', '.join(map(repr, schema['enum']))}"
    if error.validator == "anyOf":
        return _any_of(path, value, schema["anyOf"])
    return f"{where}: {error.message}"


def _any_of(path: list[str], value: Any, alternatives: Sequence[Mapping[str, Any]]) -> str:
    """What an object matching none of its ``anyOf`` alternatives should be: the input flags of a node or of
    the sink (true-flag bounds), or one arrangement of the worker models (a placement)."""
    if not path and all("properties" in a for a in alternatives) and not _flags(alternatives[0]):
        models = [
            p["properties"]["model"]["enum"][0]
            for k, p in alternatives[0]["properties"].items()
            if k not in ("reasoning", "sink")
        ]
        return f"the workers must run exactly {multiset_text(models)}: give each model to exactly that many nodes"
    keys = list(alternatives[0].get("properties", {}))
    if not isinstance(value, Mapping) or any(k not in keys for k in value) or not all(map(_flags, alternatives)):
        return f"{'.'.join(path) or 'the answer'} has the wrong shape; the keys are {_listed(keys)}"
    true = [k for k, v in value.items() if v is True]
    least = min(sum(s.get("enum") == [True] for s in a["properties"].values()) for a in alternatives)
    most = max(sum(s.get("enum") != [False] for s in a["properties"].values()) for a in alternatives)
    reader = _reader(path)
    if len(true) > most:
        return f"{reader} reads {len(true)} inputs, but the budget affords it at most {most}: set the others to false"
    bound = "exactly" if least == most else "at least"
    if true:  # fewer than the least (a vote sink reads at least two)
        return f"{reader} reads {len(true)} input(s): set {bound} {least} of {_listed(keys)} to true"
    return f"{reader} has no input: set {bound} {'one' if least == 1 else least} of {_listed(keys)} to true"


def _flags(schema: Mapping[str, Any]) -> bool:
    """An object of booleans (a node's or the sink's input flags)."""
    properties = schema.get("properties", {})
    return bool(properties) and all(s.get("type") == "boolean" for s in properties.values())


def _reader(path: Sequence[str]) -> str:
    return "the sink" if path and path[-1] == "sink_inputs" else f"node {path[-1] if path else '?'}"


def _listed(keys: Iterable[str]) -> str:
    return ", ".join(f'"{k}"' for k in keys) or "no keys"


def multiset_text(models: Iterable[str]) -> str:
    """``2× a + 1× b`` (a Counter or a sequence of model ids, in first-appearance order)."""
    return " + ".join(f"{n}× {m}" for m, n in Counter(models).items())


def parse_choice(data: Mapping[str, Any]) -> tuple[int, int]:
    """The two candidates of a :func:`~.schemas.choice_schema` answer; AgentOutputError if they are the same."""
    if data["first"] == data["second"]:
        raise AgentOutputError("choose two different candidates")
    return data["first"], data["second"]


def parse_feedback(data: Mapping[str, Any]) -> dict[str, Any]:
    """A :data:`~.schemas.FEEDBACK_SCHEMA` answer: ``{"claims": [{"target", "effect", "evidence"}], "summary"}``,
    every text on one line and cut to its maxLength (a server without the grammar may write longer ones), at most
    MAX_CLAIMS claims; AgentOutputError if it says nothing (no claim and an empty summary)."""

    def line(text: Any, limit: int) -> str:
        return " ".join(str(text).split())[:limit]

    claims = [
        {
            "target": line(c["target"], TARGET_CHARS),
            "effect": c["effect"],
            "evidence": line(c["evidence"], EVIDENCE_CHARS),
        }
        for c in data["claims"][:MAX_CLAIMS]
    ]
    summary = line(data["summary"], SUMMARY_CHARS)
    if not claims and not summary:
        raise AgentOutputError('the feedback is empty: write claims in "claims" and one sentence in "summary"')
    return {"claims": claims, "summary": summary}


def parse_placement(data: Mapping[str, Any], *, multiset: Sequence[str]) -> dict[str, Any]:
    """A :func:`~.schemas.placement_schema` answer, if its workers run exactly the models of ``multiset``
    (the schema fixes the counts only for a few arrangements); otherwise AgentOutputError."""
    workers = [worker_id(i) for i in range(len(multiset))]
    got = Counter(data[node]["model"] for node in workers)
    if got != Counter(multiset):
        raise AgentOutputError(
            f"the workers run {multiset_text(got)}, but the model counts are fixed at {multiset_text(multiset)}: "
            "give each model to exactly that many nodes"
        )
    return dict(data)


def parse_proposal(
    placement: Mapping[str, Any],
    wiring: Mapping[str, Any],
    *,
    space: SearchSpace,
    unit_flops: float,
    sink: SinkOption | None = None,
) -> CollaborationGraph:
    """The graph of a checked placement and a :func:`~.schemas.wiring_schema` answer (whose schema already rules
    out backward edges, fuser chains and a sink without input), if it fits the budget; else AgentOutputError.
    The sink is ``sink`` (default: the decider on ``space.sink_model``)."""
    sink = sink or SinkOption("decider", space.sink_model)
    workers = [k for k in placement if k not in ("reasoning", "sink")]
    nodes = [Node(node, placement[node]["role"], placement[node]["model"]) for node in workers]
    edges = [(source, node) for node in workers for source in workers if wiring.get(node, {}).get(source)]
    edges += [(source, SINK_ID) for source in workers if wiring["sink_inputs"].get(source)]
    try:
        graph = CollaborationGraph(
            nodes=(*nodes, Node(SINK_ID, sink.role, sink.model)), edges=tuple(edges), sink_id=SINK_ID
        )
    except GraphError as e:
        raise AgentOutputError(str(e)) from None
    if not space.feasible(graph):
        raise AgentOutputError(
            f"the graph costs {space.cost(graph) / unit_flops:.2f} units, over the budget of "
            f"{space.budget.flops / unit_flops:.2f}: turn inputs off, especially into nodes with many inputs"
        )
    return graph

"""The JSON schemas of the agent's answers, sent with each call (the server's grammar enforces them) and checked
again on the answer (:func:`~langtts.search.agent_reinforce.parsing.check_answer`).

Every free-text field has a maxLength, every list a maxItems, so each answer has a bounded length: the agent's
``max_tokens`` is room for the longest compact answer (:func:`compact_token_bound`, at least
PROPOSAL_MAX_TOKENS), the whitespace bound (:func:`answer_token_bound`) only for the repair of a cut answer.
The bounds (compact / whitespace) with the tests' largest space (8 workers, 3 models): a placement 341 / 714,
a wiring 346 / 966 (so a proposal call gets at most 250 tokens up to five workers of one mix: placement 236,
wiring 172), the feedback 314 / 544 whatever the graph, an update 1018 / 2275 (at most half the agent's context
window in any case).
"""

from __future__ import annotations

import functools
import json
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

REASONING_CHARS = 300  # maxLength of the initialise answer's "reasoning"
SHORT_REASONING_CHARS = 100  # maxLength of a proposal's and an update's "reasoning" (a few words)
MAX_CLAIMS = 3  # claims of one feedback answer
TARGET_CHARS = 16  # maxLength of a claim's target: "n3", "sink", "n0->n3", "mix"
EVIDENCE_CHARS = 100  # maxLength of a claim's evidence (one short sentence)
SUMMARY_CHARS = 160  # maxLength of the feedback's summary
PROPOSAL_MAX_TOKENS = 250  # the default max_tokens of a proposal call (placement, wiring)


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
    worker_ids: Sequence[str],
    models: Sequence[str],
    fusers: bool,
    multiset: Sequence[str] | None = None,
    sinks: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The first half of a proposal, keyed by node: ``{"reasoning", "n0": {"model", "role"}, ...}``. ``n0`` reads
    nothing (inputs only come from lower-numbered nodes), so it can only be an assistant. With ``sinks`` (the
    labels of the sink options the budget affords: a decider's model id, or ``vote``), a last key ``"sink"``
    chooses one of them.

    With the worker ``multiset`` fixed, each of its distinct arrangements over the nodes is one ``anyOf``
    alternative (up to :data:`MAX_PLACEMENT_ORDERS`), so a constrained decoder cannot write the wrong model counts.
    """

    def schema(models_at: Callable[[int], Sequence[str]]) -> dict[str, Any]:
        properties: dict[str, Any] = {"reasoning": _text(SHORT_REASONING_CHARS)}
        for k, node in enumerate(worker_ids):
            roles = ["assistant", "fuser"] if fusers and k > 0 else ["assistant"]
            properties[node] = _object({"model": _enum(models_at(k)), "role": _enum(roles)})
        if sinks is not None:
            properties["sink"] = _enum(sinks)
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
    sink_min: int = 1,
) -> dict[str, Any]:
    """The second half, given the placed roles: ``{"n1": {"n0": true}, ..., "sink_inputs": {...}}``, one boolean
    per lower-numbered node (edges only run upwards: no duplicates or cycles can be written); a fuser's keys are
    the lower-numbered assistants only, at least one true (it never reads a fuser), and at least one worker feeds
    the sink (``anyOf`` alternatives, one per first true flag). ``n0`` has no inputs and is left out.

    ``caps`` (per node) and ``sink_cap`` bound the number of true flags where the bound is 0 or 1 (a one-hot
    ``anyOf``; larger bounds are left to the validator): the inputs the budget affords each node on its own.
    ``sink_min`` 2 (a vote sink) asks for at least two sink inputs instead (one alternative per pair of first
    true flags; ``sink_cap`` is then not used: a vote's inputs cost nothing).
    """
    caps = caps or {}
    properties: dict[str, Any] = {}
    for k, node in enumerate(worker_ids[1:], start=1):
        earlier = worker_ids[:k]
        if roles[node] == "fuser":
            properties[node] = _some_true([w for w in earlier if roles[w] == "assistant"], caps.get(node))
        else:
            properties[node] = _at_most(earlier, caps.get(node))
    properties["sink_inputs"] = _two_true(worker_ids) if sink_min >= 2 else _some_true(worker_ids, sink_cap)
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


def _two_true(keys: Sequence[str]) -> dict[str, Any]:
    """An object of booleans over ``keys`` (at least two) with at least two true: alternative (i, j) has its first
    true flags at keys i < j."""
    if len(keys) < 2:
        raise ValueError(f"at least two true flags among {len(keys)} key(s)")
    alternatives = [
        _object(
            {k: _enum([False], "boolean") for k in keys[:i]}
            | {keys[i]: _enum([True], "boolean")}
            | {k: _enum([False], "boolean") for k in keys[i + 1 : j]}
            | {keys[j]: _enum([True], "boolean")}
            | {k: _BOOLEAN for k in keys[j + 1 :]}
        )
        for i in range(len(keys))
        for j in range(i + 1, len(keys))
    ]
    return alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}


def _one_hot(keys: Sequence[str]) -> dict[str, Any]:
    """Exactly one of ``keys`` true."""
    alternatives = [_object({k: _enum([k == key], "boolean") for k in keys}) for key in keys]
    return alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}


FEEDBACK_SCHEMA = _object(
    {
        "claims": {
            "type": "array",
            "items": _object(
                {
                    "target": _text(TARGET_CHARS, 1),
                    "effect": _enum(["helped", "hurt", "neutral"]),
                    "evidence": _text(EVIDENCE_CHARS, 1),
                }
            ),
            "maxItems": MAX_CLAIMS,
        },
        "summary": _text(SUMMARY_CHARS, 1),
    },
    "textual_gradient",
)
"""The feedback (a textual gradient, structured): up to MAX_CLAIMS claims ``{"target": a node id, "sink", an
edge "a->b" or "mix"; "effect": helped / hurt / neutral; "evidence": one short sentence}``, then a one-sentence
"summary". Each claim is checked against the round's figures (:mod:`.claims`)."""


def update_schema(
    worker_ids: Sequence[str],
    models: Sequence[str],
    fusers: bool,
    sinks: Sequence[str] | None = None,
    mixes: int | None = None,
) -> dict[str, Any]:
    """The new probabilities keyed by node: ``{"reasoning", "n0": {"inputs", "fuser", "models"}, ...,
    "sink_inputs"}``, with P(input) for each lower-numbered worker, P(fuser) (not for ``n0``, which has no
    inputs; left out when fusers are off), P(model) per model (left out with a single model), P(worker feeds
    the sink). With ``sinks`` (sink option labels), ``"sink"``: P(each option); with ``mixes`` (a number of
    candidate model mixes), ``"mix"``: -1 (keep the current mix) or a candidate's number."""
    properties: dict[str, Any] = {"reasoning": _text(SHORT_REASONING_CHARS)}
    for k, node in enumerate(worker_ids):
        fields: dict[str, Any] = {"inputs": _object({w: _PROBABILITY for w in worker_ids[:k]})}
        if fusers and k > 0:
            fields["fuser"] = _PROBABILITY
        if len(models) > 1:
            fields["models"] = _object({m: _PROBABILITY for m in models})
        properties[node] = _object(fields)
    properties["sink_inputs"] = _object({w: _PROBABILITY for w in worker_ids})
    if sinks is not None:
        properties["sink"] = _object({label: _PROBABILITY for label in sinks})
    if mixes is not None:
        properties["mix"] = _enum([-1, *range(mixes)], "integer")
    return _object(properties, "probability_update")


def compact_token_bound(schema: Mapping[str, Any]) -> int:
    """Completion-token room for an answer to ``schema`` at its longest written as the agent is asked to write
    it: compact JSON on one line (per key its quotes, colon and comma: three tokens; no whitespace), every string
    at its maxLength (three characters a token), plus 16 tokens of slack. Below :func:`answer_token_bound`, which
    also allows the whitespace a grammar permits."""
    return 16 + _answer_tokens(schema, per_key=3)


def answer_token_bound(schema: Mapping[str, Any]) -> int:
    """Completion-token room for an answer to ``schema`` at its longest: every string at its maxLength (prose, at
    three characters a token), every key and value written, and per key sixteen tokens of punctuation and of the
    whitespace the grammar allows (a newline and up to 20 characters of indentation, which small models use).
    The agent's max_tokens when none is given. Measured on llama.cpp with qwen2.5-coder-0.5b and four workers of
    one model: proposals took about 650 tokens (bound 811), updates about 560 (bound 670)."""
    return 64 + _answer_tokens(schema)


def _answer_tokens(schema: Mapping[str, Any], per_key: int = 16) -> int:
    """Tokens of the longest answer to the schemas built here, ``per_key`` tokens of punctuation and whitespace
    per key or array item (see :func:`answer_token_bound`)."""
    if "anyOf" in schema:
        return max(_answer_tokens(alternative, per_key) for alternative in schema["anyOf"])
    if "enum" in schema:
        return 2 + max(len(json.dumps(v)) for v in schema["enum"]) // 2
    kind = schema.get("type")
    if kind == "object":
        return 2 + sum(
            len(json.dumps(key)) // 2 + per_key + _answer_tokens(sub, per_key)
            for key, sub in schema.get("properties", {}).items()
        )
    if kind == "array":
        return 2 + int(schema.get("maxItems", 8)) * (per_key + _answer_tokens(schema.get("items", {}), per_key))
    if kind == "string":
        return 2 + int(schema.get("maxLength", 200)) // 3
    if kind == "boolean":
        return 2
    return 4  # a number: "0.125" and the like

"""The figures the agent's feedback reads and the rule that checks its claims against them.

The feedback answer is structured (:data:`~.schemas.FEEDBACK_SCHEMA`): a few claims, each ``{"target", "effect",
"evidence"}``, and a summary. :func:`check_claims` marks each claim supported or not by :data:`RULE`'s
deterministic rule, on the figures the evaluation carries (the graph's accuracy, each node's own accuracy and the
paired comparison with the incumbent); :func:`similarity` finds feedback that repeats an earlier round's.

Nothing here calls a model; every FLOPs figure comes from :mod:`langtts.cost` (see ``AgentPrompts.node_lines``).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from langtts.graph import CollaborationGraph

EFFECTS = ("helped", "hurt", "neutral")
NEAR_DUPLICATE = 0.8  # difflib ratio at or above which two rounds' feedback texts count as near-duplicates
_SIZE_WORDS = re.compile(
    r"\b(larger|largest|smaller|smallest|bigger|biggest|sizes?|sized|stronger|strongest|weaker|weakest"
    r"|params?|parameters?)\b",
    re.IGNORECASE,
)  # words comparing models; a model's name (e.g. "smollm2-135m") is not one

RULE = """\
A claim is supported when the figures of its round show it:
- its target must be in the evaluated graph (a node that ran, "sink", an edge "a->b" of the graph, or "mix");
- a claim whose evidence speaks of model sizes (larger, smaller, bigger, stronger, weaker, size, parameters)
  is unsupported when every node of the graph that runs a model runs one and the same model;
- a node (the sink included) needs its own accuracy measured; with a the graph's accuracy, o the node's own
  accuracy and m the mean own accuracy of its inputs (when measured): "helped" needs o >= a (a worker) or o > m;
  "hurt" needs o < a or o < m; "neutral" needs |o - a| <= 1/n (n questions) and, with inputs, |o - m| <= 1/n.
  The sink's own accuracy is the graph's: for the sink only the comparison with m counts;
- an edge a->b compares the reader b with what it read: "helped" needs o(b) >= o(a), "hurt" o(b) < o(a),
  "neutral" o(b) == o(a); both accuracies must be measured;
- "mix" (the model mix) needs an incumbent measured on shared questions: "helped" needs more questions only this
  graph got right than only the incumbent did, "hurt" fewer, "neutral" as many."""


def _own(graph: CollaborationGraph, node: str, result: Mapping[str, Any]) -> float | None:
    accuracy = (result.get("node_accuracy") or {}).get(node)
    if accuracy is None and node == graph.sink.id:
        return float(result["accuracy"])
    return None if accuracy is None else float(accuracy)


def inputs_mean(graph: CollaborationGraph, node: str, result: Mapping[str, Any]) -> float | None:
    """The mean own accuracy of ``node``'s inputs (those measured), None without any."""
    values = [v for p in graph.predecessors(node) if (v := _own(graph, p, result)) is not None]
    return sum(values) / len(values) if values else None


def running(graph: CollaborationGraph) -> set[str]:
    """The nodes that run (a path to the sink)."""
    unreachable = set(graph.check().unreachable)
    return {n.id for n in graph.nodes if n.id not in unreachable}


def check_claim(
    claim: Mapping[str, Any],
    graph: CollaborationGraph,
    result: Mapping[str, Any],
    paired: Mapping[str, int] | None,
) -> tuple[bool, str]:
    """Whether :data:`RULE` supports ``claim`` on the figures of ``result`` (the evaluation of ``graph``) and
    ``paired`` (the counts of :func:`paired_counts` with the incumbent, None without one); and why not."""
    target, effect = str(claim["target"]).strip(), claim["effect"]
    ran = running(graph)
    models = {n.model for n in graph.nodes if n.id in ran and n.model}
    if len(models) <= 1 and _SIZE_WORDS.search(str(claim.get("evidence", ""))):
        return False, "speaks of model sizes, but the graph runs one model"
    n = max(len(result.get("correct") or []), int(result.get("questions") or 0), 1)
    accuracy = float(result["accuracy"])
    if target == "mix":
        if not paired:
            return False, "no incumbent measured on shared questions"
        new, old = paired["only_new"], paired["only_incumbent"]
        ok = {"helped": new > old, "hurt": new < old, "neutral": new == old}[effect]
        return ok, "" if ok else f"only this graph right {new}, only the incumbent {old}"
    if "->" in target:
        source, _, reader = (part.strip() for part in target.partition("->"))
        reader = graph.sink.id if reader == "sink" else reader
        if (source, reader) not in set(graph.edges) or reader not in ran:
            return False, f"{target} is not an edge of the graph that ran"
        a, b = _own(graph, source, result), _own(graph, reader, result)
        if a is None or b is None:
            return False, "an end of the edge has no measured accuracy"
        ok = {"helped": b >= a, "hurt": b < a, "neutral": b == a}[effect]
        return ok, "" if ok else f"{reader} {b:.0%} vs {source} {a:.0%}"
    node = graph.sink.id if target == "sink" else target
    if node not in ran:
        return False, f"{target} is not a node of the graph that ran"
    own = _own(graph, node, result)
    if own is None:
        return False, f"{target} has no measured accuracy"
    mean = inputs_mean(graph, node, result)
    sink = node == graph.sink.id
    tolerance = 1 / n + 1e-9
    if effect == "helped":
        ok = (not sink and own >= accuracy) or (mean is not None and own > mean)
    elif effect == "hurt":
        ok = (not sink and own < accuracy) or (mean is not None and own < mean)
    else:
        ok = (sink or abs(own - accuracy) <= tolerance) and (mean is None or abs(own - mean) <= tolerance)
    mean_text = "" if mean is None else f", its inputs' mean {mean:.0%}"
    return ok, "" if ok else f"{target} {own:.0%} vs the graph's {accuracy:.0%}{mean_text}"


def check_claims(
    claims: Sequence[Mapping[str, Any]],
    graph: CollaborationGraph,
    result: Mapping[str, Any],
    paired: Mapping[str, int] | None,
) -> list[dict[str, Any]]:
    """Each claim with ``supported`` and ``why`` (empty when supported), by :func:`check_claim`."""
    checked = []
    for claim in claims:
        ok, why = check_claim(claim, graph, result, paired)
        checked.append({**claim, "supported": ok, "why": why})
    return checked


def paired_counts(new: Mapping[str, Any], incumbent: Mapping[str, Any]) -> dict[str, int] | None:
    """Both right / only new / only incumbent / both wrong on the questions both results answered (their
    ``question_ids`` and ``correct``), None when they share none."""
    theirs = dict(zip(incumbent.get("question_ids") or [], incumbent.get("correct") or [], strict=False))
    counts = {"shared": 0, "both_right": 0, "only_new": 0, "only_incumbent": 0, "both_wrong": 0}
    for qid, right in zip(new.get("question_ids") or [], new.get("correct") or [], strict=False):
        if qid not in theirs:
            continue
        other = theirs[qid]
        counts["shared"] += 1
        key = "both_right" if right and other else "only_new" if right else "only_incumbent" if other else "both_wrong"
        counts[key] += 1
    return counts if counts["shared"] else None


def feedback_text(claims: Sequence[Mapping[str, Any]], summary: str) -> str:
    """The structured feedback as text (the update prompt's, the history's): one line per claim with whether the
    figures support it, then the summary."""
    lines = []
    for c in claims:
        verdict = "supported" if c.get("supported") else f"unsupported: {c.get('why') or 'no figure shows it'}"
        lines.append(f"- {c['target']} {c['effect']} ({verdict}): {c['evidence']}")
    if summary:
        lines.append(f"Summary: {summary}")
    return "\n".join(lines)


def comparable(claims: Sequence[Mapping[str, Any]], summary: str) -> str:
    """The text two rounds' feedback are compared on: summary and evidence, lower case, one space."""
    return " ".join(" ".join([summary, *(str(c.get("evidence", "")) for c in claims)]).lower().split())


def similarity(a: str, b: str) -> float:
    """:class:`difflib.SequenceMatcher` ratio of two :func:`comparable` texts (1: identical)."""
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio() if a and b else 0.0

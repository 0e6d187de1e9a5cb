"""Revising the worker model mix during the search (langtts's extension; never in a ``paper_faithful`` space,
where the paper keeps the counts the pretest fixed).

**How it is asked.** Outside a ``paper_faithful`` space the agent's update answer has a ``"mix"`` field: ``-1``
keeps the current mix, a number names one of the budget-maximal candidate mixes (``space.multisets()``, as the
initialise step lists them). The update prompt lists them with each model's measured accuracy and this rule.

**The rule** (:func:`judge`). Each model's *measured accuracy* (:func:`model_evidence`) pools two measurements of
the model answering on its own: the stored pool profile the agent read, if any (its accuracy over its scored
questions), and every graph evaluated in this run's rounds, so far and including this round: each worker node with
no inputs whose own answers were scored (``Outcome.node_accuracy``) adds its accuracy times the round's number of
questions. A revision from the current mix to another is *accepted* only when every model whose count rises and
every model whose count falls has at least :data:`MIN_ANSWERS` measured answers, and the least accurate model
gaining copies is measured strictly more accurate than the most accurate model losing copies (when no model loses
copies, than the least accurate model of the current mix). Otherwise it is refused, with the reason. Answering a
mix equal to the current one is not a revision.

**Applying it** (:func:`rebuild`): p_θ is rebuilt for the new mix (:func:`~.space.initial_distribution`: worker i
on the i-th model, weakest first; the sink options the new mix affords), keeping the edge and role logits of the
worker indices both mixes have (and their sink-input logits) and the sink logits of the options both offer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from langtts.graph import CollaborationGraph
from langtts.space import ProbabilisticGraph

MIN_ANSWERS = 6
"""Measured answers (node-questions or profile questions) each model a revision changes needs."""


def model_evidence(
    evaluations: Iterable[Mapping[str, Any]], profile: Mapping[str, Any] | None
) -> dict[str, tuple[float, int]]:
    """Per model, (correct answers, answers) measured on its own: the ``profile`` snapshot's figures, then each
    evaluation's (``{"graph", "node_accuracy", "questions"}``) worker nodes without inputs."""
    correct: dict[str, float] = {}
    answers: Counter[str] = Counter()
    for model, figures in ((profile or {}).get("models") or {}).items():
        if figures.get("accuracy") is not None and figures.get("n_scored"):
            correct[model] = correct.get(model, 0.0) + float(figures["accuracy"]) * int(figures["n_scored"])
            answers[model] += int(figures["n_scored"])
    for evaluation in evaluations:
        scored, questions = evaluation.get("node_accuracy") or {}, int(evaluation.get("questions") or 0)
        if not scored or not questions:
            continue
        graph = CollaborationGraph.from_dict(evaluation["graph"])
        for node in graph.workers:
            if node.id in scored and not graph.predecessors(node.id):
                correct[node.model] = correct.get(node.model, 0.0) + float(scored[node.id]) * questions
                answers[node.model] += questions
    return {m: (correct.get(m, 0.0), answers[m]) for m in answers}


def judge(
    current: Sequence[str], proposed: Sequence[str], evidence: Mapping[str, tuple[float, int]]
) -> tuple[bool, str]:
    """Whether the measurements back replacing the mix ``current`` by ``proposed`` (see the module docstring),
    and why in one sentence."""
    old, new = Counter(current), Counter(proposed)
    gained = sorted(m for m in new if new[m] > old[m])
    lost = sorted(m for m in old if old[m] > new[m])
    if not lost:  # only additions: they must beat the weakest model already there
        lost = [min(old, key=lambda m: (_accuracy(evidence, m), m))]
    short = [m for m in (*gained, *lost) if evidence.get(m, (0.0, 0))[1] < MIN_ANSWERS]
    if short:
        counts = ", ".join(f"{m} {evidence.get(m, (0.0, 0))[1]}" for m in short)
        return False, f"too few measured answers ({counts}; at least {MIN_ANSWERS} each)"
    worst = min(gained, key=lambda m: (_accuracy(evidence, m), m))
    best = max(lost, key=lambda m: (_accuracy(evidence, m), m))
    comparison = f"{worst} {_shown(evidence, worst)} against {best} {_shown(evidence, best)}"
    if _accuracy(evidence, worst) > _accuracy(evidence, best):
        return True, f"every model gaining copies measured more accurate than every model losing copies ({comparison})"
    return False, f"a model gaining copies is not measured more accurate than one losing copies ({comparison})"


def rebuild(old: ProbabilisticGraph, new: ProbabilisticGraph) -> ProbabilisticGraph:
    """``new`` (a fresh p_θ for the revised mix) with ``old``'s edge and role logits where both have the worker
    indices, and its sink logits for the sink options both have (``new`` is changed in place and returned)."""
    k, n_old, n_new = min(old.n_nodes, new.n_nodes), old.n_nodes, new.n_nodes
    new.edge_logits[:k, :k] = old.edge_logits[:k, :k]
    new.edge_logits[:k, n_new] = old.edge_logits[:k, n_old]
    new.role_logits[:k] = old.role_logits[:k]
    for s, option in enumerate(new.sink_options):
        if option in old.sink_options:
            new.sink_logits[s] = old.sink_logits[old.sink_options.index(option)]
    return new


def _accuracy(evidence: Mapping[str, tuple[float, int]], model: str) -> float:
    correct, answers = evidence.get(model, (0.0, 0))
    return correct / answers if answers else 0.0


def _shown(evidence: Mapping[str, tuple[float, int]], model: str) -> str:
    return f"{_accuracy(evidence, model):.0%} of {evidence.get(model, (0.0, 0))[1]}"

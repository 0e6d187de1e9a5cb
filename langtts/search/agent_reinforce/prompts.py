"""The Agent-REINFORCE agent's prompts: templates and the pilot data from ``prompts/agent/`` (overridable through
:class:`~langtts.prompts.PromptLibrary`) filled with text renderings of graphs, results, history and costs.

The ablation switches show in the prompts: ``insights=False`` leaves out the insights and the pilot data,
``fusers=False`` swaps the role description for one without fusers, the joint objective adds the latency rules
and the latency of each result.

The stored ``langtts profile`` of the run's pool, when one fits (see :mod:`.pool_profile`), is shown in the
shared system message after the paper's pilot data (``{pool_profile}`` in ``agent/context``; a user template
without that placeholder gets it after ``{pilot}``), rendered by :meth:`AgentPrompts.pool_profile` with
``agent/pool_profile``; without one the message is as before.

Outside a ``paper_faithful`` space (langtts's extension): with several sink options the sample prompt's ``{sink}``
explains them (``agent/sink_choice``; else ``agent/sink_fixed``: the paper's sentence) and asks for ``"sink"``
(``{sink_field}``), the wiring follow-up's sink bounds follow the chosen sink, the distribution tables show the
sink probabilities, graphs show their sink (``sink: vote <- n0, n1``), and the update prompt offers a mix revision
(``{revision}``, ``agent/revision``) and the extra answer fields (``{sink_fields}``). A user template without these
placeholders still works (the schema still asks for the fields). A ``paper_faithful`` space has none of these.

Every call's messages start with one system message, the same for all the agent's calls of a run
(:meth:`AgentPrompts.context`, ``agent/context``: task, budget, objective, latency rules, insights, pilot data,
pool profile, roles), so llama-server and vLLM reuse the cached prefix; the step's template (``agent/sample``,
``agent/feedback``, ...) follows as the user message with the round's part. A user's step template with its own
``[system]`` section (the layout before) still works: that section is appended to the shared system message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from langtts.cost import graph_cost, input_flops, multiset_flops, node_flops, smallest_model, unit_flops
from langtts.graph import CollaborationGraph
from langtts.profile import Profile, aligned
from langtts.prompts import PromptLibrary, PromptTemplate
from langtts.search.agent_reinforce.parsing import multiset_text
from langtts.search.base import SearchSpace
from langtts.space import ProbabilisticGraph, SinkOption, worker_id
from langtts.tasks.base import Task

_COMMON = ("task", "budget", "objective", "latency_rules", "insights", "roles", "sink_model", "round")
_TEMPLATES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # name: (required, extra allowed)
    "context": ((), ("pilot", "pool_profile")),
    "initialise": (("candidates",), ("pilot", "pool_profile")),
    "sample": (("tables", "multiset"), ("workers", "costs", "history", "sink", "sink_field")),
    "feedback": (("graph", "result"), ("tables", "history", "nodes", "paired")),
    "update": (
        ("tables", "feedback", "fields"),
        ("graph", "result", "multiset", "history", "revision", "sink_fields"),
    ),
    "wiring": (("placement", "room"), ("sink_inputs",)),
    "repair": (("error",), ()),
}


class PilotEntry(BaseModel):
    """One pilot measurement: a model mix (or a single model) and its accuracy on a task."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: str
    mix: str = Field(description="e.g. '2×3B + 3×1B', or one model on its own")
    accuracy: float = Field(description="percent")
    budget_units: float | None = Field(default=None, description="None for a single model on its own")


class PilotData(BaseModel):
    """Pilot accuracies shown to the agent when it picks the model mix. The shipped ``prompts/agent/pilot.json``
    is the paper's (Llama 3.x, budgets in no-input calls of the 1B model); replace it (a ``pilot.json`` in a
    user prompt directory, or the ``pilot`` option) with measurements of your own pool."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    entries: list[PilotEntry]

    @classmethod
    def load(cls, library: PromptLibrary) -> PilotData:
        """``agent/pilot.json`` of ``library`` (a user prompt directory's, else the shipped one)."""
        return cls.model_validate_json(library.file("agent/pilot.json").read_text(encoding="utf-8"))

    def render(self) -> str:
        """One line per task and budget: the mixes and their accuracies."""
        groups: dict[tuple[str, float | None], list[str]] = {}
        for e in self.entries:
            groups.setdefault((e.task, e.budget_units), []).append(f"{e.mix} {e.accuracy:g}")
        return "\n".join(
            f"- {task}, {'single models' if budget is None else f'budget {budget:g}'}: {', '.join(items)}"
            for (task, budget), items in groups.items()
        )


class AgentPrompts:
    """Builds the chat messages of each agent step (``pilot``: None for the library's ``agent/pilot.json``)."""

    def __init__(
        self,
        library: PromptLibrary,
        space: SearchSpace,
        *,
        task: Task | None,
        insights: bool,
        fusers: bool,
        joint: bool,
        pilot: PilotData | None,
        history: int,
    ) -> None:
        self.library = library
        self.templates: dict[str, PromptTemplate] = {}
        for name, (required, extra) in _TEMPLATES.items():
            template = library.get(f"agent/{name}")
            template.check(required, (*_COMMON, *required, *extra))
            self.templates[name] = template
        self.space = space
        self.unit_model = space.budget.unit_model or smallest_model(space.models, space.catalog)
        self.unit = unit_flops(space.catalog.get(self.unit_model), space.lengths)
        self.fusers, self.joint, self.window = fusers, joint, history
        budget = library.text("agent/budget", units=f"{space.budget.flops / self.unit:.1f}", unit_model=self.unit_model)
        self.fields = {name: library.text(f"agent/field_{name}") for name in ("inputs", "fuser", "models")}
        self.show_sink = not space.paper_faithful  # graphs name their sink (it may be other than the default)
        self.common = {
            "task": _describe(task),
            "budget": budget,
            "objective": library.text("agent/objective_joint" if joint else "agent/objective"),
            "latency_rules": library.get("agent/latency_rules").user if joint else "",
            "insights": library.get("agent/insights").user if insights else "",
            "roles": library.get("agent/roles" if fusers else "agent/roles_no_fuser").user,
            "sink_model": space.sink_model,
        }
        if insights:
            pilot = pilot or PilotData.load(library)
            self.pilot = _text(library.get("agent/pilot"), source=pilot.source, results=pilot.render())
        else:
            self.pilot = ""

    def context(self, pool_profile: str = "") -> str:
        """The system message every agent call of a run starts with, byte for byte (a server reuses its cached
        prefix): ``agent/context`` with the task, budget, objective, latency rules, insights, the pilot data, the
        pool profile (``pool_profile``: the text of :meth:`pool_profile`, empty: none fits) and the roles."""
        shown = f"\n{pool_profile}" if pool_profile else ""
        pilot = self.pilot
        if "pool_profile" not in self.templates["context"].placeholders:  # a user's template: after the pilot
            pilot, shown = pilot + shown, ""
        messages = self.templates["context"].messages(**self.common, pilot=pilot, pool_profile=shown, round="")
        return _tidy("\n\n".join(m["content"] for m in messages))

    def initialise(self, candidates: Sequence[tuple[str, ...]], pool_profile: str = "") -> list[dict[str, str]]:
        """The initialise prompt; ``pool_profile``: the text of :meth:`pool_profile` (empty: none fits)."""
        lines = [f"{i}: {multiset_text(c)} (at least {self._floor(c):.1f} units)" for i, c in enumerate(candidates)]
        return self._messages("initialise", pool_profile, candidates="\n".join(lines), round="0")

    def pool_profile(self, profile: Profile) -> str:
        """``agent/pool_profile`` filled with ``profile``'s table: per model the accuracy with its 95% interval,
        the questions scored, the mean completion tokens, the measured FLOPs per question and the no-answer rate."""
        rows = [("model", "accuracy", "95% CI", "n", "completion tokens", "FLOPs/question", "no answer")]
        for m in profile.models:
            rows.append(
                (
                    m.model,
                    m.accuracy_text(),
                    m.interval_text(),
                    str(m.n_scored),
                    f"{m.completion_tokens_mean:.1f}",
                    f"{m.flops_per_question:.3g}",
                    f"{m.extraction_failure_rate:.1%}",
                )
            )
        table = aligned(rows)
        chance = "none for this task" if profile.chance_floor is None else f"{profile.chance_floor:.0%}"
        return self.library.text(
            "agent/pool_profile", task=profile.key.task, n=str(len(profile.key.question_ids)), chance=chance,
            table=table,
        )  # fmt: skip

    def sample(
        self,
        round_: int,
        pg: ProbabilisticGraph,
        multiset: Sequence[str],
        history: Sequence[Mapping[str, Any]],
        pool_profile: str = "",
    ) -> list[dict[str, str]]:
        """The proposal prompt; with several sink options in ``pg`` it explains them and asks for "sink"."""
        choose = len(pg.sink_options) > 1
        deciders = [o.model for o in pg.sink_options if o.model]
        if choose:
            options = ", ".join(f'"{o.label}"' for o in pg.sink_options)
            sink = self.library.text("agent/sink_choice", options=options)
        else:
            sink = self.library.text("agent/sink_fixed", model=pg.sink_options[0].label)
        return self._messages(
            "sample",
            pool_profile,
            round=str(round_),
            workers=", ".join(worker_id(i) for i in range(pg.n_nodes)),
            multiset=multiset_text(multiset),
            costs=self._costs(list(dict.fromkeys([*multiset, *deciders]))),
            tables=distribution_lines(pg, fusers=self.fusers),
            history=self._history(history),
            sink=sink,
            sink_field=", " + self.library.text("agent/field_sink") if choose else "",
        )

    def feedback(
        self,
        round_: int,
        graph: CollaborationGraph,
        result: Mapping[str, Any],
        pg: ProbabilisticGraph,
        history: Sequence[Mapping[str, Any]],
        paired: str = "(none yet)",
        pool_profile: str = "",
    ) -> list[dict[str, str]]:
        """The feedback prompt: the history table, the distribution, the graph, its result, each node's figures
        (:meth:`node_lines`) and ``paired``: the comparison with the incumbent (:meth:`paired_text`)."""
        return self._messages(
            "feedback",
            pool_profile,
            round=str(round_),
            graph=graph_lines(graph, show_sink=self.show_sink),
            result=self.result_text(result),
            tables=distribution_lines(pg, fusers=self.fusers),
            history=self._history(history),
            nodes=self.node_lines(graph, result),
            paired=paired,
        )

    def node_lines(self, graph: CollaborationGraph, result: Mapping[str, Any]) -> str:
        """One line per node that ran: its own accuracy, its inputs' mean own accuracy, the agreement among its
        inputs (each where measured) and its modelled FLOPs in units (:func:`~langtts.cost.graph_cost`); then the
        graph's median latency per question, when measured."""
        own = result.get("node_accuracy") or {}
        agreement = result.get("node_agreement") or {}
        per_node = graph_cost(graph, self.space.catalog, self.space.lengths).per_node
        lines = []
        for node in graph.nodes:
            if node.id not in per_node:
                continue  # not run
            parts = []
            accuracy = own.get(node.id, result["accuracy"] if node.id == graph.sink.id else None)
            parts.append(f"own {accuracy:.0%}" if accuracy is not None else "own not measured")
            inputs = [own[p] for p in graph.predecessors(node.id) if p in own]
            if inputs:
                parts.append(f"inputs' mean {sum(inputs) / len(inputs):.0%}")
            if node.id in agreement:
                parts.append(f"agree {agreement[node.id]:.0%}")
            parts.append(f"{per_node[node.id] / self.unit:.2f} units")
            lines.append(f"{node.id}: " + ", ".join(parts))
        if result.get("latency_s") is not None:
            lines.append(f"median latency per question: {float(result['latency_s']):.2f} s")
        return "\n".join(lines)

    @staticmethod
    def paired_text(paired: Mapping[str, int] | None, incumbent: Mapping[str, Any] | None) -> str:
        """The paired comparison with the incumbent (``incumbent``: its history record) on shared questions."""
        if incumbent is None:
            return "(none yet: the first round)"
        name = f"round {incumbent['round']} (score {incumbent['result']['score']:.3f})"
        if paired is None:
            return f"{name}, measured on other questions: no paired comparison"
        return (
            f"{name}; on the {paired['shared']} questions both answered: both right {paired['both_right']}, "
            f"only this graph {paired['only_new']}, only round {incumbent['round']}'s {paired['only_incumbent']}, "
            f"both wrong {paired['both_wrong']}"
        )

    def update(
        self,
        round_: int,
        graph: CollaborationGraph,
        result: Mapping[str, Any],
        feedback: str,
        pg: ProbabilisticGraph,
        multiset: Sequence[str],
        history: Sequence[Mapping[str, Any]],
        revision: str = "",
        pool_profile: str = "",
    ) -> list[dict[str, str]]:
        """The update prompt; ``revision``: the text of :meth:`revision` (empty: no mix revision offered)."""
        fields = [self.fields["inputs"]]
        if self.fusers:
            fields.append(self.fields["fuser"])
        if len(pg.models) > 1:
            fields.append(self.fields["models"])
        extra = [self.library.text("agent/field_sink_update")] if len(pg.sink_options) > 1 else []
        extra += [self.library.text("agent/field_mix")] if revision else []
        return self._messages(
            "update",
            pool_profile,
            round=str(round_),
            graph=graph_lines(graph, show_sink=self.show_sink),
            result=self.result_text(result),
            feedback=feedback or "(none)",
            tables=distribution_lines(pg, fusers=self.fusers),
            multiset=multiset_text(multiset),
            history=self._history(history),
            fields=", ".join(fields),
            revision=f"\n{revision}" if revision else "",
            sink_fields="".join(f", then {field}" for field in extra),
        )

    def revision(
        self,
        candidates: Sequence[Sequence[str]],
        current: Sequence[str],
        measured: Mapping[str, tuple[float, int]],
        *,
        min_answers: int,
        profile: bool,
    ) -> str:
        """``agent/revision``: the candidate mixes (numbered as the "mix" answer), the current one, each model's
        measured accuracy (``measured``: model -> (correct answers, answers)) and the rule a revision must meet."""
        lines = [f"{i}: {multiset_text(c)}" for i, c in enumerate(candidates)]
        shown = ", ".join(f"{m} {c / n:.0%} of {n}" for m, (c, n) in measured.items() if n) or "nothing yet"
        return self.library.text(
            "agent/revision",
            current=multiset_text(current),
            candidates="\n".join(lines),
            measured=shown,
            sources="this run's graphs and the pool profile" if profile else "this run's graphs",
            min_answers=str(min_answers),
        )

    def wiring(self, placement: Mapping[str, Mapping[str, str]], sink: SinkOption | None = None) -> str:
        """The follow-up asking for the inputs of the nodes placed in ``placement`` (``{node: {model, role}}``),
        the sink being ``sink`` (default: the decider on the space's sink model)."""
        lines = [f"{node}: {fields['model']} {fields['role']}" for node, fields in placement.items()]
        vote = sink is not None and sink.role == "vote"
        return _text(
            self.templates["wiring"],
            placement="\n".join(lines),
            room=self._room(placement, sink),
            sink_inputs="at least two: the sink is a vote" if vote else "at least one",
        )

    def repair(self, error: str) -> str:
        return _text(self.templates["repair"], error=error)

    def result_text(self, result: Mapping[str, Any]) -> str:
        text = f"score {result['score']:.3f} (accuracy {result['accuracy']:.0%}"
        if result.get("questions"):
            text += f" on {result['questions']} questions"
        if self.joint and result.get("latency_s") is not None:
            text += f", median latency {result['latency_s']:.2f} s"
        return text + ")"

    # ---- pieces ---------------------------------------------------------------------------------------

    def _messages(self, name: str, pool_profile: str = "", **values: str) -> list[dict[str, str]]:
        """The shared system message (:meth:`context`), then the step's template; a step template with its own
        system section (a user's) has it appended to the shared one, so the prefix stays the same."""
        messages = self.templates[name].messages(**{**self.common, "pilot": "", "pool_profile": "", **values})
        system = self.context(pool_profile)
        if messages and messages[0]["role"] == "system":
            system += "\n\n" + messages.pop(0)["content"]
        return [{"role": "system", "content": system}] + [{**m, "content": _tidy(m["content"])} for m in messages]

    def _floor(self, multiset: Sequence[str]) -> float:
        catalog, lengths = self.space.catalog, self.space.lengths
        specs = [catalog.get(m) for m in multiset]
        return multiset_flops(specs, catalog.get(self.space.sink_model), lengths) / self.unit

    def input_caps(
        self, placement: Mapping[str, Mapping[str, str]], sink: SinkOption | None = None
    ) -> tuple[dict[str, int], int]:
        """Per node, the inputs the budget affords it on its own once every placed node runs and the sink reads
        one of them; and the sink's number of inputs affordable in the same way (a vote sink: every worker, its
        inputs cost nothing)."""
        _, room, sink_cost, model_costs = self._budget_room(placement, sink)
        caps = {node: int(room // model_costs[f["model"]]) for node, f in placement.items()}
        return caps, 1 + int(room // sink_cost) if sink_cost > 0 else len(placement)

    def _budget_room(
        self, placement: Mapping[str, Mapping[str, str]], sink: SinkOption | None = None
    ) -> tuple[float, float, float, dict[str, float]]:
        """(FLOPs of every placed node with no inputs plus the sink reading one (a vote: nothing), the budget left,
        FLOPs of one more sink input (a vote: 0), FLOPs of one input into each placed model's node)."""
        catalog, lengths = self.space.catalog, self.space.lengths
        sink = sink or SinkOption("decider", self.space.sink_model)
        workers = [catalog.get(f["model"]) for f in placement.values()]
        if sink.model:
            floor = multiset_flops(workers, catalog.get(sink.model), lengths)
            sink_cost = input_flops(catalog.get(sink.model), 1, lengths)
        else:
            floor, sink_cost = sum(node_flops(w, 0, lengths) for w in workers), 0.0
        model_costs = {
            m: input_flops(catalog.get(m), 0, lengths) for m in dict.fromkeys(f["model"] for f in placement.values())
        }
        return floor, max(self.space.budget.flops - floor, 0.0), sink_cost, model_costs

    def _room(self, placement: Mapping[str, Mapping[str, str]], sink: SinkOption | None = None) -> str:
        """What the budget leaves for inputs once every placed node runs and the sink reads one of them, as units
        and as a count of further inputs into the sink or into each model's nodes (a vote sink: its inputs are
        free)."""
        floor, room, sink_cost, model_costs = self._budget_room(placement, sink)
        unit = self.unit
        costs = {f"{m} nodes": c for m, c in model_costs.items()}
        if sink_cost > 0:
            costs = {"the sink": sink_cost, **costs}
            nodes = "All these nodes with the sink reading one of them cost"
        else:
            nodes = "The vote sink and its inputs cost nothing; all these nodes cost"
        counts = ", ".join(f"{int(room // c)} into {where} ({c / unit:.2f} units each)" for where, c in costs.items())
        return (
            f"{self.space.budget.flops / unit:.2f} units. {nodes} "
            f"{floor / unit:.2f}, leaving {room / unit:.2f}: at most {counts}. Set every other input to false."
        )

    def _costs(self, models: Sequence[str]) -> str:
        catalog, lengths = self.space.catalog, self.space.lengths
        return "\n".join(
            f"- {m}: " + " / ".join(f"{node_flops(catalog.get(m), d, lengths) / self.unit:.2f}" for d in range(4))
            for m in models
        )

    def _history(self, history: Sequence[Mapping[str, Any]]) -> str:
        """A compact table of the recent rounds, one line each: round | graph summary | accuracy | questions |
        modelled units | proposal status, the best score so far marked "best"."""
        if not history:
            return "(none yet)"
        best = max(range(len(history)), key=lambda i: history[i]["result"]["score"])
        lines = []
        for i, record in enumerate(history):
            if i < len(history) - self.window and i != best:
                continue
            graph = CollaborationGraph.from_dict(record["graph"])
            result = record["result"]
            units = self.space.cost(graph) / self.unit
            questions = result.get("questions") or len(result.get("correct") or []) or "?"
            status = (record.get("proposal") or {}).get("status", "?") + (" best" if i == best else "")
            lines.append(
                f"{record['round']} | {graph_summary(graph, show_sink=self.show_sink)} | {result['accuracy']:.0%} | "
                f"{questions} | {units:.2f} | {status}"
            )
        return "\n".join(lines)


def graph_lines(graph: CollaborationGraph, sep: str = "\n", *, show_sink: bool = False) -> str:
    """One entry per node that runs, ``n2: qwen fuser <- n0, n1`` (assistants unmarked), the sink's inputs (with
    ``show_sink``, also what the sink is: ``sink: vote <- n0, n1``, ``sink: qwen <- n2``), then the nodes with no
    path to the sink (not run)."""
    unreachable = set(graph.check().unreachable)
    entries = []
    for node in graph.workers:
        if node.id not in unreachable:
            inputs = ", ".join(graph.predecessors(node.id))
            role = " fuser" if node.role == "fuser" else ""
            entries.append(f"{node.id}: {node.model}{role}" + (f" <- {inputs}" if inputs else ""))
    sink = f"{graph.sink.id}: {graph.sink.model or graph.sink.role}" if show_sink else graph.sink.id
    entries.append(f"{sink} <- {', '.join(graph.predecessors(graph.sink.id)) or '-'}")
    if unreachable:
        entries.append(
            f"not run (no path to the sink): {', '.join(n.id for n in graph.workers if n.id in unreachable)}"
        )
    return sep.join(entries)


def graph_summary(graph: CollaborationGraph, *, show_sink: bool = False) -> str:
    """``2× gemma3-270m + 1× smollm2-135m, 1 fuser, 3 edges, depth 2`` (the workers that run; with ``show_sink``,
    also what the sink is)."""
    unreachable = set(graph.check().unreachable)
    workers = [n for n in graph.workers if n.id not in unreachable]
    kept = {n.id for n in workers} | {graph.sink.id}
    edges = [(u, v) for u, v in graph.edges if u in kept and v in kept]
    depth: dict[str, int] = {}
    for node in [*workers, graph.sink]:  # nodes in topological (node) order, the sink last
        depth[node.id] = 1 + max((depth.get(u, 0) for u, v in edges if v == node.id), default=0)
    fusers = sum(n.role == "fuser" for n in workers)
    text = multiset_text(n.model or n.role for n in workers)
    text += f", {fusers} fuser{'s' * (fusers != 1)}" if fusers else ""
    text += f", {len(edges)} edge{'s' * (len(edges) != 1)}, depth {depth[graph.sink.id] - 1}"
    return text + (f", sink {graph.sink.model or graph.sink.role}" if show_sink else "")


def distribution_lines(pg: ProbabilisticGraph, *, fusers: bool = True) -> str:
    """p_θ keyed by node, as the agent's answers are: per worker P(model) (with several models), P(fuser) and
    P(input) from each lower-numbered worker, then P(feeds the sink), then (with several sink options) P(each
    sink option) before the budget mask. Edges from a higher- to a lower-numbered worker, which agent proposals
    cannot contain, are left out."""
    several = len(pg.models) > 1
    lines = []
    for j in range(pg.n_nodes):
        parts = []
        if several:
            probabilities = pg.model_probabilities(j)
            parts.append("models " + ", ".join(f"{m} {p:.2f}" for m, p in zip(pg.models, probabilities, strict=True)))
        if fusers and j > 0:
            parts.append(f"fuser {pg.fuser_probability(j):.2f} (0 if it reads a fuser)")
        parts.append(
            "inputs " + (", ".join(f"{worker_id(i)} {pg.edge_probability(i, j):.2f}" for i in range(j)) or "-")
        )
        lines.append(f"{worker_id(j)}: " + "; ".join(parts))
    sink = ", ".join(f"{worker_id(i)} {pg.edge_probability(i, pg.n_nodes):.2f}" for i in range(pg.n_nodes))
    lines.append(f"sink_inputs: {sink}")
    if len(pg.sink_options) > 1:
        probabilities = pg.sink_probabilities()
        options = (o.label for o in pg.sink_options)
        lines.append("sink: " + ", ".join(f"{label} {p:.2f}" for label, p in zip(options, probabilities, strict=True)))
    return "\n".join(lines)


def _describe(task: Task | None) -> str:
    if task is None:
        return "(unspecified)"
    return task.name if task.family in (task.name, "generic") else f"{task.name} ({task.family})"


def _tidy(text: str) -> str:
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _text(template: PromptTemplate, **values: str) -> str:
    return template.messages(**values)[-1]["content"]


def clip(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"

"""``agent-reinforce``: Agent-REINFORCE (method.md §5), an LLM agent driving a LangGraph loop.

``initialise → pretest → sample → evaluate → feedback → update → sample → ...``

The search loop drives the thread through :meth:`AgentReinforce.propose` and :meth:`AgentReinforce.observe`:
``observe`` only records the evaluation (the thread pauses before feedback), and the next ``propose`` runs
feedback → update → sample. The loop asks for a proposal only when another round runs, so the agent is never
called after the last round: that round's evaluation stays in the state unfed (``report()["pending"]``).

- **initialise**: the agent picks two of the budget-maximal model multisets (given the paper's pilot data and
  three insights and, when a stored ``langtts profile`` of the run's task and worker models fits the run, a pilot
  table of *this* pool on *this* task beside them: per model its accuracy with the 95 % interval, questions
  scored, mean completion tokens, measured FLOPs per question and no-answer rate; see :mod:`.pool_profile` for
  which profile fits, and ``use_profile=False`` to ignore it); **pretest** expands each into variants that drop
  the weakest model one at a time and keeps the best. With that profile (every variant's models measured), the
  best is the variant of the highest *worth* — the sum over its workers (copies counted) of their model's 95 %
  Wilson lower bound minus the task's chance floor (5 % for tasks without one; :func:`.pool_profile.worth`) —
  and no graph is evaluated. Without one it evaluates one random graph per variant on one question
  (``context.calibrate``) and keeps the best score. Either way a tie (with tiny models often every variant scores
  0 on its one question) goes to the one with the most workers, the agent's own choices before the reduced
  variants and its first choice first. The profile used (its file, figures and prompt text, or why none) is kept
  in the thread state (``init["profile"]``, ``init["profile_note"]``) and in ``RUN_DIR/agent_profile.json``, so a
  resumed run never reads a profile that changed in between; :meth:`AgentReinforce.report` says whether one was
  used and its file. From then on the worker multiset is fixed: worker
  ``n<i>`` starts on the i-th model, weakest first, so the strongest models sit on the highest-numbered nodes,
  which may read from all the others; model draws keep the counts.
- **sample**: round 1 draws from p_θ; later rounds the agent proposes the graph in two structured calls, each
  checked and repaired up to ``max_repairs`` times, else the graph is drawn from p_θ (counted as ``valid`` /
  ``repaired`` / ``fallback``): it *places* the nodes (model and role of each), then *wires* them given those
  roles. Inputs come only from lower-numbered nodes and a fuser's only from assistants, at least one, and a node
  the budget affords at most one input gets a one-hot choice, so the schema (enforced by the server's grammar)
  rules out duplicate edges, cycles, fuser chains, a sink without input and most over-budget wirings; what is
  left to check is the model counts and the budget.
- **evaluate**: ``interrupt()`` with the graph; the search loop evaluates it and :meth:`AgentReinforce.observe`
  resumes the thread with ``Command(resume=evaluation)``; after the last round (``max_rounds``) the thread ends.
- **feedback**: the agent's textual gradient, structured: it reads the round's figures (each node's own accuracy,
  its inputs' mean and agreement, its FLOPs from :mod:`langtts.cost`; the paired comparison with the incumbent,
  the best graph of the earlier rounds, on the questions both answered; the rounds as a table) and answers with
  claims ``{"target", "effect", "evidence"}`` and a summary. :mod:`.claims` checks each claim against the
  figures (:data:`.claims.RULE`) and compares the feedback with the earlier rounds' (near-duplicates are
  reported); :meth:`AgentReinforce.report` gives the supported shares (``feedback``).
- **update**: the agent rewrites the probabilities (turned into logits), reading the checked claims, falling back
  to a numeric REINFORCE step (:class:`~langtts.search.reinforce.PolicyGradient`).

Every agent call starts with the same system message (:meth:`.AgentPrompts.context`: task, budget, objective,
insights, pilot data, pool profile, roles) and puts the round's part after it, so a server reuses its cached
prompt prefix; ``report()["prompt_cache"]`` gives the share of the agent's prompt tokens the server served from
it. Answers are asked for as compact JSON with short text fields; a call's ``max_tokens`` is room for that compact
answer (at most 250 for a proposal of up to five workers), and the whole
whitespace bound only for the repair of an answer cut there.

**Outside a paper_faithful space** (langtts's extension, issue 15 item 4; a ``paper_faithful`` space keeps the
paper's fixed sink and model counts, with no sink or mix field in any prompt or schema):

- *The sink is the agent's choice.* p_θ covers the sink options the budget affords with every worker of the mix
  running (:func:`.space.sink_options`: a decider on any of ``space.sink_options()``'s models, a vote with at
  least two workers), so round 1's draw, fallback draws and numeric steps cover the sink. The placement answer
  names the sink (``"sink"``: one of those options' labels, a model id or ``vote``); the wiring then asks for
  at least two sink inputs under a vote (free: a vote costs 0 FLOPs) and caps a decider's inputs by its cost.
  The update answer may set the sink probabilities (``"sink"``), shown in the tables.
- *The model mix may be revised* when the run's measurements back it: the update answer's ``"mix"`` names one
  of the budget-maximal mixes (or -1: keep), accepted only under the rule of :mod:`.revision` (each model gaining
  copies measured more accurate on its own than each model losing copies, with enough answers), then p_θ is
  rebuilt for the new mix. Every request is recorded (round, old, new, accepted, reason) in the state's
  ``revisions``, :meth:`AgentReinforce.report` and the progress lines.

Variants: ``textgrad`` (no insights, random initial mix), ``maas`` (programmatic draws; numeric and agent
updates alternate). The method's state (:meth:`AgentReinforce.state_dict`) is the thread's state, JSON, saved
by the search loop with the run: a resumed run rebuilds the thread from it, and the agent calls it makes again
come from the pool's call cache (without a cache the agent is asked again, and the run records it).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Literal, TypedDict, TypeVar

import numpy as np
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, interrupt

from langtts.cost import by_size, largest_model
from langtts.graph import CollaborationGraph
from langtts.models.errors import ModelCallError, StructuredOutputError
from langtts.prompts import PromptLibrary
from langtts.search.agent_reinforce import claims, pool_profile, revision
from langtts.search.agent_reinforce.parsing import (
    AgentOutputError,
    check_answer,
    multiset_text,
    parse_choice,
    parse_feedback,
    parse_placement,
    parse_proposal,
)
from langtts.search.agent_reinforce.prompts import AgentPrompts, PilotData, clip
from langtts.search.agent_reinforce.schemas import (
    FEEDBACK_SCHEMA,
    PROPOSAL_MAX_TOKENS,
    answer_token_bound,
    choice_schema,
    compact_token_bound,
    placement_schema,
    update_schema,
    wiring_schema,
)
from langtts.search.agent_reinforce.space import draw, explain, initial_distribution
from langtts.search.agent_reinforce.update import apply_update
from langtts.search.base import Evaluation, MethodContext, OptimizationError, register
from langtts.search.reinforce import PolicyGradient
from langtts.space import ProbabilisticGraph, SinkOption, worker_id

Variant = Literal["agent", "textgrad", "maas"]
T = TypeVar("T")

VARIANTS_PER_CHOICE = 5
MAX_CANDIDATES = 40
_THREAD: RunnableConfig = {"configurable": {"thread_id": "agent-reinforce"}}  # the method's own, in memory


class AgentState(TypedDict, total=False):
    """The state of the agent's thread (JSON data only): what a checkpointer stores, and the method's state."""

    round: int  # the round of the current proposal (0 before the first)
    init: dict[str, Any]
    multiset: list[str]
    pg: dict[str, Any]  # ProbabilisticGraph.to_dict()
    gradient: dict[str, Any]  # PolicyGradient.state_dict()
    proposal: dict[str, Any] | None  # round, graph, status, errors
    evaluation: dict[str, Any] | None  # round, index, graph, score, accuracy, latency_s, questions
    feedback: dict[str, Any] | None  # round, text, status, errors
    history: list[dict[str, Any]]  # one record per finished round
    revisions: list[dict[str, Any]]  # the agent's mix revision requests: round, old, new, accepted, reason


@dataclass
class _Answer(Generic[T]):
    value: T | None
    status: str  # valid | repaired | fallback
    errors: list[str]


@register("agent-reinforce")
class AgentReinforce:
    """Agent-REINFORCE behind the Optimizer protocol; see the module docstring.

    Options: ``agent_model`` (a pool id; default the pool's largest model), ``variant`` (``agent``,
    ``textgrad``, ``maas``), ``insights`` / ``init`` (default: ``True`` / ``"insight"`` for ``agent``,
    ``False`` / ``"random"`` otherwise), ``fusers``, ``objective_kind`` (``accuracy`` or ``joint``: latency
    rules and latency in the prompts), ``max_repairs``, ``pilot`` (:class:`PilotData`), ``max_rounds`` (the
    thread ends after that many rounds; default never), ``lr`` (numeric steps), ``temperature``,
    ``max_tokens`` (default: per call, room for the longest compact answer its bounded schema allows, at least
    250 tokens, the whitespace bound after a cut answer; at most half the agent's context window; see
    ``_max_tokens``) and ``history_rounds`` (rounds shown) for the agent's calls, ``prompts_dir``
    (user prompt files, ``agent/pilot.json`` included), ``use_profile`` (default ``True``: read the pool's stored
    ``langtts profile`` when it fits the run; see the module docstring).
    """

    name: ClassVar[str]

    def __init__(
        self,
        context: MethodContext,
        *,
        agent_model: str | None = None,
        variant: Variant = "agent",
        insights: bool | None = None,
        init: Literal["insight", "random"] | None = None,
        fusers: bool = True,
        objective_kind: Literal["accuracy", "joint"] = "accuracy",
        max_repairs: int = 2,
        pilot: PilotData | Mapping[str, Any] | None = None,
        max_rounds: int | None = None,
        lr: float = 0.1,
        temperature: float = 0.2,
        max_tokens: int | None = None,
        history_rounds: int = 4,
        prompts_dir: str | None = None,
        use_profile: bool = True,
    ) -> None:
        if variant not in ("agent", "textgrad", "maas"):
            raise ValueError(f"variant must be 'agent', 'textgrad' or 'maas', got {variant!r}")
        if init not in (None, "insight", "random"):
            raise ValueError(f"init must be 'insight' or 'random', got {init!r}")
        if objective_kind not in ("accuracy", "joint"):
            raise ValueError(f"objective_kind must be 'accuracy' or 'joint', got {objective_kind!r}")
        if max_repairs < 0 or history_rounds < 1 or (max_rounds is not None and max_rounds < 1):
            raise ValueError("max_repairs must be >= 0, history_rounds and max_rounds >= 1")
        if context.pool is None:
            raise ValueError("agent-reinforce needs a model pool (context.pool) for its agent")
        self.context, self.pool, self.space = context, context.pool, context.space
        self.seed = context.seed
        self.agent_model = agent_model or largest_model(self.pool.ids(), self.pool.catalog_for())
        self.pool.model(self.agent_model)  # an unknown id fails here
        self.variant = variant
        self.insights = variant == "agent" if insights is None else insights
        self.init = init or ("insight" if variant == "agent" else "random")
        self.fusers, self.joint = fusers, objective_kind == "joint"
        self.use_profile = use_profile
        self.max_repairs, self.max_rounds, self.lr = max_repairs, max_rounds, lr
        window = self.pool.context_window(self.agent_model)
        self.temperature, self.max_tokens, self.window = temperature, max_tokens, window
        if pilot is not None and not isinstance(pilot, PilotData):
            pilot = PilotData.model_validate(pilot)
        self.prompts = AgentPrompts(
            PromptLibrary(prompts_dir),
            self.space,
            task=context.task,
            insights=self.insights,
            fusers=fusers,
            joint=self.joint,
            pilot=pilot,
            history=history_rounds,
        )
        self.revise = not self.space.paper_faithful  # the update may revise the model mix (see .revision)
        self.candidates = [self._ordered(c) for c in self.space.multisets()]
        if not self.candidates:
            raise ValueError("the budget affords no worker model next to the sink: nothing for the agent to search")
        self.options = {
            "agent_model": self.agent_model,
            "variant": variant,
            "insights": self.insights,
            "init": self.init,
            "fusers": fusers,
            "objective_kind": objective_kind,
            "max_repairs": max_repairs,
            "max_rounds": max_rounds,
            "use_profile": use_profile,
        }
        self._values: dict[str, Any] = {}  # the thread's state after the last step (the method's state)
        self._ended = False  # the thread ended (max_rounds)
        self._app: CompiledStateGraph | None = None  # the running thread, built on first use

    # ---- Optimizer protocol ---------------------------------------------------------------------------

    async def propose(self) -> CollaborationGraph | None:
        """The next round's proposal (None once the thread ended). Paused after an observed evaluation, the thread
        runs feedback, update and sample now; paused at a round's evaluation, the proposal held in the thread's
        state is returned (also after :meth:`load_state_dict`), no agent call."""
        app = await self._thread()
        if not self._ended and self._values.get("evaluation") is not None:
            await self._run(app, None)  # past the pause before feedback: feedback -> update -> sample
        return None if self._ended else CollaborationGraph.from_dict(self._values["proposal"]["graph"])

    async def observe(self, graph: CollaborationGraph, evaluation: Evaluation) -> None:
        """Record ``evaluation`` (the evaluated ``graph`` is read from it) in the thread's state, no agent call: the
        thread pauses before the feedback step, which :meth:`propose` runs when the loop asks for another round
        (so the last round's evaluation is never fed back)."""
        app = await self._thread()
        if self._ended:
            raise OptimizationError("observe() after the agent's thread ended")
        if self._values.get("evaluation") is not None:
            raise OptimizationError("observe() twice without a propose() in between")
        await self._run(app, Command(resume=evaluation.model_dump(mode="json")))

    def state_dict(self) -> dict[str, Any]:
        """The thread's state (JSON) and whether it ended; it is paused at a round's evaluation otherwise."""
        return {"agent": dict(self._values), "ended": self._ended}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._values, self._ended, self._app = dict(state["agent"]), state["ended"], None

    def report(self) -> dict[str, Any]:
        """Options, the initialisation, and per round fed back: statuses, problems, feedback, the distribution
        after the update (logits and readable tables). ``rounds`` counts the evaluated rounds; the last one is
        fed back only when another proposal was asked: until then it is ``pending`` (round, graph, result)."""
        history = [
            {**r, "tables": ProbabilisticGraph.from_dict(r["distribution"], self.space.catalog).tables()}
            for r in self._values.get("history", [])
        ]
        proposals = Counter(r["proposal"]["status"] for r in history)
        evaluation, proposal = self._values.get("evaluation"), self._values.get("proposal")
        pending = None
        if evaluation is not None and proposal is not None:  # evaluated, not fed back (no later proposal asked)
            proposals[proposal["status"]] += 1
            pending = {
                "round": evaluation["round"],
                "proposal": proposal,
                "graph": evaluation["graph"],
                "result": {k: evaluation[k] for k in _RESULT_KEYS if k in evaluation},
                "fed_back": False,
            }
        init = self._values.get("init") or {}
        used = init.get("profile")
        return {
            "options": self.options,
            "profile": {
                "used": used is not None,
                "path": used["path"] if used else None,
                "note": init.get("profile_note", ""),
            },
            "initialise": self._values.get("init"),
            "rounds": len(history) + (pending is not None),
            "fed_back_rounds": len(history),
            "pending": pending,
            "proposals": {s: proposals[s] for s in ("valid", "repaired", "fallback", "sampled")},
            "agent_driven_rounds": proposals["valid"] + proposals["repaired"],
            "updates": dict(Counter(r["update"]["status"] for r in history)),
            "revisions": self._values.get("revisions", []),
            "multiset": self._values.get("multiset"),
            "feedback": _feedback_report(history),
            "prompt_cache": self._prompt_cache(),
            "history": history,
        }

    def _prompt_cache(self) -> dict[str, Any]:
        """The agent's calls of this session (the pool's ledger, tagged as the agent tags them): prompt tokens and
        the share a server served from its prompt cache (every call starts with the same system message:
        :meth:`.AgentPrompts.context`; 0 from a server that does not report it)."""
        usage = self.pool.ledger.totals(**self.context.tags)
        return {
            "calls": usage.calls,
            "prompt_tokens": usage.prompt_tokens,
            "cached_prompt_tokens": usage.cached_prompt_tokens,
            "cached_share": usage.cached_prompt_share,
        }

    # ---- the LangGraph graph ----------------------------------------------------------------------------

    def agent_graph(
        self, checkpointer: BaseCheckpointSaver | None = None, *, pause_before_feedback: bool = False
    ) -> CompiledStateGraph:
        """The agent's StateGraph, compiled with ``checkpointer`` (``langgraph dev`` supplies its own). After a
        round's evaluation the thread ends if it was the last (``max_rounds``), else goes on to feedback; with
        ``pause_before_feedback`` (the method's own thread) it pauses there until the next proposal is asked."""
        builder = StateGraph(AgentState)
        for name in ("initialise", "pretest", "sample", "evaluate", "feedback", "update"):
            builder.add_node(name, getattr(self, f"_{name}"))
        builder.add_edge(START, "initialise")
        builder.add_edge("initialise", "pretest")
        builder.add_edge("pretest", "sample")
        builder.add_edge("sample", "evaluate")
        builder.add_conditional_edges("evaluate", self._route, ["feedback", END])
        builder.add_edge("feedback", "update")
        builder.add_edge("update", "sample")
        return builder.compile(
            checkpointer=checkpointer,
            interrupt_before=["feedback"] if pause_before_feedback else None,
            name="agent-reinforce",
        )

    async def _initialise(self, state: AgentState) -> dict[str, Any]:
        profile, note = self._pool_profile()
        if self.init == "random" or len(self.candidates) == 1:
            index = int(self._rng(1).integers(len(self.candidates))) if self.init == "random" else 0
            init: dict[str, Any] = {"how": self.init if len(self.candidates) > 1 else "only", "choices": [index]}
        else:
            shown = self.candidates[:MAX_CANDIDATES]
            answer = await self._ask(
                "initialise",
                self.prompts.initialise(shown, profile["text"] if profile else ""),
                choice_schema(len(shown)),
                lambda d: (parse_choice(d), d["reasoning"]),
            )
            choices, reasoning = answer.value or ((0, 1), "")
            init = {"how": answer.status, "choices": list(choices), "reasoning": reasoning, "errors": answer.errors}
        init.update(profile=profile, profile_note=note)
        chosen = "; ".join(multiset_text(self.candidates[i]) for i in init["choices"])
        self.context.report(f"[agent] initialise ({init['how']}): {chosen}")
        return {"round": 0, "init": init}

    def _pool_profile(self) -> tuple[dict[str, Any] | None, str]:
        """The snapshot of the pool's stored profile the agent uses (None if none) and a note on it, reported; kept
        in the run directory, and taken from there when the thread starts again (see :mod:`.pool_profile`)."""
        run_dir = self.context.run_dir
        if not self.use_profile:
            profile, note = None, "not used (use_profile=False)"
        elif self.init == "random":
            profile, note = None, "not used (random initial mix: no initialise prompt, no pretest)"
        elif (kept := pool_profile.load_kept(run_dir)) is not None:
            profile, note = kept["profile"], str(kept.get("note", ""))
        else:
            found, path, note = pool_profile.read(self.context)
            profile = None
            if found is not None and path is not None:
                profile = pool_profile.snapshot(found, path, self.prompts.pool_profile(found))
            pool_profile.keep(run_dir, profile, note)
        if profile is not None:
            self.context.report(
                f"[agent] pool profile: {profile['path']} ({profile['n']} questions, measured {profile['measured_at']})"
            )
        else:
            self.context.report(f"[agent] no pool profile: {note}")
        return profile, note

    async def _pretest(self, state: AgentState) -> dict[str, Any]:
        init = dict(state["init"])
        variants: list[tuple[str, ...]] = []
        for i in init["choices"]:
            for variant in self._variants(self.candidates[i]) if init["how"] != "random" else [self.candidates[i]]:
                if variant not in variants:
                    variants.append(variant)
        pretests = []
        profile = init.get("profile")
        if len(variants) > 1 and pool_profile.decides(profile, variants):
            assert profile is not None
            choices = {self.candidates[i] for i in init["choices"]}
            worths = [pool_profile.worth(profile, v) for v in variants]
            by_worth = {v: (w, len(v), v in choices, -k) for k, (w, v) in enumerate(zip(worths, variants, strict=True))}
            best = max(variants, key=by_worth.__getitem__)
            init["profile_worths"] = [{"multiset": list(v), "worth": w} for v, w in zip(variants, worths, strict=True)]
            self.context.report(
                f"[agent] pretest of {len(variants)} variant(s) by the pool profile (no calibration call): keeping "
                f"{multiset_text(best)} (worth {by_worth[best][0]:.3f})"
            )
        elif self.context.calibrate is not None and len(variants) > 1:
            for k, variant in enumerate(variants):
                graph = draw(self._initial(variant), variant, self._rng(3, k)).graph
                evaluation = await self.context.calibrate(graph, 1)
                pretests.append({"multiset": list(variant), "graph": graph.to_dict(), "score": evaluation.score})
            # Ties (one question each: common) go to the most workers, then the agent's choices, then the earliest.
            choices = {self.candidates[i] for i in init["choices"]}
            rank = {
                v: (p["score"], len(v), v in choices, -k)
                for k, (p, v) in enumerate(zip(pretests, variants, strict=True))
            }
            best = max(variants, key=rank.__getitem__)
        else:
            best = variants[0]
        pg = self._initial(best)
        init.update(variants=[list(v) for v in variants], pretests=pretests, multiset=list(best))
        if "profile_worths" not in init:
            self.context.report(f"[agent] pretest of {len(pretests)} variant(s): keeping {multiset_text(best)}")
        return {
            "init": init,
            "multiset": list(best),
            "pg": pg.to_dict(),
            "gradient": PolicyGradient(pg, lr=self.lr).state_dict(),
        }

    async def _sample(self, state: AgentState) -> dict[str, Any]:
        r, multiset, pg = state["round"] + 1, state["multiset"], self._pg(state)
        errors: list[str] = []
        if r == 1 or self.variant == "maas":
            graph, status = draw(pg, multiset, self._rng(2, r)).graph, "sampled"
        else:
            proposed, status, errors = await self._propose(r, pg, multiset, state.get("history", []), _profile(state))
            graph = proposed or draw(pg, multiset, self._rng(2, r)).graph
        self.context.report(f"[agent round {r}] sample: {status} proposal" + _first_error(errors))
        proposal = {"round": r, "graph": graph.to_dict(), "status": status, "errors": errors}
        return {"round": r, "proposal": proposal, "evaluation": None, "feedback": None}

    async def _propose(
        self,
        r: int,
        pg: ProbabilisticGraph,
        multiset: Sequence[str],
        history: Sequence[Mapping[str, Any]],
        profile: str = "",
    ) -> tuple[CollaborationGraph | None, str, list[str]]:
        """The agent's graph in two calls: place (models and roles), then wire (inputs, given the roles, so a
        fuser can only read assistants; one-hot where the budget affords a node a single input). ``valid`` if
        both answers were usable as first written, ``repaired`` if either needed a repair, ``fallback`` (no
        graph) if either stayed unusable."""
        workers = [worker_id(i) for i in range(pg.n_nodes)]
        messages = self.prompts.sample(r, pg, multiset, history, profile)
        sinks = [o.label for o in pg.sink_options] if len(pg.sink_options) > 1 else None
        placed = await self._ask(
            "sample",
            messages,
            placement_schema(workers, list(pg.models), self.fusers, multiset, sinks),
            lambda d: parse_placement(d, multiset=multiset),
        )
        placed_value = placed.value
        if placed_value is None:
            return None, "fallback", placed.errors
        placement = {node: placed_value[node] for node in workers}
        sink = SinkOption.of(placed_value["sink"]) if sinks else pg.sink_options[0]
        caps, sink_cap = self.prompts.input_caps(placement, sink)
        wired = await self._ask(
            "sample",
            [
                *messages,
                {"role": "assistant", "content": json.dumps(placed_value)},
                {"role": "user", "content": self.prompts.wiring(placement, sink)},
            ],
            wiring_schema(
                workers, {node: fields["role"] for node, fields in placement.items()}, caps, sink_cap, sink.min_inputs
            ),
            lambda d: parse_proposal(placed_value, d, space=self.space, unit_flops=self.prompts.unit, sink=sink),
        )
        errors = placed.errors + wired.errors
        if wired.value is None:
            return None, "fallback", errors
        return wired.value, "valid" if placed.status == wired.status == "valid" else "repaired", errors

    async def _evaluate(self, state: AgentState) -> dict[str, Any]:
        proposal = state["proposal"]
        assert proposal is not None
        payload = interrupt({"round": proposal["round"], "graph": proposal["graph"]})
        result = _result(payload, proposal)
        self.context.report(f"[agent round {proposal['round']}] evaluate: {self.prompts.result_text(result)}")
        return {"evaluation": result}

    async def _feedback(self, state: AgentState) -> dict[str, Any]:
        """The agent's structured feedback on the round's figures (each node's own accuracy, its inputs' mean and
        agreement, its FLOPs; the paired comparison with the incumbent; the history table), each claim checked
        by :data:`.claims.RULE`, and compared with the earlier rounds' feedback (near-duplicates reported)."""
        r, evaluation = state["round"], state["evaluation"]
        assert evaluation is not None
        history = state.get("history", [])
        feedback: dict[str, Any]
        if self._numeric_round(r):
            feedback = {"round": r, "text": "", "status": "skipped", "errors": []}
            self.context.report(f"[agent round {r}] feedback (skipped)")
            return {"feedback": feedback}
        graph = _graph(evaluation)
        incumbent = max(history, key=lambda record: record["result"]["score"]) if history else None
        paired = claims.paired_counts(evaluation, incumbent["result"]) if incumbent else None
        answer = await self._ask(
            "feedback",
            self.prompts.feedback(
                r,
                graph,
                evaluation,
                self._pg(state),
                history,
                self.prompts.paired_text(paired, incumbent),
                _profile(state),
            ),
            FEEDBACK_SCHEMA,
            parse_feedback,
        )
        parsed = answer.value or {"claims": [], "summary": ""}
        checked = claims.check_claims(parsed["claims"], graph, evaluation, paired)
        comparable = claims.comparable(checked, parsed["summary"])
        duplicate = None
        for record in history:
            earlier = record.get("feedback_comparable") or ""
            if (ratio := claims.similarity(comparable, earlier)) >= claims.NEAR_DUPLICATE and (
                duplicate is None or ratio > duplicate["similarity"]
            ):
                duplicate = {"round": record["round"], "similarity": round(ratio, 3)}
        feedback = {
            "round": r,
            "text": claims.feedback_text(checked, parsed["summary"]),
            "claims": checked,
            "summary": parsed["summary"],
            "supported": sum(c["supported"] for c in checked),
            "comparable": comparable,
            "near_duplicate_of": duplicate,
            "paired": paired,
            "incumbent_round": incumbent["round"] if incumbent else None,
            "status": answer.status,
            "errors": answer.errors,
        }
        self.context.report(
            f"[agent round {r}] feedback ({feedback['status']}, {feedback['supported']}/{len(checked)} claims "
            f"supported): {clip(parsed['summary'] or feedback['text'], 160)}"
        )
        if duplicate is not None:
            self.context.report(
                f"[agent round {r}] feedback is a near-duplicate of round {duplicate['round']}'s "
                f"(similarity {duplicate['similarity']:.2f} >= {claims.NEAR_DUPLICATE})"
            )
        return {"feedback": feedback}

    async def _update(self, state: AgentState) -> dict[str, Any]:
        r, multiset, evaluation = state["round"], state["multiset"], state["evaluation"]
        feedback, proposal = state["feedback"], state["proposal"]
        assert evaluation is not None and feedback is not None and proposal is not None
        pg = self._pg(state)
        gradient = PolicyGradient(pg, lr=self.lr)
        gradient.load_state_dict(state["gradient"])
        advantage = gradient.advantage(evaluation["score"])
        graph = _graph(evaluation)
        history = state.get("history", [])
        errors: list[str] = []
        coercions: list[str] = []
        mix: int | None = None
        shown = self.candidates[:MAX_CANDIDATES] if self.revise and len(self.candidates) > 1 else []
        evidence = self._evidence(state) if shown else {}
        if self._numeric_round(r):
            status = "numeric" if self._ascend(gradient, graph, multiset, advantage) else "skipped"
        else:
            workers = [worker_id(i) for i in range(pg.n_nodes)]
            sinks = [o.label for o in pg.sink_options] if len(pg.sink_options) > 1 else None
            offer = (
                self.prompts.revision(
                    shown,
                    multiset,
                    evidence,
                    min_answers=revision.MIN_ANSWERS,
                    profile=bool((state.get("init") or {}).get("profile")),
                )
                if shown
                else ""
            )
            answer = await self._ask(
                "update",
                self.prompts.update(
                    r, graph, evaluation, feedback["text"], pg, multiset, history, offer, _profile(state)
                ),
                update_schema(workers, list(pg.models), self.fusers, sinks, len(shown) if shown else None),
                lambda d: (*apply_update(pg, d, sampled=graph, multiset=multiset), d.get("mix")),
            )
            errors = answer.errors
            if answer.value is None:
                status = "fallback" if self._ascend(gradient, graph, multiset, advantage) else "skipped"
            else:
                updated, coercions, mix = answer.value
                for table in ("edge_logits", "role_logits", "model_logits", "sink_logits"):
                    getattr(pg, table)[:] = getattr(updated, table)
                status = "coerced" if coercions else answer.status
        self.context.report(f"[agent round {r}] update: {status}" + _first_error(errors or coercions))
        revisions = list(state.get("revisions", []))
        if mix is not None and mix >= 0 and Counter(shown[mix]) != Counter(multiset):
            request = self._judge_revision(r, multiset, shown[mix], evidence)
            revisions.append(request)
            if request["accepted"]:
                multiset = list(shown[mix])
                pg = revision.rebuild(pg, self._initial(multiset))
                baseline = gradient.baseline_value
                gradient = PolicyGradient(pg, lr=self.lr)
                gradient.baseline_value = baseline
        record = {
            "round": r,
            "proposal": proposal,
            "graph": evaluation["graph"],
            "result": {k: evaluation[k] for k in _RESULT_KEYS if k in evaluation},
            "feedback": feedback["text"],
            "feedback_status": feedback["status"],
            "feedback_claims": feedback.get("claims", []),
            "feedback_summary": feedback.get("summary", ""),
            "feedback_supported": feedback.get("supported", 0),
            "feedback_comparable": feedback.get("comparable", ""),
            "feedback_near_duplicate_of": feedback.get("near_duplicate_of"),
            "paired": feedback.get("paired"),
            "incumbent_round": feedback.get("incumbent_round"),
            "update": {"status": status, "errors": errors, "coercions": coercions},
            "distribution": pg.to_dict(),
        }
        update: dict[str, Any] = {
            "pg": pg.to_dict(),
            "gradient": gradient.state_dict(),
            "history": [*history, record],
        }
        if revisions:
            update.update(revisions=revisions, multiset=multiset)
        return update

    def _evidence(self, state: AgentState) -> dict[str, tuple[float, int]]:
        """Each model's measured accuracy on its own (see :mod:`.revision`): the profile the agent read and the
        input-less workers of every graph evaluated in this run's rounds (this one included)."""
        evaluations = [{**record["result"], "graph": record["graph"]} for record in state.get("history", [])]
        if state.get("evaluation"):
            evaluations.append(dict(state["evaluation"] or {}))
        return revision.model_evidence(evaluations, (state.get("init") or {}).get("profile"))

    def _judge_revision(
        self, r: int, old: Sequence[str], new: Sequence[str], evidence: Mapping[str, tuple[float, int]]
    ) -> dict[str, Any]:
        """The agent's request to revise the mix ``old`` to ``new``, judged by :func:`.revision.judge`, reported."""
        accepted, reason = revision.judge(old, new, evidence)
        self.context.report(
            f"[agent round {r}] mix revision {'accepted' if accepted else 'refused'}: "
            f"{multiset_text(old)} -> {multiset_text(new)} ({reason})"
        )
        return {"round": r, "old": list(old), "new": list(new), "accepted": accepted, "reason": reason}

    def _route(self, state: AgentState) -> str:
        """After an evaluation: the end after the last round (``max_rounds``; its evaluation is not fed back)."""
        return END if self.max_rounds is not None and state["round"] >= self.max_rounds else "feedback"

    # ---- helpers ----------------------------------------------------------------------------------------

    async def _ask(
        self, node: str, messages: list[dict[str, str]], schema: dict[str, Any], parse: Callable[[dict[str, Any]], T]
    ) -> _Answer[T]:
        """Ask the agent; an answer is checked against ``schema``, then ``parse``d; on an unusable answer, ask
        again with the problem (``max_repairs`` times)."""
        conversation: list[dict[str, str]] = list(messages)
        errors: list[str] = []
        cut = False  # an answer was cut at max_tokens: the repairs get the whole bound
        for attempt in range(self.max_repairs + 1):
            try:
                data = await self.pool.astructured(
                    self.agent_model,
                    conversation,
                    schema,
                    tags={**self.context.tags, "node": node},
                    temperature=self.temperature,
                    max_tokens=self._max_tokens(schema, cut=cut),
                    seed=self.seed,
                )
            except StructuredOutputError as e:
                raw, error = e.raw, str(e)
                if e.finish_reason == "length":
                    cut = True
                    error += "; write compact JSON on one line, with short text fields"
            except ModelCallError as e:
                if e.retryable:
                    raise
                errors.append(str(e))  # e.g. a prompt over the agent's context window: asking again won't help
                break
            else:
                raw = json.dumps(data)
                try:
                    return _Answer(parse(check_answer(data, schema)), "valid" if attempt == 0 else "repaired", errors)
                except AgentOutputError as e:
                    error = str(e)
            errors.append(error)
            conversation += [
                {"role": "assistant", "content": raw},
                {"role": "user", "content": self.prompts.repair(error)},
            ]
        return _Answer(None, "fallback", errors)

    def _ascend(
        self, gradient: PolicyGradient, graph: CollaborationGraph, multiset: Sequence[str], advantage: float
    ) -> bool:
        """A numeric REINFORCE step on ``graph``'s draws; False if p_θ cannot produce the graph."""
        try:
            sample = explain(gradient.graph_space, graph, multiset)
        except ValueError:
            return False
        gradient.ascend(sample, advantage)
        return True

    def _numeric_round(self, r: int) -> bool:
        return self.variant == "maas" and r % 2 == 0

    def _max_tokens(self, schema: Mapping[str, Any], *, cut: bool = False) -> int:
        """The ``max_tokens`` option, else room for the answer written as asked, compact JSON on one line
        (:func:`.schemas.compact_token_bound`, at least PROPOSAL_MAX_TOKENS, at most the whitespace bound
        :func:`.schemas.answer_token_bound`), or after an answer was ``cut`` there, the whitespace bound; at most
        half the agent's context window. A proposal call of up to five workers gets at most 250 tokens."""
        if self.max_tokens is not None:
            tokens = self.max_tokens
        elif cut:
            tokens = answer_token_bound(schema)
        else:
            tokens = min(answer_token_bound(schema), max(PROPOSAL_MAX_TOKENS, compact_token_bound(schema)))
        return min(tokens, self.window // 2) if self.window else tokens

    def _initial(self, multiset: Sequence[str]) -> ProbabilisticGraph:
        """p_θ with worker i on the i-th model, weakest first (``multiset`` is ordered strongest first)."""
        return initial_distribution(self.space, multiset[::-1], fusers=self.fusers)

    def _pg(self, state: AgentState) -> ProbabilisticGraph:
        return ProbabilisticGraph.from_dict(state["pg"], self.space.catalog)

    def _variants(self, multiset: tuple[str, ...]) -> list[tuple[str, ...]]:
        """The multiset, then without its weakest model, two weakest, ... (at most VARIANTS_PER_CHOICE)."""
        return [multiset[: len(multiset) - k] for k in range(min(VARIANTS_PER_CHOICE, len(multiset)))]

    def _ordered(self, multiset: Sequence[str]) -> tuple[str, ...]:
        return tuple(by_size(multiset, self.space.catalog, largest_first=True))

    def _rng(self, *keys: int) -> np.random.Generator:
        return np.random.default_rng([self.seed & 0xFFFFFFFF, *keys])

    async def _thread(self) -> CompiledStateGraph:
        """The thread, on an in-memory checkpointer: started (run to its first proposal) or rebuilt from the
        state given to :meth:`load_state_dict`, paused where it was: at that round's evaluation, or after it
        (an evaluation held: before the feedback step)."""
        if self._app is None:
            self._app = self.agent_graph(InMemorySaver(), pause_before_feedback=True)
            if not self._values:
                await self._run(self._app, {"round": 0})
            elif not self._ended and self._values.get("evaluation") is not None:
                await self._app.aupdate_state(_THREAD, self._values, as_node="evaluate")  # next: feedback
            elif not self._ended:
                await self._app.aupdate_state(_THREAD, self._values, as_node="sample")
                await self._run(self._app, None)  # into the evaluate step's interrupt: no agent call
        return self._app

    async def _run(self, app: CompiledStateGraph, value: Any) -> None:
        await app.ainvoke(value, _THREAD)
        snapshot = await app.aget_state(_THREAD)
        self._values, self._ended = dict(snapshot.values), not snapshot.next


_RESULT_KEYS = (
    "index",
    "score",
    "accuracy",
    "latency_s",
    "questions",
    "node_accuracy",
    "node_agreement",
    "question_ids",
    "correct",
    "flops",
)


def _feedback_report(history: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The feedback rounds (an agent answer, not a numeric maas round) and how far the figures back their claims
    (:data:`.claims.RULE`): ``supported_share``, supported claims over all claims of the run;
    ``all_supported_share``, the share of rounds with claims whose claims are all supported (None: no claim);
    ``near_duplicates``, the rounds whose feedback text (summary and evidence) is at least
    :data:`.claims.NEAR_DUPLICATE` similar to an earlier round's (:func:`.claims.similarity`)."""
    rounds = [r for r in history if r.get("feedback_status") not in (None, "skipped")]
    made = [len(r.get("feedback_claims") or []) for r in rounds]
    supported = [int(r.get("feedback_supported") or 0) for r in rounds]
    with_claims = [(s, n) for s, n in zip(supported, made, strict=True) if n]
    return {
        "rounds": len(rounds),
        "claims": sum(made),
        "supported_claims": sum(supported),
        "supported_share": sum(supported) / sum(made) if sum(made) else None,
        "all_supported_share": sum(s == n for s, n in with_claims) / len(with_claims) if with_claims else None,
        "per_round": [
            {"round": r["round"], "claims": n, "supported": s} for r, n, s in zip(rounds, made, supported, strict=True)
        ],
        "near_duplicate_threshold": claims.NEAR_DUPLICATE,
        "near_duplicates": [
            {"round": r["round"], "like_round": d["round"], "similarity": d["similarity"]}
            for r in rounds
            if (d := r.get("feedback_near_duplicate_of"))
        ],
    }


def _profile(state: Mapping[str, Any]) -> str:
    """The prompt text of the pool profile the thread uses ("" without one): part of every call's shared prefix."""
    return str(((state.get("init") or {}).get("profile") or {}).get("text", ""))


def _result(payload: Any, proposal: Mapping[str, Any]) -> dict[str, Any]:
    """What the agent needs from the resume value: an Evaluation's ``model_dump()`` or a mapping with a score:
    the score, accuracy, latency, per question ids and correctness (the paired comparison with the incumbent;
    any number of questions), each node's own accuracy (feedback; what a mix revision is judged on) and its
    inputs' agreement, the modelled FLOPs."""
    if not isinstance(payload, Mapping) or "score" not in payload:
        raise ValueError("resume the evaluate step with an Evaluation's model_dump() or a mapping with a 'score'")
    outcome = payload.get("outcome") or {}
    score = float(payload["score"])
    result = {
        "round": proposal["round"],
        "index": payload.get("index"),
        "graph": payload.get("graph") or proposal["graph"],
        "score": score,
        "accuracy": float(outcome.get("accuracy", score)),
        "latency_s": outcome.get("latency_s"),
        "questions": len(outcome.get("question_ids", [])),
        "question_ids": list(outcome.get("question_ids") or []),
        "correct": [bool(c) for c in outcome.get("correct") or []],
        "node_accuracy": dict(outcome.get("node_accuracy") or {}),
        "node_agreement": dict(outcome.get("node_agreement") or {}),
        "flops": payload.get("modelled_flops"),
    }
    return result


def _graph(evaluation: Mapping[str, Any]) -> CollaborationGraph:
    return CollaborationGraph.from_dict(evaluation["graph"])


def _first_error(errors: Sequence[str]) -> str:
    return f" ({len(errors)} problem(s), first: {clip(errors[0], 120)})" if errors else ""

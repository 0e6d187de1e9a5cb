"""Compile a collaboration graph into a LangGraph ``StateGraph``.

One LangGraph node per collaboration node. Worker nodes with no path to the sink are pruned. A node with several
predecessors is joined with a waiting edge, so it runs once, after all of them; nodes of one topological layer
run in the same LangGraph superstep, concurrently. The result is a compiled LangGraph app — a LangChain Runnable
(``invoke``/``ainvoke``/``batch``/``abatch``/``stream``) taking ``{"question": ...}`` and returning the sink's
``answer`` plus a per-node ``trace`` and totals. Callbacks and tracing config pass through as for any Runnable,
and ``app.get_graph().draw_mermaid()`` draws it.

Role behaviour (method.md §1) comes from prompt templates (:mod:`langtts.prompts`), chosen per node as
``roles/<task family>/<kind>`` with ``roles/generic/<kind>`` as the default, where kind is ``assistant`` (no
inputs), ``assistant_with_inputs``, ``fuser``, ``decider`` (the sink with inputs) or ``decider_alone`` (the sink of
the single-model graph). Their ``{answer_format}`` is the task's ``answers/`` file and their ``{inputs}`` the inputs'
replies, each laid out by ``inputs/answer`` (a text cut to fit the context window ends with ``inputs/truncated``).

Vote nodes (:mod:`langtts.vote`) make no LLM call: they read their inputs' extracted answers and write the
majority as ``Vote: 3 of 5 inputs agree.`` followed by the task's answer line (0 tokens, 0 FLOPs, 0 s). They need
a task with an answer schema: code tasks offer no vote (compiling one raises ValueError). An LLM node feeding a
vote samples at its own ``temperature`` from the graph file, else at :data:`~langtts.graph.SAMPLE_TEMPERATURE`
(``node_settings`` override both); other nodes at ``settings``' temperature unless the graph file sets theirs.
When callbacks or tracing are active, a vote emits its reply as one model call (one chunk in LangGraph's
``stream_mode="messages"``; :class:`~langtts.models.replay.CachedChatModel` with ``cached: False``), still without
a pool call.

Every trace entry carries ``answer`` (``task.extract`` of its text, None without a task) and ``agreement``: for a
node with at least 2 inputs, the share of its inputs giving their majority answer (the vote rule; None for fewer
inputs).

No answer lost: when the sink's reply, or a reply a vote reads, has no extractable answer (``task.extract`` finds
none) or was cut at ``max_tokens``, the app continues the same conversation once with the ``recover`` prompt,
asking for the answer alone, constrained to the task's answer schema (``response_format: json_schema``); the
answer is appended to the reply as the task's answer line. The call goes through the pool (cached, counted in
tokens and FLOPs) and is recorded in the node's trace under ``recovery``. Tasks without an answer schema (code)
are never recovered. A vote's trace entry also holds ``text_before_recovery``: its vote over its inputs' replies
as they were before any recovery.

Sample indices: identical requests within one execution get indices 0, 1, 2, … in (layer, node order), so two
parallel assistants with the same model and prompt draw distinct samples, while a re-run replays from the cache.
"""

from __future__ import annotations

import json
import threading
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.runnables import RunnableConfig, RunnableLambda
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from langtts.cost import VOTE_TEXT_TOKENS
from langtts.graph import SAMPLE_TEMPERATURE, CollaborationGraph
from langtts.models.cache import CachedAnswer
from langtts.models.pool import ChatRequest, ChatResult, ModelPool
from langtts.models.replay import CachedChatModel, callbacks_active
from langtts.prompts import PromptLibrary, PromptTemplate
from langtts.tasks.base import Task
from langtts.vote import Tally, tally

ContextPolicy = Literal["error", "truncate"]
ROLE_PLACEHOLDERS = {
    "assistant": ({"question"}, {"question", "answer_format"}),
    "recover": (set(), {"answer_format"}),
    "assistant_with_inputs": ({"question", "inputs"}, {"question", "inputs", "n_inputs", "answer_format"}),
    "fuser": ({"question", "inputs"}, {"question", "inputs", "n_inputs", "answer_format"}),
    "decider": ({"question", "inputs"}, {"question", "inputs", "n_inputs", "answer_format"}),
    "decider_alone": ({"question"}, {"question", "answer_format"}),
}
INPUT_PLACEHOLDERS = {"number", "node", "role", "text"}
"""The placeholders of ``inputs/answer``, the heading and text of one input in a prompt's ``{inputs}``."""
CHARS_PER_TOKEN = 3.0
"""Conservative characters-per-token estimate for the context guard (English averages about 4)."""
RECOVERY_MAX_TOKENS = 64
"""Completion tokens of an answer-recovery call: room for a JSON object holding one short answer."""
BUILT_LAYERS = 256
"""How many layers' numbered requests a compiled app keeps (per question and layer; the least recent go)."""


@dataclass(frozen=True)
class GenerationSettings:
    """Sampling settings of one node (the paper uses temperature 0.1)."""

    temperature: float = 0.1
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    seed: int = 0


DEFAULT_MAX_TOKENS = {"math": 640, "gsm8k": 640, "mmlu": 512, "code": 512, "generic": 512}
"""Per family, above the 99th percentile of the reasoning replies' lengths measured by
``benchmarks/harness_fidelity.py`` (GSM8K, MMLU: qwen2.5-coder-0.5b, 12-question dev slices, p99 519 and 376
completion tokens; docs/benchmarks.md §8; on the 100 main GSM8K questions 4 % reached 640 and were answer-recovered);
math and code are not measured yet."""


def default_settings(family: str = "generic") -> GenerationSettings:
    """Per-family defaults: room for a worked answer without runaway generations."""
    return GenerationSettings(max_tokens=DEFAULT_MAX_TOKENS.get(family, DEFAULT_MAX_TOKENS["generic"]))


class ContextOverflowError(ValueError):
    """A node's prompt (estimated) plus its answer would not fit the model's context window."""


def _merge(left: dict[str, dict[str, Any]], right: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {**left, **right}


class CollaborationInput(TypedDict):
    question: str


class CollaborationOutput(TypedDict, total=False):
    question: str
    answer: str
    trace: list[dict[str, Any]]
    flops: float
    latency_s: float
    prompt_tokens: int
    completion_tokens: int
    calls: int
    cache_hits: int
    truncated: bool
    empty: bool


class CollaborationState(CollaborationOutput, total=False):
    outputs: Annotated[dict[str, dict[str, Any]], _merge]


@dataclass(frozen=True)
class _Request:
    chat: ChatRequest
    inputs_truncated: bool


@dataclass(frozen=True)
class _VoteCall:
    model: CachedChatModel
    messages: list[dict[str, str]]
    config: RunnableConfig


class _Compiler:
    def __init__(
        self,
        graph: CollaborationGraph,
        pool: ModelPool,
        task: Task | None,
        family: str,
        prompts: PromptLibrary,
        settings: GenerationSettings,
        node_settings: Mapping[str, GenerationSettings],
        context_policy: ContextPolicy,
        tags: Mapping[str, str],
    ) -> None:
        self.graph = graph.pruned()
        self.pool = pool
        self.family = family
        self.task = task
        self.answer_format = answer_format(task, prompts)
        self.input_template = input_template(prompts)
        self.truncation_mark = "\n" + prompts.text("inputs/truncated")
        schema = task.answer_schema() if task else None
        self.recovery_format = (
            None if schema is None
            else {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}
        )  # fmt: skip
        self.recover_template = self._recover_template(prompts, family) if schema is not None else None
        self.context_policy = context_policy
        self.layers = self.graph.layers()
        self.layer_of = {n: i for i, layer in enumerate(self.layers) for n in layer}
        self.tags = {"graph": graph.fingerprint()[:12], **tags}
        self.calls = [n for n in self.graph.nodes if n.calls_model]
        if (votes := [n.id for n in self.graph.nodes if not n.calls_model]) and schema is None:
            what = f"task {task.name!r} has no short answers to compare" if task else "compiling without a task"
            raise ValueError(f"vote node {votes[0]!r} needs answers to count: {what} (use a decider instead)")
        for node_id in node_settings:
            if not self.graph.node(node_id).calls_model:  # unknown ids fail here
                raise ValueError(f"node_settings for {node_id!r}: a vote makes no LLM call")
        self.settings = {n.id: node_settings.get(n.id) or self._settings(n.id, settings) for n in self.calls}
        self.templates = {n.id: self._template(prompts, n.id) for n in self.calls}
        self.sizes = {n.id: pool.spec(n.model).params for n in self.calls}  # unknown model ids fail here
        self._check_static_context()
        self._built: OrderedDict[tuple[Any, ...], dict[str, _Request]] = OrderedDict()
        self._built_lock = threading.Lock()

    def _settings(self, node_id: str, settings: GenerationSettings) -> GenerationSettings:
        """The node's temperature from the graph file, else the sampling temperature if it feeds a vote."""
        temperature = self.graph.node(node_id).temperature
        if temperature is None and self._feeds_vote(node_id):
            temperature = SAMPLE_TEMPERATURE
        return settings if temperature is None else replace(settings, temperature=float(temperature))

    def _feeds_vote(self, node_id: str) -> bool:
        return any(not self.graph.node(s).calls_model for s in self.graph.successors(node_id))

    def _kind(self, node_id: str) -> str:
        role, has_inputs = self.graph.node(node_id).role, bool(self.graph.predecessors(node_id))
        if role == "decider":
            return "decider" if has_inputs else "decider_alone"
        if role == "fuser":
            return "fuser"
        return "assistant_with_inputs" if has_inputs else "assistant"

    def _template(self, prompts: PromptLibrary, node_id: str) -> PromptTemplate:
        kind = self._kind(node_id)
        template = prompts.first(f"roles/{self.family}/{kind}", f"roles/generic/{kind}")
        required, allowed = ROLE_PLACEHOLDERS[kind]
        template.check(required, allowed)
        return template

    @staticmethod
    def _recover_template(prompts: PromptLibrary, family: str) -> PromptTemplate:
        template = prompts.first(f"roles/{family}/recover", "roles/generic/recover")
        template.check(*ROLE_PLACEHOLDERS["recover"])
        return template

    def _check_static_context(self) -> None:
        """Fail before running when even an empty question cannot fit the inputs' answers and the node's own."""
        if self.context_policy != "error":
            return
        for node in self.calls:
            window = self.pool.context_window(node.model)
            if window is None:
                continue
            template = self.templates[node.id]
            inputs = sum(
                self.settings[p].max_tokens if p in self.settings else VOTE_TEXT_TOKENS
                for p in self.graph.predecessors(node.id)
            )
            need = _tokens(template.system + template.user) + inputs + self.settings[node.id].max_tokens
            if need > window:
                raise ContextOverflowError(
                    f"node {node.id!r} ({node.model}, context {window} tokens) may need {need} tokens: "
                    f"{inputs} from its {len(self.graph.predecessors(node.id))} inputs' max_tokens plus "
                    f"{self.settings[node.id].max_tokens} of its own; lower max_tokens, or compile with "
                    "context_policy='truncate'"
                )

    # ---- requests ---------------------------------------------------------------------------------------------

    def request(self, node_id: str, state: Mapping[str, Any]) -> _Request:
        node = self.graph.node(node_id)
        settings = self.settings[node_id]
        preds = self.graph.predecessors(node_id)
        texts = [state["outputs"][p]["text"] for p in preds]
        values = {
            "question": state["question"],
            "answer_format": self.answer_format,
            "n_inputs": str(len(preds)),
        }
        messages = self.templates[node_id].messages(**values, inputs=self._format_inputs(preds, texts))
        estimate = _tokens("".join(m["content"] for m in messages))
        window = self.pool.context_window(node.model)
        truncated = False
        if window is not None and estimate + settings.max_tokens > window:
            if self.context_policy == "error" or not texts:
                raise ContextOverflowError(
                    f"node {node_id!r} ({node.model}): prompt of about {estimate} tokens plus max_tokens "
                    f"{settings.max_tokens} exceeds the context window of {window} tokens"
                )
            texts, truncated = _shorten(texts, estimate + settings.max_tokens - window, self.truncation_mark), True
            messages = self.templates[node_id].messages(**values, inputs=self._format_inputs(preds, texts))
        chat = self.pool.request(
            node.model, messages, temperature=settings.temperature, max_tokens=settings.max_tokens,
            stop=list(settings.stop) or None, seed=settings.seed,
        )  # fmt: skip
        return _Request(chat, truncated)

    def layer_requests(self, layer: int, state: Mapping[str, Any]) -> dict[str, _Request]:
        """The requests of the layer's LLM nodes, numbered: identical requests get sample indices 0, 1, 2, ... in
        (layer, node order) within one execution. Built once per question and layer: they depend only on the
        question and the earlier nodes' texts."""
        outputs: Mapping[str, Mapping[str, Any]] = state.get("outputs") or {}
        memo = (layer, state["question"], tuple((n, out["text"]) for n, out in sorted(outputs.items())))
        with self._built_lock:
            if (built := self._built.get(memo)) is not None:
                self._built.move_to_end(memo)
                return built
        seen = Counter(out["request_key"] for n, out in outputs.items() if self.layer_of.get(n, layer) < layer)
        built = {}
        for node_id in self.layers[layer]:
            if node_id in self.settings:
                request = self.request(node_id, state)
                key = request.chat.request_key
                built[node_id] = replace(request, chat=request.chat.sample(seen[key]))
                seen[key] += 1
        with self._built_lock:
            self._built[memo] = built
            if len(self._built) > BUILT_LAYERS:
                self._built.popitem(last=False)
        return built

    # ---- LangGraph nodes ---------------------------------------------------------------------------------------

    def _recovery(self, node_id: str, request: _Request, result: ChatResult) -> tuple[str, ChatRequest] | None:
        """The reason and request of an answer-recovery call, when the reply of the sink or of a vote's input
        needs one."""
        if self.recover_template is None or self.task is None:
            return None
        if node_id != self.graph.sink.id and not self._feeds_vote(node_id):
            return None
        if result.finish_reason == "length":
            reason = "truncated"
        elif self.task.extract(result.text) is None:
            reason = "no_answer"
        else:
            return None
        messages = [
            *request.chat.messages,
            {"role": "assistant", "content": result.text},
            *self.recover_template.messages(answer_format=self.answer_format),
        ]
        recovery = self.pool.request(
            request.chat.model.id, messages, temperature=0.0, max_tokens=RECOVERY_MAX_TOKENS,
            seed=request.chat.seed, sample_index=result.sample_index, response_format=self.recovery_format,
        )  # fmt: skip
        return reason, recovery

    def _recovered(self, reason: str, reply: str, result: ChatResult) -> dict[str, Any]:
        """The trace record of a recovery call; ``answer`` is None when its JSON did not parse."""
        answer: str | None = None
        try:
            value = json.loads(result.text)["answer"]
            answer = str(value).strip() or None if not isinstance(value, dict | list) else None
        except (ValueError, KeyError, TypeError):
            pass
        return {
            "reason": reason,
            "answer": answer,
            "reply": reply,
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "latency_s": result.latency_s,
            "flops": result.flops,
            "cached": result.cached,
        }

    def _format_inputs(self, preds: tuple[str, ...], texts: list[str]) -> str:
        """The ``{inputs}`` of a prompt: each input's text under its heading (``inputs/answer``)."""
        return "\n\n".join(
            self.input_template.user.format(number=i, node=p, role=self.graph.node(p).role, text=text.strip())
            for i, (p, text) in enumerate(zip(preds, texts, strict=True), start=1)
        )

    def _extract(self, text: str) -> str | None:
        return self.task.extract(text) if self.task is not None else None

    def _tally(self, node_id: str, answers: list[str | None]) -> Tally:
        assert self.task is not None
        sizes = [self.sizes.get(p, 0.0) for p in self.graph.predecessors(node_id)]
        return tally(answers, self.task.equivalent, sizes)

    def _agreement(self, node_id: str, state: Mapping[str, Any]) -> float | None:
        """Share of the node's inputs giving their majority answer; None below 2 inputs or without a task."""
        preds = self.graph.predecessors(node_id)
        if len(preds) < 2 or self.task is None:
            return None
        return self._tally(node_id, [state["outputs"][p]["answer"] for p in preds]).agreement

    def _update(
        self,
        node_id: str,
        state: Mapping[str, Any],
        request: _Request,
        result: ChatResult,
        recovery: dict[str, Any] | None,
    ) -> dict[str, Any]:
        node = self.graph.node(node_id)
        text = result.text
        if recovery is not None and recovery["answer"] is not None and self.task is not None:
            text = f"{text.rstrip()}\n\n{self.task.format_answer(recovery['answer'])}"
        trace = {
            "node": node_id,
            "role": node.role,
            "model": node.model,
            "layer": self.layer_of[node_id],
            "inputs": list(self.graph.predecessors(node_id)),
            "text": text,
            "answer": self._extract(text),
            "agreement": self._agreement(node_id, state),
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "latency_s": result.latency_s,
            "flops": result.flops,
            "cached": result.cached,
            "finish_reason": result.finish_reason,
            "truncated": result.finish_reason == "length",
            "empty": not text.strip(),
            "inputs_truncated": request.inputs_truncated,
            "sample_index": result.sample_index,
            "request_key": request.chat.request_key,
            "recovery": recovery,
        }
        return {"outputs": {node_id: trace}}

    def _vote(self, node_id: str, state: Mapping[str, Any]) -> dict[str, Any]:
        """A vote node's update: the majority of its inputs' answers, no call."""
        assert self.task is not None
        inputs = [state["outputs"][p] for p in self.graph.predecessors(node_id)]
        result = self._tally(node_id, [e["answer"] for e in inputs])
        before = self._tally(
            node_id, [self._extract(e["recovery"]["reply"]) if e["recovery"] else e["answer"] for e in inputs]
        )
        trace = {
            "node": node_id,
            "role": "vote",
            "model": None,
            "layer": self.layer_of[node_id],
            "inputs": list(self.graph.predecessors(node_id)),
            "text": result.text(self.task.format_answer),
            "answer": result.answer,
            "agreement": result.agreement,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "latency_s": 0.0,
            "flops": 0.0,
            "cached": False,
            "finish_reason": None,
            "truncated": False,
            "empty": False,
            "inputs_truncated": False,
            "sample_index": None,
            "request_key": None,
            "recovery": None,
            "text_before_recovery": before.text(self.task.format_answer),
        }
        return {"outputs": {node_id: trace}}

    def _vote_call(self, node_id: str, state: Mapping[str, Any], update: dict[str, Any]) -> _VoteCall:
        """The vote's reply as one model call for callbacks (streaming, tracing): no pool call, 0 tokens. Its
        messages are what the vote reads: its inputs' replies."""
        preds = self.graph.predecessors(node_id)
        inputs = self._format_inputs(preds, [state["outputs"][p]["text"] for p in preds])
        answer = CachedAnswer(model="vote", text=update["outputs"][node_id]["text"], prompt_tokens=0,
                              completion_tokens=0, finish_reason="stop", latency_s=0.0)  # fmt: skip
        return _VoteCall(
            CachedChatModel(answer=answer, model_name="vote", cached=False),
            [{"role": "user", "content": inputs}],
            {"metadata": {**self.tags, "node": node_id}},
        )

    def node_runnable(self, node_id: str) -> RunnableLambda:
        if not self.graph.node(node_id).calls_model:

            def vote(state: CollaborationState) -> dict[str, Any]:
                update = self._vote(node_id, state)
                if callbacks_active():
                    call = self._vote_call(node_id, state, update)
                    call.model.invoke(call.messages, config=call.config)
                return self._finalise(node_id, state, update)

            async def avote(state: CollaborationState) -> dict[str, Any]:
                update = self._vote(node_id, state)
                if callbacks_active():
                    call = self._vote_call(node_id, state, update)
                    await call.model.ainvoke(call.messages, config=call.config)
                return self._finalise(node_id, state, update)

            return RunnableLambda(vote, afunc=avote, name=node_id)

        layer = self.layer_of[node_id]
        tags = {**self.tags, "node": node_id}
        recovery_tags = {**tags, "call": "recovery"}  # the run's purpose tag stays: it is its cost

        def run(state: CollaborationState, config: RunnableConfig) -> dict[str, Any]:
            request = self.layer_requests(layer, state)[node_id]
            result = self.pool.send(request.chat, tags=tags)
            recovery = None
            if (needed := self._recovery(node_id, request, result)) is not None:
                reason, recovery_request = needed
                extra = self.pool.send(recovery_request, tags=recovery_tags)
                recovery = self._recovered(reason, result.text, extra)
            return self._finalise(node_id, state, self._update(node_id, state, request, result, recovery))

        async def arun(state: CollaborationState, config: RunnableConfig) -> dict[str, Any]:
            request = self.layer_requests(layer, state)[node_id]
            result = await self.pool.asend(request.chat, tags=tags)
            recovery = None
            if (needed := self._recovery(node_id, request, result)) is not None:
                reason, recovery_request = needed
                extra = await self.pool.asend(recovery_request, tags=recovery_tags)
                recovery = self._recovered(reason, result.text, extra)
            return self._finalise(node_id, state, self._update(node_id, state, request, result, recovery))

        return RunnableLambda(run, afunc=arun, name=node_id)

    def _finalise(self, node_id: str, state: Mapping[str, Any], update: dict[str, Any]) -> dict[str, Any]:
        """At the sink: the answer, the ordered trace and the totals."""
        if node_id != self.graph.sink.id:
            return update
        outputs = {**state.get("outputs", {}), **update["outputs"]}
        trace = [outputs[n] for layer in self.layers for n in layer]
        finish: dict[str, float] = {}
        for entry in trace:  # critical path: a node starts when its last input is done (its recovery call included)
            own = entry["latency_s"] + (entry["recovery"] or {}).get("latency_s", 0.0)
            finish[entry["node"]] = max((finish[p] for p in entry["inputs"]), default=0.0) + own
        sink = outputs[node_id]
        recoveries = [e["recovery"] for e in trace if e.get("recovery")]
        return {
            **update,
            "answer": sink["text"],
            "trace": trace,
            "flops": sum(e["flops"] for e in trace) + sum(r["flops"] for r in recoveries),
            "latency_s": finish[node_id],
            "prompt_tokens": sum(e["prompt_tokens"] for e in trace) + sum(r["prompt_tokens"] for r in recoveries),
            "completion_tokens": sum(e["completion_tokens"] for e in trace)
            + sum(r["completion_tokens"] for r in recoveries),
            "calls": sum(e["role"] != "vote" for e in trace) + len(recoveries),
            "cache_hits": sum(e["cached"] for e in trace) + sum(r["cached"] for r in recoveries),
            "truncated": sink["truncated"],
            "empty": sink["empty"],
        }

    def build(self) -> CompiledStateGraph:
        builder = StateGraph(CollaborationState, input_schema=CollaborationInput, output_schema=CollaborationOutput)
        for node in self.graph.nodes:
            builder.add_node(node.id, self.node_runnable(node.id))
        for node in self.graph.nodes:
            preds = list(self.graph.predecessors(node.id))
            builder.add_edge(preds if len(preds) > 1 else (preds[0] if preds else START), node.id)
        builder.add_edge(self.graph.sink.id, END)
        return builder.compile(name=f"langtts-{self.tags['graph']}")


def compile_graph(
    graph: CollaborationGraph,
    pool: ModelPool,
    task: Task | None = None,
    *,
    family: str | None = None,
    prompts: PromptLibrary | Mapping[str, str] | None = None,
    settings: GenerationSettings | None = None,
    node_settings: Mapping[str, GenerationSettings] | None = None,
    context_policy: ContextPolicy = "error",
    tags: Mapping[str, str] | None = None,
) -> CompiledStateGraph:
    """Compile ``graph`` into a LangGraph app running on ``pool``.

    ``task`` supplies the answer format, the answer extraction (votes, agreement, recovery) and the task family
    for prompt choice (``family`` overrides it). ``prompts`` is a :class:`PromptLibrary` or a mapping of prompt
    name → template text overriding shipped files. ``settings`` applies to every LLM node (default: the family's
    defaults; a node's temperature from the graph file, or the sampling temperature of a vote's input, replaces
    its temperature), ``node_settings`` per node id (a whole replacement).
    ``context_policy``: ``"error"`` raises :class:`ContextOverflowError` (at compile time when even an empty
    question cannot fit; else when a prompt would overflow), ``"truncate"`` shortens the inputs' texts to fit and
    records ``inputs_truncated`` in the node's trace. ``tags`` go to every call's ledger record.
    """
    family = family or (task.family if task else "generic")
    library = prompts if isinstance(prompts, PromptLibrary) else PromptLibrary(overrides=prompts)
    return _Compiler(
        graph,
        pool,
        task,
        family,
        library,
        settings or default_settings(family),
        node_settings or {},
        context_policy,
        tags or {},
    ).build()


def _tokens(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN) + 1


def answer_format(task: Task | None, prompts: PromptLibrary) -> str:
    """The role prompts' ``{answer_format}``: the task's, else ``answers/generic``."""
    return (task.answer_format_in(prompts) if task else "") or prompts.text("answers/generic")


def input_template(prompts: PromptLibrary) -> PromptTemplate:
    """``inputs/answer``, checked: the heading and text of one input."""
    template = prompts.get("inputs/answer")
    template.check(INPUT_PLACEHOLDERS, INPUT_PLACEHOLDERS)
    return template


def _shorten(texts: list[str], excess_tokens: int, mark: str) -> list[str]:
    """Cut the longest texts first until about ``excess_tokens`` are removed, marking each cut text with ``mark``."""
    cut = int(excess_tokens * CHARS_PER_TOKEN) + len(mark) * len(texts)
    lengths = [len(t) for t in texts]
    while cut > 0 and max(lengths) > 0:
        longest = max(range(len(lengths)), key=lengths.__getitem__)
        step = min(cut, max(1, lengths[longest] - sorted(lengths)[-2] if len(lengths) > 1 else lengths[longest]))
        lengths[longest] -= step
        cut -= step
    return [t if n == len(t) else t[:n] + mark for t, n in zip(texts, lengths, strict=True)]

"""Agent-REINFORCE with a scripted agent: every node, repairs and fallbacks, ablations, resume."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import pytest

from langtts.graph import CollaborationGraph, Node
from langtts.models.cache import CallCache
from langtts.search.agent_reinforce import AgentOutputError, AgentReinforce, draw, explain, initial_distribution
from langtts.search.agent_reinforce.parsing import check_answer, parse_placement, parse_proposal
from langtts.search.agent_reinforce.prompts import distribution_lines
from langtts.search.agent_reinforce.schemas import (
    EVIDENCE_CHARS,
    FEEDBACK_SCHEMA,
    MAX_CLAIMS,
    PROPOSAL_MAX_TOKENS,
    SHORT_REASONING_CHARS,
    SUMMARY_CHARS,
    answer_token_bound,
    compact_token_bound,
    placement_schema,
    update_schema,
    wiring_schema,
)
from langtts.search.agent_reinforce.update import apply_update
from langtts.search.base import Evaluation, MethodContext, Outcome
from langtts.space import ProbabilisticGraph
from tests.fakes import fake_pool
from tests.search.helpers import MODELS, SINK, json_round_trip, make_space


class Killed(RuntimeError):
    """Raised by the fake agent to stand for the process dying mid-call."""


class ScriptedAgent:
    """Answers each agent call by its schema name: the next scripted answer (a JSON string, a function of the
    prompt, or an exception to raise), else a valid default. Records prompts and schemas."""

    def __init__(self) -> None:
        self.script: dict[str, list[Any]] = defaultdict(list)
        self.calls: Counter[str] = Counter()
        self.prompts: dict[str, list[str]] = defaultdict(list)
        self.schemas: dict[str, dict[str, Any]] = {}
        self.max_tokens: dict[str, int] = {}
        self.requests: list[dict[str, Any]] = []  # every call: its schema name, messages, schema and max_tokens
        self._proposal, self._wired = "", False

    def __call__(self, model: str, messages: list, kwargs: dict[str, Any]) -> str:
        response_format = kwargs["extra_body"]["response_format"]["json_schema"]
        name = response_format["name"]
        prompt = "\n".join(str(m.content) for m in messages)
        self.calls[name] += 1
        self.prompts[name].append(prompt)
        self.schemas[name] = response_format["schema"]
        self.max_tokens[name] = kwargs["max_tokens"]
        self.requests.append(
            {
                "name": name,
                "messages": [[type(m).__name__, str(m.content)] for m in messages],
                "schema": response_format["schema"],
                "max_tokens": kwargs["max_tokens"],
            }
        )
        if name in ("graph_placement", "graph_wiring"):  # a scripted whole proposal, split over the two calls
            return self._proposal_half(name, prompt)
        return self._next(name, prompt)

    def _next(self, name: str, prompt: str) -> str:
        answer = self.script[name].pop(0) if self.script[name] else DEFAULTS[name]
        if isinstance(answer, BaseException):
            raise answer
        return answer(prompt) if callable(answer) else answer

    def _default_wiring(self) -> str:
        """The schema's first choice everywhere: n0 feeds the sink, each fuser reads the first assistant."""
        return json.dumps(first_instance(self.schemas["graph_wiring"]))

    def _proposal_half(self, name: str, prompt: str) -> str:
        """Placement: the next scripted proposal's models and roles. Wiring: its inputs; a wiring asked for again
        (a repair) takes the next scripted proposal's."""
        if name == "graph_wiring" and self._wired and not self.script["graph_proposal"]:
            return self._default_wiring()  # a repair with nothing scripted: fit the placement's roles
        if name == "graph_placement" or self._wired:
            self._proposal, self._wired = self._next("graph_proposal", prompt), False
        try:
            whole = json.loads(self._proposal)
        except json.JSONDecodeError:
            return self._proposal
        if not isinstance(whole, dict):
            return self._proposal
        nodes = [k for k in whole if k not in ("reasoning", "sink_inputs", "sink")]
        if name == "graph_placement":
            placed = {
                k: v if k in ("reasoning", "sink") else {f: v[f] for f in ("model", "role") if f in v}
                for k, v in whole.items()
                if k != "sink_inputs"
            }
            if "sink" not in placed and (options := sink_options(self.schemas[name])):
                placed["sink"] = options[0]  # nothing scripted: the first option (the default decider)
            return json.dumps(placed)
        self._wired = True
        wiring = {k: whole[k].get("inputs", {}) for k in nodes if k != "n0" or whole[k].get("inputs")}
        return json.dumps({**wiring, "sink_inputs": whole.get("sink_inputs", {})})


def sink_options(placement: dict[str, Any]) -> list[str]:
    """The sink options a placement schema offers ([] when it asks for no sink)."""
    schema = placement["anyOf"][0] if "anyOf" in placement else placement
    return list(schema["properties"].get("sink", {}).get("enum", []))


def first_instance(schema: dict[str, Any]) -> Any:
    """The instance of a schema built by taking the first alternative, enum value or false everywhere."""
    if "anyOf" in schema:
        return first_instance(schema["anyOf"][0])
    if "enum" in schema:
        return schema["enum"][0]
    if schema.get("type") == "object":
        return {k: first_instance(sub) for k, sub in schema["properties"].items()}
    return {"boolean": False, "string": "", "number": 0.0}[schema["type"]]


def multiset_of(prompt: str) -> list[str]:
    text = re.search(r"run exactly (.*?) \(each model", prompt, re.S).group(1)
    return [m.strip() for part in text.split(" + ") for n, m in [part.split("× ")] for _ in range(int(n))]


def proposal(
    prompt: str,
    edges: tuple[tuple[str, str], ...] = (("n0", "sink"),),
    models: list[str] | None = None,
    roles: dict[str, str] | None = None,
    sink: str | None = None,
) -> str:
    """A keyed proposal: every node with its model, role and input flags (from lower-numbered nodes only, unless
    ``edges`` names others), then the sink's input flags (and, given, the sink option ``sink``)."""
    models = models or multiset_of(prompt)
    ids = [f"n{i}" for i in range(len(models))]
    answer: dict[str, Any] = {"reasoning": "n0 feeds the sink"}
    for k, (node, model) in enumerate(zip(ids, models, strict=True)):
        sources = [*ids[:k], *(u for u, v in edges if v == node and u not in ids[:k])]
        inputs = {u: (u, node) in edges for u in sources}
        answer[node] = {"model": model, "role": (roles or {}).get(node, "assistant"), "inputs": inputs}
    answer["sink_inputs"] = {u: (u, "sink") in edges for u in ids}
    if sink is not None:
        answer["sink"] = sink
    return json.dumps(answer)


def tables_of(prompt: str) -> dict[str, Any]:
    """The current probabilities as the prompt's tables (:func:`distribution_lines`) show them, keyed as the
    update schema is: every value the agent copies."""
    answer: dict[str, Any] = {"reasoning": "keep what worked"}
    for line in prompt.splitlines():
        node, _, rest = line.partition(": ")
        if node == "sink_inputs" or (node == "sink" and "<-" not in rest):  # not a graph line "sink: m <- n0"
            answer[node] = {u: float(p) for u, p in (pair.split() for pair in rest.split(", "))}
        elif re.fullmatch(r"n\d+", node) and "inputs " in rest:
            fields: dict[str, Any] = {}
            for part in rest.split("; "):
                kind, _, values = part.partition(" ")
                pairs = [] if values == "-" else [pair.split()[:2] for pair in values.split(", ")]
                if kind == "fuser":
                    fields["fuser"] = float(values.split()[0])
                else:
                    fields[kind] = {k: float(v) for k, v in pairs}
            answer[node] = {k: fields[k] for k in ("inputs", "fuser", "models") if k in fields}
    return answer


def update(edges=(("n0", "sink", 0.9),), fusers=(), models=(), sinks=(), mix=-1):
    """A keyed update (a function of the prompt) copying every probability of the prompt's tables but the listed
    ones (``sinks``: (option, P) pairs); ``mix`` answers the mix field when the prompt offers one (-1: keep)."""
    return lambda prompt: json.dumps(_updated(tables_of(prompt), edges, fusers, models, sinks, mix, prompt))


def _updated(answer: dict[str, Any], edges, fusers, models, sinks=(), mix=-1, prompt="") -> dict[str, Any]:
    for option, p in sinks:
        answer.setdefault("sink", {})[option] = p
    if '"mix"' in prompt:
        answer["mix"] = mix
    for source, target, p in edges:
        if target == "sink":
            answer.setdefault("sink_inputs", {})[source] = p
        else:
            answer.setdefault(target, {}).setdefault("inputs", {})[source] = p
    for node, p in fusers:
        answer.setdefault(node, {})["fuser"] = p
    for node, model, p in models:
        answer.setdefault(node, {}).setdefault("models", {})[model] = p
    return answer


DEFAULTS: dict[str, Any] = {
    "multiset_choice": json.dumps({"reasoning": "medium models", "first": 0, "second": 1}),
    "graph_proposal": proposal,
    "textual_gradient": json.dumps(
        {
            "claims": [{"target": "n0->sink", "effect": "helped", "evidence": "n0 feeds the sink"}],
            "summary": "isolated nodes were wasted",
        }
    ),
    "probability_update": update(),
}


def dense(prompt: str) -> str:
    ids = [f"n{i}" for i in range(len(multiset_of(prompt)))]
    return proposal(prompt, tuple((u, v) for k, u in enumerate(ids) for v in [*ids[k + 1 :], "sink"]))


PLACEMENT_PROBLEMS = {"invalid JSON", "model outside the multiset", "wrong model counts"}  # the rest: wiring
BAD_PROPOSALS = {
    "invalid JSON": ("this is not JSON", "invalid structured output"),
    "input from a higher node": (lambda p: proposal(p, (("n1", "n0"), ("n0", "sink"))), "unknown key 'n0'"),
    "unknown node": (lambda p: proposal(p, (("n99", "n1"), ("n0", "sink"))), "node n1 cannot read n99"),
    "model outside the multiset": (lambda p: proposal(p, models=[SINK, *multiset_of(p)[1:]]), f"n0.model is '{SINK}'"),
    "wrong model counts": (
        lambda p: proposal(p, models=[multiset_of(p)[-1]] * len(multiset_of(p))),
        "counts are fixed",
    ),
    "over budget": (dense, "the budget affords it at most 1"),
    "fuser without assistant input": (lambda p: proposal(p, roles={"n1": "fuser"}), "node n1 must read n0"),
    "no sink input": (lambda p: proposal(p, ()), "the sink has no input"),
    "fuser reads a fuser": (
        lambda p: proposal(p, (("n0", "n1"), ("n1", "n2"), ("n2", "sink")), roles={"n1": "fuser", "n2": "fuser"}),
        'node n2 cannot read n1: it may read only "n0"',
    ),
}


def evaluation(graph: CollaborationGraph, index: int, score: float | None = None, phase: str = "search") -> Evaluation:
    score = 0.25 + 0.25 * (index % 3) if score is None else score
    outcome = Outcome(
        question_ids=["q0", "q1"],
        correct=[score >= 0.5, score >= 0.75],
        accuracy=score,
        ci_low=0.0,
        ci_high=1.0,
        flops=1.0,
        latency_s=1.5 + index,
        prompt_tokens=0,
        completion_tokens=0,
        calls=len(graph.nodes),
        cache_hits=0,
        wall_time_s=0.0,
    )
    return Evaluation(
        index=index,
        phase=phase,  # type: ignore[arg-type]
        round=index if phase == "search" else None,
        fingerprint=graph.fingerprint(),
        graph=graph.to_dict(),
        modelled_flops=1.0,
        score=score,
        outcome=outcome,
    )


class Setup:
    """A space, a fake pool answered by a scripted agent (with a call cache in ``cache_dir``, if given), and a
    calibrate function that counts its calls."""

    def __init__(self, cache_dir: Path | None = None) -> None:
        self.space = make_space(8.0)
        self.agent = ScriptedAgent()
        cache = CallCache(cache_dir / "calls.sqlite") if cache_dir is not None else None
        self.pool, self.log = fake_pool(self.agent, {m: m for m in (*MODELS, SINK)}, cache=cache)
        self.calibrated: list[CollaborationGraph] = []
        self.lines: list[str] = []

    async def calibrate(self, graph: CollaborationGraph, n: int) -> Evaluation:
        self.calibrated.append(graph)
        return evaluation(graph, 1000 + len(self.calibrated), score=len(graph.workers) / 10, phase="calibrate")

    def build(self, **options: Any) -> AgentReinforce:
        context = MethodContext(
            space=self.space,
            seed=3,
            pool=self.pool,
            tags={"run": "r1", "purpose": "optimizer"},
            calibrate=self.calibrate,
            report=self.lines.append,
        )
        return AgentReinforce(context, **options)


async def drive(optimizer: AgentReinforce, rounds: int, start: int = 0, *, ask_next: bool = True) -> list[Evaluation]:
    """``rounds`` rounds of propose -> evaluate -> observe; with ``ask_next``, then the next proposal is asked (as
    the loop does when another round runs), which feeds the last round back."""
    evaluations = []
    for index in range(start, start + rounds):
        graph = await optimizer.propose()
        assert graph is not None
        evaluations.append(evaluation(graph, index))
        await optimizer.observe(graph, evaluations[-1])
    if ask_next:
        await optimizer.propose()
    return evaluations


def test_a_run_goes_through_every_node():
    setup = Setup()
    optimizer = setup.build()
    asyncio.run(drive(optimizer, 4))
    report = json_round_trip(optimizer.report())

    assert report["rounds"] == 4
    assert report["proposals"] == {"valid": 3, "repaired": 0, "fallback": 0, "sampled": 1}
    assert report["agent_driven_rounds"] == 3
    init = report["initialise"]
    assert init["how"] == "valid" and init["choices"] == [0, 1] and init["pretests"]
    assert len(setup.calibrated) == len(init["variants"]) > 2  # one 1-question pre-test per variant
    assert init["multiset"] == max(init["pretests"], key=lambda p: p["score"])["multiset"]
    assert setup.agent.calls == {
        "multiset_choice": 1,
        "graph_placement": 4,
        "graph_wiring": 4,
        "textual_gradient": 4,
        "probability_update": 4,
    }

    history = report["history"]
    assert [r["round"] for r in history] == [1, 2, 3, 4]
    assert history[1]["feedback"].startswith("- n0->sink helped (")
    assert history[1]["feedback_summary"] == "isolated nodes were wasted"
    assert "Edge probabilities" in history[0]["tables"]
    # round 1 sampled n0 -> sink only if lucky: raising it is coerced otherwise; from round 2 on the agent sampled it
    assert all(r["update"]["status"] == "valid" for r in history[1:])
    pg = ProbabilisticGraph.from_dict(history[-1]["distribution"], setup.space.catalog)
    assert pg.edge_probability(0, pg.n_nodes) == pytest.approx(0.9)

    tagged = Counter(r.tags["node"] for r in setup.pool.ledger.records(purpose="optimizer"))
    assert tagged == {"initialise": 1, "sample": 8, "feedback": 4, "update": 4}  # sample: place, then wire
    assert all(r.tags["run"] == "r1" for r in setup.pool.ledger.records())
    # sample, evaluate, feedback, update, and the feedback repeats round 1's (the scripted agent's default)
    assert sum(line.startswith("[agent round 2]") for line in setup.lines) == 5
    assert report["feedback"]["near_duplicates"][0] == {"round": 2, "like_round": 1, "similarity": 1.0}


def test_a_pretest_tie_keeps_the_variant_with_the_most_workers():
    setup = Setup()

    async def zero(graph: CollaborationGraph, n: int) -> Evaluation:  # tiny models: every variant scores 0
        setup.calibrated.append(graph)
        return evaluation(graph, 1000 + len(setup.calibrated), score=0.0, phase="calibrate")

    setup.calibrate = zero  # type: ignore[method-assign]
    setup.agent.script["multiset_choice"] = [json.dumps({"reasoning": "few strong", "first": 2, "second": 0})]
    optimizer = setup.build()
    asyncio.run(drive(optimizer, 1))
    init = optimizer.report()["initialise"]
    assert init["choices"] == [2, 0] and len(init["pretests"]) > 2
    assert init["multiset"] == list(optimizer.candidates[0])  # 8 workers, not the first choice's 3 nor 1 worker
    pg = ProbabilisticGraph.from_dict(optimizer.report()["history"][0]["distribution"], setup.space.catalog)
    assert pg.models[int(np.argmax(pg.model_logits[-1]))] == "gemma3-270m"  # the strongest on the last node

    setup = Setup()
    setup.calibrate = zero  # type: ignore[method-assign]
    setup.agent.script["multiset_choice"] = [json.dumps({"reasoning": "a tie", "first": 1, "second": 0})]
    optimizer = setup.build()
    asyncio.run(drive(optimizer, 1))
    assert optimizer.report()["initialise"]["multiset"] == list(optimizer.candidates[0])  # 8 workers beat 7


@pytest.mark.parametrize("kind", list(BAD_PROPOSALS))
@pytest.mark.parametrize("bad_answers", [1, 3])
def test_bad_proposals_are_repaired_then_fall_back(kind, bad_answers):
    setup = Setup()
    bad, message = BAD_PROPOSALS[kind]
    setup.agent.script["graph_proposal"] = [bad] * bad_answers
    optimizer = setup.build(max_repairs=2)  # keeps 3× gemma3-270m + 5× smollm2-135m
    asyncio.run(drive(optimizer, 2))
    report = optimizer.report()

    status = "repaired" if bad_answers == 1 else "fallback"
    assert report["proposals"] == {
        "valid": 0,
        "repaired": int(status == "repaired"),
        "fallback": int(status == "fallback"),
        "sampled": 1,
    }
    record = report["history"][1]["proposal"]
    assert record["status"] == status and len(record["errors"]) == bad_answers
    assert all(message in error for error in record["errors"])
    half = "graph_placement" if kind in PLACEMENT_PROBLEMS else "graph_wiring"  # the call that went wrong
    assert setup.agent.calls[half] == (2 if bad_answers == 1 else 3) + 1  # + round 3's proposal
    repair = setup.agent.prompts[half][1]
    assert "could not be used" in repair and message in repair  # the error is fed back
    graph = CollaborationGraph.from_dict(record["graph"])
    assert setup.space.feasible(graph) and Counter(n.model for n in graph.workers) == Counter(
        report["initialise"]["multiset"]
    )


def test_a_fixed_multiset_makes_wrong_model_counts_unwritable():
    schema = placement_schema(["n0", "n1", "n2"], ["a", "b"], fusers=True, multiset=["b", "a", "a"])
    assert schema["title"] == "graph_placement" and len(schema["anyOf"]) == 3  # b at n0, n1 or n2

    def answer(*models: str) -> dict:
        nodes = {f"n{k}": {"model": m, "role": "assistant"} for k, m in enumerate(models)}
        return {"reasoning": "r", **nodes}

    for models in [("a", "a", "b"), ("a", "b", "a"), ("b", "a", "a")]:
        jsonschema.validate(answer(*models), schema)
    for models in [("a", "a", "a"), ("b", "b", "a"), ("b", "b", "b")]:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(answer(*models), schema)

    one_way = placement_schema(["n0", "n1"], ["a", "b"], fusers=True, multiset=["a", "a"])
    assert "anyOf" not in one_way and one_way["properties"]["n1"]["properties"]["model"]["enum"] == ["a"]
    # 4 + 4 workers have 70 arrangements: too many alternatives, the validator checks the counts instead
    many = placement_schema([f"n{k}" for k in range(8)], ["a", "b"], fusers=True, multiset=["a"] * 4 + ["b"] * 4)
    assert "anyOf" not in many and many["properties"]["n7"]["properties"]["model"]["enum"] == ["a", "b"]
    with pytest.raises(ValueError, match="2 models for 1 worker"):
        placement_schema(["n0"], ["a"], fusers=True, multiset=["a", "a"])


def test_the_schemas_are_keyed_by_node():
    schema = placement_schema(["n0", "n1", "n2"], ["a", "b"], fusers=True)
    assert list(schema["properties"]) == schema["required"] == ["reasoning", "n0", "n1", "n2"]
    assert schema["additionalProperties"] is False and schema["title"] == "graph_placement"
    assert schema["properties"]["reasoning"] == {"type": "string", "maxLength": SHORT_REASONING_CHARS}
    n0, n2 = schema["properties"]["n0"], schema["properties"]["n2"]
    assert n0["properties"]["role"]["enum"] == ["assistant"]  # no inputs: never a fuser
    assert n2["required"] == ["model", "role"] and n2["additionalProperties"] is False
    assert n2["properties"]["model"]["enum"] == ["a", "b"] and n2["properties"]["role"]["enum"] == [
        "assistant",
        "fuser",
    ]
    no_fusers = placement_schema(["n0", "n1"], ["a"], fusers=False)["properties"]["n1"]
    assert no_fusers["properties"]["role"]["enum"] == ["assistant"]

    # the wiring, given the roles: n0 reads nothing; an assistant may read any lower node
    roles = {"n0": "assistant", "n1": "fuser", "n2": "assistant", "n3": "fuser"}
    wiring = wiring_schema(list(roles), roles)
    assert list(wiring["properties"]) == wiring["required"] == ["n1", "n2", "n3", "sink_inputs"]
    assert wiring["title"] == "graph_wiring"
    n2 = wiring["properties"]["n2"]
    assert n2["required"] == ["n0", "n1"] and all(v == {"type": "boolean"} for v in n2["properties"].values())
    # a fuser reads only the lower assistants, at least one: one alternative per first true input
    assert wiring["properties"]["n1"]["properties"] == {"n0": {"type": "boolean", "enum": [True]}}
    first, second = wiring["properties"]["n3"]["anyOf"]
    assert first["properties"] == {"n0": {"type": "boolean", "enum": [True]}, "n2": {"type": "boolean"}}
    assert second["properties"] == {
        "n0": {"type": "boolean", "enum": [False]},
        "n2": {"type": "boolean", "enum": [True]},
    }
    sink = wiring["properties"]["sink_inputs"]["anyOf"]
    assert [alternative["required"] for alternative in sink] == [["n0", "n1", "n2", "n3"]] * 4
    true = [[k for k, v in a["properties"].items() if v.get("enum") == [True]] for a in sink]
    assert true == [["n0"], ["n1"], ["n2"], ["n3"]]
    single = wiring_schema(["n0"], {"n0": "assistant"})["properties"]
    assert single == {
        "sink_inputs": {**single["sink_inputs"], "properties": {"n0": {"type": "boolean", "enum": [True]}}}
    }

    schema = update_schema(["n0", "n1"], ["a", "b"], fusers=True)
    assert list(schema["properties"]) == ["reasoning", "n0", "n1", "sink_inputs"]
    assert list(schema["properties"]["n0"]["properties"]) == ["inputs", "models"]
    n1 = schema["properties"]["n1"]["properties"]
    assert list(n1) == ["inputs", "fuser", "models"] and list(n1["inputs"]["properties"]) == ["n0"]
    assert n1["fuser"] == {"type": "number", "minimum": 0, "maximum": 1}
    assert list(n1["models"]["properties"]) == ["a", "b"]
    assert list(update_schema(["n0", "n1"], ["a"], fusers=False)["properties"]["n1"]["properties"]) == ["inputs"]
    assert FEEDBACK_SCHEMA["properties"]["summary"] == {"type": "string", "minLength": 1, "maxLength": SUMMARY_CHARS}
    claim = FEEDBACK_SCHEMA["properties"]["claims"]
    assert claim["maxItems"] == MAX_CLAIMS and claim["items"]["required"] == ["target", "effect", "evidence"]


def test_the_agent_gets_the_schemas_of_its_multiset_and_a_bounded_max_tokens():
    setup = Setup()
    optimizer = setup.build()
    asyncio.run(drive(optimizer, 2))
    schema = setup.agent.schemas["graph_placement"]
    workers = [f"n{i}" for i in range(8)]
    assert list(schema["properties"]) == ["reasoning", *workers]
    models = schema["properties"]["n0"]["properties"]["model"]["enum"]
    assert sorted(models) == ["gemma3-270m", "smollm2-135m"]  # the multiset's models, not the sink's
    for name, tokens in setup.agent.max_tokens.items():  # room for a compact answer, at least 250 tokens
        schema = setup.agent.schemas[name]
        room = min(answer_token_bound(schema), max(PROPOSAL_MAX_TOKENS, compact_token_bound(schema)))
        assert tokens == min(room, 2048)  # at most half the fake's window
    assert setup.agent.max_tokens["textual_gradient"] == compact_token_bound(FEEDBACK_SCHEMA) < 512

    setup = Setup()
    asyncio.run(drive(setup.build(max_tokens=300), 2))
    assert set(setup.agent.max_tokens.values()) == {300}


def test_a_keyed_proposal_becomes_the_graph():
    space = make_space(8.0)
    multiset = ["gemma3-270m", "smollm2-135m", "smollm2-135m"]
    answer = {
        "reasoning": "two answers fused",
        "n0": {"model": "smollm2-135m", "role": "assistant", "inputs": {}},
        "n1": {"model": "smollm2-135m", "role": "assistant", "inputs": {"n0": False}},
        "n2": {"model": "gemma3-270m", "role": "fuser", "inputs": {"n0": True, "n1": True}},
        "sink_inputs": {"n0": False, "n1": False, "n2": True},
    }
    placement = {
        k: v if k == "reasoning" else {"model": v["model"], "role": v["role"]}
        for k, v in answer.items()
        if k != "sink_inputs"
    }
    wiring = {k: v["inputs"] if k != "sink_inputs" else v for k, v in answer.items() if k not in ("reasoning", "n0")}
    workers = ["n0", "n1", "n2"]
    check_answer(wiring, wiring_schema(workers, {k: placement[k]["role"] for k in workers}))
    placement = parse_placement(placement, multiset=multiset)
    graph = parse_proposal(placement, wiring, space=space, unit_flops=1.0)
    assert graph.edges == (("n0", "n2"), ("n1", "n2"), ("n2", "sink"))
    assert [(n.id, n.model, n.role) for n in graph.nodes] == [
        ("n0", "smollm2-135m", "assistant"),
        ("n1", "smollm2-135m", "assistant"),
        ("n2", "gemma3-270m", "fuser"),
        ("sink", SINK, "decider"),
    ]
    dense = {"n1": {"n0": True}, "n2": {"n0": True, "n1": True}, "sink_inputs": dict.fromkeys(workers, True)}
    with pytest.raises(AgentOutputError, match=r"over the budget of .*: turn inputs off"):
        parse_proposal(
            {**placement, "n2": {"model": "gemma3-270m", "role": "assistant"}}, dense, space=space, unit_flops=1.0
        )
    with pytest.raises(AgentOutputError, match=r"n2\.role is 'fuser'; allowed: 'assistant'"):
        check_answer(placement, placement_schema(workers, ["gemma3-270m", "smollm2-135m"], fusers=False))
    with pytest.raises(AgentOutputError, match=r"the workers run 3× smollm2-135m, but the model counts are fixed"):
        parse_placement({**placement, "n2": {"model": "smollm2-135m", "role": "fuser"}}, multiset=multiset)


def test_a_full_keyed_update_is_applied():
    """Every probability written, as the schema asks: copied values (two decimals) change nothing, the rest
    is applied."""
    space = make_space(8.0)
    multiset = ["smollm2-135m", "smollm2-135m", "gemma3-270m"]
    pg = initial_distribution(space, multiset)
    models = pg.models
    nodes = (*(Node(f"n{i}", "assistant", m) for i, m in enumerate(multiset)), Node("sink", "decider", SINK))
    sampled = CollaborationGraph(nodes=nodes, edges=(("n0", "n2"), ("n2", "sink")))
    answer: dict[str, Any] = {"reasoning": "n0 -> n2 -> sink worked"}
    for j in range(3):
        probabilities = pg.model_probabilities(j)
        answer[f"n{j}"] = {
            "inputs": {f"n{i}": round(pg.edge_probability(i, j), 2) for i in range(j)},
            **({"fuser": round(pg.fuser_probability(j), 2)} if j else {}),
            "models": {m: round(float(p), 2) for m, p in zip(models, probabilities, strict=True)},
        }
    answer["sink_inputs"] = {f"n{i}": round(pg.edge_probability(i, 3), 2) for i in range(3)}
    answer["n2"]["inputs"]["n0"] = 0.8
    answer["n2"]["fuser"] = 0.1
    answer["sink_inputs"]["n2"] = 0.9
    answer["sink_inputs"]["n0"] = 0.02
    answer["n1"]["inputs"]["n0"] = 0.7  # not sampled: kept
    assert f"n2: models {models[0]} " in distribution_lines(pg) and "sink_inputs: n0 0.12" in distribution_lines(pg)

    updated, coercions = apply_update(pg, answer, sampled=sampled, multiset=multiset)
    assert coercions == ["edge n0 -> n1 was not sampled: kept at 0.12, not raised to 0.70"]
    assert updated.edge_probability(0, 2) == pytest.approx(0.8) and updated.edge_probability(2, 3) == pytest.approx(0.9)
    assert updated.edge_probability(0, 3) == pytest.approx(0.02) and updated.fuser_probability(2) == pytest.approx(0.1)
    unchanged = [(1, 2), (1, 3), (0, 1), (2, 0), (1, 0)]
    assert all(updated.edge_logits[i, j] == pg.edge_logits[i, j] for i, j in unchanged)  # copies keep exact values
    assert np.array_equal(updated.model_logits, pg.model_logits) and updated.fuser_probability(
        1
    ) == pg.fuser_probability(1)


def test_an_empty_or_long_feedback_does_not_stop_the_round():
    setup = Setup()
    optimizer = setup.build(init="random")
    asyncio.run(drive(optimizer, 1))
    setup.agent.script["textual_gradient"] = [json.dumps({"claims": [], "summary": "  "})] * 3
    asyncio.run(drive(optimizer, 1, start=1))
    record = optimizer.report()["history"][1]
    assert record["feedback_status"] == "fallback" and record["feedback"] == ""
    assert record["update"]["status"] in ("valid", "coerced")  # the update still ran, told there is no feedback
    assert "against the figures):\n(none)" in setup.agent.prompts["probability_update"][-1]
    assert "feedback is empty" in setup.agent.prompts["textual_gradient"][-1]  # the repair said why

    long = {"target": "n0", "effect": "helped", "evidence": "n0\nhelped. " * 12}
    setup.agent.script["textual_gradient"] = [json.dumps({"claims": [long] * 5, "summary": "n0\nhelped. " * 16})]
    asyncio.run(drive(optimizer, 1, start=2))
    record = optimizer.report()["history"][2]
    assert record["feedback_status"] == "valid" and len(record["feedback_summary"]) == SUMMARY_CHARS
    assert record["feedback_summary"].startswith("n0 helped. n0 helped.")
    assert len(record["feedback_claims"]) == MAX_CLAIMS
    assert all(len(c["evidence"]) == EVIDENCE_CHARS for c in record["feedback_claims"])


def test_a_failing_agent_call_falls_back_without_repairs():
    setup = Setup()
    setup.agent.script["graph_proposal"] = [ValueError("the prompt is longer than the context window")]
    optimizer = setup.build(init="random")
    asyncio.run(drive(optimizer, 2))
    assert optimizer.report()["proposals"]["fallback"] == 1
    assert setup.agent.calls["graph_placement"] == 2  # round 2 (not repeated), round 3


@pytest.mark.parametrize(
    "answer",
    [
        "{not json",
        update(edges=(("n0", "sink", 1.7),)),
        update(edges=(("n0", "n42", 0.3),)),
        update(models=[(f"n{i}", "gemma3-270m", 1.0) for i in range(8)]),
        update(edges=(("n3", "n1", 0.5),)),
        update(fusers=(("n2", "high"),)),
    ],
    ids=["invalid JSON", "probability above 1", "unknown node", "model counts", "input from a higher node", "text"],
)
def test_a_malformed_update_falls_back_to_a_numeric_step(answer):
    setup = Setup()
    optimizer = setup.build()  # keeps 3× gemma3-270m + 5× smollm2-135m
    asyncio.run(drive(optimizer, 1))
    before = optimizer.report()["history"][0]["distribution"]
    setup.agent.script["probability_update"] = [answer] * 3
    asyncio.run(drive(optimizer, 1, start=1))
    record = optimizer.report()["history"][1]

    assert record["update"]["status"] == "fallback" and len(record["update"]["errors"]) == 3
    after = record["distribution"]
    assert not np.allclose(before["edge_logits"], after["edge_logits"])  # the Adam step moved the logits
    assert optimizer.report()["updates"]["fallback"] == 1


def test_raising_an_unsampled_edge_is_coerced():
    setup = Setup()
    setup.agent.script["probability_update"] = [update(), update(edges=(("n0", "sink", 0.9), ("n1", "n2", 0.95)))]
    optimizer = setup.build(init="random")
    asyncio.run(drive(optimizer, 2))
    record = optimizer.report()["history"][1]
    assert record["update"]["status"] == "coerced"
    assert any("n1 -> n2 was not sampled" in c for c in record["update"]["coercions"])
    pg = ProbabilisticGraph.from_dict(record["distribution"], setup.space.catalog)
    assert pg.edge_probability(1, 2) == pytest.approx(0.12, abs=0.01) and pg.edge_probability(0, 8) == pytest.approx(
        0.9
    )


def prompts_of(**options: Any) -> tuple[ScriptedAgent, AgentReinforce]:
    setup = Setup()
    optimizer = setup.build(**options)
    asyncio.run(drive(optimizer, 2))
    return setup.agent, optimizer


def all_prompts(agent: ScriptedAgent) -> str:
    return "\n".join(p for prompts in agent.prompts.values() for p in prompts)


def test_ablation_switches_change_the_prompts():
    agent, _ = prompts_of()
    text = all_prompts(agent)
    assert "Insights from pilot experiments" in text and "Pilot accuracies" in agent.prompts["multiset_choice"][0]
    assert 'a "fuser" reviews' in text and "Latency rules" not in text
    assert agent.schemas["graph_placement"]["properties"]["n1"]["properties"]["role"]["enum"] == ["assistant", "fuser"]
    assert "fuser" in agent.schemas["probability_update"]["properties"]["n1"]["properties"]

    agent, _ = prompts_of(insights=False)
    text = all_prompts(agent)
    assert agent.calls["multiset_choice"] == 1
    assert "Insights from pilot" not in text and "Pilot accuracies" not in text

    agent, _ = prompts_of(fusers=False)
    text = all_prompts(agent)
    assert "The fuser role is disabled" in text and 'a "fuser" reviews' not in text
    assert agent.schemas["graph_placement"]["properties"]["n1"]["properties"]["role"]["enum"] == ["assistant"]
    assert "fuser" not in agent.schemas["probability_update"]["properties"]["n1"]["properties"]

    agent, _ = prompts_of(objective_kind="joint")
    assert "Latency rules" in all_prompts(agent)
    assert "median latency" in agent.prompts["textual_gradient"][0]


def test_variants():
    agent, optimizer = prompts_of(variant="textgrad")
    assert agent.calls["multiset_choice"] == 0  # random initial mix
    assert "Insights from pilot" not in all_prompts(agent)
    assert optimizer.report()["initialise"]["how"] == "random"

    agent, optimizer = prompts_of(variant="maas")
    history = optimizer.report()["history"]
    assert agent.calls["graph_placement"] == 0  # maas draws from the tables
    assert [r["update"]["status"] for r in history] in (["valid", "numeric"], ["coerced", "numeric"])
    assert agent.calls["probability_update"] == 1 and agent.calls["textual_gradient"] == 1


def test_max_rounds_ends_the_thread():
    setup = Setup()
    optimizer = setup.build(init="random", max_rounds=2)
    asyncio.run(drive(optimizer, 2))
    assert asyncio.run(optimizer.propose()) is None


def test_count_preserving_draws_and_explain_agree():
    space = make_space(8.0)
    multiset = ["gemma3-270m", "gemma3-270m", "smollm2-135m", "smollm2-135m", "smollm2-135m"]
    pg = initial_distribution(space, multiset)
    for seed in range(20):
        sample = draw(pg, multiset, np.random.default_rng(seed))
        assert Counter(n.model for n in sample.graph.workers) == Counter(multiset)
        assert space.feasible(sample.graph)
        assert explain(pg, sample.graph, multiset).graph == sample.graph
        assert np.isfinite(pg.log_prob(explain(pg, sample.graph, multiset)))


def test_explain_accepts_a_graph_that_fits_only_once_pruned():
    space = make_space(8.0)
    multiset = ["gemma3-270m"] * 3 + ["smollm2-135m"] * 5
    pg = initial_distribution(space, multiset)
    nodes = (*(Node(f"n{i}", "assistant", m) for i, m in enumerate(multiset)), Node("sink", "decider", SINK))
    graph = CollaborationGraph(nodes=nodes, edges=(("n0", "n2"), ("n1", "n2"), ("n2", "sink")))
    assert space.feasible(graph)
    with pytest.raises(ValueError, match="over the budget"):
        pg.explain(graph)  # the sampler reserves budget for the five isolated nodes too
    sample = explain(pg, graph, multiset)
    assert sample.graph == graph and np.isfinite(pg.log_prob(sample))


def test_an_update_whose_likely_edges_form_a_cycle_is_rejected():
    space = make_space(8.0)
    multiset = ["smollm2-135m"] * 3
    pg = initial_distribution(space, multiset)
    pg.edge_logits[1, 0] = 5.0  # n1 -> n0 is likely (numeric fallback steps may raise such an edge)
    tables = distribution_lines(pg)
    nodes = (*(Node(f"n{i}", "assistant", m) for i, m in enumerate(multiset)), Node("sink", "decider", SINK))
    sampled = CollaborationGraph(nodes=nodes, edges=(("n0", "n1"), ("n1", "sink")))
    with pytest.raises(AgentOutputError, match=r"cycle (n0 -> n1 -> n0|n1 -> n0 -> n1)"):
        apply_update(pg, json.loads(update(edges=(("n0", "n1", 0.9),))(tables)), sampled=sampled, multiset=multiset)
    updated, coercions = apply_update(
        pg, json.loads(update(edges=(("n0", "n1", 0.4),))(tables)), sampled=sampled, multiset=multiset
    )
    assert updated.edge_probability(0, 1) == pytest.approx(0.4) and not coercions
    assert pg.edge_probability(0, 1) == pytest.approx(0.12, abs=0.01)  # the input is left unchanged


# ---- resume -----------------------------------------------------------------------------------------------


def test_resume_at_the_evaluate_interrupt():
    setup = Setup()

    async def first_session():
        optimizer = setup.build()
        await drive(optimizer, 2)
        state = json_round_trip(optimizer.state_dict())
        pending = await optimizer.propose()  # round 3 is proposed, then the process dies
        return state, pending

    state, pending = asyncio.run(first_session())
    calls = Counter(setup.agent.calls)

    async def second_session():
        optimizer = setup.build()
        optimizer.load_state_dict(state)
        graph = await optimizer.propose()
        assert graph == pending
        assert setup.agent.calls == calls  # nothing asked again
        await optimizer.observe(graph, evaluation(graph, 2))
        await drive(optimizer, 1, start=3)
        return optimizer

    optimizer = asyncio.run(second_session())
    history = optimizer.report()["history"]
    assert [r["round"] for r in history] == [1, 2, 3, 4]
    assert [r["result"]["index"] for r in history] == [0, 1, 2, 3]
    assert setup.agent.calls["multiset_choice"] == 1 and setup.agent.calls["graph_placement"] == 4  # rounds 2 to 5


def test_resume_after_a_death_mid_feedback():
    setup = Setup()

    async def first_session():
        optimizer = setup.build()
        await drive(optimizer, 2)
        graph = await optimizer.propose()
        recorded = evaluation(graph, 2)
        calls = Counter(setup.agent.calls)
        await optimizer.observe(graph, recorded)  # records the evaluation only: no agent call
        assert setup.agent.calls == calls
        state = json_round_trip(optimizer.state_dict())  # the loop saves the state after observe
        setup.agent.script["textual_gradient"] = [Killed("SIGKILL")]
        with pytest.raises(Killed):  # the next round's proposal dies in the feedback step
            await optimizer.propose()
        return state, recorded

    state, recorded = asyncio.run(first_session())
    calls = Counter(setup.agent.calls)
    calibrated = len(setup.calibrated)

    async def second_session():
        optimizer = setup.build()
        optimizer.load_state_dict(state)
        assert optimizer.report()["pending"]["result"]["index"] == recorded.index
        assert await optimizer.propose() is not None
        return optimizer

    optimizer = asyncio.run(second_session())
    history = optimizer.report()["history"]
    assert [r["round"] for r in history] == [1, 2, 3]
    assert history[2]["result"]["index"] == recorded.index and history[2]["result"]["score"] == recorded.score
    new = Counter(setup.agent.calls) - calls
    assert new == {
        "textual_gradient": 1,
        "probability_update": 1,
        "graph_placement": 1,
        "graph_wiring": 1,
    }  # round 3's feedback on, the killed feedback asked again (no call cache)
    assert len(setup.calibrated) == calibrated


def test_a_repeated_observe_asks_the_call_cache(tmp_path):
    setup = Setup(tmp_path)

    async def first_session():
        optimizer = setup.build(init="random")
        evaluations = await drive(optimizer, 2)
        state = json_round_trip(optimizer.state_dict())  # the last state the loop saved
        evaluations += await drive(optimizer, 1, start=2)  # observed, but the loop died before saving
        return state, evaluations, await optimizer.propose()

    state, evaluations, pending = asyncio.run(first_session())
    calls = Counter(setup.agent.calls)

    async def second_session():
        optimizer = setup.build(init="random")
        optimizer.load_state_dict(state)
        assert optimizer.report()["rounds"] == 2  # the saved state, before any call
        assert await optimizer.propose() == evaluations[2].collaboration_graph()
        await optimizer.observe(evaluations[2].collaboration_graph(), evaluations[2])  # the loop's pending observe
        assert await optimizer.propose() == pending
        return optimizer

    optimizer = asyncio.run(second_session())
    assert setup.agent.calls == calls  # every repeated agent call came from the cache
    assert [r["round"] for r in optimizer.report()["history"]] == [1, 2, 3]
    assert optimizer.state_dict() == json_round_trip(optimizer.state_dict())


def test_resume_before_the_first_observe_repeats_the_initialisation_from_the_cache(tmp_path):
    setup = Setup(tmp_path)
    first = asyncio.run(setup.build().propose())
    calls, calibrated = Counter(setup.agent.calls), list(setup.calibrated)
    assert asyncio.run(setup.build().propose()) == first
    assert setup.agent.calls == calls  # the agent's choice came from the cache
    assert setup.calibrated == calibrated * 2  # the same pre-tests (the loop answers them from its ledger)


def test_the_graph_runs_on_a_users_checkpointer():
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.types import Command

    setup = Setup()
    app = setup.build(init="random", max_rounds=2).agent_graph(InMemorySaver())
    config = {"configurable": {"thread_id": "mine"}}
    asyncio.run(app.ainvoke({"round": 0}, config))
    for round_ in (1, 2):
        snapshot = app.get_state(config)
        assert snapshot.next == ("evaluate",) and snapshot.values["round"] == round_
        asyncio.run(app.ainvoke(Command(resume={"score": 0.5}), config))
    values = app.get_state(config).values  # the last round is evaluated, not fed back
    assert not app.get_state(config).next and len(values["history"]) == 1 and values["evaluation"]["round"] == 2


def test_the_wiring_schema_caps_the_inputs_the_budget_affords():
    roles = {"n0": "assistant", "n1": "assistant", "n2": "fuser", "n3": "assistant"}
    schema = wiring_schema(list(roles), roles, {"n1": 0, "n2": 0, "n3": 1}, sink_cap=1)["properties"]
    assert schema["n1"]["properties"] == {"n0": {"type": "boolean", "enum": [False]}}  # none affordable
    # a fuser still reads one assistant (the validator then names the cost), exactly one
    assert [a["properties"] for a in schema["n2"]["anyOf"]] == [
        {"n0": {"type": "boolean", "enum": [True]}, "n1": {"type": "boolean", "enum": [False]}},
        {"n0": {"type": "boolean", "enum": [False]}, "n1": {"type": "boolean", "enum": [True]}},
    ]
    n3 = [[k for k, v in a["properties"].items() if v["enum"] == [True]] for a in schema["n3"]["anyOf"]]
    assert n3 == [[], ["n0"], ["n1"], ["n2"]]  # at most one input
    sink = [[k for k, v in a["properties"].items() if v["enum"] == [True]] for a in schema["sink_inputs"]["anyOf"]]
    assert sink == [["n0"], ["n1"], ["n2"], ["n3"]]  # exactly one
    free = wiring_schema(list(roles), roles, {"n3": 2}, sink_cap=2)["properties"]
    assert free["n3"]["properties"]["n0"] == {"type": "boolean"} and len(free["sink_inputs"]["anyOf"]) == 4


def test_the_wiring_prompt_states_the_room_and_the_caps_follow_it():
    setup = Setup()
    asyncio.run(drive(setup.build(), 2))
    prompt = setup.agent.prompts["graph_wiring"][0]
    assert "Now wire the nodes you placed" in prompt and "leaving" in prompt and "Set every other input" in prompt
    wiring = setup.agent.schemas["graph_wiring"]["properties"]
    # Setup's budget leaves almost nothing once the eight placed nodes run: no node may take an input
    assert all(v.get("enum") == [False] for v in wiring["n7"]["properties"].values())


def test_a_user_prompt_directory_reaches_the_pilot_table_and_the_sentences(tmp_path):
    (tmp_path / "agent").mkdir()
    pilot = {
        "source": "our pool",
        "entries": [{"task": "GSM8K", "mix": "2× smollm2", "accuracy": 12, "budget_units": 3}],
    }
    (tmp_path / "agent" / "pilot.json").write_text(json.dumps(pilot))
    (tmp_path / "agent" / "objective.txt").write_text("be right, whatever it takes")
    (tmp_path / "agent" / "field_inputs.txt").write_text('"inputs" (how likely each input is)')
    agent, _ = prompts_of(prompts_dir=str(tmp_path))
    choice = agent.prompts["multiset_choice"][0]
    assert "Pilot accuracies in % (our pool):\n- GSM8K, budget 3: 2× smollm2 12" in choice
    assert "Objective: be right, whatever it takes" in agent.prompts["graph_placement"][0]
    assert '"inputs" (how likely each input is)' in agent.prompts["probability_update"][0]
    assert "Wang et al." in prompts_of()[0].prompts["multiset_choice"][0]  # the shipped table

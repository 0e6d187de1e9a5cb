"""A search on the synthetic evaluator, runnable as a script (``python -m tests.search.synthetic_run METHOD
RUN_DIR [DELAY_S [KILL_AT]]``) so tests can SIGKILL it midway; :func:`run` with the same arguments is the reference.

``agent-reinforce`` asks a scripted agent on a fake pool (:func:`agent_pool`) whose calls are cached next to the run
directory (``RUN_DIR.calls.sqlite``); with ``KILL_AT`` the process SIGKILLs itself during its KILL_AT-th agent call.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import signal
import sys
from collections.abc import Mapping
from typing import Any

from langtts import shapes
from langtts.models.cache import CallCache
from langtts.models.pool import ModelPool
from langtts.search import OptimizationResult, SearchSpace, optimize
from langtts.search.synthetic import SyntheticEvaluator
from tests.fakes import fake_pool

MODELS = ["smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b"]
BUDGET_UNITS = 30.0
AGENT_ITERATIONS = 2  # agent-reinforce: its scripted agent is asked 7 times (AGENT_CALLS)
AGENT_CALLS = 7


def settings(method: str, **overrides: Any) -> dict[str, Any]:
    return {
        "method": method,
        "models": MODELS,
        "iterations": AGENT_ITERATIONS if method == "agent-reinforce" else 12,
        "batch_size": 4,
        "top_k": 3,
        "validation_size": 8,
        "n_test": 10,
        "seed": 7,
        "progress": False,
        **overrides,
    }


def evaluator(delay_s: float = 0.0):
    def build(space: SearchSpace) -> SyntheticEvaluator:
        target = shapes.layered("smollm2-135m", 2, 2, sink_model=space.sink_model)
        return SyntheticEvaluator(target, space, delay_s=delay_s)

    return build


def agent_answer(model: str, messages: list, kwargs: Mapping[str, Any]) -> str:
    """A scripted agent that answers from the prompt and the schema alone (so a resumed process answers alike):
    the first candidates, the workers in the multiset's order as assistants, the sink option (when the space offers
    several) and the node the sink reads picked by a hash of the prompt, and an update raising that node's sink
    input (keeping the mix)."""
    from tests.search.test_agent_reinforce import first_instance, multiset_of, sink_options, update

    form = kwargs["extra_body"]["response_format"]["json_schema"]
    name, schema = form["name"], form["schema"]
    prompt = "\n".join(str(m.content) for m in messages)
    pick = int(hashlib.sha256(prompt.encode()).hexdigest(), 16)
    if name == "graph_placement":
        nodes = {f"n{k}": {"model": m, "role": "assistant"} for k, m in enumerate(multiset_of(prompt))}
        sinks = {"sink": options[pick % len(options)]} if (options := sink_options(schema)) else {}
        return json.dumps({"reasoning": "all assistants", **nodes, **sinks})
    if name == "graph_wiring":
        answer = first_instance(schema)
        alternatives = schema["properties"]["sink_inputs"].get("anyOf", [])
        if alternatives:
            answer["sink_inputs"] = first_instance(alternatives[pick % len(alternatives)])
        return json.dumps(answer)
    if name == "textual_gradient":
        claim = {"target": f"n{pick % 3}", "effect": "neutral", "evidence": f"n{pick % 3} changed little"}
        return json.dumps({"claims": [claim], "summary": f"try node n{pick % 3} next"})
    if name == "probability_update":
        return update(edges=((f"n{pick % 2}", "sink", 0.8),))(prompt)
    return json.dumps(first_instance(schema))


def agent_pool(run_dir: str, *, cache: bool = True, kill_at: int | None = None) -> ModelPool:
    """A fake pool answered by :func:`agent_answer`, caching its calls in ``RUN_DIR.calls.sqlite``."""
    calls = itertools.count(1)

    def respond(model: str, messages: list, kwargs: Mapping[str, Any]) -> str:
        if next(calls) == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return agent_answer(model, messages, kwargs)

    pool, _ = fake_pool(respond, {m: m for m in MODELS}, cache=CallCache(f"{run_dir}.calls.sqlite") if cache else None)
    return pool


def run(
    method: str, run_dir: str, delay_s: float = 0.0, kill_at: int | None = None, **overrides: Any
) -> OptimizationResult:
    pool = agent_pool(run_dir, kill_at=kill_at) if method == "agent-reinforce" else None
    return optimize(
        "gsm8k", pool, BUDGET_UNITS, run_dir=run_dir, evaluator=evaluator(delay_s), **settings(method, **overrides)
    )


if __name__ == "__main__":
    args = sys.argv[1:]
    run(args[0], args[1], float(args[2]) if len(args) > 2 else 0.0, int(args[3]) if len(args) > 3 else None)

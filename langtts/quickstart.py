"""The quick start's main job: a small real Agent-REINFORCE search on the embedded server, end to end.

Sets up and starts the embedded llama.cpp server (or reuses a running one; each model on 2 threads, since the agent
and the workers never run at once here), searches a graph for GSM8K with ``qwen2.5-coder-0.5b`` as the only worker
(the one embedded model clearly above chance on GSM8K that is fast enough on a small CPU: 28 %, 95 % CI [19, 37],
on 100 questions, ``benchmarks/harness_fidelity.py``; ``smollm2-135m`` is at chance) and ``qwen2.5-coder-1.5b`` as
the agent, then compares three graphs on the run's held-out test questions with paired tests (bootstrap CI and exact
McNemar, :func:`langtts.compare.compare`):

- the **chosen graph**;
- the **single best model**: the worker with the best accuracy in a fitting stored ``langtts profile``
  (:func:`langtts.profile.fitting_profile`), else the largest worker;
- **FLOPs-matched self-consistency** of that model: ``self_consistency(best, k)`` with the k ≥ 2 whose modelled
  FLOPs (:func:`langtts.cost.graph_cost`, the run's lengths) are closest to the chosen graph's; the measured FLOPs
  per question of both are reported and flagged when they differ by more than 10 %.

Before any work it prints what the budget affords, which rule picked the single best model, the smallest accuracy
difference its number of held-out questions can detect (:func:`langtts.compare.detectable_difference`) and a time
estimate: seconds per call from the stored profile's measured latency when one fits, else from a short speed probe
of each model (:func:`measure_speed`), times the calls of :func:`plan_calls`. It writes the graph (JSON + picture),
the search curve and the comparison to ``out_dir``. Safe to run twice: builds, weights, the call cache and a
finished run are reused (a different ``n_test`` or task is another run, in its own directory).

**Time arithmetic of the defaults** (2-vCPU machine, build and weights cached; measured on 2026-11-28 with an
empty call cache on an Intel Xeon @ 2.50GHz with AVX-512: 7 min 51 s in all, the search 238 s). Assumed speeds:
``qwen2.5-coder-0.5b`` generates ~25 tok/s on 2 threads and a GSM8K reasoning reply is ~300 tokens → 12 s per worker
call; the 1.5B agent generates ~11 tok/s and writes ≤ 250 tokens per answer → ~23 s per agent call. Prefill is left
out (~1,000 prompt tokens per agent call, ~250–850 per worker call; it adds roughly 10 s per agent call) and so is
batching (concurrent nodes and questions share the server: ~1.5× the throughput of one request, docs/benchmarks.md
§6). Budget 5 units (5 no-input calls of the 0.5B model) → a graph makes at most G = 5 LLM calls, typically 3–4:

- server start and two model loads: ~30 s (before the estimate, not in it);
- pretest without a profile: 3 variants (3, 2, 1 workers) on 1 question each: ≤ 4+3+2 = 9 calls, typically ~7;
- search: 2 rounds × 1 question × G: ≤ 10 calls, typically ~8 (``race_max_questions`` = ``batch_size``: round 2
  races its candidate on the incumbent's question only);
- agent: 2 feedback + 2 update + 2 proposal calls (placement, wiring) = 6 × 23 s = 138 s;
- test: 4 questions × G: ≤ 20 calls, typically ~16;
- comparison: 4 × (single 1 + self-consistency k ≤ G): ≤ 24 calls, typically ~20 (the chosen graph replays from
  the call cache);
- total: at most 63 worker calls × 12 s + 138 s + 30 s ≈ 924 s ≈ 15.4 min; typically 51 × 12 s + 138 s + 30 s ≈
  780 s ≈ 13 min (+ ~1 min of agent prefill, − the batching gain).

Validation is skipped (``validation_size=0``: the choice is the best search estimate) and the agent proposes one graph
(round 2; round 1 samples p_θ): a third round would add ~4 agent calls and G worker calls (~2–3 min). With 4 held-out
questions the comparison detects nothing smaller than ~±100 points: ``n_test`` (``--n-test``) buys power at ~(2G+1)
worker calls, ~2 min, per question (≈ 230 questions for ±10 points at 30 % discordant questions).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langtts import shapes
from langtts.compare import (
    DEFAULT_DISCORDANT_RATE,
    ComparisonResult,
    compare,
    detectable_difference,
    mcnemar_sample_size,
)
from langtts.compile import GenerationSettings, default_settings
from langtts.cost import Budget, ModelCatalog, TaskLengths, graph_cost, largest_model, smallest_model, unit_flops
from langtts.models import CallCache, ModelPool
from langtts.plots import draw_graph, search_curves
from langtts.profile import Profile, fitting_profile
from langtts.search import OptimizationResult, optimize
from langtts.search.records import RunConfig
from langtts.search.run import run_config, search_space
from langtts.serve.embedded import EmbeddedServer
from langtts.tasks import CODE_TASKS, get_task
from langtts.tasks.base import Task
from langtts.tasks.sandbox import SandboxMode

TASK = "gsm8k"
WORKERS: tuple[str, ...] = ("qwen2.5-coder-0.5b",)  # the sink defaults to the largest worker
AGENT_MODEL = "qwen2.5-coder-1.5b"
BUDGET_UNITS = 5.0  # self-consistency with k = 2..5, the single model and a decider over 2 samples (4.2) fit
ITERATIONS = 2
BATCH_SIZE = 1
VALIDATION_SIZE = 0
N_TEST = 4
SERVER_THREADS = 2  # per model: the agent and the workers never generate at the same time in a quick start
CHOSEN = "optimized graph"
REPLY_TOKENS = {"gsm8k": 300, "mmlu": 15}
"""Completion tokens of one worker reply assumed without a profile (``benchmarks/results/harness_fidelity-*.json``:
qwen2.5-coder-0.5b, 100 questions, 299.6 on GSM8K and 13.1 on MMLU); other tasks: 300."""
AGENT_REPLY_TOKENS = 250
"""Completion tokens of one agent answer assumed by the estimate (229 on average in the GSM8K search-efficiency
run: 3,893 tokens in 17 calls)."""
FLOPS_MATCH_TOLERANCE = 0.10


# --- before the work: budget, baselines, plan, speeds ----------------------------------------------------------


def budget_affords(budget: Budget, model: str, catalog: ModelCatalog, lengths: TaskLengths) -> str:
    """What ``budget`` buys in graphs of ``model`` alone: the single model, self-consistency and Self-MoA sizes."""
    unit = unit_flops(catalog.get(model), lengths)

    def largest(shape: Callable[[str, int], Any]) -> int:
        k = 1
        while k < 64 and graph_cost(shape(model, k + 1), catalog, lengths).flops <= budget.flops * (1 + 1e-9):
            k += 1
        return k

    sc, moa = largest(shapes.self_consistency), largest(shapes.self_moa)
    given = f"{budget.units:g} units of {budget.unit_model}, " if budget.units is not None else ""
    parts = [f"the single model ({unit:.3g})", f"self-consistency up to k = {sc} ({sc * unit:.3g})" if sc > 1 else ""]
    if moa > 1:
        moa_flops = graph_cost(shapes.self_moa(model, moa), catalog, lengths).flops
        parts.append(f"a same-model decider over up to {moa} samples ({moa_flops:.3g})")
    return (
        f"budget: {given}{budget.flops:.3g} FLOPs per question (A = {lengths.input_tokens:g}, "
        f"B = {lengths.output_tokens:g} tokens); {model} alone affords {', '.join(p for p in parts if p)} FLOPs"
    )


def best_single_model(
    task: Task, pool: ModelPool, workers: Sequence[str], config: RunConfig
) -> tuple[str, str, Profile | None]:
    """The single best model, the rule that picked it (in words) and the fitting stored profile (None if none):
    the worker with the best stored profile accuracy, else the largest worker."""
    found = fitting_profile(
        task, pool, workers, split=config.split, temperature=config.temperature, max_tokens=config.max_tokens
    )
    if isinstance(found, Profile) and (best := found.best()) is not None:
        return (
            best.model,
            f"best accuracy in the stored profile ({best.accuracy:.1%} on {best.n_scored} questions, measured "
            f"{found.measured_at})",
            found,
        )
    why = found if isinstance(found, str) else "the stored profile determined no accuracy"
    return largest_model(workers, pool.catalog_for(workers)), f"the largest worker ({why})", None


def matched_self_consistency(
    model: str, target_flops: float, catalog: ModelCatalog, lengths: TaskLengths, *, max_k: int = 64
) -> tuple[int, float]:
    """The k ≥ 2 whose ``self_consistency(model, k)`` has the modelled FLOPs closest to ``target_flops`` (ties:
    the smaller k), and those FLOPs."""
    best: tuple[int, float] | None = None
    for k in range(2, max_k + 1):
        flops = graph_cost(shapes.self_consistency(model, k), catalog, lengths).flops
        if best is None or abs(flops - target_flops) < abs(best[1] - target_flops):
            best = (k, flops)
        if flops >= target_flops:
            break
    assert best is not None
    return best


@dataclass(frozen=True)
class QuickstartPlan:
    """The calls a quick start makes at most with nothing cached, phase by phase (see :func:`plan_calls`)."""

    graph_calls: int  # the most LLM calls of one graph within the budget
    pretest_calls: int
    search_calls: int
    validation_calls: int
    test_calls: int
    comparison_calls: int
    agent_calls: int

    @property
    def worker_calls(self) -> int:
        return self.pretest_calls + self.search_calls + self.validation_calls + self.test_calls + self.comparison_calls

    def seconds(self, worker_call_s: float, agent_call_s: float) -> float:
        return self.worker_calls * worker_call_s + self.agent_calls * agent_call_s


def plan_calls(config: RunConfig, task: Task, pool: ModelPool | None, *, profile_decides: bool) -> QuickstartPlan:
    """At most how many calls a quick start of ``config`` makes, nothing cached. A graph makes at most G LLM calls
    (every call costs at least one unit: a no-input call of the smallest worker); the agent answers 2 calls a round
    (feedback, update) and 2 more from round 2 on (placement, wiring), plus 1 to choose among several worker
    multisets; without a profile that ``profile_decides`` its pretest evaluates each variant of the multisets (the
    multiset, then without its weakest model, ...; at most 5 each) on one question; validation re-evaluates at most
    every searched graph; the comparison adds the single model and self-consistency (k ≤ G) per test question (the
    chosen graph replays from the call cache)."""
    space = search_space(config, pool, task)
    units = config.budget.flops / unit_flops(
        space.catalog.get(smallest_model(config.models, space.catalog)), config.lengths
    )
    g = max(1, min(math.floor(units + 1e-9), config.max_nodes + 1))
    multisets = space.multisets()
    variants: list[tuple[str, ...]] = []
    for multiset in multisets[: 1 if len(multisets) == 1 else 2]:
        for j in range(min(5, len(multiset))):
            if multiset[: len(multiset) - j] not in variants:
                variants.append(multiset[: len(multiset) - j])
    pretest = 0 if profile_decides or len(variants) < 2 else sum(min(g, len(v) + 1) for v in variants)
    n_test = config.n_test
    return QuickstartPlan(
        graph_calls=g,
        pretest_calls=pretest,
        search_calls=_search_questions(config) * g,
        validation_calls=config.validation_size * g * config.iterations,
        test_calls=n_test * g,
        comparison_calls=n_test * (1 + g),
        agent_calls=(len(multisets) > 1) + 2 * config.iterations + 2 * (config.iterations - 1),
    )


def _search_questions(config: RunConfig) -> int:
    """At most how many questions the search evaluates: the first round's chunk, then per round the candidate up to
    the race's cap and the incumbent on those it lacks (it holds the first chunk; a graph proposed again may add a
    chunk more)."""
    cap = min(config.race_max_questions or 4 * config.batch_size, config.n_search)
    first = min(config.batch_size, config.n_search)
    return first + (config.iterations - 1) * (2 * cap - first)


def measure_speed(pool: ModelPool, model: str, *, max_tokens: int = 48) -> float:
    """Generated tokens per second of ``model`` as served: one short uncached request (its own latency), after a
    one-token request that loads the model (router servers load models on first use)."""
    nonce = f"{time.time_ns()}"
    tags = {"purpose": "speed-probe"}
    pool.chat(model, [{"role": "user", "content": f"Say OK. ({nonce})"}], max_tokens=1, tags=tags)
    result = pool.chat(
        model,
        [{"role": "user", "content": f"Count from 1 to 100, separated by spaces. ({nonce})"}],
        max_tokens=max_tokens,
        tags=tags,
    )
    return max(result.completion_tokens, 1) / max(result.latency_s, 1e-3)


@dataclass(frozen=True)
class CallSeconds:
    """Seconds per worker call and per agent call, and where they come from."""

    worker: float
    agent: float
    source: str


def call_seconds(
    task: Task, pool: ModelPool, best: str, agent_model: str, config: RunConfig, profile: Profile | None
) -> CallSeconds:
    """From the stored profile's measured latency per question (the best model's; the agent's, scaled to
    :data:`AGENT_REPLY_TOKENS`, when it was profiled too), else from :func:`measure_speed` of the model."""
    sources = []
    if profile is not None:
        worker = profile.model(best).latency_mean_s
        sources.append(f"{best}: {worker:.1f}s per call (stored profile)")
    else:
        speed = measure_speed(pool, best)
        worker = REPLY_TOKENS.get(task.name, 300) / speed
        sources.append(f"{best}: {speed:.1f} tok/s measured × {REPLY_TOKENS.get(task.name, 300)} tokens")
    agent_profile = fitting_profile(
        task, pool, [agent_model], split=config.split, temperature=config.temperature, max_tokens=config.max_tokens
    )
    measured = agent_profile.model(agent_model) if isinstance(agent_profile, Profile) else None
    if measured is not None and measured.completion_tokens_mean > 0:
        agent = measured.latency_mean_s * AGENT_REPLY_TOKENS / measured.completion_tokens_mean
        sources.append(f"agent {agent_model}: {agent:.1f}s per call (stored profile)")
    else:
        speed = measure_speed(pool, agent_model)
        agent = AGENT_REPLY_TOKENS / speed
        sources.append(f"agent {agent_model}: {speed:.1f} tok/s measured × {AGENT_REPLY_TOKENS} tokens")
    return CallSeconds(worker, agent, "; ".join(sources))


def detectable_line(n: int) -> str:
    """What ``n`` held-out questions can detect, in words."""
    delta = detectable_difference(n)
    needed = mcnemar_sample_size(0.10)
    conditions = (
        f"at 80% power (two-sided α = 0.05, McNemar, at least {DEFAULT_DISCORDANT_RATE:.0%} of the questions "
        "discordant; "
        "langtts.compare.detectable_difference)"
    )
    what = (
        f"no difference is detectable {conditions}"
        if delta is None
        else f"only differences of about ±{100 * delta:.0f} points are detectable {conditions}"
    )
    return f"with {n} held-out questions, {what}; ±10 points need about {needed} (--n-test {needed})"


# --- the report --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuickstartReport:
    search: OptimizationResult
    comparison: ComparisonResult
    files: dict[str, Path]
    best_model: str
    best_rule: str
    k: int
    modelled_flops: dict[str, float]  # graph name -> modelled FLOPs per question (the run's lengths)

    @property
    def names(self) -> tuple[str, str, str]:
        """The chosen graph's, the single best model's and self-consistency's names in the comparison."""
        chosen, single, sc = self.comparison.results
        return chosen, single, sc

    def measured_flops(self, name: str) -> float:
        result = self.comparison.results[name]
        return result.flops / max(result.n, 1)

    def flops_mismatch(self) -> float:
        """Relative difference of the measured FLOPs per question of self-consistency and the chosen graph."""
        chosen, _, sc = self.names
        return abs(self.measured_flops(sc) - self.measured_flops(chosen)) / max(self.measured_flops(chosen), 1.0)

    def summary(self) -> str:
        chosen, _, sc = self.names
        n = len(self.comparison.question_ids)
        lines = [self.search.summary(), "", f"held-out comparison on {n} questions (the run's test split):"]
        width = max(map(len, self.comparison.results))
        for name, result in self.comparison.results.items():
            lines.append(
                f"  {name:<{width}}  accuracy {result.accuracy:6.1%}"
                f"  (95% CI {result.ci_low:.1%} – {result.ci_high:.1%})"
                f"  FLOPs/q modelled {self.modelled_flops[name]:.3g}, measured {self.measured_flops(name):.3g}"
                f"  latency p50 {result.latency_p50_s:.1f}s"
            )
        lines.append(f"  single best model {self.best_model}: {self.best_rule}")
        mismatch = self.flops_mismatch()
        lines.append(
            f"  self-consistency k = {self.k}: the modelled FLOPs closest to the chosen graph's "
            f"({self.modelled_flops[sc]:.3g} vs {self.modelled_flops[chosen]:.3g} per question); measured "
            f"{self.measured_flops(sc):.3g} vs {self.measured_flops(chosen):.3g}"
            + (f" — they differ by {mismatch:.0%} (> 10%): not FLOPs-matched as measured" if mismatch > 0.1 else "")
        )
        for name, c in self.comparison.comparisons.items():  # c.difference = accuracy(name) − accuracy(chosen)
            left = f" ({c.undetermined} questions left out: errors)" if c.undetermined else ""
            lines.append(
                f"  {chosen} − {name}: {0.0 - c.difference + 0.0:+.1%} (95% CI {0.0 - c.ci_high + 0.0:+.1%} – "
                f"{0.0 - c.ci_low + 0.0:+.1%}), "
                f"McNemar p = {c.p_value:.3g}, discordant {c.only_b} vs {c.only_a} of {c.n}{left}"
            )
        lines.append(f"  {detectable_line(n)}")
        lines += ["", "files:"] + [f"  {name}: {path}" for name, path in self.files.items()]
        return "\n".join(lines)


# --- the run -----------------------------------------------------------------------------------------------------


def run_quickstart(
    out_dir: str | Path = "langtts-quickstart",
    *,
    task: str = TASK,
    budget_units: float = BUDGET_UNITS,
    iterations: int = ITERATIONS,
    batch_size: int = BATCH_SIZE,
    validation_size: int = VALIDATION_SIZE,
    n_test: int = N_TEST,
    max_tokens: int | None = None,
    workers: Sequence[str] = WORKERS,
    agent_model: str = AGENT_MODEL,
    seed: int = 0,
    report: Callable[[str], None] | None = None,
    sandbox: SandboxMode = "auto",
    pool: ModelPool | None = None,
) -> QuickstartReport:
    """Run the quick start (see the module docstring) and return what it measured and wrote; `sandbox`
    (``"auto"`` or ``"strict"``) is how a code task runs model-written code (see :func:`select_backend`); `pool`:
    an open model pool serving ``workers`` and ``agent_model`` instead of the embedded server."""
    say = report or (lambda line: print(line, file=sys.stderr, flush=True))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    the_task = get_task(task, **({"sandbox": sandbox} if task in CODE_TASKS else {}))  # strict fails here
    given = {
        "budget_units": budget_units, "iterations": iterations, "batch_size": batch_size,
        "validation_size": validation_size, "n_test": n_test, "max_tokens": max_tokens, "workers": list(workers),
        "agent_model": agent_model, "seed": seed,
    }  # fmt: skip
    if pool is not None:
        return _run(out, the_task, pool, given, say)
    server = EmbeddedServer(tuple(dict.fromkeys([*workers, agent_model])), progress=say, threads=SERVER_THREADS)
    info = server.start()
    try:
        with ModelPool.from_file(info.pool_file, cache=CallCache.default()) as served:
            return _run(out, the_task, served, given, say)
    finally:
        if not info.reused:
            server.stop()


def _run(out: Path, task: Task, pool: ModelPool, given: dict[str, Any], say: Callable[[str], None]) -> QuickstartReport:
    workers, agent_model, n_test = list(given["workers"]), given["agent_model"], given["n_test"]
    options: dict[str, Any] = {
        "method": "agent-reinforce",
        "method_options": {"agent_model": agent_model},
        "models": workers,
        "iterations": given["iterations"],
        "batch_size": given["batch_size"],
        "race_max_questions": given["batch_size"],  # one chunk a round: the time estimate holds
        "top_k": 1,
        "validation_size": given["validation_size"],
        "n_test": n_test,
        "max_tokens": given["max_tokens"],
        "seed": given["seed"],
    }
    config = run_config(task, pool, given["budget_units"], **options)
    catalog = pool.catalog_for([*workers, agent_model])
    best, rule, profile = best_single_model(task, pool, workers, config)
    say(budget_affords(config.budget, best, catalog, config.lengths))
    say(f"single best model: {best}, {rule}")
    plan = plan_calls(config, task, pool, profile_decides=profile is not None)
    seconds = call_seconds(task, pool, best, agent_model, config, profile)
    estimate = plan.seconds(seconds.worker, seconds.agent)
    say(
        f"time estimate: at most about {estimate / 60:.0f} min from here ({plan.worker_calls} worker calls × "
        f"{seconds.worker:.1f}s + {plan.agent_calls} agent calls × {seconds.agent:.1f}s; graphs at their "
        f"{plan.graph_calls}-call budget, nothing cached, no batching; {seconds.source})"
    )
    say(detectable_line(n_test))
    default_run = (task.name, n_test) == (TASK, N_TEST)
    run_dir = out / ("run" if default_run else f"run-{task.name}-n{n_test}")
    search = optimize(task, pool, given["budget_units"], run_dir=run_dir, progress=say, **options)
    assert search.test is not None
    chosen = search.graph
    lengths = search.config.lengths
    modelled_chosen = graph_cost(chosen, catalog, lengths).flops
    k, modelled_sc = matched_self_consistency(best, modelled_chosen, catalog, lengths)
    single_name, sc_name = f"single {best}", f"self-consistency {best} k={k}"
    graphs = {CHOSEN: chosen, single_name: shapes.single(best), sc_name: shapes.self_consistency(best, k)}
    modelled = {
        CHOSEN: modelled_chosen,
        single_name: graph_cost(graphs[single_name], catalog, lengths).flops,
        sc_name: modelled_sc,
    }
    held_out = set(search.test.outcome.question_ids)
    examples = [ex for ex in task.load(search.config.split) if ex.id in held_out]
    say(f"comparing {', '.join(graphs)} on the {len(examples)} held-out questions")
    defaults = default_settings(task.family)
    settings = GenerationSettings(  # the search's own settings: the chosen graph's test calls replay from the cache
        temperature=search.config.temperature,
        max_tokens=search.config.max_tokens or defaults.max_tokens,
        seed=defaults.seed,
    )
    comparison = compare(
        graphs, task, pool, examples=examples, settings=settings, concurrency=search.config.concurrency, progress=False
    )
    comparison.raise_for_call_failures()  # a server down: fail, not an accuracy
    files = {
        "graph": out / "graph.json",
        "picture": out / "graph.png",
        "search curve": out / "search_curve.png",
        "comparison": out / "comparison.json",
    }
    chosen.save(files["graph"])
    draw_graph(chosen, files["picture"], catalog=pool.catalog_for(chosen), title="optimized graph")
    if search.curve:  # a result written before search curves were recorded has none
        search_curves({"agent-reinforce": search.curve}, files["search curve"], title="agent-reinforce: best so far")
    else:
        del files["search curve"]
        say("no search curve: the run's result has no curve points (written by an older langtts)")
    comparison.save(files["comparison"])
    return QuickstartReport(
        search=search,
        comparison=comparison,
        files=files,
        best_model=best,
        best_rule=rule,
        k=k,
        modelled_flops=modelled,
    )

"""Search efficiency at equal cost: every method with the same total FLOPs (evaluation + optimizer), scored on one
fixed held-out set.

Methods: agent-reinforce, textgrad and maas (agent-reinforce's variants ``textgrad`` and ``maas``), reinforce,
random and bayes; fixed references: the single best model and self-consistency at the budget. Default task GSM8K,
seeds 0, 1, 2, vote nodes available (the extended search space of new runs).

Equal cost. Every (method, seed) run gets the same ``--flops``, the FLOPs of its LLM calls summed over the
evaluations and the optimizer's own calls (the run option ``max_flops``), with a round cap (``iterations``) far
above what that buys, so FLOPs is the binding stop. The default ``--flops`` is the cost of ``--evaluations``
(default 10) search evaluations of a graph at the budget: evaluations × batch size × budget FLOPs per question.

Questions. ``--n-heldout`` (100) questions are drawn once from the task's split with a fixed seed and shared by
every seed and method; the searches draw their questions (``n_test=0``) from the rest of the split only (a
``search`` split of the task without them), so no search sees a held-out question and the seeds vary only the
search. Each distinct chosen graph (fingerprint) is evaluated on the held-out set once.

References, on the same held-out set: the single best model (the best worker of a stored ``langtts profile`` of
these models on the task, else the largest worker: the library's rule, ``langtts.quickstart.best_single_model``;
the results say which applied) and self-consistency of that model with the largest k within the budget.

Reported, per method, per seed and pooled over seeds: evaluation and optimizer LLM calls and FLOPs, wall time
(the optimizer's included), ``agent_wall_share`` (the optimizer LLM's share of the search's wall time; null for
methods without one), the share of prompt tokens the server answered from its prompt cache, the stop reason, an LLM
optimizer's proposals by status (valid, repaired, fallback), the chosen graph, its held-out n and accuracy with 95%
CI; paired tests (bootstrap CI of the difference, exact McNemar) of every method against agent-reinforce and
against each reference, per seed and pooled over seeds (the pooled pairs are seeds × held-out questions; a
reference's answers repeat in each seed); a verdict on whether Agent-REINFORCE beats reinforce and random at equal
cost, with where its cost goes; and the best-so-far curves of seed 0 against LLM calls, total FLOPs and wall time
(``langtts.plots.search_curves``, the PNG next to the JSON).

Each run has its own run directory under ``--work-dir`` and its own call cache there (one method's calls never
answer another's from the cache, so cost and wall time are each run's own); the held-out evaluations share
``WORK_DIR/heldout-calls.sqlite``. Run the script again after an interruption: finished runs are read back,
unfinished ones resumed, held-out answers replayed. A time estimate (a speed probe of the smallest worker) is
printed before any search starts.

    python benchmarks/search_efficiency.py --pool /tmp/bench-srv/pool.yaml       # full size (its estimate first)
    python benchmarks/search_efficiency.py --pool ... --methods random --seeds 0  # a part: same work dir, resumable
    python benchmarks/search_efficiency.py --pool ... --smoke                    # minutes
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from common import default_out, header, say, write_json

from langtts import shapes
from langtts.compare import paired_comparison
from langtts.compile import GenerationSettings, default_settings
from langtts.cost import graph_cost, smallest_model
from langtts.evaluation import EvaluationResult, evaluate
from langtts.graph import CollaborationGraph
from langtts.models import CallCache, ModelPool, Usage
from langtts.plots import search_curves
from langtts.profile import wilson_interval
from langtts.quickstart import best_single_model, measure_speed
from langtts.search import OptimizationResult, optimize
from langtts.search.records import RunConfig
from langtts.search.run import options_in, run_config
from langtts.tasks import Example, Task, get_task
from langtts.tasks.splits import search_test_split

METHODS = ("agent-reinforce", "textgrad", "maas", "reinforce", "random", "bayes")
AGENT_VARIANTS: dict[str, dict[str, Any]] = {
    "agent-reinforce": {},
    "textgrad": {"variant": "textgrad"},
    "maas": {"variant": "maas"},
}
REFERENCE_METHOD = "agent-reinforce"
BASELINES = ("reinforce", "random")  # the verdict: does agent-reinforce beat these at equal cost?
HELDOUT_SEED = 20_260_101  # the held-out draw; fixed, whatever the seeds of the searches
SEARCH_SPLIT, HELDOUT_SPLIT = "search", "heldout"
ROUND_CAP_FACTOR = 4  # the round cap: 4 × the rounds --flops buys at most (see run_options); no method reads it


# --- questions ------------------------------------------------------------------------------------------------


def held_out_ids(task: Task, split: str | None, n: int) -> list[str]:
    """``n`` question ids of ``split`` drawn with :data:`HELDOUT_SEED` (the same ids for every seed and method)."""
    _, held = search_test_split(task.load(split), 0, n, seed=HELDOUT_SEED, test_first=True)
    return [ex.id for ex in held]


def with_held_out_split(task: Task, held_out: Collection[str], split: str | None) -> Task:
    """``task`` with two more splits of ``split``: ``heldout`` (the questions ``held_out``) and ``search`` (the rest).

    The runs search on ``search``; their config names the task and ``split="search"``, which the plain task does
    not have, so only this script (which passes this task again) can resume them: ``langtts resume`` refuses."""
    base = type(task)
    held, source = frozenset(held_out), split or task.default_split

    class HeldOutSplit(base):  # type: ignore[valid-type, misc]
        splits = (*base.splits, SEARCH_SPLIT, HELDOUT_SPLIT)

        def _load(self, name: str) -> list[Example]:
            if name not in (SEARCH_SPLIT, HELDOUT_SPLIT):
                return super()._load(name)
            return [ex for ex in super()._load(source) if (ex.id in held) == (name == HELDOUT_SPLIT)]

    copy = object.__new__(HeldOutSplit)
    copy.__dict__.update(task.__dict__)
    return copy


# --- the runs -------------------------------------------------------------------------------------------------


def run_options(args: argparse.Namespace, config: RunConfig) -> dict[str, Any]:
    """The options shared by every run: the search split, no test questions, and the equal-cost stop
    (``max_flops``). The round cap (``iterations``) sits far above what ``--flops`` buys: a round evaluates at least
    one graph of about a unit (the smallest worker alone) or more on ``batch_size`` questions, so ``--flops`` buys
    at most about ``--flops`` / (batch size × unit) rounds; the cap is 4 times that (replies shorter than the
    task lengths make a unit cheaper than modelled)."""
    unit = config.budget.flops / (config.budget.units or 1.0)  # a no-input call of the smallest worker
    cap = ROUND_CAP_FACTOR * math.ceil(args.flops / (config.batch_size * unit))
    return {
        "split": SEARCH_SPLIT, "n_test": 0, **options_in(vars(args)), "iterations": max(cap, 1),
        "max_flops": args.flops,
    }  # fmt: skip


def default_flops(args: argparse.Namespace, config: RunConfig) -> float:
    """``--evaluations`` search evaluations of a graph at the budget: evaluations × batch size × budget FLOPs."""
    return args.evaluations * config.batch_size * config.budget.flops


def run_method(
    name: str, seed: int, task: Task, args: argparse.Namespace, options: dict[str, Any]
) -> OptimizationResult:
    """One (method, seed) run in its own directory with its own call cache; a finished run is read back."""
    method = "agent-reinforce" if name in AGENT_VARIANTS else name
    method_options: dict[str, Any] = dict(AGENT_VARIANTS.get(name, {}))
    if method == "agent-reinforce" and args.agent_model:
        method_options["agent_model"] = args.agent_model
    run_dir = Path(args.work_dir) / f"{name}-seed{seed}"
    run_dir.mkdir(parents=True, exist_ok=True)
    with ModelPool.from_file(args.pool, cache=CallCache(run_dir / "calls.sqlite")) as pool:
        return optimize(
            task, pool, args.budget, method=method, method_options=method_options, seed=seed, run_dir=run_dir,
            progress=say, **options,
        )  # fmt: skip


def is_finished(run_dir: Path) -> bool:
    return (run_dir / "result.json").is_file()


# --- held-out evaluation ----------------------------------------------------------------------------------------


class HeldOut:
    """Evaluates graphs on the fixed held-out questions, each distinct graph (fingerprint) once."""

    def __init__(self, task: Task, pool: ModelPool, examples: Sequence[Example], settings: GenerationSettings):
        self.task, self.pool, self.examples, self.settings = task, pool, list(examples), settings
        self.results: dict[str, EvaluationResult] = {}

    def evaluate(self, graph: CollaborationGraph) -> EvaluationResult:
        key = graph.fingerprint()
        if key not in self.results:
            self.results[key] = evaluate(
                graph, self.task, self.pool, examples=self.examples, settings=self.settings, errors_as_wrong=True,
                progress=False, keep_traces=False,
            )  # fmt: skip
        return self.results[key]


def correct_flags(result: EvaluationResult) -> list[bool]:
    return [bool(r.correct) for r in result.records]


def accuracy_record(flags: Sequence[bool]) -> dict[str, Any]:
    n, k = len(flags), sum(flags)
    low, high = wilson_interval(k, n) if n else (None, None)
    return {"n": n, "accuracy": k / n if n else None, "ci_low": low, "ci_high": high}


# --- what is reported -----------------------------------------------------------------------------------------


def cost_record(usage_eval: Usage, usage_opt: Usage) -> dict[str, Any]:
    total = usage_eval + usage_opt
    return {
        "evaluation_calls": usage_eval.calls,
        "optimizer_calls": usage_opt.calls,
        "evaluation_flops": usage_eval.flops,
        "optimizer_flops": usage_opt.flops,
        "total_flops": total.flops,
        "optimizer_flops_share": usage_opt.flops / total.flops if total.flops else None,
        "evaluation_cache_hits": usage_eval.hits,
        "cached_prompt_share": total.cached_prompt_share,
    }


def seed_record(result: OptimizationResult, heldout: EvaluationResult) -> dict[str, Any]:
    search_wall = result.curve[-1].wall_time_s if result.curve else None
    return {
        "seed": result.config.seed,
        "run_dir": result.run_dir,
        "stop_reason": result.stop_reason,
        "rounds": result.rounds,
        "search_evaluations": sum(e.phase == "search" for e in result.ledger),
        **cost_record(result.evaluation_cost, result.optimizer_cost),
        "wall_time_s": result.wall_time_s,
        "search_wall_s": search_wall,
        "optimizer_wall_s": result.optimizer_wall_s,
        "agent_wall_share": result.agent_wall_share,
        "chosen": result.chosen.fingerprint,
        "chosen_modelled_flops": result.chosen.modelled_flops,
        "chosen_search_score": result.chosen.search_score,
        "best_so_far": [p.best_score for p in result.curve],
        "curve": [p.model_dump() for p in result.curve],
        "heldout": accuracy_record(correct_flags(heldout)) | {"errors": heldout.n_errors},
        **proposal_record(result.method_report),
    }


def proposal_record(report: dict[str, Any]) -> dict[str, Any]:
    """An LLM optimizer's proposals by status and the share valid without repair or fallback, of the rounds it
    proposed in (the run's result.json holds its whole report)."""
    proposals = report.get("proposals")
    if not isinstance(proposals, dict):
        return {"proposals": None, "valid_proposal_share": None}
    rounds = sum(proposals.values()) - proposals.get("sampled", 0)
    return {"proposals": proposals, "valid_proposal_share": proposals.get("valid", 0) / rounds if rounds else None}


def method_record(name: str, seeds: list[dict[str, Any]], flags: list[bool]) -> dict[str, Any]:
    """Per seed and pooled: sums over seeds of calls, FLOPs and wall time; held-out answers of every seed."""

    def total(key: str) -> float:
        return sum(s[key] for s in seeds)

    search_wall = [s["search_wall_s"] or 0.0 for s in seeds]
    optimizer_wall = total("optimizer_wall_s")
    has_agent = any(s["agent_wall_share"] is not None for s in seeds)
    return {
        "method": name,
        "seeds": seeds,
        "pooled": {
            "runs": len(seeds),
            **{key: total(key) for key in ("evaluation_calls", "optimizer_calls", "evaluation_flops")},
            "optimizer_flops": total("optimizer_flops"),
            "total_flops": total("total_flops"),
            "wall_time_s": total("wall_time_s"),
            "optimizer_wall_s": optimizer_wall,
            "agent_wall_share": optimizer_wall / sum(search_wall) if has_agent and sum(search_wall) > 0 else None,
            "heldout": accuracy_record(flags),
            "distinct_chosen_graphs": len({s["chosen"] for s in seeds}),
        },
        "mean_heldout_accuracy": statistics.fmean(s["heldout"]["accuracy"] for s in seeds) if seeds else None,
    }


def comparisons_against(correct: dict[str, list[bool]], reference: str) -> dict[str, Any]:
    """Every other entry against ``reference`` on the same questions (difference = other − reference)."""
    return {
        "reference": reference,
        "n": len(correct[reference]),
        "against": {
            name: paired_comparison(values, correct[reference]).model_dump()
            for name, values in correct.items()
            if name != reference
        },
    }


def verdict(pooled: dict[str, Any], records: dict[str, Any], basis: str = "cost") -> dict[str, Any] | None:
    """Does agent-reinforce beat reinforce and random at equal ``basis`` (pooled paired test: the 95% CI of
    agent-reinforce − baseline above 0 and McNemar p < 0.05)? And where its cost goes."""
    if REFERENCE_METHOD not in records:
        return None
    against = pooled[REFERENCE_METHOD]["against"]
    lines, beats = [], {}
    for baseline in BASELINES:
        if baseline not in against:
            continue
        c = against[baseline]  # baseline − agent-reinforce
        beats[baseline] = c["ci_high"] < 0 and c["p_value"] < 0.05
        word = "beats" if beats[baseline] else "does not beat"
        lines.append(
            f"agent-reinforce {word} {baseline} at equal {basis}: "
            f"{baseline} − agent-reinforce = {c['difference']:+.1%} (95% CI {c['ci_low']:+.1%} … "
            f"{c['ci_high']:+.1%}, McNemar p = {c['p_value']:.3g}, n = {c['n']})"
        )
    agent = records[REFERENCE_METHOD]["pooled"]
    share = agent["optimizer_flops"] / agent["total_flops"] if agent["total_flops"] else 0.0
    wall = agent["agent_wall_share"]
    lines.append(
        f"agent-reinforce's cost: {agent['optimizer_calls']} agent calls ({share:.0%} of its FLOPs), "
        f"{agent['evaluation_calls']} evaluation calls"
        + (f"; the agent took {wall:.0%} of the search's wall time" if wall is not None else "")
    )
    return {"beats": beats, "text": lines}


# --- time estimate --------------------------------------------------------------------------------------------


def estimate(args: argparse.Namespace, config: RunConfig, runs_left: int, speed: float) -> tuple[float, str]:
    """An upper bound of the seconds left, serial: the FLOPs of the runs not finished, plus the held-out
    evaluations (at most one graph per run and the two references, each at the budget), at the smallest worker's
    measured decode speed for a unit (its output tokens; prefill ignored)."""
    unit = config.budget.flops / (config.budget.units or 1.0)
    held_out_flops = (len(args.methods) * len(args.seeds) + 2) * args.n_heldout * config.budget.flops
    units = (runs_left * args.flops + held_out_flops) / unit
    seconds = units * config.lengths.output_tokens / speed
    return seconds, (
        f"{runs_left} run(s) of {args.flops:.3g} FLOPs and at most {len(args.methods) * len(args.seeds) + 2} "
        f"held-out evaluations of {args.n_heldout} questions: {units:.0f} units of the smallest worker at "
        f"{config.lengths.output_tokens:g} tokens / {speed:.1f} tok/s"
    )


# --- main -----------------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", required=True, help="pool file of a running server (langtts serve)")
    parser.add_argument("--task", default="gsm8k")
    parser.add_argument("--task-split", default=None, help="the split held-out and search questions come from")
    parser.add_argument("--budget", type=float, default=12.0, help="FLOPs per question, in units of the smallest model")
    parser.add_argument(
        "--models", type=lambda text: text.split(","), help="comma-separated worker models (default: the whole pool)"
    )
    parser.add_argument("--agent-model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--methods", type=lambda text: [m for m in text.split(",") if m], default=list(METHODS))
    parser.add_argument("--seeds", type=lambda text: [int(s) for s in text.split(",") if s], default=[0, 1, 2])
    parser.add_argument(
        "--evaluations", type=int, default=10,
        help="the default --flops: this many search evaluations of a graph at the budget",
    )  # fmt: skip
    parser.add_argument("--flops", type=float, help="total FLOPs per run, evaluation + optimizer (equal for all)")
    parser.add_argument("--n-heldout", type=int, default=100, help="held-out questions shared by every run")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--validation-size", type=int, default=12)
    parser.add_argument("--max-tokens", type=int, help="max tokens per node (default: per task family)")
    parser.add_argument("--concurrency", type=int, help="questions in flight (default: the run default)")
    parser.add_argument("--work-dir", default="runs/search_efficiency")
    parser.add_argument("--smoke", action="store_true", help="1 seed, 2 evaluations' FLOPs, tiny sizes")
    parser.add_argument("--out", type=Path, default=default_out("search_efficiency"))
    args = parser.parse_args()
    if unknown := [m for m in args.methods if m not in METHODS]:
        parser.error(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    if args.smoke:
        args.evaluations, args.batch_size, args.top_k, args.validation_size = 2, 1, 1, 1
        args.n_heldout, args.max_tokens = 3, 24
        if args.seeds == [0, 1, 2]:
            args.seeds = [0]
    return args


def main() -> None:
    args = parse_args()
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    plain = get_task(args.task)
    held_ids = held_out_ids(plain, args.task_split, args.n_heldout)
    task = with_held_out_split(plain, held_ids, args.task_split)
    with ModelPool.from_file(args.pool, cache=CallCache(work / "heldout-calls.sqlite")) as pool:
        probe = run_config(task, pool, args.budget, split=SEARCH_SPLIT, n_test=0, **options_in(vars(args)))
        flops_rule = "given (--flops)"
        if args.flops is None:
            args.flops = default_flops(args, probe)
            flops_rule = (
                f"{args.evaluations} search evaluations of a graph at the budget: {args.evaluations} × "
                f"{probe.batch_size} questions × {probe.budget.flops:.3g} FLOPs"
            )
        say(f"budget {args.budget:g} units = {probe.budget.flops:.3g} FLOPs per question; per run {args.flops:.3g} "
            f"FLOPs ({flops_rule})")  # fmt: skip
        names = [(m, s) for m in args.methods for s in args.seeds]
        left = sum(not is_finished(work / f"{m}-seed{s}") for m, s in names)
        smallest = smallest_model(probe.models, pool.catalog_for(probe.models))
        speed = measure_speed(pool, smallest)
        seconds, how = estimate(args, probe, left, speed)
        say(f"estimated time with an empty cache: at most about {seconds / 3600:.1f} h ({how}); "
            f"{len(names) - left} of {len(names)} runs already finished in {work}")  # fmt: skip

        options = run_options(args, probe)
        results = {m: [run_method(m, s, task, args, options) for s in args.seeds] for m in args.methods}

        defaults = default_settings(task.family)
        settings = GenerationSettings(
            temperature=probe.temperature, max_tokens=probe.max_tokens or defaults.max_tokens, seed=defaults.seed
        )
        heldout = HeldOut(task, pool, task.load(HELDOUT_SPLIT), settings)
        say(f"held-out: {len(heldout.examples)} questions; evaluating each distinct chosen graph once")
        rule_config = probe.model_copy(update={"split": args.task_split})
        best, rule, _ = best_single_model(plain, pool, probe.models, rule_config)
        catalog = pool.catalog_for()
        k = 1
        while k < 64 and graph_cost(shapes.self_consistency(best, k + 1), catalog, probe.lengths).flops <= (
            probe.budget.flops * (1 + 1e-9)
        ):
            k += 1
        references: dict[str, CollaborationGraph] = {f"single {best}": shapes.single(best)}
        if k >= 2:
            references[f"self-consistency {best} k={k}"] = shapes.self_consistency(best, k)
        reference_results = {name: heldout.evaluate(graph) for name, graph in references.items()}

        records: dict[str, Any] = {}
        per_seed: dict[int, dict[str, list[bool]]] = {s: {} for s in args.seeds}
        pooled: dict[str, list[bool]] = {}
        for name, runs in results.items():
            seeds = []
            for run in runs:
                evaluation = heldout.evaluate(run.graph)
                seeds.append(seed_record(run, evaluation))
                per_seed[run.config.seed][name] = correct_flags(evaluation)
                pooled.setdefault(name, []).extend(correct_flags(evaluation))
            records[name] = method_record(name, seeds, pooled[name])
        for name, result in reference_results.items():
            for s in args.seeds:
                per_seed[s][name] = correct_flags(result)
                pooled.setdefault(name, []).extend(correct_flags(result))
        graphs_evaluated = len(heldout.results)

    first = REFERENCE_METHOD if REFERENCE_METHOD in results else args.methods[0]
    against = [first, *references]
    comparisons: dict[str, Any] = {
        f"seed{s}": {ref: comparisons_against(correct, ref) for ref in against} for s, correct in per_seed.items()
    }
    comparisons["pooled"] = {ref: comparisons_against(pooled, ref) for ref in against}
    report = header("search_efficiency") | {
        "settings": {k: v for k, v in vars(args).items() if k != "out"}
        | {
            "equal_cost": "flops",
            "flops_per_run": args.flops,
            "flops_rule": flops_rule,
            "budget_flops_per_question": probe.budget.flops,
            "run_options": options,
            "round_cap": options["iterations"],
        },
        "time_estimate_s": seconds,
        "heldout": {"n": len(held_ids), "seed": HELDOUT_SEED, "split": args.task_split, "ids": held_ids},
        "references": {
            name: {"graph": graph.to_dict(), **accuracy_record(correct_flags(reference_results[name]))}
            for name, graph in references.items()
        }
        | {"single_best_rule": rule},
        "graphs_evaluated_on_heldout": graphs_evaluated,
        "methods": records,
        "comparisons": comparisons,
        "verdict": verdict(comparisons["pooled"], records, "total FLOPs"),
    }
    plot = args.out.with_suffix(".png")
    curves = {name: runs[0].curve for name, runs in results.items()}
    try:
        search_curves(curves, plot, title=f"{args.task}: best so far at equal total FLOPs (seed {args.seeds[0]})")
        report["plot"] = str(plot)
    except ValueError as error:  # runs of a langtts that records no curves
        report["plot"] = None
        say(f"no plot: {error}")
    write_json(args.out, report)
    for name, record in records.items():
        p = record["pooled"]
        share = p["agent_wall_share"]
        say(
            f"{name:<16} held-out {p['heldout']['accuracy']:.1%} (n = {p['heldout']['n']}), "
            f"{p['evaluation_calls']} + {p['optimizer_calls']} calls, {p['total_flops']:.3g} FLOPs, "
            f"{p['wall_time_s']:.0f} s" + (f", agent {share:.0%} of the wall time" if share is not None else "")
        )
    for name in references:
        say(f"{name}: held-out {report['references'][name]['accuracy']:.1%} (n = {args.n_heldout})")
    say(f"single best model: {rule}")
    for line in (report["verdict"] or {}).get("text", []):
        say(line)
    say(f"wrote {args.out}" + (f" and {plot}" if report["plot"] else ""))


if __name__ == "__main__":
    main()

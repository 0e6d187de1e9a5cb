"""Search efficiency (the paper's headline): every method at an equal number of graph evaluations.

Each (method, seed) is one ``optimize()`` run in its own run directory under ``--work-dir``, all with the same
task, budget, pool, search questions (the split depends only on the seed) and call cache — so the script is
resumable: run it again after an interruption and finished runs are read back, unfinished ones resumed.
Afterwards the chosen graphs and the single-model baselines are evaluated on the same held-out questions and
compared with paired tests (bootstrap CI, exact McNemar) against Agent-REINFORCE, per seed and pooled over seeds
(each seed's held-out questions paired within that seed).

Reported per method: held-out accuracy of the chosen graph with its CI (per seed), best-so-far curves (vs
evaluations and vs wall time, plotted), evaluation cost and optimizer-LLM cost separately, and for the agent the
share of rounds whose proposal was valid without repair or fallback.

    python benchmarks/search_efficiency.py --pool /tmp/bench-srv/pool.yaml            # full size: hours on CPU
    python benchmarks/search_efficiency.py --pool ... --smoke                          # minutes
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from common import default_out, header, say, write_json

from langtts import shapes
from langtts.compare import paired_comparison
from langtts.compile import GenerationSettings, default_settings
from langtts.evaluation import evaluate
from langtts.models import CallCache, ModelPool
from langtts.plots import search_curves
from langtts.search import OptimizationResult, optimize
from langtts.search.run import options_in
from langtts.tasks import get_task

METHODS = ("agent-reinforce", "textgrad", "reinforce", "random", "bayes", "grid")
AGENT_VARIANTS = {"agent-reinforce": {}, "textgrad": {"variant": "textgrad"}}


def run_method(name: str, seed: int, pool: ModelPool, args: argparse.Namespace) -> OptimizationResult:
    method = "agent-reinforce" if name in AGENT_VARIANTS else name
    options: dict[str, Any] = dict(AGENT_VARIANTS.get(name, {}))
    if method == "agent-reinforce" and args.agent_model:
        options["agent_model"] = args.agent_model
    return optimize(
        args.task,
        pool,
        args.budget,
        method=method,
        method_options=options,
        iterations=args.evaluations,
        max_evaluations=args.evaluations,
        seed=seed,
        run_dir=Path(args.work_dir) / f"{name}-seed{seed}",
        progress=say,
        **options_in(vars(args)),  # models, batch_size, top_k, validation_size, n_test, max_tokens
    )


def summarise(name: str, runs: list[OptimizationResult]) -> dict[str, Any]:
    tests = [r.test.outcome for r in runs if r.test is not None]
    reports = [r.method_report for r in runs]
    proposals = [rep.get("proposals", {}) for rep in reports if "proposals" in rep]
    rounds = sum(sum(p.values()) - p.get("sampled", 0) for p in proposals)  # rounds the agent proposed in
    return {
        "method": name,
        "seeds": [r.config.seed for r in runs],
        "test_accuracy": [t.accuracy for t in tests],
        "test_ci": [[t.ci_low, t.ci_high] for t in tests],
        "mean_test_accuracy": statistics.fmean(t.accuracy for t in tests) if tests else None,
        "chosen": [r.chosen.fingerprint for r in runs],
        "chosen_flops": [r.chosen.modelled_flops for r in runs],
        "evaluation_cost": [r.evaluation_cost.model_dump() for r in runs],
        "optimizer_cost": [r.optimizer_cost.model_dump() for r in runs],
        "wall_time_s": [r.wall_time_s for r in runs],
        "best_so_far": [_best_so_far(r) for r in runs],
        "valid_proposal_share": (sum(p.get("valid", 0) for p in proposals) / rounds) if rounds else None,
        "proposal_statuses": proposals or None,
    }


def compare_to_reference(correct: dict[str, list[bool]], reference: str) -> dict[str, Any]:
    """Paired comparison of every entry against ``reference`` on the same questions, plus each accuracy."""
    return {
        name: paired_comparison(values, correct[reference]).model_dump()
        for name, values in correct.items()
        if name != reference
    } | {
        "reference": reference,
        "n": len(correct[reference]),
        "accuracy": {n: statistics.fmean(v) for n, v in correct.items()},
    }


def _best_so_far(result: OptimizationResult) -> list[float]:
    best, curve = float("-inf"), []
    for e in result.ledger:
        if e.phase == "search":
            best = max(best, e.score)
            curve.append(best)
    return curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", required=True, help="pool file of a running server (langtts serve)")
    parser.add_argument("--task", default="mmlu")
    parser.add_argument("--budget", type=float, default=12.0, help="units of the smallest model")
    parser.add_argument(
        "--models", type=lambda text: text.split(","), help="comma-separated worker models (default: the whole pool)"
    )
    parser.add_argument("--agent-model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--evaluations", type=int, default=10, help="search evaluations per run (equal for all)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--validation-size", type=int, default=12)
    parser.add_argument("--n-test", type=int, default=40)
    parser.add_argument("--max-tokens", type=int, help="max tokens per node (default: per task family)")
    parser.add_argument("--work-dir", default="runs/search_efficiency")
    parser.add_argument("--cache", default=None, help="call cache file (default: WORK_DIR/calls.sqlite)")
    parser.add_argument("--smoke", action="store_true", help="2 evaluations, 1 seed, tiny sizes")
    parser.add_argument("--out", type=Path, default=default_out("search_efficiency"))
    args = parser.parse_args()
    if args.smoke:
        args.seeds, args.evaluations, args.batch_size, args.top_k = 1, 2, 1, 1
        args.validation_size, args.n_test, args.max_tokens = 1, 2, 24
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    cache = CallCache(args.cache or work / "calls.sqlite")
    methods = [m for m in args.methods.split(",") if m]
    report = header("search_efficiency") | {"settings": {k: v for k, v in vars(args).items() if k != "out"}}
    with ModelPool.from_file(args.pool, cache=cache) as pool:
        results = {m: [run_method(m, seed, pool, args) for seed in range(args.seeds)] for m in methods}
        task = get_task(args.task)
        by_id = {ex.id: ex for ex in task.load()}
        settings = GenerationSettings(max_tokens=args.max_tokens or default_settings(task.family).max_tokens)
        comparisons: dict[str, Any] = {}
        pooled: dict[str, list[bool]] = {}
        for seed in range(args.seeds):
            first = results[methods[0]][seed]
            test_ids = first.test.outcome.question_ids
            correct = {m: results[m][seed].test.outcome.correct for m in methods}
            for model in sorted({*first.config.models, first.config.sink_model}):
                single = evaluate(
                    shapes.single(model),
                    task,
                    pool,
                    examples=[by_id[i] for i in test_ids],
                    settings=settings,
                    progress=False,
                )
                correct[f"single {model}"] = [r.correct for r in single.records]
            comparisons[f"seed{seed}"] = compare_to_reference(correct, methods[0])
            for name, values in correct.items():
                pooled.setdefault(name, []).extend(values)
        if args.seeds > 1:
            comparisons["pooled"] = compare_to_reference(pooled, methods[0])
    report["methods"] = {m: summarise(m, runs) for m, runs in results.items()}
    report["comparisons"] = comparisons
    plot = args.out.with_suffix(".png")
    search_curves({m: runs[0].curve for m, runs in results.items()}, plot, title=f"{args.task}: best so far (seed 0)")
    report["plot"] = str(plot)
    write_json(args.out, report)
    for m, s in report["methods"].items():
        share = s["valid_proposal_share"]
        say(
            f"{m:<16} test accuracy {s['mean_test_accuracy']:.1%} (per seed {s['test_accuracy']})"
            + (f", valid proposals {share:.0%}" if share is not None else "")
        )
    say(f"wrote {args.out} and {plot}")


if __name__ == "__main__":
    main()

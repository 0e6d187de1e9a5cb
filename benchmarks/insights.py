"""The paper's three pilot insights (method.md §4), re-run at small scale on the embedded models.

Every graph is evaluated on the same questions (a seeded sample of the task's default split), with the same
generation settings and one call cache, so the script is resumable: run it again after an interruption and the
answered calls come back from the cache. Every FLOPs number comes from ``langtts.cost`` (Theorem 1, the task's
preset lengths A and B; measured from the single small model's no-input calls for a task without a preset).

- **Insight 1 — equal-budget model mixes.** Every parallel graph (assistants → sink) over the two models whose
  modelled cost fits the budget (``--budget`` units: no-input calls of the smaller model) and is budget-maximal
  (one more small assistant would not fit). The sink runs the mix's largest model. The two single models are
  reported as references. Claim tested: at equal budget the mix matters (best vs worst mix, paired).
- **Insight 2 — width and depth sweeps** on the larger model: ``parallel`` with w assistants, ``chain`` of depth
  d. Claim tested: each has an optimum inside the sweep, beyond which accuracy drops (best vs the largest).
- **Insight 3 — the width × depth grid** (``layered`` shapes) on the larger model. Claim tested: wider graphs
  move the best depth down and deeper graphs move the best width down; significance from the paired interaction
  contrast acc(W,D) − acc(W,d) − acc(w,D) + acc(w,d) (largest vs smallest width and depth) and paired tests of
  the shifted optima.

Per graph: accuracy with its 95% bootstrap CI, modelled FLOPs per question (and in budget units), measured FLOPs,
mean latency (critical path of the real call durations; a cache hit keeps its original duration). Claims use
paired tests on the same questions (``langtts.compare.paired_comparison``: bootstrap CI of the difference and
exact McNemar); a difference counts as significant when McNemar's p < ``--alpha``. Each verdict is computed
from these numbers.

    python benchmarks/insights.py --pool /tmp/bench-srv/pool.yaml    # 30 MMLU questions: est. 1-2 h on 2 CPU cores
    python benchmarks/insights.py --pool ... --smoke                 # 2 questions, 16 tokens: about a minute
"""

from __future__ import annotations

import argparse
import itertools
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from common import chat_model_factory, default_out, header, say, server_extra_body, warm_up, write_json

from langtts import shapes
from langtts.compare import paired_comparison
from langtts.compile import GenerationSettings, default_settings
from langtts.cost import Budget, ModelCatalog, TaskLengths, by_size, fits, graph_cost, task_lengths
from langtts.evaluation import EvaluationResult, evaluate
from langtts.graph import CollaborationGraph
from langtts.models import CallCache, ModelPool, PoolConfig
from langtts.plots import accuracy_vs_cost
from langtts.tasks import get_task
from langtts.tasks.base import Example, Task

DEFAULT_MODELS = "smollm2-135m,qwen2.5-coder-0.5b"


# ----- evaluation -------------------------------------------------------------------------------------------


class Runner:
    """Evaluates graphs on the fixed questions; a graph seen before (same fingerprint) is not run again."""

    def __init__(
        self,
        pool: ModelPool,
        task: Task,
        examples: Sequence[Example],
        catalog: ModelCatalog,
        unit_model: str,
        args: argparse.Namespace,
    ) -> None:
        self.pool, self.task, self.examples = pool, task, list(examples)
        self.catalog, self.unit_model = catalog, unit_model
        family_max = default_settings(task.family).max_tokens
        self.settings = GenerationSettings(max_tokens=args.max_tokens or family_max, seed=args.seed)
        self.concurrency = args.concurrency
        self.lengths: TaskLengths | None = task_lengths(task.lengths_key) if task.lengths_key else None
        self.results: dict[str, EvaluationResult] = {}

    def result(self, graph: CollaborationGraph) -> EvaluationResult:
        key = graph.fingerprint()
        if key not in self.results:
            result = evaluate(
                graph,
                self.task,
                self.pool,
                examples=self.examples,
                settings=self.settings,
                concurrency=self.concurrency,
                progress=False,
                keep_traces=False,
            )
            if self.lengths is None and result.lengths:  # a task without preset lengths: the first run's
                self.lengths = TaskLengths.model_validate(result.lengths)
            self.results[key] = result
        return self.results[key]

    def modelled(self, graph: CollaborationGraph) -> tuple[float, float]:
        """Theorem-1 FLOPs per question and the same in units of the unit model."""
        assert self.lengths is not None, "lengths are known once a graph has run"
        cost = graph_cost(graph, self.catalog, self.lengths, unit_model=self.unit_model)
        return cost.flops, cost.units

    def entry(self, name: str, graph: CollaborationGraph, **extra: Any) -> dict[str, Any]:
        result = self.result(graph)
        flops, units = self.modelled(graph)
        records = result.records
        entry = {
            "name": name,
            **extra,
            "graph": graph.to_dict(),
            "fingerprint": result.fingerprint,
            "nodes": len(graph.pruned().nodes),
            "n": result.n,
            "accuracy": result.accuracy,
            "ci_low": result.ci_low,
            "ci_high": result.ci_high,
            "n_correct": result.n_correct,
            "n_no_answer": result.n_no_answer,
            "n_errors": result.n_errors,
            "n_truncated": result.n_truncated,
            "modelled_flops_per_question": flops,
            "modelled_units": units,
            "measured_flops_per_question": result.flops / result.n,
            "latency_mean_s": result.latency_mean_s,
            "latency_p50_s": result.latency_p50_s,
            "calls": result.calls,
            "cache_hits": result.cache_hits,
            "wall_time_s": result.wall_time_s,
            "question_ids": [r.id for r in records],
            "correct": [r.correct for r in records],
        }
        say(
            f"  {name:<34} acc {entry['accuracy']:6.1%} [{entry['ci_low']:5.1%}, {entry['ci_high']:5.1%}]  "
            f"{flops / 1e9:8.2f} GFLOPs/q  {units:6.2f} units  latency {entry['latency_mean_s']:6.2f}s  "
            f"({result.cache_hits}/{result.calls} cached)"
        )
        return entry


# ----- comparisons and verdicts -----------------------------------------------------------------------------


def compare_entries(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Paired comparison of two graphs on the same questions: difference = accuracy(a) − accuracy(b)."""
    assert a["question_ids"] == b["question_ids"], "paired comparisons need the same questions in the same order"
    return {"a": a["name"], "b": b["name"], **paired_comparison(a["correct"], b["correct"]).model_dump()}


def best(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The most accurate entry; ties go to the cheaper graph (modelled FLOPs), then the earlier one."""
    return max(entries, key=lambda e: (e["accuracy"], -e["modelled_flops_per_question"]))


def worst(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The least accurate entry; ties go to the costlier graph."""
    return min(entries, key=lambda e: (e["accuracy"], -e["modelled_flops_per_question"]))


def describe(c: dict[str, Any]) -> str:
    return (
        f"{c['a']} {c['accuracy_a']:.0%} vs {c['b']} {c['accuracy_b']:.0%}: {c['difference']:+.0%} "
        f"[{c['ci_low']:+.0%}, {c['ci_high']:+.0%}], p={c['p_value']:.3g}"
    )


def significant(c: dict[str, Any], alpha: float) -> bool:
    return c["p_value"] < alpha


def verdict(status: str, text: str) -> dict[str, str]:
    """``status``: reproduces | partly | no | untestable; a "no" text says itself how it fails."""
    prefix = {"reproduces": "reproduces: ", "partly": "partly reproduces: ", "untestable": "cannot be tested: "}
    return {"status": status, "text": prefix.get(status, "") + text}


def kind_of_mix(counts: dict[str, int], small: str, large: str) -> str:
    if not counts.get(large):
        return "all-small"
    if not counts.get(small):
        return "all-large"
    return "mixed"


# ----- insight 1: equal-budget model mixes ------------------------------------------------------------------


def mix_graph(n_small: int, n_large: int, small: str, large: str) -> CollaborationGraph:
    """A parallel graph with these node counts; the sink runs the largest model of the mix."""
    sink = large if n_large else small
    workers = [small] * n_small + [large] * n_large
    workers.remove(sink)
    return shapes.parallel(workers, sink_model=sink) if workers else shapes.single(sink)


def budget_maximal_mixes(
    small: str, large: str, budget: Budget, runner: Runner, max_nodes: int
) -> list[tuple[int, int, CollaborationGraph]]:
    """(small count, large count, graph) for every parallel mix that fits and to which no small assistant can
    be added (the cheapest addition), most large nodes first."""
    out = []

    def affordable(n_small: int, n_large: int) -> bool:
        return fits(runner.modelled(mix_graph(n_small, n_large, small, large))[0], budget.flops)

    for n_large in range(max_nodes + 1):
        for n_small in range(max_nodes + 1 - n_large):
            if n_small + n_large == 0 or not affordable(n_small, n_large):
                continue
            maximal = n_small + n_large == max_nodes or not affordable(n_small + 1, n_large)
            if maximal:
                out.append((n_small, n_large, mix_graph(n_small, n_large, small, large)))
    return sorted(out, key=lambda t: (-t[1], t[0]))


def insight1(runner: Runner, small: str, large: str, args: argparse.Namespace) -> dict[str, Any]:
    say(f"Insight 1: equal-budget mixes of {small} and {large}, budget {args.budget:g} units of {small}")
    singles = [runner.entry(f"single {m}", shapes.single(m), role="reference", model=m) for m in (small, large)]
    assert runner.lengths is not None
    budget = Budget.from_units(args.budget, runner.catalog.get(small), runner.lengths)
    mixes = budget_maximal_mixes(small, large, budget, runner, args.max_nodes)
    if args.smoke and len(mixes) > 2:
        mixes = [mixes[0], mixes[-1]]  # the extremes: most large nodes, most small nodes
    entries = []
    for n_small, n_large, graph in mixes:
        counts = {large: n_large, small: n_small}
        name = " + ".join(f"{k}×{m}" for m, k in counts.items() if k)
        entries.append(
            runner.entry(
                name, graph, role="mix", counts=counts, kind=kind_of_mix(counts, small, large), sink=graph.sink.model
            )
        )
    out: dict[str, Any] = {
        "title": "equal-budget model mixes",
        "budget": budget.model_dump(),
        "results": entries + singles,
        "comparisons": {},
    }
    if len(entries) < 2:
        out["verdict"] = verdict("untestable", f"only {len(entries)} budget-maximal mix at this budget")
        return out
    top, bottom = best(entries), worst(entries)
    claim = compare_entries(top, bottom)
    out["comparisons"]["best vs worst mix"] = claim
    for e in entries + singles:
        if e is not top:
            out["comparisons"][f"best mix vs {e['name']}"] = compare_entries(top, e)
    out["best_mix"], out["worst_mix"] = top["name"], bottom["name"]
    small_mixes = [e for e in entries if e["kind"] == "all-small"]
    weakest_last = ""
    if small_mixes:
        acc = small_mixes[0]["accuracy"]
        others = min(e["accuracy"] for e in entries if e is not small_mixes[0])
        place = "is the worst" if acc < others else "ties for the worst" if acc == others else "is not the worst"
        out["all_small_is_worst"] = acc < others
        weakest_last = f"; all-small {place} mix (paper: many weak models are worst)"
    if significant(claim, args.alpha) and claim["difference"] > 0:
        text = f"the mix matters at equal budget, best is {top['kind']} — {describe(claim)}{weakest_last}"
        out["verdict"] = verdict("reproduces", text)
    else:
        text = (
            f"does not reproduce at this scale: equal-budget mixes are not distinguishable — {describe(claim)}, "
            f"CI overlaps 0{weakest_last}"
        )
        out["verdict"] = verdict("no", text)
    return out


# ----- insight 2: width and depth sweeps --------------------------------------------------------------------


def sweep_verdict(dim: str, entries: list[dict[str, Any]], alpha: float, out: dict[str, Any]) -> tuple[bool, str]:
    """Whether the sweep has an optimum inside it with a significant drop beyond it, and a phrase saying so."""
    values = [e[dim] for e in entries]
    top, last, first = best(entries), entries[-1], entries[0]
    out[f"best_{dim}"] = top[dim]
    if top["accuracy"] > last["accuracy"]:
        c = compare_entries(top, last)
        out["comparisons"][f"{dim} {top[dim]} vs {dim} {last[dim]}"] = c
        if significant(c, alpha):
            return True, f"{dim} optimum at {top[dim]}, more {dim} hurts ({describe(c)})"
        return False, f"{dim} peaks at {top[dim]} but the drop to {last[dim]} is within noise ({describe(c)})"
    if len(entries) < 2:
        return False, f"a single {dim} ({values[0]}) cannot show an optimum"
    c = compare_entries(last, first)  # the largest is among the best: does accuracy still rise?
    out["comparisons"][f"{dim} {last[dim]} vs {dim} {first[dim]}"] = c
    if significant(c, alpha):
        return False, f"accuracy still rises up to {dim} {last[dim]}, no optimum inside {values} ({describe(c)})"
    return False, f"no {dim} effect inside {values} ({describe(c)}, CI overlaps 0)"


def insight2(runner: Runner, model: str, args: argparse.Namespace) -> dict[str, Any]:
    say(f"Insight 2: width sweep (parallel) and depth sweep (chain) of {model}")
    width = [
        runner.entry(f"width {w} (parallel)", shapes.parallel(model, w), sweep="width", width=w, depth=1)
        for w in args.widths
    ]
    depth = [
        runner.entry(f"depth {d} (chain)", shapes.chain(model, d), sweep="depth", width=1, depth=d) for d in args.depths
    ]
    out: dict[str, Any] = {"title": "width and depth sweeps", "model": model, "results": width + depth}
    out["comparisons"] = {}
    w_ok, w_text = sweep_verdict("width", width, args.alpha, out)
    d_ok, d_text = sweep_verdict("depth", depth, args.alpha, out)
    status = "reproduces" if w_ok and d_ok else "partly" if w_ok or d_ok else "no"
    text = f"{w_text}; {d_text}"
    if status == "no":
        text = f"does not reproduce at this scale: {text}"
    out["verdict"] = verdict(status, text)
    return out


# ----- insight 3: the width × depth grid --------------------------------------------------------------------


def interaction(cells: dict[tuple[int, int], dict[str, Any]], w: tuple[int, int], d: tuple[int, int]) -> dict:
    """Per-question contrast x(W,D) − x(W,d) − x(w,D) + x(w,d) (W, D the largest), mean and bootstrap CI.

    Negative: adding depth helps less (or hurts more) on the wide graph than on the narrow one — the paper's
    "wider graphs move the best depth down"."""
    (w0, w1), (d0, d1) = w, d
    x = {k: np.asarray(cells[k]["correct"], dtype=float) for k in ((w1, d1), (w1, d0), (w0, d1), (w0, d0))}
    values = x[(w1, d1)] - x[(w1, d0)] - x[(w0, d1)] + x[(w0, d0)]
    rng = np.random.default_rng(0)
    means = values[rng.integers(0, len(values), size=(10_000, len(values)))].mean(axis=1)
    low, high = (float(v) for v in np.percentile(means, [2.5, 97.5]))
    return {"widths": [w0, w1], "depths": [d0, d1], "mean": float(values.mean()), "ci_low": low, "ci_high": high}


def non_increasing_with_drop(values: list[int]) -> bool:
    return all(b <= a for a, b in itertools.pairwise(values)) and values[-1] < values[0]


def insight3(runner: Runner, model: str, args: argparse.Namespace) -> dict[str, Any]:
    say(f"Insight 3: width × depth grid (layered) of {model}")
    cells: dict[tuple[int, int], dict[str, Any]] = {}
    for d in args.depths:
        for w in args.widths:
            graph = shapes.layered(model, width=w, depth=d)
            cells[(w, d)] = runner.entry(f"layered w{w}×d{d}", graph, width=w, depth=d)
    widths, depths = list(args.widths), list(args.depths)
    best_depth = {w: best([cells[(w, d)] for d in depths])["depth"] for w in widths}
    best_width = {d: best([cells[(w, d)] for w in widths])["width"] for d in depths}
    out: dict[str, Any] = {
        "title": "width × depth grid",
        "model": model,
        "results": list(cells.values()),
        "best_depth_by_width": {str(w): v for w, v in best_depth.items()},
        "best_width_by_depth": {str(d): v for d, v in best_width.items()},
        "comparisons": {},
    }
    if len(widths) < 2 or len(depths) < 2:
        out["verdict"] = verdict("untestable", "needs at least two widths and two depths")
        return out
    contrast = interaction(cells, (widths[0], widths[-1]), (depths[0], depths[-1]))
    out["interaction"] = contrast
    w_max, d_max = widths[-1], depths[-1]
    shifts = []
    if best_depth[w_max] != d_max:  # at the widest width, the best depth vs the deepest
        c = compare_entries(cells[(w_max, best_depth[w_max])], cells[(w_max, d_max)])
        out["comparisons"][f"at width {w_max}: depth {best_depth[w_max]} vs depth {d_max}"] = c
        shifts.append(c)
    if best_width[d_max] != w_max:  # at the deepest depth, the best width vs the widest
        c = compare_entries(cells[(best_width[d_max], d_max)], cells[(w_max, d_max)])
        out["comparisons"][f"at depth {d_max}: width {best_width[d_max]} vs width {w_max}"] = c
        shifts.append(c)
    depth_down = non_increasing_with_drop([best_depth[w] for w in widths])
    width_down = non_increasing_with_drop([best_width[d] for d in depths])
    out["best_depth_moves_down"], out["best_width_moves_down"] = depth_down, width_down
    optima = f"best depth by width {best_depth}, best width by depth {best_width}"
    inter = f"interaction {contrast['mean']:+.2f} [{contrast['ci_low']:+.2f}, {contrast['ci_high']:+.2f}]"
    evidence = contrast["ci_high"] < 0 or any(significant(c, args.alpha) and c["difference"] > 0 for c in shifts)
    p_text = ", ".join(f"p={c['p_value']:.3g}" for c in shifts) or "no shifted optimum to test"
    which = " and ".join(
        s for s, ok in (("wider → shallower optimum", depth_down), ("deeper → narrower optimum", width_down)) if ok
    )
    if which and evidence:
        out["verdict"] = verdict("reproduces", f"{which}; {optima}; {inter}; {p_text}")
    elif which:
        out["verdict"] = verdict(
            "no",
            f"does not reproduce at this scale: the optima shift as the paper says ({which}: {optima}) but the "
            f"{inter} is not below 0 and the shifted optima are not significantly better ({p_text})",
        )
    else:
        out["verdict"] = verdict("no", f"does not reproduce: no downward shift of the optima ({optima}; {inter})")
    return out


# ----- tables, plots, main ----------------------------------------------------------------------------------


def table(title: str, entries: Sequence[dict[str, Any]]) -> None:
    say()
    say(title)
    say(f"{'graph':<36}{'nodes':>6}{'acc':>7}{'95% CI':>16}{'GFLOPs/q':>10}{'units':>8}{'latency s':>11}{'no ans':>8}")
    for e in entries:
        ci, gflops = f"[{e['ci_low']:.0%}, {e['ci_high']:.0%}]", e["modelled_flops_per_question"] / 1e9
        say(
            f"{e['name']:<36}{e['nodes']:>6}{e['accuracy']:>7.0%}{ci:>16}{gflops:>10.2f}"
            f"{e['modelled_units']:>8.2f}{e['latency_mean_s']:>11.2f}{e['n_no_answer']:>8}"
        )


def plot(runner: Runner, entries: Sequence[dict[str, Any]], path: Path, title: str) -> str:
    by_fp = {r.fingerprint: r for r in runner.results.values()}
    accuracy_vs_cost({e["name"]: by_fp[e["fingerprint"]] for e in entries}, path, title=title)
    return str(path)


def ints(text: str) -> list[int]:
    values = sorted({int(v) for v in text.split(",") if v.strip()})
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"expected a comma list of positive integers, got {text!r}")
    return values


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", required=True, help="pool file of a running server (langtts serve)")
    parser.add_argument("--task", default="mmlu")
    parser.add_argument("--split", default=None, help="task split (default: the task's default)")
    parser.add_argument("--n", type=int, default=30, help="questions (the same for every graph)")
    parser.add_argument("--seed", type=int, default=0, help="question sample and generation seed")
    parser.add_argument("--max-tokens", type=int, help="max tokens per node (default: per task family)")
    parser.add_argument("--models", default=DEFAULT_MODELS, help="the two models, comma-separated")
    parser.add_argument("--budget", type=float, default=10.0, help="insight 1 budget: units of the smaller model")
    parser.add_argument("--max-nodes", type=int, default=8, help="insight 1: most nodes in a mix")
    parser.add_argument("--widths", type=ints, default=[1, 2, 4])
    parser.add_argument("--depths", type=ints, default=[1, 2, 3])
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level of the paired tests")
    parser.add_argument("--concurrency", type=int, default=2, help="questions in flight")
    parser.add_argument("--server-prompt-cache", action="store_true", help="leave llama.cpp's prompt cache on")
    parser.add_argument("--cache", default="runs/insights/calls.sqlite", help="call cache file (resumable runs)")
    parser.add_argument("--smoke", action="store_true", help="2 questions, widths 1,2, depths 1,2, 16 tokens")
    parser.add_argument("--out", type=Path, default=default_out("insights"))
    args = parser.parse_args(argv)
    if args.smoke:
        args.n, args.widths, args.depths, args.max_tokens = 2, [1, 2], [1, 2], 16
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if len(models) != 2 or models[0] == models[1]:
        parser.error(f"--models needs two different models, got {args.models!r}")
    data = header("insights")
    data["settings"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "out"}

    config = PoolConfig.load(args.pool)
    warm_up(args.pool)
    Path(args.cache).parent.mkdir(parents=True, exist_ok=True)
    factory = chat_model_factory(server_extra_body(args.server_prompt_cache))
    with ModelPool(config, cache=CallCache(args.cache), chat_model_factory=factory) as pool:
        catalog = ModelCatalog(pool.spec(m).model_copy(update={"id": m}) for m in models)
        small, large = by_size(models, catalog)
        task = get_task(args.task, split=args.split) if args.split else get_task(args.task)
        pool_examples = task.load()
        if args.n > len(pool_examples):
            parser.error(f"--n {args.n} is more than the {len(pool_examples)} questions of {task.name}")
        examples = random.Random(args.seed).sample(pool_examples, args.n)
        data["questions"] = {"task": task.name, "split": args.split, "ids": [ex.id for ex in examples]}
        say(f"{task.name}: {args.n} questions, {args.max_tokens} tokens per call; small {small}, large {large}")
        runner = Runner(pool, task, examples, catalog, small, args)
        insights = {
            "insight1": insight1(runner, small, large, args),
            "insight2": insight2(runner, large, args),
            "insight3": insight3(runner, large, args),
        }
    assert runner.lengths is not None
    data["lengths"] = runner.lengths.model_dump()
    data["unit_model"] = small
    data["models"] = {"small": small, "large": large}
    data["graphs_evaluated"] = len(runner.results)
    data["calls"] = sum(r.calls for r in runner.results.values())
    data["cache_hits"] = sum(r.cache_hits for r in runner.results.values())
    titles = {
        "insight1": f"Insight 1 — equal-budget mixes ({args.budget:g} units of {small})",
        "insight2": f"Insight 2 — width and depth sweeps ({large})",
        "insight3": f"Insight 3 — width × depth grid ({large})",
    }
    for key, insight in insights.items():
        table(titles[key], insight["results"])
        path = args.out.with_name(f"{args.out.stem}-{key}.png")
        insight["plot"] = plot(runner, insight["results"], path, f"{task.name}: {titles[key]}")
        say(f"{key} verdict: {insight['verdict']['text']}")
    data["insights"] = insights
    data["verdicts"] = {key: insight["verdict"]["text"] for key, insight in insights.items()}
    path = write_json(args.out, data)
    say(f"wrote {path}")
    return data


if __name__ == "__main__":
    main()

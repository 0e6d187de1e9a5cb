"""Profile of the pool, then self-consistency against the single model on the same held-out GSM8K questions (#15).

Part 1 (``profile``): :func:`langtts.profile.profile` of every ``--models`` model on GSM8K and MMLU
(``--profile-n`` questions each: the tail of the seeded draw), with the search's generation settings.

Part 2 (``sc``): on ``--n`` held-out GSM8K questions — the test split a search with ``--n-test N`` and ``--seed``
would draw (:func:`langtts.tasks.search_test_split` with ``test_first``), so never a profile question — these
graphs, every worker on ``--worker``:

- ``single``: the worker alone (temperature 0.1, the search's setting);
- ``single-best``: the best model of the stored GSM8K profile of ``--models`` (else the largest), when it is not
  the worker;
- ``sc3``, ``sc5``: self-consistency, k samples at the sampling temperature (0.7) and a vote (no LLM call);
- ``self-moa3``: the same 3 samples and a decider on the worker;
- ``parallel3``: the LLM-decider parallel graph: the same 3 samples and a decider on ``--decider`` (default: the
  largest of ``--models``). With the decider on the worker this graph *is* Self-MoA (same nodes, same
  fingerprint), hence the default; ``--decider WORKER`` runs it anyway and says so.

**The same samples.** The compiler numbers identical requests of one layer 0, 1, 2, ... per question
(``langtts/compile.py``), and the cache key holds that index; every sample node here has the same prompt
(``assistant``), model, temperature and ``max_tokens``, so SC-3's samples are SC-5's first three, and Self-MoA and
``parallel3`` read SC-3's samples from the call cache (after SC-3, SC-5 makes 2 new sample calls per question,
Self-MoA and ``parallel3`` one decider call each). ``new_calls_by_node`` in the JSON shows it for every run.

Each graph is compared with paired tests (bootstrap CI of the difference, exact McNemar) against ``single``,
``single-best`` and ``sc5`` on the same questions; "FLOPs-matched" means measured FLOPs per question within 10 %
of the larger of the two. The verdict of a pair comes from its numbers: one graph wins when the 95 % interval of
the difference excludes 0 *and* McNemar's p < 0.05, else neither is shown to be better.

Every call goes through the pool's call cache (``--cache``), so an interrupted run resumes where it stopped and a
finished one replays in seconds. A time estimate from this machine's measured speed (two probe calls per model,
themselves cached: a resume replays the first measurement) is printed before anything long starts.

    python benchmarks/profile_self_consistency.py --pool ~/.cache/langtts/server/pool.yaml              # hours
    python benchmarks/profile_self_consistency.py --pool ... --parts profile                            # part 1
    python benchmarks/profile_self_consistency.py --pool ... --parts sc                                 # part 2
    python benchmarks/profile_self_consistency.py --pool ... --smoke                                    # tiny
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import Counter
from collections.abc import Collection
from pathlib import Path
from typing import Any

from common import default_out, header, say, write_json

from langtts import shapes
from langtts.compare import paired_comparison
from langtts.compile import default_settings
from langtts.evaluation import EvaluationResult, evaluate
from langtts.graph import SAMPLE_TEMPERATURE, CollaborationGraph, Node
from langtts.models import CallCache, ModelPool
from langtts.profile import Profile, profile, profile_questions, stored_profile
from langtts.tasks import Example, get_task, search_test_split

NAME = "profile_self_consistency"
PROFILE_TASKS = ("gsm8k", "mmlu")
DEFAULT_MODELS = "qwen2.5-coder-0.5b,qwen2.5-coder-1.5b,smollm2-135m"
FLOPS_MATCH = 0.10
"""Two graphs are FLOPs-matched when their measured FLOPs per question differ by at most this share of the larger."""
ALPHA = 0.05
EXPECTED_COMPLETION = {"gsm8k": 300, "mmlu": 250}
"""Completion tokens per answering call assumed by the time estimate (GSM8K: qwen2.5-coder-0.5b's measured mean of
299 with the reasoning prompt, docs/benchmarks.md; MMLU: assumed, it reasons too)."""
EXPECTED_PROMPT = {"gsm8k": 150, "mmlu": 250}
PROBE_TEXT = " ".join(["The quick brown fox jumps over the lazy dog."] * 40)


# -- questions ---------------------------------------------------------------------------------------------------


def held_out(examples: list[Example], n: int, profile_n: int, seed: int) -> list[Example]:
    """The first ``n`` ids of the seeded draw (a search's test split), checked disjoint from the profile's tail."""
    test = search_test_split(examples, 0, n, seed=seed, test_first=True)[1]
    overlap = {ex.id for ex in test} & {ex.id for ex in profile_questions(examples, profile_n, seed)}
    if overlap:
        raise SystemExit(f"--n {n} plus --profile-n {profile_n} exceed the {len(examples)} GSM8K questions")
    return test


# -- the time estimate -------------------------------------------------------------------------------------------


def measure_speed(pool: ModelPool, model: str) -> dict[str, Any]:
    """Decode and prefill tokens/s of ``model`` from two probe calls (cached: a resume replays the first
    measurement, with its original latency, and makes no call)."""
    tags = {"purpose": "speed-probe"}
    decode = pool.chat(model, [{"role": "user", "content": "Count from 1 to 40."}], max_tokens=64, tags=tags)
    prefill = pool.chat(model, [{"role": "user", "content": PROBE_TEXT}], max_tokens=1, tags=tags)
    return {
        "decode_tok_s": decode.completion_tokens / max(decode.latency_s, 1e-3),
        "prefill_tok_s": prefill.prompt_tokens / max(prefill.latency_s, 1e-3),
        "from_cache": decode.cached and prefill.cached,
    }


def planned_calls(
    args: argparse.Namespace, decider: str, best: str, current_profiles: Collection[str] = ()
) -> list[tuple[str, str, int, int]]:
    """(model, what, prompt tokens, completion tokens) of every call of an empty-cache run, one entry per call
    kind with its count folded into the tokens; the tasks of ``current_profiles`` are stored and cost nothing."""
    plan: list[tuple[str, str, int, int]] = []
    if "profile" in args.parts:
        for task in PROFILE_TASKS:
            if task in current_profiles:
                continue
            for model in args.models:
                n = args.profile_n
                plan.append((model, f"profile {task}", n * EXPECTED_PROMPT[task], n * EXPECTED_COMPLETION[task]))
    if "sc" in args.parts:
        n, prompt, reply = args.n, EXPECTED_PROMPT["gsm8k"], EXPECTED_COMPLETION["gsm8k"]
        plan.append((args.worker, "single", n * prompt, n * reply))
        if best != args.worker:
            plan.append((best, "single-best", n * prompt, n * reply))
        plan.append((args.worker, "5 samples", 5 * n * prompt, 5 * n * reply))
        decider_prompt = prompt + 3 * reply + 100
        plan.append((args.worker, "self-moa decider", n * decider_prompt, n * reply))
        plan.append((decider, "parallel decider", n * decider_prompt, n * reply))
    return plan


def estimate_minutes(plan: list[tuple[str, str, int, int]], speeds: dict[str, dict[str, Any]], parallel: int) -> float:
    seconds = sum(
        prompt / speeds[m]["prefill_tok_s"] + reply / speeds[m]["decode_tok_s"] for m, _, prompt, reply in plan
    )
    return seconds / max(1, parallel) / 60


# -- part 1: the profile -----------------------------------------------------------------------------------------


def profile_rows(result: Profile) -> dict[str, Any]:
    return {
        "questions": len(result.key.question_ids),
        "question_ids": result.key.question_ids,
        "settings": result.key.settings,
        "chance_floor": result.chance_floor,
        "measured_at": result.measured_at,
        "warnings": result.warnings(),
        "models": {
            m.model: {
                "accuracy": m.accuracy,
                "ci_low": m.ci_low,
                "ci_high": m.ci_high,
                "n": m.n,
                "n_scored": m.n_scored,
                "n_correct": m.n_correct,
                "mean_prompt_tokens": m.prompt_tokens_mean,
                "mean_completion_tokens": m.completion_tokens_mean,
                "flops_per_question": m.flops_per_question,
                "extraction_failure_rate": m.extraction_failure_rate,
                "truncation_rate": m.truncation_rate,
                "latency_mean_s": m.latency_mean_s,
                "above_chance": m.above_chance(result.chance_floor),
            }
            for m in result.models
        },
    }


def run_profiles(pool: ModelPool, args: argparse.Namespace) -> dict[str, Any]:
    out = {}
    for task in PROFILE_TASKS:
        say(f"--- part 1: profile of {', '.join(args.models)} on {task}, {args.profile_n} questions each")
        result = profile(
            task, pool, args.models, n=args.profile_n, seed=args.seed, concurrency=args.concurrency,
            directory=args.profile_dir, progress=not args.quiet, report=say,
        )  # fmt: skip
        say(result.table())
        for warning in result.warnings():
            say(f"  warning: {warning}")
        out[task] = profile_rows(result)
    return out


# -- part 2: self-consistency ------------------------------------------------------------------------------------


def largest(pool: ModelPool, models: list[str]) -> str:
    return max(models, key=lambda m: pool.spec(m).params)


def best_model(pool: ModelPool, args: argparse.Namespace) -> tuple[str, str]:
    """The single best model and why: the stored GSM8K profile's best, else the largest of ``--models``."""
    stored = stored_profile("gsm8k", pool, args.models, n=args.profile_n, seed=args.seed, directory=args.profile_dir)
    if isinstance(stored, Profile) and (best := stored.best()) is not None:
        return best.model, f"most accurate in the GSM8K profile ({best.accuracy:.1%} on {best.n_scored} questions)"
    return largest(pool, args.models), "largest of --models (no current GSM8K profile of them is stored)"


def parallel_decider(model: str, k: int, decider: str) -> CollaborationGraph:
    """``k`` samples of ``model`` at the sampling temperature (the very nodes of ``self_moa``) and a decider sink on
    ``decider``: with ``decider == model`` it is ``self_moa(model, k)``."""
    moa = shapes.self_moa(model, k)
    nodes = tuple(n if n.id != shapes.SINK_ID else Node(shapes.SINK_ID, "decider", decider) for n in moa.nodes)
    return CollaborationGraph(nodes=nodes, edges=moa.edges)


def sc_graphs(args: argparse.Namespace, best: str, decider: str) -> dict[str, tuple[str, CollaborationGraph]]:
    """name -> (label, graph), in evaluation order: SC-3 before SC-5 and the deciders after them."""
    w = args.worker
    graphs = {"single": (f"single {w}", shapes.single(w))}
    if best != w:
        graphs["single-best"] = (f"single best ({best})", shapes.single(best))
    graphs |= {
        "sc3": (f"self-consistency k=3 ({w})", shapes.self_consistency(w, 3)),
        "sc5": (f"self-consistency k=5 ({w})", shapes.self_consistency(w, 5)),
        "self-moa3": (f"Self-MoA k=3 ({w}, decider {w})", shapes.self_moa(w, 3)),
        "parallel3": (f"parallel k=3 ({w}) + LLM decider {decider}", parallel_decider(w, 3, decider)),
    }
    return graphs


def graph_row(name: str, label: str, result: EvaluationResult) -> dict[str, Any]:
    n = result.n
    new_by_node: Counter[str] = Counter()
    for record in result.records:
        for entry in record.trace:
            if entry["role"] != "vote" and not entry["cached"]:
                new_by_node[entry["node"]] += 1
            if (recovery := entry.get("recovery")) and not recovery["cached"]:
                new_by_node[f"{entry['node']}:recovery"] += 1
    return {
        "name": name,
        "label": label,
        "graph": result.graph,
        "fingerprint": result.fingerprint,
        "n": n,
        "n_scored": n - result.n_errors,
        "accuracy": result.accuracy,
        "ci_low": result.ci_low,
        "ci_high": result.ci_high,
        "ci_method": "95% percentile bootstrap over questions",
        "flops_per_question": result.flops / n,
        "analytic_flops_per_question": result.analytic_flops / n,
        "mean_completion_tokens": result.completion_tokens / n,
        "mean_prompt_tokens": result.prompt_tokens / n,
        "latency_mean_s": result.latency_mean_s,
        "latency_p50_s": result.latency_p50_s,
        "latency_p95_s": result.latency_p95_s,
        "calls": result.calls,
        "cache_hits": result.cache_hits,
        "new_calls": result.calls - result.cache_hits,
        "new_calls_by_node": dict(sorted(new_by_node.items())),
        "extraction_failure_rate": result.extraction_failure_rate_before_recovery,
        "truncation_rate": result.truncation_rate,
        "recovery_calls": result.n_recovery_calls,
        "accuracy_without_recovery": result.accuracy_without_recovery,
        "errors": result.n_errors,
        "nodes": [s.model_dump() for s in result.nodes],
        "correct": [r.correct for r in result.records],
    }


def flops_matched(a: float, b: float) -> bool:
    return abs(a - b) <= FLOPS_MATCH * max(a, b)


def verdict(name_a: str, name_b: str, c: dict[str, Any]) -> str:
    """The plain-words outcome of a pair, from its numbers only."""
    cost = (
        "FLOPs-matched"
        if c["flops_matched"]
        else f"{c['flops_ratio']:.2f}x the FLOPs of {name_b}, not FLOPs-matched"
        if c["flops_ratio"] is not None
        else "FLOPs not comparable"
    )
    numbers = (
        f"{c['difference'] * 100:+.1f} pp, 95% CI [{c['ci_low'] * 100:+.1f}, {c['ci_high'] * 100:+.1f}], "
        f"McNemar p = {c['p_value']:.3g}, n = {c['n']}; {cost}"
    )
    if c["winner"] is not None:
        loser = name_b if c["winner"] == name_a else name_a
        return f"{c['winner']} beats {loser} ({numbers})"
    return f"no significant difference between {name_a} and {name_b} ({numbers})"


def comparison(rows: dict[str, dict[str, Any]], a: str, b: str) -> dict[str, Any]:
    pairs = [(x, y) for x, y in zip(rows[a]["correct"], rows[b]["correct"], strict=True) if None not in (x, y)]
    fa, fb = rows[a]["flops_per_question"], rows[b]["flops_per_question"]
    out: dict[str, Any] = {"a": a, "b": b, "flops_a": fa, "flops_b": fb, "flops_ratio": fa / fb if fb else None}
    out["flops_matched"] = flops_matched(fa, fb)
    if not pairs:
        return out | {"n": 0, "verdict": f"{a} vs {b}: every question ended in an error"}
    xs, ys = zip(*pairs, strict=True)
    paired = paired_comparison(xs, ys)
    out |= {
        "n": paired.n,
        "undetermined": len(rows[a]["correct"]) - paired.n,
        "accuracy_a": paired.accuracy_a,
        "accuracy_b": paired.accuracy_b,
        "difference": paired.difference,
        "ci_low": paired.ci_low,
        "ci_high": paired.ci_high,
        "p_value": paired.p_value,
        "only_a": paired.only_a,
        "only_b": paired.only_b,
    }
    significant = paired.p_value < ALPHA
    out["winner"] = a if significant and paired.ci_low > 0 else b if significant and paired.ci_high < 0 else None
    out["verdict"] = verdict(a, b, out)
    return out


def which_wins(rows: dict[str, dict[str, Any]], comparisons: list[dict[str, Any]]) -> str:
    """One plain sentence from the paired tests: the significant wins, or that none was shown."""
    wins = [c for c in comparisons if c.get("winner")]
    n = len(next(iter(rows.values()))["correct"])
    if not wins:
        best = max((r["accuracy"] for r in rows.values() if r["accuracy"] is not None), default=None)
        top = ", ".join(r["name"] for r in rows.values() if r["accuracy"] == best)
        return (
            f"no graph is shown better than another on these {n} questions (every paired 95% interval contains 0 "
            f"or McNemar p >= {ALPHA}); the highest accuracy, {pct(best)}, is {top}'s"
        )
    beats = [f"{c['winner']} beats {c['b'] if c['winner'] == c['a'] else c['a']}" for c in wins]
    return "; ".join(dict.fromkeys(beats)) + f" (paired 95% interval excludes 0 and McNemar p < {ALPHA}, n = {n})"


def run_sc(pool: ModelPool, args: argparse.Namespace, best: str, best_reason: str, decider: str) -> dict[str, Any]:
    task = get_task("gsm8k")
    examples = held_out(task.load(), args.n, args.profile_n, args.seed)
    settings = default_settings(task.family)
    graphs = sc_graphs(args, best, decider)
    say(f"--- part 2: {len(graphs)} graphs on {len(examples)} held-out GSM8K questions (seed {args.seed})")
    rows: dict[str, dict[str, Any]] = {}
    for name, (label, graph) in graphs.items():
        started = time.monotonic()
        result = evaluate(
            graph, task, pool, examples=examples, settings=settings, concurrency=args.concurrency,
            progress=not args.quiet, tags={"purpose": NAME, "graph_name": name},
        )  # fmt: skip
        result.raise_for_call_failures()
        rows[name] = graph_row(name, label, result)
        row = rows[name]
        say(
            f"  {name:<12} {result.accuracy_text():<24} {row['flops_per_question']:.3g} FLOPs/q, "
            f"{row['new_calls']} new calls ({time.monotonic() - started:.0f}s)"
        )
    same = rows["parallel3"]["fingerprint"] == rows["self-moa3"]["fingerprint"]
    if same:
        say("  parallel3 is self-moa3 itself (its decider is the worker): the same graph, the same figures")
    references = [r for r in ("single", "single-best", "sc5") if r in rows]
    comparisons = [comparison(rows, a, b) for b in references for a in rows if a != b]
    return {
        "task": task.name,
        "split": task.default_split,
        "question_ids": [ex.id for ex in examples],
        "worker": args.worker,
        "best_model": best,
        "best_model_reason": best_reason,
        "decider": decider,
        "parallel_is_self_moa": same,
        "settings": {
            "max_tokens": settings.max_tokens,
            "single_temperature": settings.temperature,
            "sample_temperature": SAMPLE_TEMPERATURE,
        },
        "graphs": list(rows.values()),
        "comparisons": comparisons,
        "which_wins": which_wins(rows, comparisons),
    }


# -- output ------------------------------------------------------------------------------------------------------


def pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.1%}"


def markdown(data: dict[str, Any]) -> str:
    lines = []
    for task, prof in (data.get("profiles") or {}).items():
        lines += [
            f"Profile, {task} ({prof['questions']} questions per model, max_tokens {prof['settings']['max_tokens']}, "
            f"temperature {prof['settings']['temperature']}):",
            "",
            "| model | accuracy [95 % Wilson CI] | completion tokens | FLOPs/question | no answer | truncated "
            "| latency |",
            "|---|---|---|---|---|---|---|",
        ]
        for model, m in prof["models"].items():
            lines.append(
                f"| {model} | {pct(m['accuracy'])} [{pct(m['ci_low'])}, {pct(m['ci_high'])}] | "
                f"{m['mean_completion_tokens']:.0f} | {m['flops_per_question']:.3g} | "
                f"{pct(m['extraction_failure_rate'])} | {pct(m['truncation_rate'])} | {m['latency_mean_s']:.1f} s |"
            )
        lines.append("")
    sc = data.get("self_consistency")
    if sc:
        by_pair = {(c["a"], c["b"]): c for c in sc["comparisons"]}
        refs = [r for r in ("single", "sc5") if any(g["name"] == r for g in sc["graphs"])]
        head = " | ".join(f"vs {r}: Δ [95 % CI], p, FLOPs-matched" for r in refs)
        lines += [
            f"GSM8K, {len(sc['question_ids'])} held-out questions, worker {sc['worker']}:",
            "",
            f"| graph | accuracy [95 % CI] | FLOPs/question (measured) | completion tokens | latency | {head} |",
            "|---|---|---|---|---|" + "---|" * len(refs),
        ]
        for g in sc["graphs"]:
            cells = []
            for r in refs:
                c = by_pair.get((g["name"], r))
                if c is None or "difference" not in c:
                    cells.append("–")
                    continue
                win = f" **{c['winner']} wins**" if c["winner"] else ""
                cells.append(
                    f"{c['difference'] * 100:+.1f} pp [{c['ci_low'] * 100:+.1f}, {c['ci_high'] * 100:+.1f}], "
                    f"p = {c['p_value']:.2g}, {'yes' if c['flops_matched'] else 'no'} "
                    f"({c['flops_ratio']:.2f}x){win}"
                )
            lines.append(
                f"| {g['label']} | {pct(g['accuracy'])} [{pct(g['ci_low'])}, {pct(g['ci_high'])}] | "
                f"{g['flops_per_question']:.3g} | {g['mean_completion_tokens']:.0f} | {g['latency_mean_s']:.1f} s | "
                + " | ".join(cells)
                + " |"
            )
        lines += ["", f"**Which wins:** {sc['which_wins']}", "", *(f"- {c['verdict']}" for c in sc["comparisons"])]
    return "\n".join(lines)


def merge_previous(path: Path, data: dict[str, Any], parts: list[str]) -> dict[str, Any]:
    """Keep the parts this run did not measure from an earlier result file at ``path`` (with their own header)."""
    if not path.is_file():
        return data
    try:
        old = json.loads(path.read_text())
    except ValueError:
        return data
    if old.get("benchmark") != NAME:
        return data
    for part, key in (("profile", "profiles"), ("sc", "self_consistency")):
        if part not in parts and old.get(key) is not None:
            data[key] = old[key]
            data.setdefault("earlier_parts", {})[part] = {k: old.get(k) for k in ("date", "command", "settings")}
    return data


def run(args: argparse.Namespace, pool: ModelPool) -> dict[str, Any]:
    """Both parts on ``pool`` as ``args`` say; the result file's body (without its header)."""
    for model in {*args.models, args.worker, *([args.decider] if args.decider else [])}:
        pool.spec(model)  # an unknown model fails here, before anything runs
    decider = args.decider or largest(pool, args.models)
    speeds = {m: measure_speed(pool, m) for m in sorted({*args.models, args.worker, decider})}
    say(
        "measured speed (tok/s, decode / prefill, 1 request"
        + (", replayed from the call cache" if all(s["from_cache"] for s in speeds.values()) else "")
        + "): "
        + ", ".join(f"{m} {s['decode_tok_s']:.1f} / {s['prefill_tok_s']:.0f}" for m, s in speeds.items())
    )
    current = {
        task
        for task in PROFILE_TASKS
        if isinstance(
            stored_profile(task, pool, args.models, n=args.profile_n, seed=args.seed, directory=args.profile_dir),
            Profile,
        )
    }
    # the single best model is known only after the profile: the estimate assumes the largest
    plan = planned_calls(args, decider, largest(pool, args.models), current)
    minutes = estimate_minutes(plan, speeds, min(args.concurrency, os.cpu_count() or 1))
    stored = f"; stored profiles ({', '.join(sorted(current))}) cost nothing" if current else ""
    say(f"estimated time with an empty cache: about {minutes:.0f} min (cached calls are free{stored})")
    body: dict[str, Any] = {"speeds_tok_s": speeds, "estimated_minutes_empty_cache": minutes}
    started = time.monotonic()
    if "profile" in args.parts:
        body["profiles"] = run_profiles(pool, args)
    if "sc" in args.parts:
        best, best_reason = best_model(pool, args)  # after the profile: the same choice on every run
        body["self_consistency"] = run_sc(pool, args, best, best_reason, decider)
    records = pool.ledger.records()
    body["wall_time_s"] = time.monotonic() - started
    body["new_calls"] = sum(not r.cached and r.tags.get("purpose") != "speed-probe" for r in records)
    body["cached_calls"] = sum(r.cached for r in records)
    return body


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", required=True, help="pool file of a running server (langtts serve)")
    parser.add_argument("--models", default=DEFAULT_MODELS, help="models to profile (comma-separated)")
    parser.add_argument("--profile-n", type=int, default=100, help="profile questions per task and model")
    parser.add_argument("--worker", default="qwen2.5-coder-0.5b", help="the model of every sample in part 2")
    parser.add_argument("--decider", help="the parallel graph's decider (default: the largest of --models)")
    parser.add_argument("--n", type=int, default=100, help="held-out GSM8K questions of part 2")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parts", default="profile,sc", help="comma-separated: profile, sc")
    parser.add_argument("--concurrency", type=int, default=2, help="questions in flight")
    parser.add_argument("--cache", help="call cache (default: the user cache's calls.sqlite)")
    parser.add_argument("--profile-dir", help="where profiles are stored (default: the user cache's profiles/)")
    parser.add_argument("--out", type=Path, default=default_out(NAME))
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--smoke", action="store_true", help="2 profile and 2 held-out questions")
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    args.parts = [p for p in args.parts.split(",") if p]
    if unknown := set(args.parts) - {"profile", "sc"}:
        parser.error(f"unknown part(s) {', '.join(sorted(unknown))}: profile, sc")
    if args.smoke:
        args.profile_n, args.n = 2, 2
    return args


def main() -> None:
    args = parse_args()
    cache = CallCache(Path(args.cache)) if args.cache else CallCache.default()
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    data = {**header(NAME), "settings": settings}
    with ModelPool.from_file(args.pool, cache=cache, timeout=600.0) as pool:
        data.update(run(args, pool))
    data = merge_previous(args.out, data, args.parts)
    table = markdown(data)
    data["markdown"] = table
    say("\n" + table + "\n")
    say(f"wrote {write_json(args.out, data)}")


if __name__ == "__main__":
    main()

"""The call cache over a full search: share of LLM calls it serves, and the wall time it saves.

The same ``optimize()`` run (same task, method, seed, budget, sizes) is executed up to three times on the
embedded server, each in a fresh run directory:

- **uncached**: a pool without a call cache (skip with ``--no-uncached``);
- **cold**: a pool with a new, empty cache file — hits come only from repeats inside the run (e.g. validation
  and test re-running graphs on questions the search already asked);
- **warm**: a new pool on the *same* cache file — a replay of the cold run.

Reported per run: evaluation calls, cache hits, hit share, optimizer-LLM calls (none for ``random`` and
``reinforce``), wall time, and whether the chosen graph and its test accuracy match the cold run.

    python benchmarks/cache.py --pool /tmp/bench-srv/pool.yaml
    python benchmarks/cache.py                     # starts its own server with qwen2.5-coder-0.5b + smollm2-135m
    python benchmarks/cache.py --smoke --pool ...  # 1 round of 1 question, 16 tokens
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import chat_model_factory, default_out, header, say, server_extra_body, warm_up, write_json

from langtts.models import CallCache, ModelPool, PoolConfig
from langtts.search import optimize
from langtts.search.run import options_in

DEFAULT_MODELS = ("qwen2.5-coder-0.5b", "smollm2-135m")


def run_once(
    label: str, pool_file: Path, cache_file: Path | None, run_dir: Path, args: argparse.Namespace
) -> dict[str, Any]:
    cache = CallCache(cache_file) if cache_file is not None else None
    factory = chat_model_factory(server_extra_body(args.server_prompt_cache))
    with ModelPool(PoolConfig.load(pool_file), cache=cache, chat_model_factory=factory) as pool:
        started = time.perf_counter()
        options = options_in(vars(args))
        result = optimize(args.task, pool, args.budget, run_dir=run_dir, progress=False, **options)
        wall = time.perf_counter() - started
    ev, op = result.evaluation_cost, result.optimizer_cost
    calls, hits = ev.calls + op.calls, ev.hits + op.hits
    out = {
        "run": label,
        "cache": str(cache_file) if cache_file else None,
        "evaluations": len(result.ledger),
        "rounds": result.rounds,
        "evaluation_calls": ev.calls,
        "evaluation_cache_hits": ev.hits,
        "optimizer_calls": op.calls,
        "optimizer_cache_hits": op.hits,
        "calls": calls,
        "cache_hits": hits,
        "hit_share": hits / calls if calls else 0.0,
        "errors": ev.errors + op.errors,
        "completion_tokens": ev.completion_tokens + op.completion_tokens,
        "flops_spent": ev.flops_spent + op.flops_spent,
        "wall_s": wall,
        "chosen": result.chosen.fingerprint,
        "test_accuracy": result.test.outcome.accuracy if result.test else None,
        "graphs": [e.fingerprint[:12] for e in result.ledger],
    }
    say(
        f"  {label:<9} {calls:>4} calls, {hits:>4} from the cache ({out['hit_share']:6.1%}), "
        f"{out['completion_tokens']:>6} tokens, wall {wall:7.1f}s, chosen {out['chosen'][:10]}"
    )
    return out


def measure(pool_file: Path, work: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    cache_file = work / "calls.sqlite"
    warm_up(pool_file)
    runs = []
    if not args.no_uncached:
        runs.append(run_once("uncached", pool_file, None, work / "run-uncached", args))
    runs.append(run_once("cold", pool_file, cache_file, work / "run-cold", args))
    runs.append(run_once("warm", pool_file, cache_file, work / "run-warm", args))
    return runs


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="call-cache hit share and wall time over a full optimize() run")
    parser.add_argument("--pool", help="pool file of a running server (default: start one)")
    parser.add_argument("--models", nargs="+", help="worker models (default: every pool model)")
    parser.add_argument("--task", default="gsm8k")
    parser.add_argument("--method", default="random", choices=["random", "reinforce"])
    parser.add_argument("--budget", type=float, default=12.0, help="budget in units (smallest model's calls)")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--validation-size", type=int, default=2)
    parser.add_argument("--n-test", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, help="max tokens per node (default: per task family)")
    parser.add_argument("--concurrency", type=int, default=2, help="questions in flight")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-uncached", action="store_true", help="skip the run without a cache")
    parser.add_argument(
        "--server-prompt-cache", action="store_true", help="leave llama.cpp's prompt cache on (default: off)"
    )
    parser.add_argument("--work-dir", help="where run directories and the cache go (default: a temporary one)")
    parser.add_argument("--smoke", action="store_true", help="1 round, 1 question, top-k 1, 16 tokens")
    parser.add_argument("--out", default=str(default_out("cache")), help="result JSON file")
    args = parser.parse_args(argv)
    if args.smoke:
        args.iterations, args.batch_size, args.top_k, args.validation_size, args.n_test = 1, 1, 1, 1, 1
        args.max_tokens, args.budget = 16, 8.0
    data = header("cache")
    data["settings"] = {
        k: getattr(args, k)
        for k in (
            "pool", "models", "task", "method", "budget", "iterations", "batch_size", "top_k", "validation_size",
            "n_test", "max_tokens", "concurrency", "seed", "server_prompt_cache", "smoke",
        )
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="langtts-bench-cache-") as tmp:
        work = Path(args.work_dir) if args.work_dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        rounds = f"{args.iterations} rounds of {args.batch_size} questions"
        say(f"{args.method} on {args.task}: {rounds}, budget {args.budget}")
        if args.pool:
            data["server"] = "given pool file"
            runs = measure(Path(args.pool), work, args)
        else:
            from langtts.serve.embedded import EmbeddedServer

            server = EmbeddedServer(DEFAULT_MODELS, run_dir=work / "server", progress=lambda _: None)
            info = server.start(setup=False)
            try:
                data["server"] = f"embedded, started by the script ({', '.join(DEFAULT_MODELS)})"
                runs = measure(info.pool_file, work, args)
            finally:
                server.stop()
    by = {r["run"]: r for r in runs}
    cold, warm = by["cold"], by["warm"]
    data["runs"] = runs
    data["replay_identical"] = cold["chosen"] == warm["chosen"] and cold["test_accuracy"] == warm["test_accuracy"]
    data["warm_hit_share"] = warm["hit_share"]
    data["cold_hit_share"] = cold["hit_share"]
    data["speedup_warm_vs_cold"] = cold["wall_s"] / warm["wall_s"] if warm["wall_s"] else None
    if "uncached" in by:
        data["speedup_cold_vs_uncached"] = by["uncached"]["wall_s"] / cold["wall_s"]
    say()
    say(f"{'run':<10}{'calls':>7}{'hits':>7}{'share':>9}{'wall s':>9}")
    for r in runs:
        say(f"{r['run']:<10}{r['calls']:>7}{r['cache_hits']:>7}{r['hit_share']:>9.1%}{r['wall_s']:>9.1f}")
    say(f"warm replay chose the same graph with the same test accuracy: {data['replay_identical']}")
    path = write_json(args.out, data)
    say(f"wrote {path}")
    return data


if __name__ == "__main__":
    main()

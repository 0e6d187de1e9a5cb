"""The code sandbox's cost per run: start-up time of each backend (namespaces or rlimits only).

Each backend that works here (``bwrap``, ``unshare``, ``syscall``; see ``langtts.tasks.confine``) and today's
``rlimits only`` run the same programs through ``run_python``, in rounds that visit the backends in a rotating
order (so drift on a shared machine hits all of them):

- **empty**: ``pass`` — the start-up and clean-up cost of one run (temporary directory, uid, namespaces, mounts,
  interpreter start, cleanup);
- **humaneval**: HumanEval/0's reference solution with its tests — a typical scored completion.

Reported per backend and program: median and p95 wall time of a run in ms, and the median's excess over
``rlimits only``. Needs root for the namespace backends.

    python benchmarks/sandbox.py                 # 50 runs per backend and program
    python benchmarks/sandbox.py --smoke         # 3 runs
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Sequence
from typing import Any

from common import default_out, header, say, write_json

from langtts.tasks import get_task
from langtts.tasks.confine import BACKENDS
from langtts.tasks.humaneval import build_program
from langtts.tasks.sandbox import RLIMITS_ONLY, backend_failure, confinement, run_python


def programs() -> dict[str, str]:
    ex = get_task("humaneval").load()[0]
    humaneval = build_program(ex.meta["prompt"], ex.answer, ex.meta["test"], ex.meta["entry_point"])
    return {"empty": "pass", "humaneval": humaneval}


def summary(times: list[float]) -> dict[str, float]:
    ms = sorted(t * 1000 for t in times)
    p95 = statistics.quantiles(ms, n=100, method="inclusive")[94] if len(ms) > 1 else ms[0]
    return {"median_ms": statistics.median(ms), "p95_ms": p95, "min_ms": ms[0], "max_ms": ms[-1], "runs": len(ms)}


def measure(backends: list[str], sources: dict[str, str], runs: int) -> dict[str, dict[str, list[float]]]:
    times: dict[str, dict[str, list[float]]] = {b: {name: [] for name in sources} for b in backends}
    for i in range(runs):
        for k in range(len(backends)):
            backend = backends[(i + k) % len(backends)]
            for name, source in sources.items():
                started = time.perf_counter()
                result = run_python(source, backend=backend)
                times[backend][name].append(time.perf_counter() - started)
                if not result.passed:
                    raise RuntimeError(f"{name} failed on {backend}: {result}")
    return times


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="start-up cost per run of each sandbox backend")
    parser.add_argument("--runs", type=int, default=50, help="runs per backend and program (default 50)")
    parser.add_argument("--smoke", action="store_true", help="3 runs")
    parser.add_argument("--out", default=str(default_out("sandbox")), help="result JSON file")
    args = parser.parse_args(argv)
    if args.smoke:
        args.runs = 3
    data = header("sandbox")
    data["settings"] = {"runs": args.runs, "smoke": args.smoke}
    failures = {backend: backend_failure(backend) for backend in BACKENDS}
    backends = [RLIMITS_ONLY, *(b for b in BACKENDS if failures[b] is None)]
    data["unavailable"] = {b: reason for b, reason in failures.items() if reason is not None}
    data["auto_selects"] = confinement()[0]
    say(f"backends: {', '.join(backends)}; {args.runs} runs each; auto selects {data['auto_selects']}")
    times = measure(backends, programs(), args.runs)
    data["backends"] = {b: {name: summary(t) for name, t in by_program.items()} for b, by_program in times.items()}
    base = data["backends"][RLIMITS_ONLY]
    for stats in data["backends"].values():
        for name, s in stats.items():
            s["median_excess_ms"] = s["median_ms"] - base[name]["median_ms"]
    say()
    say(f"{'backend':<14}{'program':<11}{'median ms':>10}{'p95 ms':>9}{'+ median':>10}")
    for backend, stats in data["backends"].items():
        for name, s in stats.items():
            say(f"{backend:<14}{name:<11}{s['median_ms']:>10.1f}{s['p95_ms']:>9.1f}{s['median_excess_ms']:>+10.1f}")
    for backend, reason in data["unavailable"].items():
        say(f"{backend}: not measured ({reason})")
    path = write_json(args.out, data)
    say(f"wrote {path}")
    return data


if __name__ == "__main__":
    main()

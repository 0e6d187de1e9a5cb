"""Orchestration overhead: a compiled LangGraph app vs the same pool calls scheduled by hand.

For each shape (default: layered 3×2 and parallel 4), GSM8K questions are run two ways against one
OpenAI-compatible stub server (``stub_server.py``, its own process, real HTTP on 127.0.0.1) that answers every
request after a fixed delay (50 ms):

- **graph**: ``compile_graph(graph, pool, task).ainvoke({"question": q})``;
- **hand**: the same pool calls (``pool.asend``), layer by layer with ``asyncio.gather`` — the requests built by the
  compiler's own request builder (same prompt templates, inputs, generation settings) and the same sample
  indices, just no LangGraph and no per-node bookkeeping (traces, totals).

Both use one ``ModelPool`` with the call cache disabled, the same questions and the same cap on questions in
flight. Each repeat runs both modes back to back, in alternating order (graph, hand, hand, graph, …), so drift
on a shared machine hits both. Reported per shape and concurrency: the wall-time ratio graph / hand (median
over repeats of each repeat's pair; target ≤ 1.05), the median wall times, and the overhead per node
execution: extra client CPU time (the steadiest figure on a busy machine), extra wall time spread over all
node executions, and extra per-question latency divided by the nodes of a question.

    python benchmarks/overhead.py                    # 100 questions, 2 and 8 in flight, 3 repeats
    python benchmarks/overhead.py --smoke            # a few seconds
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from common import default_out, header, say, write_json
from stub_server import MODEL, start_subprocess

from langtts.compile import GenerationSettings, _Compiler, compile_graph, default_settings
from langtts.graph import CollaborationGraph
from langtts.models import Endpoint, ModelPool, PoolConfig, PoolModel
from langtts.prompts import PromptLibrary
from langtts.shapes import layered, parallel
from langtts.tasks import get_task
from langtts.tasks.base import Task

POOL_MODEL = "qwen2.5-coder-0.5b"  # a catalog id, for the FLOPs spec; served by the stub as MODEL
TARGET_RATIO = 1.05


def parse_shape(text: str) -> tuple[str, CollaborationGraph]:
    """``layered:3x2`` (depth × width), ``parallel:4``."""
    kind, _, size = text.partition(":")
    if kind == "layered":
        depth, width = (int(x) for x in size.lower().split("x"))
        return f"layered {depth}x{width}", layered(POOL_MODEL, width=width, depth=depth)
    if kind == "parallel":
        return f"parallel {int(size)}", parallel(POOL_MODEL, int(size))
    raise argparse.ArgumentTypeError(f"unknown shape {text!r}: use layered:DxW or parallel:N")


class HandSchedule:
    """The graph's calls without LangGraph: per layer, ``asyncio.gather`` of ``pool.asend``. The requests come from
    the compiler's own request builder, so both modes send exactly the same messages and settings."""

    def __init__(self, graph: CollaborationGraph, pool: ModelPool, task: Task, settings: GenerationSettings) -> None:
        self.compiler = _Compiler(graph, pool, task, task.family, PromptLibrary(), settings, {}, "error", {})
        self.pool = pool

    async def run(self, question: str) -> str:
        state: dict[str, Any] = {"question": question, "outputs": {}}
        for layer in range(len(self.compiler.layers)):
            requests = self.compiler.layer_requests(layer, state)
            results = await asyncio.gather(
                *(self.pool.asend(r.chat, tags={"node": node_id}) for node_id, r in requests.items())
            )
            state["outputs"] = state["outputs"] | {
                node_id: {"text": result.text, "request_key": r.chat.request_key}
                for (node_id, r), result in zip(requests.items(), results, strict=True)
            }
        return state["outputs"][self.compiler.graph.sink.id]["text"]


@dataclass
class RunResult:
    mode: str
    wall_s: float
    cpu_s: float
    latencies_s: list[float]
    calls: int


async def run_mode(mode: str, runner: Any, pool: ModelPool, questions: Sequence[str], concurrency: int) -> RunResult:
    limit = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(question: str) -> None:
        async with limit:
            started = time.perf_counter()
            if mode == "graph":
                out = await runner.ainvoke({"question": question})
                assert out["answer"], "empty answer from the stub"
            else:
                assert await runner.run(question)
            latencies.append(time.perf_counter() - started)

    calls_before = len(pool.ledger)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(q) for q in questions))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return RunResult(mode, wall, cpu, latencies, len(pool.ledger) - calls_before)


async def bench_case(
    name: str,
    graph: CollaborationGraph,
    pool: ModelPool,
    task: Task,
    questions: Sequence[str],
    concurrency: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    settings = default_settings(task.family)
    app = compile_graph(graph, pool, task, settings=settings)
    hand = HandSchedule(graph, pool, task, settings)
    nodes = len(hand.compiler.graph.nodes)
    runners = {"graph": app, "hand": hand}
    warm = questions[: max(1, min(len(questions), concurrency))]
    for mode in ("graph", "hand"):  # warm-up: connections, imports, first-call paths
        await run_mode(mode, runners[mode], pool, warm, concurrency)
    runs: list[RunResult] = []
    for r in range(args.repeats):
        order = ("graph", "hand") if r % 2 == 0 else ("hand", "graph")
        for mode in order:
            result = await run_mode(mode, runners[mode], pool, questions, concurrency)
            runs.append(result)
            say(
                f"  {name:<13} {mode:<5} repeat {r + 1}: wall {result.wall_s:6.3f}s  cpu {result.cpu_s:6.3f}s  "
                f"mean latency {statistics.fmean(result.latencies_s) * 1000:6.1f} ms"
            )

    def med(mode: str, field: str) -> float:
        values = [getattr(x, field) for x in runs if x.mode == mode]
        return statistics.median(values)

    def med_latency(mode: str) -> float:
        return statistics.median(statistics.fmean(x.latencies_s) for x in runs if x.mode == mode)

    executions = nodes * len(questions)
    graph_wall, hand_wall = med("graph", "wall_s"), med("hand", "wall_s")
    ratios = [
        g.wall_s / h.wall_s
        for g, h in zip([x for x in runs if x.mode == "graph"], [x for x in runs if x.mode == "hand"], strict=True)
    ]
    ideal = len(hand.compiler.layers) * args.latency * -(-len(questions) // concurrency)
    out = {
        "shape": name,
        "concurrency": concurrency,
        "nodes": nodes,
        "layers": len(hand.compiler.layers),
        "questions": len(questions),
        "node_executions": executions,
        "ideal_wall_s": ideal,
        "graph_wall_s": graph_wall,
        "hand_wall_s": hand_wall,
        "ratio": statistics.median(ratios),
        "ratio_per_repeat": ratios,
        "ratio_of_median_walls": graph_wall / hand_wall,
        "meets_target": statistics.median(ratios) <= TARGET_RATIO,
        "graph_cpu_s": med("graph", "cpu_s"),
        "hand_cpu_s": med("hand", "cpu_s"),
        "graph_mean_latency_s": med_latency("graph"),
        "hand_mean_latency_s": med_latency("hand"),
        "overhead_per_node_ms": {
            "cpu": (med("graph", "cpu_s") - med("hand", "cpu_s")) / executions * 1000,
            "wall_amortised": (graph_wall - hand_wall) / executions * 1000,
            "question_latency": (med_latency("graph") - med_latency("hand")) / nodes * 1000,
        },
        "runs": [
            {
                "mode": x.mode,
                "wall_s": x.wall_s,
                "cpu_s": x.cpu_s,
                "mean_latency_s": statistics.fmean(x.latencies_s),
                "p95_latency_s": sorted(x.latencies_s)[int(0.95 * (len(x.latencies_s) - 1))],
                "calls": x.calls,
            }
            for x in runs
        ],
    }
    return out


async def amain(args: argparse.Namespace) -> dict[str, Any]:
    task = get_task("gsm8k")
    examples = task.load()
    questions = [task.format_question(examples[i % len(examples)]) for i in range(args.questions)]
    proc, base_url = start_subprocess(args.latency, args.reply_words)
    try:
        config = PoolConfig(
            models=[
                PoolModel(
                    id=POOL_MODEL,
                    served_name=MODEL,
                    endpoints=[Endpoint(base_url=base_url, max_concurrency=args.pool_concurrency)],
                )
            ]
        )
        pool = ModelPool(config, cache=None, max_retries=0)
        cases: list[dict[str, Any]] = []
        for concurrency in args.concurrency:
            for text in args.shapes:
                name, graph = parse_shape(text)
                stub = f"stub latency {args.latency * 1000:g} ms"
                say(f"{name}: {len(questions)} questions, {concurrency} in flight, {stub}")
                cases.append(await bench_case(name, graph, pool, task, questions, concurrency, args))
        await pool.aclose()
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except Exception:
            proc.kill()
    return cases


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="LangGraph orchestration overhead vs hand-scheduled pool calls")
    parser.add_argument("--questions", type=int, default=100, help="questions per run (GSM8K, cycled)")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[2, 8], help="questions in flight (one case per value)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs of each mode per shape (median reported)")
    parser.add_argument("--latency", type=float, default=0.05, help="stub answer delay in seconds")
    parser.add_argument("--reply-words", type=int, default=60, help="stub answer length in words (= its tokens)")
    parser.add_argument("--pool-concurrency", type=int, default=64, help="the pool's cap on requests in flight")
    parser.add_argument(
        "--shapes", nargs="+", default=["layered:3x2", "parallel:4"], help="layered:DEPTHxWIDTH or parallel:N"
    )
    parser.add_argument("--smoke", action="store_true", help="a tiny run (6 questions, 1 repeat)")
    parser.add_argument("--out", default=str(default_out("overhead")), help="result JSON file")
    args = parser.parse_args(argv)
    if args.smoke:
        args.questions, args.concurrency, args.repeats = 6, [3], 1
    for text in args.shapes:
        parse_shape(text)  # fail early on a bad shape
    data = header("overhead")
    data["settings"] = {
        k: getattr(args, k)
        for k in (
            "questions",
            "concurrency",
            "repeats",
            "latency",
            "reply_words",
            "pool_concurrency",
            "shapes",
            "smoke",
        )
    }
    data["target_ratio"] = TARGET_RATIO
    data["cases"] = asyncio.run(amain(args))
    say()
    say(
        f"{'shape':<14}{'conc':>5}{'graph s':>9}{'hand s':>9}{'ratio':>8}{'cpu ms/node':>13}{'wall ms/node':>14}"
        f"{'lat ms/node':>13}"
    )
    for s in data["cases"]:
        o = s["overhead_per_node_ms"]
        say(
            f"{s['shape']:<14}{s['concurrency']:>5}{s['graph_wall_s']:>9.3f}{s['hand_wall_s']:>9.3f}{s['ratio']:>8.3f}"
            f"{o['cpu']:>13.3f}{o['wall_amortised']:>14.3f}{o['question_latency']:>13.3f}"
            f"   {'ok' if s['meets_target'] else 'ABOVE TARGET'} (≤ {TARGET_RATIO})"
        )
    path = write_json(args.out, data)
    say(f"wrote {path}")
    return data


if __name__ == "__main__":
    main()

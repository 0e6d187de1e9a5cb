"""The vLLM path: the same small evaluation through vLLM (CPU build) and through the embedded llama-server.

Both engines serve the same model (default ``qwen2.5-coder-0.5b``): llama-server loads the embedded GGUF, vLLM a
bfloat16 safetensors copy converted from that GGUF by :func:`langtts.serve.vllm.gguf_to_hf` (kept in the user
cache's ``hf/`` so the conversion runs once). The script starts one engine at a time on this machine, each with its
shipped defaults except for threads (both get every core: vLLM's CPU build binds its OpenMP threads to all of them,
llama-server gets ``--threads``), and measures its start-up time and resident memory. At every concurrency level
(questions in flight; llama-server gets as many slots as the highest level times the graph's width) both engines
run the same graph (default ``parallel:2``: two assistants reason step by step, the sink answers) on the same GSM8K
questions with ``evaluate`` through a ``ModelPool`` (call cache off, greedy decoding); each level takes a fresh
slice of questions, so no engine gets a prefix-cache head start from an earlier level.

Reported per engine and level: generated tokens/s (completion tokens / wall time), accuracy, answers extracted,
truncations and errors; across engines, on the same questions, the share with the same extracted answer and with
the same text.

    python benchmarks/vllm_path.py --vllm-python ~/vllm-cpu/bin/python --n 8 --concurrency 1,4
    python benchmarks/vllm_path.py --vllm-python ... --smoke      # 1 question, 1 level, 16 tokens per call
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from common import default_out, header, parse_shape, say, warm_up, write_json

from langtts.compile import GenerationSettings
from langtts.evaluation import evaluate
from langtts.graph import CollaborationGraph
from langtts.models import ModelPool
from langtts.serve.cache import cache_dir
from langtts.serve.embedded import EmbeddedServer
from langtts.serve.process import process_family
from langtts.serve.setup import setup_models
from langtts.serve.vllm import gguf_to_hf, start_vllm, stop_vllm
from langtts.tasks import Example, get_task

DEFAULT_MODEL = "qwen2.5-coder-0.5b"


def family_rss_mib(pid: int) -> float:
    """Resident memory of ``pid``, its process group and its descendants (an engine and its workers)."""
    total = 0
    for member in process_family(pid):
        with contextlib.suppress(psutil.Error):  # gone meanwhile
            total += psutil.Process(member).memory_info().rss
    return total / 2**20


def measure_engine(pool_file: Path, plan: Plan, rss: Callable[[], float]) -> list[dict[str, Any]]:
    """Evaluate the plan's graph at each (concurrency, questions) level; one dict per level."""
    task = get_task("gsm8k")
    warm_up(pool_file)
    levels = []
    with ModelPool.from_file(pool_file, cache=None) as pool:
        for concurrency, examples in plan.slices:
            options = {"examples": examples, "concurrency": concurrency, "settings": plan.settings}
            result = evaluate(plan.graph, task, pool, progress=False, **options)
            level = {
                "concurrency": concurrency,
                "questions": result.n,
                "calls": result.calls,
                "wall_s": result.wall_time_s,
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "tokens_per_s": result.completion_tokens / result.wall_time_s,
                "accuracy": result.accuracy,
                "answers_extracted": 1.0 - result.extraction_failure_rate,
                "truncated": result.n_truncated,
                "errors": result.n_errors,
                "rss_mib": rss(),
                "predictions": {r.id: r.prediction for r in result.records},
                "texts": {r.id: r.answer for r in result.records},
            }
            say(
                f"  {concurrency} in flight: {level['completion_tokens']} tokens in {level['wall_s']:.1f}s = "
                f"{level['tokens_per_s']:.1f} tok/s, accuracy {level['accuracy']:.0%}, answers extracted "
                f"{level['answers_extracted']:.0%}, {level['truncated']} truncated, {level['errors']} errors"
            )
            levels.append(level)
    return levels


@dataclass(frozen=True)
class Plan:
    """What both engines run: the model, the graph on it, the (concurrency, questions) levels, the settings."""

    model: str
    graph: CollaborationGraph
    slices: Sequence[tuple[int, Sequence[Example]]]
    settings: GenerationSettings
    threads: int

    @property
    def slots(self) -> int:
        """Requests the engine may face at once: questions in flight × the graph's widest layer."""
        return max(c for c, _ in self.slices) * max(len(layer) for layer in self.graph.layers())


def run_llama(plan: Plan) -> dict[str, Any]:
    say(f"llama-server ({plan.model}, {plan.slots} slots, {plan.threads} threads)")
    with tempfile.TemporaryDirectory(prefix="langtts-bench-") as run_dir:
        server = EmbeddedServer(
            [plan.model], parallel=plan.slots, threads=plan.threads, run_dir=run_dir, progress=lambda _: None
        )
        started = time.perf_counter()
        info = server.start(setup=True)
        try:
            warm_up(info.pool_file)  # the router loads the weights on the first request
            startup = time.perf_counter() - started
            levels = measure_engine(info.pool_file, plan, lambda: family_rss_mib(info.pid))
        finally:
            server.stop()
    return {"engine": "llama-server", "weights": "GGUF (the embedded file)", "startup_s": startup, "levels": levels}


def run_vllm(plan: Plan, hf_dir: Path, python: str) -> dict[str, Any]:
    say(f"vLLM, CPU build ({plan.model} from {hf_dir}, {plan.threads} threads)")
    with tempfile.TemporaryDirectory(prefix="langtts-bench-") as run_dir:
        started = time.perf_counter()
        servers, pool_file = start_vllm(
            {plan.model: hf_dir}, python=python, gpus=[], max_concurrency=plan.slots, run_dir=run_dir
        )
        try:
            startup = time.perf_counter() - started
            levels = measure_engine(pool_file, plan, lambda: family_rss_mib(servers[0].pid))
        finally:
            stop_vllm(servers)
    return {"engine": "vllm-cpu", "weights": "bfloat16 safetensors converted from the GGUF", "startup_s": startup,
            "levels": levels}  # fmt: skip


def agreement(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    """Shares of the same questions with equal extracted answers and with equal texts."""
    ids = list(a["predictions"])
    return {
        "same_answer": sum(a["predictions"][i] == b["predictions"][i] for i in ids) / len(ids),
        "same_text": sum(a["texts"][i] == b["texts"][i] for i in ids) / len(ids),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vllm-python", required=True, help="the interpreter of a vllm-cpu environment")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="an embedded model id")
    parser.add_argument("--n", type=int, default=8, help="GSM8K questions per concurrency level")
    parser.add_argument("--concurrency", default="1,4", help="comma-separated questions in flight")
    parser.add_argument("--shape", default="parallel:2", help="single, parallel:N or layered:DEPTHxWIDTH")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads of each engine")
    parser.add_argument("--max-tokens", type=int, default=192)
    parser.add_argument("--hf-dir", type=Path, help="converted model directory (default: the cache's hf/MODEL)")
    parser.add_argument("--smoke", action="store_true", help="1 question, concurrency 1, 16 tokens per call")
    parser.add_argument("--out", default=str(default_out("vllm_path")), help="result JSON file")
    args = parser.parse_args(argv)
    if args.smoke:
        args.n, args.concurrency, args.max_tokens = 1, "1", 16
    try:
        levels = [int(c) for c in args.concurrency.split(",") if c]
        graph = parse_shape(args.shape, args.model)
    except (ValueError, argparse.ArgumentTypeError) as error:
        parser.error(str(error))
    if not levels or min(levels) < 1 or args.n < 1 or args.threads < 1:
        parser.error("--concurrency needs positive integers; --n and --threads must be ≥ 1")
    examples = get_task("gsm8k").load()
    if args.n * len(levels) > len(examples):
        parser.error(f"--n × levels = {args.n * len(levels)} exceeds the {len(examples)} GSM8K questions")
    slices = [(c, examples[i * args.n : (i + 1) * args.n]) for i, c in enumerate(levels)]
    settings = GenerationSettings(temperature=0.0, max_tokens=args.max_tokens)
    plan = Plan(args.model, graph, slices, settings, args.threads)

    data = header("vllm_path")
    data["settings"] = {"model": args.model, "shape": args.shape, "n": args.n, "concurrency": levels,
                        "max_tokens": args.max_tokens, "temperature": 0.0, "task": "gsm8k", "threads": args.threads,
                        "slots": plan.slots, "smoke": args.smoke}  # fmt: skip
    gguf = setup_models([args.model])[args.model]
    hf_dir = args.hf_dir or cache_dir() / "hf" / args.model
    started = time.perf_counter()
    gguf_to_hf(gguf, hf_dir, python=args.vllm_python)
    data["conversion_s"] = time.perf_counter() - started  # ~0 when the converted copy was cached
    data["engines"] = [
        run_llama(plan),
        run_vllm(plan, hf_dir, args.vllm_python),
    ]
    llama, vllm = data["engines"]
    pairs = zip(llama["levels"], vllm["levels"], strict=True)
    data["agreement"] = [{"concurrency": a["concurrency"], **agreement(a, b)} for a, b in pairs]
    say()
    for engine in data["engines"]:
        rates = ", ".join(f"{lv['tokens_per_s']:.1f} tok/s at {lv['concurrency']}" for lv in engine["levels"])
        say(f"{engine['engine']:<13} start {engine['startup_s']:6.1f}s  {rates}")
    for a in data["agreement"]:
        say(f"same answer at {a['concurrency']} in flight: {a['same_answer']:.0%} (same text {a['same_text']:.0%})")
    path = write_json(args.out, data)
    say(f"wrote {path}")
    return data


if __name__ == "__main__":
    main()

"""Serving throughput: ``evaluate`` on the embedded server vs a saturating load generator on the same server.

1. ``aevaluate`` runs a graph (default: two assistants and the sink, all on ``qwen2.5-coder-0.5b``; the lone
   sink answers GSM8K in a few tokens, the assistants work step by step) over N GSM8K questions
   through a ``ModelPool`` with the call cache disabled; its generated tokens/s is
   ``completion_tokens / wall time``.
2. A load generator replays the same calls straight to the server with ``httpx``: for every call of the
   evaluate run, one raw ``/chat/completions`` request with a prompt of about the same token count (random
   words, sized from two calibration probes) and exactly the same number of generated tokens
   (``max_tokens`` = the call's completion tokens, ``ignore_eos``: a llama.cpp option). Its concurrency is swept
   1, 2, 4, 8, … until generated tokens/s stops rising (less than ``--min-gain`` better than the best so far).

Reported: both tokens/s, their ratio (evaluate / best load generator; target ≥ 0.9) and the concurrency of
each (questions in flight for evaluate and the pool's per-endpoint cap; requests in flight for the generator).

    python benchmarks/throughput.py --pool /tmp/bench-srv/pool.yaml --n 8
    python benchmarks/throughput.py --n 8             # starts its own server with qwen2.5-coder-0.5b only
    python benchmarks/throughput.py --smoke --pool ...  # 1 question (3 calls + recovery), 16 tokens, sweep 1-2
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from common import chat_model_factory, default_out, header, parse_shape, say, server_extra_body, warm_up, write_json

from langtts.compile import GenerationSettings, default_settings
from langtts.evaluation import aevaluate
from langtts.models import ModelPool, PoolConfig
from langtts.tasks import get_task

DEFAULT_MODEL = "qwen2.5-coder-0.5b"
TARGET_RATIO = 0.9
_WORD_TEXT = (
    "time year people way day man thing woman life child world school state family student group country problem "
    "hand part place case week company system program question work government number night point home water "
    "room mother area money story fact month lot right study book eye job word business issue side kind head "
    "house service friend father power hour game line end member law car city community name president team "
    "minute idea kid body information back parent face others level office door health person art war history "
    "party result change morning reason research girl guy moment air teacher force education apple seven train"
)
WORDS = tuple(_WORD_TEXT.split())


def random_text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(max(words, 1)))


class LoadGenerator:
    """Raw chat completions against one server; prompts of a target token count, exact completion lengths."""

    def __init__(
        self, base_url: str, served: dict[str, str], temperature: float, extra: dict[str, Any], seed: int = 0
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.served = served
        self.temperature = temperature
        self.extra = extra
        self.retries = 0
        self.rng = random.Random(seed)
        self.fit: dict[str, tuple[float, float]] = {}  # model -> (tokens at 0 words, tokens per word)

    async def post(self, client: httpx.AsyncClient, model: str, text: str, max_tokens: int) -> dict[str, Any]:
        body = {
            "model": self.served[model],
            "messages": [{"role": "user", "content": text}],
            "max_tokens": max_tokens,
            "temperature": self.temperature,
            "seed": self.rng.randrange(2**31),
            "ignore_eos": True,
            **self.extra,
        }
        for attempt in range(3):  # llama.cpp's router now and then drops a kept-alive connection
            try:
                response = await client.post(self.url, json=body)
                break
            except httpx.TransportError:
                if attempt == 2:
                    raise
                self.retries += 1
        response.raise_for_status()
        return response.json()["usage"]

    async def calibrate(self, client: httpx.AsyncClient, model: str) -> None:
        small, large = 8, 128
        a = (await self.post(client, model, random_text(self.rng, small), 1))["prompt_tokens"]
        b = (await self.post(client, model, random_text(self.rng, large), 1))["prompt_tokens"]
        per_word = (b - a) / (large - small)
        self.fit[model] = (a - per_word * small, per_word)

    def words_for(self, model: str, prompt_tokens: int) -> int:
        base, per_word = self.fit[model]
        return max(1, round((prompt_tokens - base) / per_word))

    async def sweep_level(self, calls: Sequence[tuple[str, int, int]], concurrency: int) -> dict[str, Any]:
        """Send every call (model, prompt tokens, completion tokens) with ``concurrency`` requests in flight."""
        texts = [random_text(self.rng, self.words_for(m, p)) for m, p, _ in calls]
        limit = asyncio.Semaphore(concurrency)
        usages: list[dict[str, Any]] = []
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(timeout=httpx.Timeout(900.0), limits=limits) as client:

            async def one(call: tuple[str, int, int], text: str) -> None:
                model, _, completion = call
                async with limit:
                    usages.append(await self.post(client, model, text, max(completion, 1)))

            started = time.perf_counter()
            await asyncio.gather(*(one(c, t) for c, t in zip(calls, texts, strict=True)))
            wall = time.perf_counter() - started
        generated = sum(u["completion_tokens"] for u in usages)
        retries, self.retries = self.retries, 0
        return {
            "retries": retries,
            "concurrency": concurrency,
            "requests": len(usages),
            "wall_s": wall,
            "prompt_tokens": sum(u["prompt_tokens"] for u in usages),
            "completion_tokens": generated,
            "tokens_per_s": generated / wall,
        }


async def amain(args: argparse.Namespace, pool_file: Path) -> dict[str, Any]:
    config = PoolConfig.load(pool_file)
    extra = server_extra_body(args.server_prompt_cache)
    pool = ModelPool(config, cache=None, chat_model_factory=chat_model_factory(extra))
    if args.model not in pool.ids():
        raise SystemExit(f"model {args.model!r} is not in {pool_file} (it has {', '.join(pool.ids())})")
    model = pool.model(args.model)
    endpoint = model.endpoints[0]
    served = {args.model: model.name_on_server}
    graph = parse_shape(args.shape, args.model)
    task = get_task("gsm8k")
    examples = task.load()[: args.n]
    settings = GenerationSettings(
        temperature=args.temperature, max_tokens=args.max_tokens, seed=default_settings(task.family).seed
    )
    await asyncio.to_thread(warm_up, pool_file)
    say(
        f"evaluate: {args.shape} on {args.model}, {len(examples)} GSM8K questions, {args.eval_concurrency} in flight "
        f"(pool cap {endpoint.max_concurrency} per endpoint), max_tokens {args.max_tokens}, cache off"
    )
    result = await aevaluate(
        graph, task, pool, examples=examples, concurrency=args.eval_concurrency, settings=settings, progress=False
    )
    await pool.aclose()
    calls = [  # every model call: each node's own and its answer-recovery call (votes make none)
        (e["model"], call["prompt_tokens"], call["completion_tokens"])
        for r in result.records
        for e in r.trace
        for call in (e, e.get("recovery"))
        if call is not None and e["model"] is not None
    ]
    evaluation = {
        "shape": args.shape,
        "questions": result.n,
        "calls": result.calls,
        "recovery_calls": result.n_recovery_calls,
        "errors": result.n_errors,
        "accuracy": result.accuracy,
        "wall_s": result.wall_time_s,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "tokens_per_s": result.completion_tokens / result.wall_time_s,
        "concurrency": args.eval_concurrency,
        "pool_max_concurrency": endpoint.max_concurrency,
        "mean_completion_tokens": statistics.fmean(c for _, _, c in calls),
        "mean_prompt_tokens": statistics.fmean(p for _, p, _ in calls),
        "pool_retries": sum(r.retries for r in pool.ledger.records()),
    }
    say(
        f"  {evaluation['calls']} calls, {evaluation['completion_tokens']} generated tokens in "
        f"{evaluation['wall_s']:.1f}s: {evaluation['tokens_per_s']:.2f} tok/s (accuracy {result.accuracy:.0%}, "
        f"{evaluation['pool_retries']} retries)"
    )
    generator = LoadGenerator(endpoint.base_url, served, args.temperature, extra, seed=args.seed)
    async with httpx.AsyncClient(timeout=httpx.Timeout(300.0)) as client:
        await generator.calibrate(client, args.model)
    generator.retries = 0
    sweep: list[dict[str, Any]] = []
    best = 0.0
    concurrency = 1
    while concurrency <= args.max_concurrency:
        level = await generator.sweep_level(calls, concurrency)
        sweep.append(level)
        say(
            f"  load generator, {concurrency:>2} in flight: {level['completion_tokens']} tokens "
            f"({level['prompt_tokens']} prompt) in {level['wall_s']:.1f}s: {level['tokens_per_s']:.2f} tok/s "
            f"({level['retries']} retries)"
        )
        rising = level["tokens_per_s"] > best * (1 + args.min_gain)
        best = max(best, level["tokens_per_s"])
        if not rising and len(sweep) >= 2:
            break
        concurrency *= 2
    peak = max(sweep, key=lambda x: x["tokens_per_s"])
    return {
        "model": args.model,
        "base_url": endpoint.base_url,
        "evaluate": evaluation,
        "load_generator": {
            "prompt_fit": {
                "tokens_at_zero_words": generator.fit[args.model][0],
                "tokens_per_word": generator.fit[args.model][1],
            },
            "sweep": sweep,
            "best_concurrency": peak["concurrency"],
            "best_tokens_per_s": peak["tokens_per_s"],
        },
        "ratio": evaluation["tokens_per_s"] / peak["tokens_per_s"],
        "meets_target": evaluation["tokens_per_s"] / peak["tokens_per_s"] >= TARGET_RATIO,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="evaluate's generated tokens/s vs a saturating load generator")
    parser.add_argument("--pool", help="pool file of a running server (default: start one with --model only)")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument(
        "--shape", default="parallel:2", help="single, parallel:N or layered:DEPTHxWIDTH (all nodes on --model)"
    )
    parser.add_argument("--n", type=int, default=8, help="GSM8K questions for evaluate")
    parser.add_argument("--eval-concurrency", type=int, default=4, help="evaluate's questions in flight")
    parser.add_argument("--max-tokens", type=int, default=128, help="max_tokens of every call")
    parser.add_argument("--temperature", type=float, default=0.1)
    parser.add_argument("--max-concurrency", type=int, default=16, help="highest load-generator concurrency")
    parser.add_argument("--min-gain", type=float, default=0.03, help="stop the sweep when tokens/s rises less")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--server-prompt-cache", action="store_true", help="leave llama.cpp's prompt cache on (default: off)"
    )
    parser.add_argument("--smoke", action="store_true", help="1 question, max_tokens 16, sweep 1-2")
    parser.add_argument("--out", default=str(default_out("throughput")), help="result JSON file")
    args = parser.parse_args(argv)
    if args.smoke:
        args.n, args.max_tokens, args.max_concurrency, args.eval_concurrency = 1, 16, 2, 1
    parse_shape(args.shape, args.model)
    data = header("throughput")
    data["settings"] = {
        k: getattr(args, k)
        for k in ("pool", "model", "shape", "n", "eval_concurrency", "max_tokens", "temperature", "max_concurrency")
    } | {"min_gain": args.min_gain, "server_prompt_cache": args.server_prompt_cache, "smoke": args.smoke}
    data["target_ratio"] = TARGET_RATIO
    if args.pool:
        data["server"] = "given pool file"
        data |= asyncio.run(amain(args, Path(args.pool)))
    else:
        from langtts.serve.embedded import EmbeddedServer

        with tempfile.TemporaryDirectory(prefix="langtts-bench-") as run_dir:
            server = EmbeddedServer([args.model], run_dir=run_dir, progress=lambda _: None)
            info = server.start(setup=False)
            try:
                data["server"] = f"embedded, started by the script ({args.model} only)"
                data |= asyncio.run(amain(args, info.pool_file))
            finally:
                server.stop()
    say()
    e, g = data["evaluate"], data["load_generator"]
    say(f"evaluate        {e['tokens_per_s']:8.2f} tok/s  ({e['concurrency']} questions in flight, pool cap "
        f"{e['pool_max_concurrency']})")  # fmt: skip
    say(f"load generator  {g['best_tokens_per_s']:8.2f} tok/s  (best at {g['best_concurrency']} requests in flight)")
    verdict = "ok" if data["meets_target"] else "BELOW TARGET"
    say(f"ratio           {data['ratio']:8.3f}        {verdict} (≥ {TARGET_RATIO})")
    path = write_json(args.out, data)
    say(f"wrote {path}")
    return data


if __name__ == "__main__":
    main()

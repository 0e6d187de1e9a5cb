"""Harness fidelity: does the single-model graph measure what the model can do?

For each model and task, on shuffled questions (seeded):

1. **Prompt choice on a dev slice** (questions disjoint from the main ones): the single-model graph with the
   shipped prompt (``roles/<family>/``) and with the other variant — direct (``roles/<family>_direct/``) where a
   chain-of-thought prompt is shipped, chain of thought (``roles/<family>_cot/``) where a direct one is — at a
   generous ``--dev-max-tokens``, so the reply-length distribution (p50/p95/p99) is measured uncut.
2. **The main measurement**: the single-model graph with the shipped prompts and the task family's default
   ``max_tokens`` on ``--n`` questions: accuracy with its CI, extraction failures and truncations *before* answer
   recovery, the recovery rate, accuracy without recovery, completion tokens.
3. **An independent reference on the same questions**, computed another way, as a paired difference (bootstrap CI,
   exact McNemar): MMLU — the letter A-D with the highest log-probability as the first token of the reply to
   lm-evaluation-harness's zero-shot MMLU prompt; GSM8K — lm-evaluation-harness's 8-shot chain-of-thought prompt
   (``gsm8k_cot``, multi-turn) on the first ``--reference-n`` questions. HumanEval has no second method here; its
   row carries the published figure.
4. **The published figure** where one exists for the embedded model and setting.

Every call goes through the pool and its call cache (``--cache``), so an interrupted run resumes where it stopped.
A time estimate from this machine's measured tokens/s is printed before anything long starts.

    python benchmarks/harness_fidelity.py --pool ~/.cache/langtts/server/pool.yaml      # about 2 h on 2 CPUs
    python benchmarks/harness_fidelity.py --pool ... --smoke                             # a minute
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from common import default_out, header, say, write_json

from langtts.compare import paired_comparison
from langtts.compile import GenerationSettings, default_settings
from langtts.evaluation import EvaluationResult, evaluate
from langtts.models import CallCache, ModelPool
from langtts.prompts import PromptLibrary
from langtts.quickstart import measure_speed
from langtts.shapes import single
from langtts.tasks import Example, Task, get_task
from langtts.tasks.mmlu import LETTERS

DATA = Path(__file__).resolve().parent / "data"
PUBLISHED: dict[tuple[str, str], tuple[float, str]] = {
    ("qwen2.5-coder-0.5b", "humaneval"): (
        0.616,
        "Qwen2.5-Coder Technical Report (arXiv 2409.12186), Qwen2.5-Coder-0.5B-Instruct, HumanEval, EvalPlus, greedy, "
        "bf16 weights",
    ),
    ("qwen2.5-coder-1.5b", "humaneval"): (
        0.707,
        "Qwen2.5-Coder Technical Report (arXiv 2409.12186), Qwen2.5-Coder-1.5B-Instruct, HumanEval, EvalPlus, greedy, "
        "bf16 weights",
    ),
}
NO_PUBLISHED = {
    "gsm8k": "no figure published for the instruct model in this setting (the Qwen2.5-Coder report gives few-shot "
    "figures of the base models; SmolLM2's card reports GSM8K 5-shot)",
    "mmlu": "no figure published for the instruct model in this setting (the Qwen2.5-Coder report gives few-shot "
    "figures of the base models; SmolLM2's card reports MMLU in cloze form)",
    "humaneval": "no published figure for this model",
}
# Completion tokens per question assumed by the time estimate before anything is measured.
EXPECTED_TOKENS = {"gsm8k": 220, "mmlu": 200, "humaneval": 180}


def questions(task: Task, seed: int, n: int, dev_n: int) -> tuple[list[Example], list[Example]]:
    """The main questions and the disjoint dev slice, shuffled with ``seed``.

    MMLU: main from ``val``, dev from ``dev``; GSM8K: both from ``test`` (main first); HumanEval: all of it, no dev.
    """
    rng = random.Random(seed)
    if task.name == "mmlu":
        main, dev = task.load("val"), task.load("dev")
        rng.shuffle(main)
        rng.shuffle(dev)
        return main[:n], dev[:dev_n]
    examples = task.load()
    if task.name == "humaneval":
        return examples[:n], []
    rng.shuffle(examples)
    return examples[:n], examples[n : n + dev_n]


def prompt_variants(family: str) -> list[tuple[str, str]]:
    """The shipped prompts (``roles/<family>/``) and the other variant (``roles/<family>_direct/`` or
    ``roles/<family>_cot/``, whichever exists), as (label, prompt family) pairs."""
    library = PromptLibrary()
    other = "direct" if library.exists(f"roles/{family}_direct/decider_alone") else "cot"
    shipped = "cot" if other == "direct" else "direct"
    return [(f"{shipped} (shipped)", family), (other, f"{family}_{other}")]


def length_stats(result: EvaluationResult) -> dict[str, float]:
    """Completion tokens of the sink's own reply (recovery calls excluded) per question."""
    tokens = [r.trace[-1]["completion_tokens"] for r in result.records if r.trace]
    if not tokens:
        return {}
    return {
        "mean": statistics.fmean(tokens),
        "p50": float(np.percentile(tokens, 50)),
        "p95": float(np.percentile(tokens, 95)),
        "p99": float(np.percentile(tokens, 99)),
        "max": float(max(tokens)),
    }


def summary(result: EvaluationResult) -> dict[str, Any]:
    return {
        "n": result.n,
        "accuracy": result.accuracy,
        "ci_low": result.ci_low,
        "ci_high": result.ci_high,
        "extraction_failure_rate": result.extraction_failure_rate_before_recovery,
        "extraction_failure_rate_after_recovery": result.extraction_failure_rate,
        "truncation_rate": result.truncation_rate,
        "recovery_calls": result.n_recovery_calls,
        "recovery_rate": result.recovery_rate,
        "accuracy_without_recovery": result.accuracy_without_recovery,
        "errors": result.n_errors,
        "completion_tokens": length_stats(result),
    }


def mmlu_logprob_reference(pool: ModelPool, model: str, examples: Sequence[Example]) -> list[bool]:
    """lm-evaluation-harness's zero-shot MMLU prompt as one user turn; the letter with the highest log-probability
    among the first reply token's top 20 (no letter among them: wrong)."""
    correct = []
    for ex in examples:
        subject = str(ex.meta["subject"]).replace("_", " ")
        options = "\n".join(f"{letter}. {choice}" for letter, choice in zip(LETTERS, ex.meta["choices"], strict=True))
        prompt = (
            f"The following are multiple choice questions (with answers) about {subject}.\n\n"
            f"{ex.question}\n{options}\nAnswer:"
        )
        result = pool.chat(
            model, [{"role": "user", "content": prompt}], max_tokens=1, temperature=0.0, logprobs=20,
            tags={"purpose": "reference", "reference": "mmlu-logprob"},
        )  # fmt: skip
        first = (result.top_logprobs or [{}])[0]
        letters = {t.strip(): lp for t, lp in first.items() if t.strip() in LETTERS}
        best = max(letters, key=lambda t: letters[t]) if letters else None
        correct.append(best == ex.answer)
    return correct


def gsm8k_8shot_reference(pool: ModelPool, model: str, task: Task, examples: Sequence[Example]) -> list[bool]:
    """lm-evaluation-harness's ``gsm8k_cot`` (8 exemplars, multi-turn), greedy, 256 tokens, stop at ``Q:``."""
    shots = [json.loads(line) for line in (DATA / "gsm8k_cot_8shot.jsonl").read_text().splitlines()]
    turns: list[dict[str, str]] = []
    for shot in shots:
        turns += [
            {"role": "user", "content": f"Q: {shot['question']} Please reason step by step A:"},
            {"role": "assistant", "content": shot["target"]},
        ]
    correct = []
    for ex in examples:
        messages = [*turns, {"role": "user", "content": f"Q: {ex.question} Please reason step by step A:"}]
        result = pool.chat(
            model, messages, max_tokens=256, temperature=0.0, stop=["Q:"],
            tags={"purpose": "reference", "reference": "gsm8k-8shot-cot"},
        )  # fmt: skip
        correct.append(task.score(result.text, ex).correct)
    return correct


def estimate_minutes(args: argparse.Namespace, speeds: dict[str, float]) -> float:
    seconds = 0.0
    for speed in speeds.values():
        for task in args.tasks:
            calls = args.n + (2 * args.dev_n if task != "humaneval" else 0)
            calls += args.reference_n if task == "gsm8k" else 0
            seconds += calls * EXPECTED_TOKENS[task] / speed / min(args.concurrency, 2)
    return seconds / 60


def run(args: argparse.Namespace) -> dict[str, Any]:
    cache = CallCache(Path(args.cache)) if args.cache else CallCache.default()
    pool = ModelPool.from_file(args.pool, cache=cache, timeout=600.0)
    speeds = {model: measure_speed(pool, model, max_tokens=64) for model in args.models}
    say(f"measured speed (tok/s, 1 request): {', '.join(f'{m} {s:.1f}' for m, s in speeds.items())}")
    say(f"estimated time with an empty cache: about {estimate_minutes(args, speeds):.0f} min (cached calls are free)")
    rows, dev_rows = [], []
    for task_name in args.tasks:
        task = get_task(task_name)
        main, dev = questions(task, args.seed, args.n, args.dev_n)
        for model in args.models:
            say(f"--- {model} on {task_name}: {len(main)} questions, dev slice {len(dev)}")
            options = {"concurrency": args.concurrency, "progress": not args.quiet}
            for variant, family in prompt_variants(task.family) if dev else ():
                settings = GenerationSettings(max_tokens=args.dev_max_tokens)
                result = evaluate(single(model), task, pool, examples=dev, family=family, settings=settings, **options)
                dev_rows.append({"model": model, "task": task_name, "prompt": variant, **summary(result)})
                say(f"  dev {variant:14s} {result.summary()}")
            if args.dev_only:
                continue
            settings = default_settings(task.family)
            result = evaluate(single(model), task, pool, examples=main, settings=settings, **options)
            say(f"  main      {result.summary()}")
            row: dict[str, Any] = {
                "model": model,
                "task": task_name,
                "max_tokens": settings.max_tokens,
                **summary(result),
                "mean_completion_tokens": result.completion_tokens / result.n,
            }
            ours = {r.id: r.correct for r in result.records}
            reference: list[bool] | None = None
            ref_examples: list[Example] = []
            if task_name == "mmlu":
                ref_examples = main
                reference = mmlu_logprob_reference(pool, model, ref_examples)
                row["reference_method"] = "letter with the highest log-probability, lm-eval zero-shot MMLU prompt"
            elif task_name == "gsm8k":
                ref_examples = main[: args.reference_n]
                reference = gsm8k_8shot_reference(pool, model, task, ref_examples)
                row["reference_method"] = "lm-eval gsm8k_cot, 8-shot chain of thought, multi-turn, greedy"
            if reference is not None:
                paired = paired_comparison([ours[ex.id] for ex in ref_examples], reference)
                row.update(
                    reference_n=len(ref_examples),
                    reference_accuracy=sum(reference) / len(reference),
                    paired_difference=paired.difference,
                    paired_ci_low=paired.ci_low,
                    paired_ci_high=paired.ci_high,
                    paired_p_value=paired.p_value,
                )
                say(
                    f"  reference {row['reference_accuracy']:.1%} on {len(reference)}: langtts − reference "
                    f"{paired.difference:+.1%} [{paired.ci_low:+.1%}, {paired.ci_high:+.1%}], p = {paired.p_value:.3f}"
                )
            else:
                row.update(reference_n=0, reference_accuracy=None, reference_method=None)
            published = PUBLISHED.get((model, task_name))
            row["published_accuracy"] = published[0] if published else None
            row["published_source"] = published[1] if published else NO_PUBLISHED[task_name]
            rows.append(row)
    return {"speeds_tok_s": speeds, "rows": rows, "dev": dev_rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", required=True, help="pool file of a running server")
    parser.add_argument("--models", default="qwen2.5-coder-0.5b,qwen2.5-coder-1.5b")
    parser.add_argument("--tasks", default="gsm8k,mmlu", help="comma-separated: gsm8k, mmlu, humaneval")
    parser.add_argument("--n", type=int, default=100, help="main questions per task (HumanEval: at most 164)")
    parser.add_argument("--dev-n", type=int, default=30, help="dev-slice questions for the prompt choice")
    parser.add_argument("--dev-max-tokens", type=int, default=1024)
    parser.add_argument("--reference-n", type=int, default=50, help="GSM8K questions for the 8-shot reference")
    parser.add_argument("--concurrency", type=int, default=2, help="questions in flight")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", help="call cache (default: the user cache's calls.sqlite)")
    parser.add_argument("--out", default=str(default_out("harness_fidelity")))
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--dev-only", action="store_true", help="only the dev-slice prompt comparison")
    parser.add_argument("--smoke", action="store_true", help="2 questions, dev slice 1, 1 reference question")
    args = parser.parse_args()
    args.models, args.tasks = args.models.split(","), args.tasks.split(",")
    if args.smoke:
        args.n, args.dev_n, args.reference_n, args.dev_max_tokens = 2, 1, 1, 64
    data = {**header("harness_fidelity"), "settings": {k: v for k, v in vars(args).items() if k != "pool"}}
    data.update(run(args))
    say(f"wrote {write_json(args.out, data)}")


if __name__ == "__main__":
    main()

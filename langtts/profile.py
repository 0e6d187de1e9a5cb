"""Profile a pool on a task before any search: each model's single-call accuracy and costs.

Each model runs the single-model graph (:func:`langtts.shapes.single`) through :func:`langtts.evaluation.aevaluate`
on the same ``n`` questions: accuracy with a 95 % Wilson interval (over the questions whose calls did not fail),
mean prompt and completion tokens of the answering call (answer recovery not included), mean latency, measured
FLOPs per question (from the pool's accounting, :func:`langtts.cost.call_flops`; recovery calls included), and the
extraction-failure and truncation rates before answer recovery.

**Questions.** A run draws its held-out test questions first: the first ``n_test`` ids of the split's order
shuffled with its seed (:func:`~langtts.tasks.splits.search_test_split` with ``test_first``). A profile takes the
*last* ``n`` ids of that order (the search side of the same draw), so it never shares a question with the test
split of a run with the same split and seed unless ``n_test + n`` exceeds the split's size.

**Storage.** A profile is kept as JSON in the user cache, ``<cache>/profiles/<task>-<digest>.json`` (one file per
task, its options and split; see :func:`langtts.serve.cache.cache_dir`), under a :class:`ProfileKey`: the task,
the question ids and a hash of their text and gold answers, a hash of the prompts, the generation settings and
each model's id and pool spec. :func:`aprofile` returns the stored profile while its key matches, and measures
again (its calls replayed from the pool's call cache where they were made before) when it is missing or
:class:`Stale` — any part of the key changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from langtts.compile import GenerationSettings, answer_format, default_settings
from langtts.cost import Budget, TaskLengths, measure_task_lengths
from langtts.evaluation import EvaluationResult, aevaluate
from langtts.files import write_text_atomic
from langtts.models.pool import ModelPool
from langtts.prompts import PromptLibrary
from langtts.serve.cache import cache_dir
from langtts.shapes import single
from langtts.sync import run_sync
from langtts.tasks import JsonlTask, get_task
from langtts.tasks.base import Example, Task
from langtts.tasks.splits import search_test_split

PROFILE_SCHEMA_VERSION = 1
Z_95 = 1.959963984540054
"""The standard normal quantile of a two-sided 95 % interval."""
TABLE_LEGEND = (
    "accuracy with its 95% Wilson interval; prompt, completion: mean tokens of the answering call; latency: mean "
    "per question; FLOPs/q: measured per question (recovery calls included); no answer, truncated: shares of the "
    "questions before answer recovery"
)
NO_FLOOR_CEILING = 0.05
"""Without a chance floor, a model whose interval lies below this accuracy is indistinguishable from chance."""


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95 % by default)."""
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n >= 1, got {successes} of {n}")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def profile_questions(examples: Sequence[Example], n: int, seed: int) -> list[Example]:
    """The profile's ``n`` questions: the last ``n`` of the seeded draw whose first ids are a run's test split."""
    if not 1 <= n <= len(examples):
        raise ValueError(f"n must be between 1 and the {len(examples)} questions of the split, got {n}")
    return search_test_split(examples, n, len(examples) - n, seed=seed, test_first=True)[0]


class ProfileKey(BaseModel):
    """What a profile was measured on; a stored profile whose key differs is stale."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: str
    task_options: dict[str, Any]
    split: str
    seed: int
    question_ids: list[str]
    questions_sha256: str
    prompts_sha256: str
    settings: dict[str, Any]
    models: dict[str, dict[str, Any]]

    def differences(self, other: ProfileKey) -> list[str]:
        """What changed from ``other`` to this key, in words (empty when the keys are equal)."""
        changes = [
            f"{name} {getattr(other, name)!r} → {getattr(self, name)!r}"
            for name in ("task", "task_options", "split", "seed")
            if getattr(self, name) != getattr(other, name)
        ]
        if self.question_ids != other.question_ids:
            changes.append(f"question ids ({len(other.question_ids)} → {len(self.question_ids)} questions)")
        elif self.questions_sha256 != other.questions_sha256:
            changes.append("question texts or gold answers")
        if self.prompts_sha256 != other.prompts_sha256:
            changes.append("prompts")
        changes += [
            f"{name} {other.settings.get(name)!r} → {value!r}"
            for name, value in self.settings.items()
            if other.settings.get(name) != value
        ]
        if list(self.models) != list(other.models):
            changes.append(f"models {','.join(other.models)} → {','.join(self.models)}")
        changes += [f"{m}'s pool spec" for m in self.models if m in other.models and self.models[m] != other.models[m]]
        return changes


class ModelProfile(BaseModel):
    """One model's single-call figures on the profile's questions."""

    model: str
    n: int
    n_scored: int
    n_correct: int
    n_errors: int
    accuracy: float | None
    ci_low: float | None
    ci_high: float | None
    prompt_tokens_mean: float
    completion_tokens_mean: float
    latency_mean_s: float
    flops_per_question: float
    extraction_failure_rate: float
    truncation_rate: float
    calls: int
    cache_hits: int

    def accuracy_text(self) -> str:
        """``40.0%`` (``-`` when nothing was scored)."""
        return "-" if self.accuracy is None else f"{self.accuracy:.1%}"

    def interval_text(self) -> str:
        """``[26.3%, 55.4%]`` (``-`` when nothing was scored)."""
        return "-" if self.ci_low is None or self.ci_high is None else f"[{self.ci_low:.1%}, {self.ci_high:.1%}]"

    def above_chance(self, chance_floor: float | None) -> bool:
        """Whether the interval's lower bound is above the chance floor (no floor: its upper bound reaches 5 %)."""
        if self.ci_low is None or self.ci_high is None:
            return False
        return self.ci_low > chance_floor if chance_floor is not None else self.ci_high >= NO_FLOOR_CEILING


class Profile(BaseModel):
    """Each model's single-call profile on one task, under the key it was measured with."""

    schema_version: int = PROFILE_SCHEMA_VERSION
    key: ProfileKey
    chance_floor: float | None
    models: list[ModelProfile]
    measured_at: str
    wall_time_s: float

    def model(self, model_id: str) -> ModelProfile:
        for entry in self.models:
            if entry.model == model_id:
                return entry
        raise KeyError(f"model {model_id!r} is not in the profile ({', '.join(m.model for m in self.models)})")

    def best(self) -> ModelProfile | None:
        """The most accurate model (ties: fewer FLOPs per question), None when no accuracy was determined."""
        measured = [m for m in self.models if m.accuracy is not None]
        return min(measured, key=lambda m: (-(m.accuracy or 0.0), m.flops_per_question), default=None)

    def task_lengths(self, models: Sequence[str] | None = None) -> TaskLengths:
        """The cost model's A and B measured here: the mean prompt and completion tokens of ``models``' answering
        calls (default: every profiled model; each model weighs alike), B bounded by the profile's ``max_tokens``."""
        chosen = [self.model(m) for m in models] if models is not None else self.models
        measured = measure_task_lengths((m.prompt_tokens_mean, m.completion_tokens_mean) for m in chosen)
        cap = self.key.settings.get("max_tokens")
        return (
            measured
            if cap is None
            else measured.model_copy(update={"output_tokens": min(measured.output_tokens, float(cap))})
        )

    def warnings(self, budget: Budget | float | None = None) -> list[str]:
        """Why a search would follow noise: no model distinguishable from chance, or (given ``budget``, a
        :class:`~langtts.cost.Budget` or FLOPs per question) a budget that cannot add one call of the cheapest
        model to the best model's call (measured FLOPs), so it affords nothing beyond the single best model."""
        out = []
        if not any(m.above_chance(self.chance_floor) for m in self.models):
            bound = (
                f"interval's lower bound above the chance floor of {self.chance_floor:.0%}"
                if self.chance_floor is not None
                else f"interval reaching {NO_FLOOR_CEILING:.0%}"
            )
            out.append(
                f"no model is distinguishable from chance on {self.key.task} ({len(self.key.question_ids)} "
                f"questions; none has its 95% {bound}): a search would follow noise; use stronger models or "
                "another task"
            )
        best = self.best()
        if budget is not None and best is not None:
            flops = budget.flops if isinstance(budget, Budget) else float(budget)
            cheapest = min(m.flops_per_question for m in self.models)
            if flops < best.flops_per_question + cheapest:
                out.append(
                    f"the budget ({flops:.3g} FLOPs per question) affords nothing beyond the single best model "
                    f"{best.model} ({best.flops_per_question:.3g} FLOPs measured per question): one more call of "
                    f"the cheapest model needs {best.flops_per_question + cheapest:.3g}"
                )
        return out

    def table(self) -> str:
        """The profile as an aligned text table, one row per model (see `TABLE_LEGEND`)."""
        rows = [("model", "accuracy", "95% CI", "prompt", "completion", "latency", "FLOPs/q", "no answer", "truncated")]
        for m in self.models:
            rows.append(
                (
                    m.model,
                    m.accuracy_text(),
                    m.interval_text(),
                    f"{m.prompt_tokens_mean:.1f}",
                    f"{m.completion_tokens_mean:.1f}",
                    f"{m.latency_mean_s:.2f}s",
                    f"{m.flops_per_question:.3g}",
                    f"{m.extraction_failure_rate:.1%}",
                    f"{m.truncation_rate:.1%}",
                )
            )
        return aligned(rows)

    def save(self, path: str | Path) -> None:
        write_text_atomic(path, self.model_dump_json(indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        """The profile saved at ``path``; ValueError for a file of another shape or schema version."""
        loaded = cls.model_validate_json(Path(path).read_bytes())
        if loaded.schema_version != PROFILE_SCHEMA_VERSION:
            raise ValueError(f"{path}: unsupported profile schema_version {loaded.schema_version}")
        return loaded


def aligned(rows: Sequence[Sequence[str]]) -> str:
    """Rows of cells as text columns, two spaces apart, left-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)


@dataclass(frozen=True)
class Stale:
    """A stored profile whose key no longer matches, and what changed."""

    reason: str
    profile: Profile


def profile_path(task: Task, split: str | None = None, directory: str | Path | None = None) -> Path:
    """Where the profile of ``task`` on ``split`` is kept (default directory: ``<user cache>/profiles``)."""
    identity = json.dumps([task.name, _task_options(task), split or task.default_split], sort_keys=True)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", task.name)
    root = Path(directory) if directory is not None else cache_dir() / "profiles"
    return root / f"{slug}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}.json"


def profile_key(
    task: Task,
    pool: ModelPool,
    models: Sequence[str] | None = None,
    *,
    n: int = 100,
    seed: int = 0,
    split: str | None = None,
    temperature: float = 0.1,
    max_tokens: int | None = None,
    prompts: PromptLibrary | Mapping[str, str] | None = None,
) -> ProfileKey:
    """The key of a profile of ``models`` (default: every pool model) on ``task``'s :func:`profile_questions`,
    with a search's generation settings: ``temperature``, ``max_tokens`` (default: the task family's) and the
    family's seed."""
    models = list(models) if models is not None else pool.ids()
    if not models or len(set(models)) != len(models):
        raise ValueError(f"give distinct model ids to profile, got {models}")
    questions = profile_questions(task.load(split), n, seed)
    defaults = default_settings(task.family)
    settings = GenerationSettings(
        temperature=temperature, max_tokens=max_tokens or defaults.max_tokens, seed=defaults.seed
    )
    library = prompts if isinstance(prompts, PromptLibrary) else PromptLibrary(overrides=prompts)
    templates = [
        library.first(f"roles/{task.family}/{kind}", f"roles/generic/{kind}") for kind in ("decider_alone", "recover")
    ]
    prompt_text = [answer_format(task, library), *([t.system, t.user] for t in templates)]
    question_text = [[ex.id, task.format_question(ex), ex.answer] for ex in questions]
    return ProfileKey(
        task=task.name,
        task_options=_task_options(task),
        split=split or task.default_split,
        seed=seed,
        question_ids=[ex.id for ex in questions],
        questions_sha256=_sha256(question_text),
        prompts_sha256=_sha256(prompt_text),
        settings=json.loads(json.dumps(dataclasses.asdict(settings))),
        models={
            m: {
                "spec": pool.spec(m).model_dump(mode="json"),
                "served_name": pool.model(m).name_on_server,
                "fingerprint": pool.model(m).fingerprint,
            }
            for m in models
        },
    )


def load_profile(key: ProfileKey, path: str | Path) -> Profile | Stale | None:
    """The profile stored at ``path`` if its key is ``key``; `Stale` with what changed if not; None if none is
    stored (or the file is unreadable)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        stored = Profile.load(path)
    except ValueError:
        return None
    changes = key.differences(stored.key)
    return Stale("changed: " + "; ".join(changes), stored) if changes else stored


def stored_profile(
    task: Task | str,
    pool: ModelPool,
    models: Sequence[str] | None = None,
    *,
    directory: str | Path | None = None,
    **options: Any,
) -> Profile | Stale | None:
    """What :func:`aprofile` with these arguments finds stored (see :func:`load_profile`), measuring nothing;
    ``options``: those of :func:`profile_key`."""
    task = get_task(task) if isinstance(task, str) else task
    return load_profile(profile_key(task, pool, models, **options), profile_path(task, options.get("split"), directory))


def fitting_profile(
    task: Task,
    pool: ModelPool,
    models: Sequence[str],
    *,
    split: str | None = None,
    temperature: float = 0.1,
    max_tokens: int | None = None,
    directory: str | Path | None = None,
) -> Profile | str:
    """The stored profile of ``task``, restricted to ``models``, when it was measured on them (a profile of more
    models, at any N and seed, serves) under the same prompts, generation settings and pool specs; else why not, in
    words (measuring nothing)."""
    path = profile_path(task, split, directory)
    try:
        stored = Profile.load(path) if path.is_file() else None
    except ValueError:
        stored = None
    hint = f"`langtts profile {task.name} --models {','.join(models)}` measures it"
    if stored is None:
        return f"no profile of these models on {task.name}: {hint}"
    in_pool = [m for m in stored.key.models if m in pool.ids()]
    current = profile_key(
        task, pool, in_pool if set(models) <= set(in_pool) else models, n=len(stored.key.question_ids),
        seed=stored.key.seed, split=split, temperature=temperature, max_tokens=max_tokens,
    )  # fmt: skip
    if changes := current.differences(stored.key):
        return f"the stored profile of {task.name} does not fit (changed: {'; '.join(changes)}): {hint}"
    return stored.model_copy(update={"models": [m for m in stored.models if m.model in models]})


def search_warnings(task: Task, pool: ModelPool, models: Sequence[str], budget: Budget, **options: Any) -> list[str]:
    """What the stored profile says before a search over ``models`` within ``budget``: its `Profile.warnings`
    when it fits (see :func:`fitting_profile`, whose ``options`` these are), else why it does not."""
    found = fitting_profile(task, pool, models, **options)
    return [found] if isinstance(found, str) else found.warnings(budget)


def profile_lengths(task: Task, pool: ModelPool, models: Sequence[str], **options: Any) -> TaskLengths:
    """The cost model's lengths measured by the stored profile of ``models`` (see :func:`fitting_profile`, whose
    ``options`` these are); a ValueError saying why when no stored profile fits."""
    found = fitting_profile(task, pool, models, **options)
    if isinstance(found, str):
        raise ValueError(f"lengths from the profile: {found}")
    return found.task_lengths()


def profile(task: Task | str, pool: ModelPool, models: Sequence[str] | None = None, **options: Any) -> Profile:
    """Profile ``models`` of ``pool`` on ``task``; see :func:`aprofile`."""
    return run_sync(aprofile(task, pool, models, **options))


async def aprofile(
    task: Task | str,
    pool: ModelPool,
    models: Sequence[str] | None = None,
    *,
    concurrency: int = 4,
    directory: str | Path | None = None,
    progress: bool = True,
    report: Callable[[str], None] | None = None,
    **options: Any,
) -> Profile:
    """The profile of ``models`` (default: every pool model) on questions of ``task``; ``options``: those of
    :func:`profile_key` (``n=100``, ``seed=0``, ``split``, ``temperature=0.1``, ``max_tokens``, ``prompts``).

    A stored profile with the same key is returned as is; otherwise the models are measured (calls tagged
    ``purpose=profile``; earlier calls replay from the pool's cache) and the profile is saved to
    :func:`profile_path` (in ``directory`` when given). ``progress`` shows a bar per model; ``report`` receives a
    line saying whether the stored profile was used and why one is measured. Raises
    :class:`~langtts.evaluation.CallsFailedError` (and stores nothing) when calls failed after the pool's retries.
    """
    task = get_task(task) if isinstance(task, str) else task
    key = profile_key(task, pool, models, **options)
    split = options.get("split")
    path = profile_path(task, split, directory)
    stored = load_profile(key, path)
    say = report or (lambda line: None)
    if isinstance(stored, Profile):
        say(f"stored profile is current: {path}")
        return stored
    say(_measuring(stored, key, path, concurrency))
    started = time.monotonic()
    by_id = {ex.id: ex for ex in task.load(split)}
    examples = [by_id[i] for i in key.question_ids]
    settings = GenerationSettings(**{**key.settings, "stop": tuple(key.settings["stop"])})
    entries = []
    for model in key.models:
        result = await aevaluate(
            single(model), task, pool, examples=examples, concurrency=concurrency, progress=progress,
            settings=settings, prompts=options.get("prompts"), tags={"purpose": "profile"},
        )  # fmt: skip
        result.raise_for_call_failures()
        entries.append(_model_profile(model, result))
    measured = Profile(
        key=key,
        chance_floor=task.chance_floor,
        models=entries,
        measured_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        wall_time_s=time.monotonic() - started,
    )
    measured.save(path)
    return measured


def _measuring(stored: Stale | None, key: ProfileKey, path: Path, concurrency: int) -> str:
    """The line announcing a measurement: why, and about how long from the stale profile's latencies."""
    n = len(key.question_ids)
    why = f"stored profile is stale ({stored.reason})" if stored else f"no stored profile at {path}"
    line = f"{why}: measuring {len(key.models)} model(s) on {n} questions"
    if stored is not None:
        latency = {m.model: m.latency_mean_s for m in stored.profile.models}
        if all(m in latency for m in key.models):
            seconds = sum(latency[m] for m in key.models) * n / concurrency
            line += f" (about {seconds:.0f}s at the last profile's latencies; cached calls take none)"
    return line


def _model_profile(model: str, result: EvaluationResult) -> ModelProfile:
    """A model's figures from its single-model evaluation (errors leave the accuracy, never count as wrong)."""
    scored = result.n - result.n_errors
    low, high = wilson_interval(result.n_correct, scored) if scored else (None, None)
    answering = [r.trace[-1] for r in result.records if r.trace]  # the sink's own call, recovery not included
    return ModelProfile(
        model=model,
        n=result.n,
        n_scored=scored,
        n_correct=result.n_correct,
        n_errors=result.n_errors,
        accuracy=result.accuracy,
        ci_low=low,
        ci_high=high,
        prompt_tokens_mean=statistics.fmean(e["prompt_tokens"] for e in answering) if answering else 0.0,
        completion_tokens_mean=statistics.fmean(e["completion_tokens"] for e in answering) if answering else 0.0,
        latency_mean_s=result.latency_mean_s,
        flops_per_question=result.flops / result.n,
        extraction_failure_rate=result.extraction_failure_rate_before_recovery,
        truncation_rate=result.truncation_rate,
        calls=result.calls,
        cache_hits=result.cache_hits,
    )


def _task_options(task: Task) -> dict[str, Any]:
    """What distinguishes this task from others of its name: MMLU subjects, a JSONL task's file and scorer."""
    if isinstance(task, JsonlTask):
        return {"path": str(task.path.resolve()), "scorer": task.scorer.spec}
    subjects = getattr(task, "subjects", None)
    return {"subjects": sorted(subjects)} if subjects else {}


def _sha256(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()

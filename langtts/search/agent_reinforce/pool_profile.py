"""The stored ``langtts profile`` of the run's pool, as Agent-REINFORCE reads it (issue 15, item 1(b)).

**Which profile.** The one :func:`langtts.profile.fitting_profile` finds for the run's task and worker models
(``context.space.models``) under the run's ``split``, ``temperature`` and ``max_tokens`` (``context.settings``;
the run defaults where it has none): a profile of these models (or more, at any N and seed) measured under the
same prompts, generation settings and pool specs; a stale one is ignored.

**What is kept.** A JSON snapshot (:func:`snapshot`): the file, when it was measured, its number of questions, the
task's chance floor, per model the figures the agent uses, and the prompt text rendered from them. It goes into
the agent's thread state (``init["profile"]``) and into ``RUN_DIR/agent_profile.json`` the first time it is read
(also when no profile fits: then with the reason), so neither a resumed thread nor a thread started again before
its first state was saved reads a profile that changed in between.

**Worth of a variant** (the pretest's rule with a profile, :func:`worth`): the sum, over the variant's workers
(copies counted), of ``ci_low − floor``: each worker's model's 95 % Wilson lower bound minus the task's chance
floor (5 %, the profile's ``NO_FLOOR_CEILING``, for tasks without one). It counts the worker answers that are
right beyond guessing, at the pessimistic end of each model's interval: a worker whose model is not distinguishable
from that floor lowers it (so the variant without it wins), every worker clearly above it raises it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from langtts.files import write_text_atomic
from langtts.profile import NO_FLOOR_CEILING, Profile, fitting_profile, profile_path
from langtts.search.base import MethodContext
from langtts.search.records import RunConfig

SNAPSHOT_FILE = "agent_profile.json"
"""Where the agent keeps, in the run directory, the profile it read (or why none)."""
FIGURES = (
    "accuracy",
    "ci_low",
    "ci_high",
    "n_scored",
    "completion_tokens_mean",
    "flops_per_question",
    "extraction_failure_rate",
)
"""The per-model figures of a snapshot: what the prompt's table and the pretest's rule read."""


def run_settings(context: MethodContext) -> dict[str, Any]:
    """The run's ``split``, ``temperature`` and ``max_tokens`` (``context.settings``, else the run defaults)."""
    defaults = {name: RunConfig.model_fields[name].default for name in ("split", "temperature", "max_tokens")}
    return {name: context.settings.get(name, default) for name, default in defaults.items()}


def read(context: MethodContext) -> tuple[Profile | None, Path | None, str]:
    """The stored profile that fits the run (see the module docstring), its file, and a note saying why none
    does (empty when one does)."""
    if context.task is None or context.pool is None:
        return None, None, "no task or pool in the method context"
    settings = run_settings(context)
    models = list(context.space.models)
    try:
        found = fitting_profile(context.task, context.pool, models, **settings)
    except (OSError, ValueError, KeyError) as error:
        return None, None, f"the stored profile could not be read: {error}"
    if isinstance(found, str):
        return None, None, found
    return found, profile_path(context.task, settings["split"]), ""


def snapshot(profile: Profile, path: Path, text: str) -> dict[str, Any]:
    """What the agent keeps of ``profile`` (JSON): its file, date, size, chance floor, the floor of the pretest's
    rule, the per-model `FIGURES` and the prompt ``text`` rendered from them."""
    return {
        "path": str(path),
        "measured_at": profile.measured_at,
        "task": profile.key.task,
        "n": len(profile.key.question_ids),
        "chance_floor": profile.chance_floor,
        "floor": profile.chance_floor if profile.chance_floor is not None else NO_FLOOR_CEILING,
        "models": {m.model: {name: getattr(m, name) for name in FIGURES} for m in profile.models},
        "text": text,
    }


def load_kept(run_dir: Path | None) -> dict[str, Any] | None:
    """The snapshot file kept in ``run_dir`` (``{"profile": snapshot or None, "note": ...}``), None if none."""
    if run_dir is None or not (run_dir / SNAPSHOT_FILE).is_file():
        return None
    try:
        kept = json.loads((run_dir / SNAPSHOT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return kept if isinstance(kept, dict) and "profile" in kept else None


def keep(run_dir: Path | None, profile: dict[str, Any] | None, note: str) -> None:
    """Write the snapshot (or None and why) to ``run_dir`` (nothing without a run directory)."""
    if run_dir is not None and run_dir.is_dir():
        write_text_atomic(run_dir / SNAPSHOT_FILE, json.dumps({"profile": profile, "note": note}, indent=1) + "\n")


def decides(profile: Mapping[str, Any] | None, variants: Sequence[Sequence[str]]) -> bool:
    """Whether ``profile`` (a snapshot) ranks ``variants``: every model in them has a measured interval."""
    if not profile:
        return False
    figures = profile["models"]
    return all(m in figures and figures[m]["ci_low"] is not None for v in variants for m in v)


def worth(profile: Mapping[str, Any], multiset: Sequence[str]) -> float:
    """The variant's expected worth: the sum over its workers of their model's ``ci_low`` minus the floor
    (rounded to 9 digits, so that equal sums tie)."""
    figures, floor = profile["models"], float(profile["floor"])
    return round(sum(float(figures[m]["ci_low"]) - floor for m in multiset), 9)

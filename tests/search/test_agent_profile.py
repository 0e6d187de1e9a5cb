"""Agent-REINFORCE with the pool's stored `langtts profile` (issue 15, item 1(b)): the pilot table of this pool in
the initialise prompt, a pretest decided by the profile, stale profiles ignored, resume keeping what was read."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from langtts.models.pool import ModelPool
from langtts.profile import ModelProfile, Profile, profile_key, profile_path, wilson_interval
from langtts.prompts import SHIPPED_DIR
from langtts.search import OptimizationResult, resume
from langtts.search.agent_reinforce import AgentReinforce
from langtts.search.agent_reinforce.pool_profile import SNAPSHOT_FILE, worth
from langtts.search.base import MethodContext
from langtts.tasks import get_task
from langtts.tasks.base import Task
from tests.search.helpers import json_round_trip
from tests.search.synthetic_run import AGENT_CALLS, agent_pool, evaluator, run
from tests.search.synthetic_run import MODELS as RUN_MODELS
from tests.search.test_agent_reinforce import Setup, drive, evaluation
from tests.search.test_run import _essence, _killed_agent_run

MMLU, GSM8K = get_task("mmlu"), get_task("gsm8k")
SMOL, GEMMA, QWEN = "smollm2-135m", "gemma3-270m", "qwen2.5-coder-0.5b"
CORRECT = {SMOL: 10, GEMMA: 16, QWEN: 20}  # of 40 MMLU questions: smollm2 at chance (25 %), the others above
N = 40


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private user cache: profiles are stored under ``<cache>/profiles``."""
    monkeypatch.setenv("LANGTTS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def model_profile(model: str, correct: int) -> ModelProfile:
    low, high = wilson_interval(correct, N)
    return ModelProfile(
        model=model, n=N, n_scored=N, n_correct=correct, n_errors=0, accuracy=correct / N, ci_low=low, ci_high=high,
        prompt_tokens_mean=120.0, completion_tokens_mean=250.5, latency_mean_s=1.0, flops_per_question=3.2e9,
        extraction_failure_rate=0.05, truncation_rate=0.0, calls=N, cache_hits=0,
    )  # fmt: skip


def store(task: Task, pool: ModelPool, correct: Mapping[str, int], **key_options: Any) -> Profile:
    """Save a profile of ``correct``'s models on ``task`` under the key of ``key_options`` (default: the run's)."""
    key = profile_key(task, pool, list(correct), n=N, **key_options)
    stored = Profile(
        key=key,
        chance_floor=task.chance_floor,
        models=[model_profile(m, k) for m, k in correct.items()],
        measured_at="2026-11-28T12:00:00Z",
        wall_time_s=10.0,
    )
    stored.save(profile_path(task))
    return stored


class ProfileSetup(Setup):
    """Setup on a task (MMLU by default), optionally with a run directory."""

    def __init__(
        self,
        task: Task = MMLU,
        run_dir: Path | None = None,
        cache_dir: Path | None = None,
        settings: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(cache_dir)
        self.task, self.run_dir, self.settings = task, run_dir, settings or {}

    def build(self, **options: Any) -> AgentReinforce:
        context = MethodContext(
            space=self.space, seed=3, pool=self.pool, task=self.task, tags={"run": "r1", "purpose": "optimizer"},
            calibrate=self.calibrate, run_dir=self.run_dir, report=self.lines.append, settings=self.settings,
        )  # fmt: skip
        return AgentReinforce(context, **options)


def initialise_prompt(setup: Setup, **options: Any) -> tuple[str, AgentReinforce]:
    optimizer = setup.build(**options)
    asyncio.run(drive(optimizer, 1))
    return setup.agent.prompts["multiset_choice"][-1], optimizer


TABLE = [
    "model               accuracy  95% CI          n   completion tokens  FLOPs/question  no answer",
    "smollm2-135m        25.0%     [14.2%, 40.2%]  40  250.5              3.2e+09         5.0%",
    "gemma3-270m         40.0%     [26.3%, 55.4%]  40  250.5              3.2e+09         5.0%",
    "qwen2.5-coder-0.5b  50.0%     [35.2%, 64.8%]  40  250.5              3.2e+09         5.0%",
]


def test_the_initialise_prompt_shows_the_pool_profile_beside_the_papers_pilot_data():
    setup = ProfileSetup()
    stored = store(MMLU, setup.pool, CORRECT)
    prompt, optimizer = initialise_prompt(setup)
    lines = prompt.splitlines()
    paper = lines.index(
        "Pilot accuracies in % (Wang et al. 2025, Llama 3.x models; budgets in no-input calls of the 1B model):"
    )
    ours = lines.index(
        "Pool profile: your models on mmlu, measured by `langtts profile` (each model alone on 40 questions; chance"
    )
    assert lines.index("Insights from pilot experiments (priors; this task's results overrule them):") < paper < ours
    assert lines[ours + 1 : ours + 4] == [
        "level: 25%). Unlike the paper's Llama figures, these are the models you choose from: where the two disagree,",
        "trust these measurements. Per model: accuracy with its 95% interval, questions scored, mean completion "
        "tokens,",
        "measured FLOPs per question, share of replies without an answer.",
    ]
    assert lines[ours + 4 : ours + 8] == TABLE
    assert lines[ours + 8].startswith("Roles:")  # the shared system message ends with the roles
    assert any(line.startswith("Candidate worker-model multisets") for line in lines[ours + 8 :])
    assert lines[ours - 1] == "- HumanEval, single models: 1B 31, 3B 48, 8B 60, 70B 68"  # the paper's last line

    report = json_round_trip(optimizer.report())
    path = str(profile_path(MMLU))
    assert report["profile"] == {"used": True, "path": path, "note": ""}
    kept = report["initialise"]["profile"]
    assert kept["path"] == path and kept["n"] == N and kept["floor"] == 0.25 and kept["chance_floor"] == 0.25
    assert kept["models"][GEMMA]["ci_low"] == stored.model(GEMMA).ci_low and list(kept["models"]) == list(CORRECT)
    assert "\n".join(TABLE) in kept["text"]
    assert setup.lines[0] == f"[agent] pool profile: {path} (40 questions, measured 2026-11-28T12:00:00Z)"


def test_without_a_profile_the_initialise_prompt_is_the_one_before_profiles(tmp_path: Path):
    # the shipped shared context without `{pool_profile}` (a user's copy of it shows the profile after the pilot)
    before = (SHIPPED_DIR / "agent" / "context.txt").read_text().replace("{pilot}{pool_profile}\n", "{pilot}\n")
    assert "{pool_profile}" not in before
    (tmp_path / "agent").mkdir()
    (tmp_path / "agent" / "context.txt").write_text(before)
    old, _ = initialise_prompt(ProfileSetup(), prompts_dir=str(tmp_path))
    none, optimizer = initialise_prompt(ProfileSetup())
    assert none == old and "Pool profile" not in none and "Pilot accuracies in % (Wang et al." in none
    report = optimizer.report()
    assert report["profile"]["used"] is False and report["initialise"]["profile"] is None
    assert report["profile"]["note"].startswith("no profile of these models on mmlu")
    assert optimizer.report()["initialise"]["pretests"]  # one-question calibrations, as before

    setup = ProfileSetup()
    store(MMLU, setup.pool, CORRECT)
    unused, optimizer = initialise_prompt(setup, use_profile=False)
    assert unused == none and optimizer.report()["profile"]["note"] == "not used (use_profile=False)"
    user, _ = initialise_prompt(setup, prompts_dir=str(tmp_path))  # a user template without the placeholder
    pilot = "- HumanEval, single models: 1B 31, 3B 48, 8B 60, 70B 68\nPool profile: your models on mmlu"
    assert pilot in user and "\n".join(TABLE) + "\nRoles:" in user


def test_the_pretest_with_a_profile_makes_no_calibration_call_and_keeps_the_highest_worth():
    setup = ProfileSetup()
    store(MMLU, setup.pool, CORRECT)
    _, optimizer = initialise_prompt(setup)
    init = optimizer.report()["initialise"]
    assert setup.calibrated == [] and init["pretests"] == []
    assert init["choices"] == [0, 1]  # 3× gemma3 + 5× smollm2, 4× gemma3 + 3× smollm2: each dropping smollm2s
    low = {m: wilson_interval(k, N)[0] - 0.25 for m, k in CORRECT.items()}  # smollm2 < 0 < gemma3
    expected = [
        *[[GEMMA] * 3 + [SMOL] * s for s in (5, 4, 3, 2, 1)],
        *[[GEMMA] * 4 + [SMOL] * s for s in (3, 2, 1, 0)],
        [GEMMA] * 3,
    ]
    assert [w["multiset"] for w in init["profile_worths"]] == expected == init["variants"]
    for entry in init["profile_worths"]:
        assert entry["worth"] == pytest.approx(sum(low[m] for m in entry["multiset"]), abs=1e-9)
    assert init["multiset"] == [GEMMA] * 4  # every gemma3 adds 0.013, every smollm2 takes 0.108
    assert f"keeping 4× {GEMMA} (worth 0.054)" in setup.lines[2] and "no calibration call" in setup.lines[2]
    assert worth(init["profile"], [GEMMA] * 4) == pytest.approx(4 * low[GEMMA])


def test_without_a_chance_floor_the_worth_counts_from_five_percent():
    setup = ProfileSetup(GSM8K)
    store(GSM8K, setup.pool, {SMOL: 1, GEMMA: 12, QWEN: 20})  # smollm2's lower bound: 0.4 %
    _, optimizer = initialise_prompt(setup)
    init = optimizer.report()["initialise"]
    assert init["profile"]["floor"] == 0.05 and init["profile"]["chance_floor"] is None and setup.calibrated == []
    assert init["multiset"] == [GEMMA] * 4
    assert "chance\nlevel: none for this task)" in setup.agent.prompts["multiset_choice"][0]


def test_a_stale_profile_is_ignored(tmp_path: Path):
    none, _ = initialise_prompt(ProfileSetup())
    setup = ProfileSetup()
    store(MMLU, setup.pool, CORRECT, temperature=0.7)  # measured at another temperature than the run's 0.1
    stale, optimizer = initialise_prompt(setup)
    assert stale == none and setup.calibrated  # the no-profile prompt, and the one-question pretest
    note = optimizer.report()["profile"]["note"]
    assert note.startswith("the stored profile of mmlu does not fit (changed: temperature 0.7 → 0.1)")

    setup = ProfileSetup(settings={"temperature": 0.7})  # the run's settings, as the search loop passes them
    fits, optimizer = initialise_prompt(setup)
    assert "\n".join(TABLE) in fits and optimizer.report()["profile"]["used"] and not setup.calibrated


def test_a_resumed_thread_keeps_the_profile_it_read(cache: Path):
    setup = ProfileSetup()
    store(MMLU, setup.pool, CORRECT)

    async def first_session():
        optimizer = setup.build()
        await drive(optimizer, 2)
        return json_round_trip(optimizer.state_dict())

    state = asyncio.run(first_session())
    store(MMLU, setup.pool, {SMOL: 30, GEMMA: 5, QWEN: 5})  # the profile changes before the resume

    async def second_session():
        optimizer = setup.build()
        optimizer.load_state_dict(state)
        graph = await optimizer.propose()
        await optimizer.observe(graph, evaluation(graph, 2))
        return optimizer

    optimizer = asyncio.run(second_session())
    assert optimizer.report()["initialise"] == state["agent"]["init"]
    assert optimizer.report()["initialise"]["profile"]["models"][SMOL]["accuracy"] == 0.25
    assert optimizer.state_dict() == json_round_trip(optimizer.state_dict())


def test_a_thread_started_again_before_its_first_state_uses_the_profile_kept_in_the_run_dir(tmp_path: Path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    setup = ProfileSetup(run_dir=run_dir, cache_dir=tmp_path)
    store(MMLU, setup.pool, CORRECT)
    first = asyncio.run(setup.build().propose())
    kept = json.loads((run_dir / SNAPSHOT_FILE).read_text())
    assert kept["note"] == "" and kept["profile"]["models"][GEMMA]["accuracy"] == 0.4
    calls = dict(setup.agent.calls)
    store(MMLU, setup.pool, {SMOL: 30, GEMMA: 5, QWEN: 5})
    optimizer = setup.build()
    assert asyncio.run(optimizer.propose()) == first
    assert setup.agent.calls == calls  # the same initialise prompt: its answer came from the call cache
    assert optimizer.report()["initialise"]["profile"] == kept["profile"]


# ---- through the search loop --------------------------------------------------------------------------------

PROFILE_A = {SMOL: 2, GEMMA: 8, QWEN: 14}  # gsm8k: smollm2 under the 5 % floor, so the pretest drops it
PROFILE_B = {SMOL: 30, GEMMA: 2, QWEN: 2}  # would keep it


def store_for_run(correct: Mapping[str, int], tmp_path: Path) -> None:
    store(GSM8K, agent_pool(str(tmp_path / "key")), {m: correct[m] for m in RUN_MODELS})


def multiset(run_dir: Path) -> list[str]:
    return json.loads((run_dir / "method_report.json").read_text())["initialise"]["multiset"]


@pytest.fixture
def profiled_reference(tmp_path: Path) -> OptimizationResult:
    store_for_run(PROFILE_A, tmp_path)
    lines: list[str] = []
    result = run("agent-reinforce", str(tmp_path / "reference"), progress=lines.append)
    assert not [e for e in result.ledger if e.phase == "calibrate"]  # the profile decided the pretest
    assert result.optimizer_cost.calls == AGENT_CALLS
    report = json.loads((tmp_path / "reference" / "method_report.json").read_text())
    assert report["profile"]["used"] and report["profile"]["path"] == str(profile_path(GSM8K))
    assert any(line.startswith("[agent] pool profile: ") for line in lines)
    assert QWEN in multiset(tmp_path / "reference") and SMOL not in multiset(tmp_path / "reference")
    return result


@pytest.mark.parametrize("kill_at", [1, AGENT_CALLS - 1])
def test_a_run_resumed_after_sigkill_keeps_the_profile_it_started_with(
    kill_at: int, profiled_reference: OptimizationResult, tmp_path: Path
):
    run_dir = tmp_path / "killed"
    _killed_agent_run(run_dir, kill_at)  # the subprocess reads LANGTTS_CACHE_DIR: profile A
    store_for_run(PROFILE_B, tmp_path)
    resumed = resume(run_dir, agent_pool(str(run_dir)), evaluator=evaluator(), progress=False)
    assert _essence(resumed) == _essence(profiled_reference)
    assert multiset(run_dir) == multiset(tmp_path / "reference")
    fresh = run("agent-reinforce", str(tmp_path / "fresh"))  # profile B read anew: another multiset
    assert SMOL in multiset(tmp_path / "fresh") and _essence(fresh) != _essence(profiled_reference)


def test_the_pool_profile_is_in_the_system_message_every_agent_call_shares():
    setup = ProfileSetup()
    store(MMLU, setup.pool, CORRECT)
    optimizer = setup.build()
    asyncio.run(drive(optimizer, 2))
    first = {tuple(r["messages"][0]) for r in setup.agent.requests}
    assert len(first) == 1 and "\n".join(TABLE) in first.pop()[1]  # initialise, sample, feedback, update alike
    resumed = setup.build()
    resumed.load_state_dict(optimizer.state_dict())
    asyncio.run(drive(resumed, 1, start=2))  # a resumed thread takes the profile text from its state
    assert len({tuple(r["messages"][0]) for r in setup.agent.requests}) == 1

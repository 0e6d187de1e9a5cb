"""The search loop on the synthetic evaluator: phases, ledger, rotation, choice, objectives, stops, failures and
resume after SIGKILL (a real subprocess)."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from langtts import shapes
from langtts.graph import CollaborationGraph
from langtts.search import (
    EvaluationError,
    OptimizationError,
    OptimizationResult,
    Outcome,
    aresume,
    optimize,
    pareto,
    resume,
)
from langtts.search.synthetic import SyntheticEvaluator
from tests.search.synthetic_run import AGENT_CALLS, agent_pool, evaluator, run

ROOT = Path(__file__).resolve().parents[2]


def _essence(result: OptimizationResult) -> list[tuple]:
    """The ledger without timings: what a resumed run must reproduce."""
    return [(e.index, e.phase, e.round, e.fingerprint, e.score, tuple(e.outcome.question_ids)) for e in result.ledger]


@pytest.mark.parametrize("method", ["random", "reinforce", "grid"])
def test_ledger_has_every_phase_once_and_every_graph_fits(method: str, tmp_path: Path) -> None:
    result = run(method, str(tmp_path))
    phases = [e.phase for e in result.ledger]
    searched = phases.count("search")
    assert phases == ["search"] * searched + ["validate"] * (len(phases) - searched - 1) + ["test"]
    assert [e.index for e in result.ledger] == list(range(len(result.ledger)))
    rounds = [e.round for e in result.ledger if e.phase == "search"]
    assert rounds == sorted(rounds) and set(rounds) == set(range(result.rounds))  # one or more chunks a round
    assert result.rounds == 12 and result.stop_reason == "12 iterations done"
    budget = result.config.budget.flops
    assert all(e.modelled_flops <= budget * (1 + 1e-9) for e in result.ledger)
    saved = OptimizationResult.load(tmp_path / "result.json")
    assert saved == result
    graph = CollaborationGraph.from_json((tmp_path / "graph.json").read_text())
    assert graph == result.graph.pruned() and not graph.check().unreachable  # graph.json: only nodes that run
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["phase"] == "done" and len(state["evaluations"]) == len(result.ledger)


def _answers(result: OptimizationResult, fingerprint: str, before: int | None = None) -> dict[str, bool]:
    answers: dict[str, bool] = {}
    for e in result.ledger[:before]:
        if e.phase == "search" and e.fingerprint == fingerprint:
            answers.update(zip(e.outcome.question_ids, e.outcome.correct, strict=True))
    return answers


def test_rounds_race_the_candidate_on_the_incumbents_questions_and_never_repeat_one(tmp_path: Path) -> None:
    result = run("random", str(tmp_path), n_search=40)
    search = [e for e in result.ledger if e.phase == "search"]
    front = search[0].outcome.question_ids
    assert len(front) == 4
    seen: dict[str, set[str]] = {}
    for e in search:  # no graph is evaluated twice on a question
        assert not seen.setdefault(e.fingerprint, set()) & set(e.outcome.question_ids)
        seen[e.fingerprint] |= set(e.outcome.question_ids)
    for r in range(1, result.rounds):
        entries = [e for e in search if e.round == r]
        candidate = entries[0].fingerprint
        first = _answers(result, candidate, entries[0].index)
        if not first:  # a new candidate starts on the incumbent's first questions
            assert entries[0].outcome.question_ids == front
        held = set(_answers(result, candidate, entries[-1].index + 1))
        assert len(held) <= max(16, len(first) + 4)  # race_max_questions: 4 chunks (one more for a graph again)
        for rival in {e.fingerprint for e in entries} - {candidate}:  # the incumbent, on the candidate's questions
            assert held <= set(_answers(result, rival, entries[-1].index + 1))
    assert {len(q) for q in seen.values()} > {4}  # some candidates were raced beyond their first chunk
    assert not set(result.test.outcome.question_ids) & {q for e in search for q in e.outcome.question_ids}


def test_the_method_observes_the_shrunk_estimate_of_all_its_questions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from langtts.search import reinforce
    from langtts.search.racing import shrunk

    observed = []
    original = reinforce.Reinforce.observe

    async def spy(self, graph, evaluation):
        observed.append(evaluation)
        await original(self, graph, evaluation)

    monkeypatch.setattr(reinforce.Reinforce, "observe", spy)
    result = run("reinforce", str(tmp_path))
    assert [e.round for e in observed] == list(range(result.rounds))
    for e in observed:
        answers = _answers(result, e.fingerprint, e.index + 1)
        so_far = [x for x in result.ledger if x.phase == "search" and x.round is not None and x.round <= e.round]
        measured = [c for x in so_far for c in x.outcome.correct]  # the prior: every question of rounds 0..r
        prior = sum(measured) / len(measured)
        assert e.outcome.question_ids == list(answers) and e.outcome.correct == list(answers.values())
        assert e.score == e.outcome.accuracy == pytest.approx(shrunk(sum(answers.values()), len(answers), prior))
        own = [x for x in result.ledger[: e.index + 1] if x.phase == "search" and x.fingerprint == e.fingerprint]
        assert e.outcome.calls == sum(x.outcome.calls for x in own)
    assert result.ledger[observed[-1].index].score != observed[-1].score  # the ledger keeps the raw chunk score


def test_choice_is_the_best_estimate_among_the_validated_graphs(tmp_path: Path) -> None:
    from langtts.search.racing import shrunk

    result = run("random", str(tmp_path))
    validated = [e for e in result.ledger if e.phase == "validate"]
    assert len({tuple(e.outcome.question_ids) for e in validated}) == 1 and len(validated) >= 3
    search = [e for e in result.ledger if e.phase == "search"]
    measured = [c for e in search for c in e.outcome.correct]
    prior = sum(measured) / len(measured)

    def estimate(fingerprint: str, phases: tuple[str, ...]) -> float:
        answers: dict[str, bool] = {}
        for e in result.ledger:
            if e.phase in phases and e.fingerprint == fingerprint:
                answers.update(zip(e.outcome.question_ids, e.outcome.correct, strict=True))
        return shrunk(sum(answers.values()), len(answers), prior)

    flops = {e.fingerprint: e.modelled_flops for e in search}
    top3 = sorted(flops, key=lambda fp: (-estimate(fp, ("search",)), flops[fp]))[:3]
    candidates = [e.fingerprint for e in validated if e.fingerprint in top3]
    assert len(candidates) == 3
    best = max(candidates, key=lambda fp: estimate(fp, ("search", "validate")))
    chosen = result.chosen
    assert chosen.fingerprint == best and result.test.fingerprint == best
    assert chosen.estimate == pytest.approx(estimate(best, ("search", "validate")))
    assert chosen.search_score == pytest.approx(estimate(best, ("search",)))
    versus = chosen.versus_runner_up
    assert versus is not None and versus.n == 8
    assert versus.accuracy_a == next(e.outcome.accuracy for e in validated if e.fingerprint == best)
    assert "versus the runner-up on the same 8 validation questions" in result.summary()


def test_joint_objective_binds_its_latency_reference_and_reports_the_pareto_front(tmp_path: Path) -> None:
    result = run("random", str(tmp_path), objective={"name": "joint", "weight": 0.5})
    first = result.ledger[0].outcome
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["objective"] == {"name": "joint", "weight": 0.5, "latency_ref_s": first.latency_s}
    for e in result.ledger:
        assert e.score == pytest.approx(e.outcome.accuracy - 0.5 * e.outcome.latency_s / first.latency_s)
    front = result.pareto
    assert front and front == pareto(result.ledger)
    for p in front:  # nobody dominates a front point
        for q in front:
            assert not (q.accuracy > p.accuracy and q.latency_s < p.latency_s)
    assert [p.latency_s for p in front] == sorted(p.latency_s for p in front)


def test_the_pareto_front_is_measured_on_the_validation_questions_and_each_point_exports(tmp_path: Path) -> None:
    result = run("grid", str(tmp_path), top_k=1, paper_faithful=True)  # a front of several points
    validated = [e for e in result.ledger if e.phase == "validate"]
    assert len({tuple(e.outcome.question_ids) for e in validated}) == 1  # every candidate on the same questions
    search_front = {p.fingerprint for p in pareto(result.ledger, phase="search")}
    assert search_front <= {e.fingerprint for e in validated} and len(validated) > 1  # top 1 + the front
    assert result.chosen.fingerprint == result.ledger[validated[0].index].fingerprint  # chosen among the top 1
    for k, point in enumerate(result.pareto):
        assert point.measured_on == "validate" and point.questions == 8
        assert result.pareto_graph(k).fingerprint() == point.fingerprint and point.graph is not None
    assert "Pareto front (accuracy vs latency, on the same 8 validation questions" in result.summary()
    with pytest.raises(ValueError, match="Pareto front has"):
        result.pareto_graph(len(result.pareto))


def test_the_joint_objective_reaches_the_agent(tmp_path: Path) -> None:
    from langtts.search import optimize
    from tests.fakes import fake_pool
    from tests.search.synthetic_run import BUDGET_UNITS, MODELS, settings
    from tests.search.test_agent_reinforce import ScriptedAgent

    agent = ScriptedAgent()
    pool, _ = fake_pool(agent, {m: m for m in (*MODELS, "qwen2.5-coder-1.5b")})
    options = settings("agent-reinforce", iterations=2, top_k=1, validation_size=4)
    joint = {"name": "joint", "weight": 0.5}
    result = optimize("gsm8k", pool, BUDGET_UNITS, run_dir=tmp_path, evaluator=evaluator(), objective=joint, **options)
    assert result.config.method_options == {"objective_kind": "joint"}
    assert any("Latency rules" in prompt for prompts in agent.prompts.values() for prompt in prompts)


def test_custom_objective_function(tmp_path: Path) -> None:
    def fewest_flops(outcome: Outcome) -> float:
        return -outcome.flops

    result = run("grid", str(tmp_path), objective=fewest_flops, top_k=0)
    cheapest = min((e for e in result.ledger if e.phase == "search"), key=lambda e: e.outcome.flops)
    assert result.chosen.fingerprint == cheapest.fingerprint
    assert result.config.objective == {"name": "custom", "label": "fewest_flops"}


def test_stop_file_and_no_improvement(tmp_path: Path) -> None:
    stop_file = tmp_path / "a" / "STOP"

    def touch_after_round_3(line: str) -> None:
        if line.startswith("round 3/"):
            stop_file.touch()

    stopped = run("random", str(tmp_path / "a"), iterations=50, progress=touch_after_round_3)
    assert stopped.rounds == 3 and "STOP" in stopped.stop_reason
    patient = run("random", str(tmp_path / "b"), iterations=200, patience=3)
    assert patient.stop_reason == "no improvement in 3 rounds" and patient.rounds < 200


class _FailingAt:
    """Delegates to the synthetic evaluator but raises EvaluationError on evaluation number ``at``."""

    def __init__(self, inner: SyntheticEvaluator, at: int) -> None:
        self.inner, self.at, self.count = inner, at, 0

    async def evaluate(self, graph, examples):
        self.count += 1
        if self.count == self.at:
            raise EvaluationError("3 of 4 questions failed after retries: connection refused")
        return await self.inner.evaluate(graph, examples)


def test_a_failing_server_leaves_a_resumable_state(tmp_path: Path) -> None:
    failing = lambda space: _FailingAt(evaluator()(space), at=5)  # noqa: E731
    with pytest.raises(OptimizationError, match=r"connection refused.*--resume"):
        _run_with(tmp_path, failing)
    state = json.loads((tmp_path / "state.json").read_text())
    assert len(state["evaluations"]) == 4 and state["rounds"] == 1 and "connection refused" in state["error"]
    assert [e["round"] for e in state["evaluations"]] == [0, 1, 1, 1]  # cut off in the middle of round 1's race
    resumed = resume(tmp_path, None, evaluator=evaluator(), progress=False)
    reference = run("reinforce", str(tmp_path / "reference"))
    assert _essence(resumed) == _essence(reference)


def _run_with(run_dir: Path, build) -> OptimizationResult:
    from langtts.search import optimize
    from tests.search.synthetic_run import BUDGET_UNITS, settings

    return optimize("gsm8k", None, BUDGET_UNITS, run_dir=str(run_dir), evaluator=build, **settings("reinforce"))


def test_a_method_that_raises_ends_the_run_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from langtts.search import reinforce

    calls = {"n": 0}
    original = reinforce.Reinforce.observe

    async def flaky(self, graph, evaluation):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("boom in the method")
        await original(self, graph, evaluation)

    monkeypatch.setattr(reinforce.Reinforce, "observe", flaky)
    with pytest.raises(OptimizationError, match="boom in the method"):
        run("reinforce", str(tmp_path))
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["rounds"] == 2 and {e["round"] for e in state["evaluations"]} == {0, 1, 2}
    assert state["pending_observe"] == max(e["index"] for e in state["evaluations"] if e["round"] == 2)
    monkeypatch.setattr(reinforce.Reinforce, "observe", original)
    resumed = asyncio.run(aresume(tmp_path, None, evaluator=evaluator(), progress=False))
    assert _essence(resumed) == _essence(run("reinforce", str(tmp_path / "reference")))


def test_another_runs_directory_is_refused_and_a_finished_run_is_returned(tmp_path: Path) -> None:
    first = run("random", str(tmp_path))
    with pytest.raises(ValueError, match=r"holds a different run.*method"):
        run("reinforce", str(tmp_path))
    again = run("random", str(tmp_path))
    assert again == first


@pytest.mark.parametrize("method", ["random", "reinforce", "bayes", "grid"])
def test_resume_after_sigkill_equals_an_uninterrupted_run(method: str, tmp_path: Path) -> None:
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.search.synthetic_run", method, str(run_dir), "0.15"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    state_file = run_dir / "state.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if state_file.exists() and json.loads(state_file.read_text())["rounds"] >= 4:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    state = json.loads(state_file.read_text())
    assert 4 <= state["rounds"] < 12 and state["phase"] == "search"
    resumed = resume(run_dir, None, evaluator=evaluator(), progress=False)
    reference = run(method, str(tmp_path / "reference"))
    assert _essence(resumed) == _essence(reference)
    assert resumed.chosen == reference.chosen
    untimed = lambda r: [p.model_dump(exclude={"wall_time_s", "optimizer_wall_s"}) for p in r.curve]  # noqa: E731
    assert untimed(resumed) == untimed(reference) and len(resumed.curve) == 12
    indices = [e.index for e in resumed.ledger]
    assert indices == sorted(set(indices))
    assert json.loads(state_file.read_text())["sessions"] == 2


@pytest.fixture(scope="module")
def agent_reference(tmp_path_factory: pytest.TempPathFactory) -> OptimizationResult:
    result = run("agent-reinforce", str(tmp_path_factory.mktemp("agent") / "reference"))
    assert result.optimizer_cost.calls == AGENT_CALLS and result.rounds == 2
    return result


def _killed_agent_run(run_dir: Path, kill_at: int) -> None:
    """Run agent-reinforce in a subprocess that SIGKILLs itself during its ``kill_at``-th agent call."""
    args = [sys.executable, "-m", "tests.search.synthetic_run", "agent-reinforce", str(run_dir), "0", str(kill_at)]
    proc = subprocess.run(args, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("kill_at", range(1, AGENT_CALLS + 1))
def test_agent_reinforce_resumed_after_sigkill_at_each_agent_call_equals_an_uninterrupted_run(
    kill_at: int, agent_reference: OptimizationResult, tmp_path: Path
) -> None:
    run_dir = tmp_path / "killed"
    _killed_agent_run(run_dir, kill_at)
    lines: list[str] = []
    resumed = resume(run_dir, agent_pool(str(run_dir)), evaluator=evaluator(), progress=lines.append)
    assert _essence(resumed) == _essence(agent_reference)
    assert resumed.chosen == agent_reference.chosen
    state = json.loads((run_dir / "state.json").read_text())
    repeated = [line for line in lines if line.startswith("resume: the method redid its interrupted step")]
    assert state["reasked_calls"] <= AGENT_CALLS - kill_at + 1  # at most the killed call and those after it
    if repeated:  # calls finished before the kill came from the cache
        assert "from the call cache" in repeated[0]


def test_an_agent_resumed_without_a_call_cache_is_asked_again_and_the_run_records_it(
    agent_reference: OptimizationResult, tmp_path: Path
) -> None:
    run_dir = tmp_path / "killed"
    _killed_agent_run(run_dir, AGENT_CALLS - 1)  # during the proposal of round 2 (its last agent call but one)
    lines: list[str] = []
    resumed = resume(run_dir, agent_pool(str(run_dir), cache=False), evaluator=evaluator(), progress=lines.append)
    assert _essence(resumed) == _essence(agent_reference)  # the scripted agent answers alike
    state = json.loads((run_dir / "state.json").read_text())
    assert state["reasked_calls"] == 4  # the feedback on round 1, the update and round 2's two proposal calls
    expected = "resume: the method redid its interrupted step with 4 LLM call(s): 0 from the call cache, 4 asked"
    assert any(line.startswith(expected) for line in lines)


def test_extending_a_finished_agent_run_counts_no_call_as_redone(tmp_path: Path) -> None:
    """The agent's calls after the last round of a finished run are its next step, asked for the first time."""
    first = run("agent-reinforce", str(tmp_path))
    lines: list[str] = []
    extended = resume(tmp_path, agent_pool(str(tmp_path)), evaluator=evaluator(), progress=lines.append, iterations=3)
    assert extended.rounds == 3 and extended.optimizer_cost.calls > first.optimizer_cost.calls
    assert json.loads((tmp_path / "state.json").read_text())["reasked_calls"] == 0
    assert not any(line.startswith("resume: the method redid") for line in lines)


def test_a_finished_run_is_extended_with_more_iterations_and_keeps_its_test_questions(tmp_path: Path) -> None:
    first = run("random", str(tmp_path), iterations=4)
    assert first.rounds == 4 and first.config.test_first
    extended = run("random", str(tmp_path), iterations=8)  # optimize() on the same directory, more rounds
    assert extended.rounds == 8 and extended.stop_reason == "8 iterations done"
    assert extended.ledger[: len(first.ledger)] == first.ledger
    assert extended.config.n_search == 32 > first.config.n_search == 16
    assert set(extended.test.outcome.question_ids) == set(first.test.outcome.question_ids)
    uninterrupted = run("random", str(tmp_path / "reference"), iterations=8)
    searched = lambda r: [(e.fingerprint, e.outcome.question_ids) for e in r.ledger if e.phase == "search"]  # noqa: E731
    assert searched(extended) == searched(uninterrupted)
    again = resume(tmp_path, None, evaluator=evaluator(), progress=False, iterations=12)
    assert again.rounds == 12 and json.loads((tmp_path / "config.json").read_text())["iterations"] == 12


def test_removing_the_stop_file_lets_a_resume_go_on(tmp_path: Path) -> None:
    stop_file = tmp_path / "STOP"

    def touch_after_round_2(line: str) -> None:
        if line.startswith("round 2/"):
            stop_file.touch()

    stopped = run("random", str(tmp_path), iterations=6, progress=touch_after_round_2)
    assert stopped.rounds == 2 and "STOP" in stopped.stop_reason
    assert resume(tmp_path, None, evaluator=evaluator(), progress=False) == stopped  # STOP still there
    stop_file.unlink()
    went_on = resume(tmp_path, None, evaluator=evaluator(), progress=False)
    assert went_on.rounds == 6 and went_on.stop_reason == "6 iterations done"


def test_a_resume_may_change_only_stop_conditions(tmp_path: Path) -> None:
    run("random", str(tmp_path), iterations=2)
    with pytest.raises(ValueError, match=r"batch_size: 4 there vs 8 now.*may change only iterations"):
        resume(tmp_path, None, evaluator=evaluator(), progress=False, batch_size=8)
    with pytest.raises(ValueError, match="unknown run options"):
        resume(tmp_path, None, evaluator=evaluator(), progress=False, budget_units=3)
    with pytest.raises(ValueError, match="top_k: 3 there vs 1 now"):
        run("random", str(tmp_path), iterations=3, top_k=1)
    same = resume(tmp_path, None, evaluator=evaluator(), progress=False, batch_size=4, method="random")
    assert same.rounds == 2


@pytest.mark.parametrize(
    ("method", "option", "message"),
    [
        ("random", {"iterations": 0}, r"iterations\n  Input should be greater than or equal to 1"),
        ("random", {"n_test": -1}, r"n_test\n  Input should be greater than or equal to 0"),
        ("nope", {}, r"method\n  Value error, unknown method 'nope'; choose from \[.*'random'"),
    ],
)
def test_bad_options_are_refused_clearly_before_anything_is_stored(
    method: str, option: dict[str, Any], message: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=message):
        run(method, str(tmp_path / "run"), **option)
    assert not (tmp_path / "run").exists()


def test_unknown_options_and_bad_resume_values_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"unknown run option\(s\) \['iteration'\]"):
        run("random", str(tmp_path / "run"), iteration=3)
    run("random", str(tmp_path / "run"), iterations=2)
    with pytest.raises(ValueError, match="concurrency\n  Input should be greater than or equal to 1"):
        resume(tmp_path / "run", None, evaluator=evaluator(), progress=False, concurrency=0)


def test_bad_method_options_are_refused_before_anything_is_stored(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"reinforce options \{'fusers': False\}.*fusers"):
        run("reinforce", str(tmp_path / "run"), method_options={"fusers": False})
    assert not (tmp_path / "run").exists()
    assert run("reinforce", str(tmp_path / "run"), method_options={"lr": 0.2}).rounds == 12


def _task_file(path: Path, answer: int = 7) -> Path:
    rows = [{"id": f"q{i}", "question": f"{i} + {answer - i}?", "answer": answer} for i in range(30)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_a_jsonl_task_is_stored_and_rebuilt_at_resume_and_a_changed_file_is_refused(tmp_path: Path) -> None:
    from langtts.search import optimize
    from langtts.tasks import get_task
    from tests.search.synthetic_run import BUDGET_UNITS, settings

    path = _task_file(tmp_path / "sums.jsonl")
    task = get_task(str(path), scorer="number")
    first = optimize(task, None, BUDGET_UNITS, run_dir=tmp_path / "run", evaluator=evaluator(), **settings("random"))
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["task"] == str(path.resolve()) and config["task_options"]["scorer"] == "number"
    assert config["task_options"]["sha256"] == task.sha256
    extended = resume(tmp_path / "run", None, evaluator=evaluator(), progress=False, iterations=14)  # no task given
    assert extended.rounds == 14 and extended.test.outcome.question_ids == first.test.outcome.question_ids
    _task_file(path, answer=8)
    with pytest.raises(ValueError, match="changed since the run started"):
        resume(tmp_path / "run", None, evaluator=evaluator(), progress=False, iterations=16)


def test_a_python_scorer_must_still_import_at_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from langtts.search import optimize
    from langtts.tasks import get_task
    from tests.search.synthetic_run import BUDGET_UNITS, settings

    (tmp_path / "my_checker.py").write_text("def judge(reply, example):\n    return example.answer in reply\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    task = get_task(str(_task_file(tmp_path / "sums.jsonl")), scorer="my_checker:judge")
    optimize(task, None, BUDGET_UNITS, run_dir=tmp_path / "run", evaluator=evaluator(), **settings("random"))
    (tmp_path / "my_checker.py").unlink()
    monkeypatch.delitem(sys.modules, "my_checker")
    with pytest.raises(ValueError, match="scorer 'my_checker:judge' does not import"):
        resume(tmp_path / "run", None, evaluator=evaluator(), progress=False, iterations=14)


def test_the_graphs_of_a_result_are_parsed_once(tmp_path: Path) -> None:
    result = run("random", str(tmp_path), iterations=2)
    loaded = OptimizationResult.load(tmp_path / "result.json")
    entry = loaded.ledger[0]
    assert entry.collaboration_graph() is entry.collaboration_graph()
    assert entry.collaboration_graph() == CollaborationGraph.from_dict(entry.graph)
    assert loaded.graph is loaded.graph and loaded.graph == result.graph
    assert loaded.model_dump(mode="json") == result.model_dump(mode="json")  # the file format is unchanged


def test_new_runs_search_the_extended_space_and_paper_faithful_restores_the_fixed_sink(tmp_path: Path) -> None:
    from langtts.search.records import RunConfig

    extended = run("random", str(tmp_path / "extended"))
    assert extended.config.paper_faithful is False
    sinks = {e.collaboration_graph().sink.model or "vote" for e in extended.ledger if e.phase == "search"}
    assert "vote" in sinks and len(sinks) >= 2, sinks
    faithful = run("random", str(tmp_path / "paper"), paper_faithful=True)
    assert faithful.config.paper_faithful is True
    assert {e.collaboration_graph().sink.model for e in faithful.ledger} == {faithful.config.sink_model}
    stored = json.loads((tmp_path / "paper" / "config.json").read_text())
    del stored["paper_faithful"]  # a run directory written before the extension
    assert RunConfig.model_validate(stored).paper_faithful is True
    with pytest.raises(ValueError, match="paper_faithful"):
        resume(tmp_path / "paper", None, evaluator=evaluator(), progress=False, paper_faithful=False)


def test_the_search_curve_and_the_optimizers_wall_time_are_kept_over_sessions(tmp_path: Path) -> None:
    first = run("reinforce", str(tmp_path), iterations=4)
    assert [p.round for p in first.curve] == [1, 2, 3, 4] and first.optimizer_wall_s > 0
    extended = run("reinforce", str(tmp_path), iterations=8)
    curve = extended.curve
    assert curve[:4] == first.curve and [p.round for p in curve] == list(range(1, 9))
    state = json.loads((tmp_path / "state.json").read_text())
    assert [p.best_score for p in curve] == state["best_scores"]
    assert extended.optimizer_wall_s == state["optimizer_wall_s"] >= curve[-1].optimizer_wall_s > first.optimizer_wall_s
    for before, after in itertools.pairwise(curve):
        assert after.evaluation_calls > before.evaluation_calls and after.evaluation_flops > before.evaluation_flops
        assert after.wall_time_s >= before.wall_time_s and after.optimizer_wall_s >= before.optimizer_wall_s
    round_4 = [e for e in first.ledger if e.phase == "search"]  # the first session's search, at its round 4
    assert curve[3].evaluation_flops == pytest.approx(sum(e.outcome.flops for e in round_4))
    assert curve[3].evaluation_calls == sum(e.outcome.calls for e in round_4)
    assert all(p.optimizer_calls == 0 and p.optimizer_wall_s <= p.wall_time_s for p in curve)
    assert extended.agent_wall_share is None  # no optimizer LLM
    assert OptimizationResult.load(tmp_path / "result.json").curve == curve


def test_max_flops_stops_the_search_between_rounds_and_a_resume_may_raise_it(tmp_path: Path) -> None:
    reference = run("random", str(tmp_path / "reference"), iterations=8)
    limit = reference.curve[2].evaluation_flops * 0.99  # reached during round 3
    capped = run("random", str(tmp_path / "capped"), iterations=8, max_flops=limit)
    assert capped.rounds == 3 and capped.stop_reason == f"{limit:.3g} FLOPs used"
    assert capped.curve == [
        p.model_copy(update={"wall_time_s": q.wall_time_s, "optimizer_wall_s": q.optimizer_wall_s})
        for p, q in zip(reference.curve[:3], capped.curve, strict=True)
    ]
    raised = resume(tmp_path / "capped", None, evaluator=evaluator(), progress=False, max_flops=limit * 100)
    searched = lambda r: [x[1:] for x in _essence(r) if x[1] == "search"]  # noqa: E731
    assert raised.rounds == 8 and searched(raised) == searched(reference)
    with pytest.raises(ValueError, match="max_flops\n  Input should be greater than 0"):
        run("random", str(tmp_path / "bad"), max_flops=0)


def test_the_summary_states_the_agents_share_of_the_wall_time(agent_reference: OptimizationResult) -> None:
    share = agent_reference.agent_wall_share
    assert share is not None and 0 < share <= 1
    assert agent_reference.curve[-1].optimizer_calls == AGENT_CALLS
    summary = agent_reference.summary()
    assert f"the optimizer LLM (agent) took {share:.0%} of the search's wall time" in summary
    assert f"optimizer {AGENT_CALLS} LLM calls" in summary


class _TwoGraphs:
    """Proposes ``GOOD`` in round 0, then ``WORSE`` (a method for the race tests)."""

    def __init__(self, context: Any) -> None:
        self.rounds = 0

    async def propose(self) -> CollaborationGraph:
        return GOOD if self.rounds == 0 else WORSE

    async def observe(self, graph: CollaborationGraph, evaluation: Any) -> None:
        self.rounds += 1

    def state_dict(self) -> dict[str, Any]:
        return {"rounds": self.rounds}

    def load_state_dict(self, state: Any) -> None:
        self.rounds = state["rounds"]


GOOD = shapes.single("qwen2.5-coder-0.5b")
WORSE = shapes.single("smollm2-135m")


class _FixedAccuracy:
    """Question q is right iff a hash of (salt, graph, q) is below the graph's accuracy: GOOD 0.8, WORSE 0.5."""

    def __init__(self, salt: int) -> None:
        self.salt = salt

    async def evaluate(self, graph: CollaborationGraph, examples: Any) -> Outcome:
        p = 0.8 if graph == GOOD else 0.5
        digest = lambda q: hashlib.sha256(f"{self.salt}:{graph.fingerprint()}:{q}".encode()).digest()  # noqa: E731
        correct = [int.from_bytes(digest(ex.id)[:8], "big") / 2**64 < p for ex in examples]
        n = len(correct)
        return Outcome(
            question_ids=[ex.id for ex in examples], correct=correct, accuracy=sum(correct) / n, ci_low=0.0,
            ci_high=1.0, flops=1.0, latency_s=1.0, prompt_tokens=0, completion_tokens=0, calls=n, cache_hits=0,
            wall_time_s=0.0,
        )  # fmt: skip


def test_the_loop_drops_a_candidate_30_points_worse_within_the_stated_questions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Round 1 races WORSE (50 %) against the incumbent GOOD (80 %): over 40 independent runs, the loop stops
    measuring it once the race says ``worse``, within racing.DROP_WITHIN questions in >= 95 % of them (as the
    racing module states), and never makes it the incumbent."""
    from langtts.search.base import METHODS
    from langtts.search.racing import DROP_WITHIN

    monkeypatch.setitem(METHODS, "two-graphs", _TwoGraphs)
    dropped = 0
    for salt in range(40):
        result = optimize(
            "gsm8k", None, 30.0, run_dir=tmp_path / str(salt), evaluator=_FixedAccuracy(salt), method="two-graphs",
            models=["smollm2-135m", "qwen2.5-coder-0.5b"], iterations=2, batch_size=4, race_max_questions=48,
            n_search=60, validation_size=0, n_test=0, progress=False,
        )  # fmt: skip
        worse = [e for e in result.ledger if e.round == 1 and e.fingerprint == WORSE.fingerprint()]
        asked = sum(len(e.outcome.question_ids) for e in worse)
        dropped += asked <= DROP_WITHIN and asked < 48
        assert result.chosen.fingerprint == GOOD.fingerprint()
    assert dropped >= 38


def test_the_pretest_evaluations_are_not_the_optimizers_wall_time(tmp_path: Path) -> None:
    """The agent's pretest evaluates its variants inside its first step (0.4 s each here): the loop counts that as
    evaluation, so the optimizer's wall time is the scripted agent's own (milliseconds)."""
    result = run("agent-reinforce", str(tmp_path), delay_s=0.4)
    calibrations = [e for e in result.ledger if e.phase == "calibrate"]
    assert calibrations, "the pretest evaluated its variants"
    assert result.optimizer_wall_s < 0.4 * len(calibrations) / 2

"""The search loop: one entry point for every method, resumable from its run directory.

A run (method.md §6):

1. **search** — round r asks the method for a graph and races it against the incumbent on the same questions
   (:mod:`langtts.search.racing`): the search questions are the front of the search split, in chunks of
   ``batch_size``; the candidate is evaluated on the first chunk, then on the next ones while the paired race is
   in contention and it has fewer than ``race_max_questions``; the incumbent is evaluated on any chunk the
   candidate holds that it lacks. A graph is never evaluated twice on a question (a graph proposed again gets at
   least one new chunk). A candidate the race declares better becomes the incumbent, else the graph with the best
   estimate does. The method observes the candidate's **estimate**: its outcome over all its questions with the
   accuracy shrunk towards the mean of every search question measured, scored by the objective; graphs are ranked
   by the same estimate. Until a stop condition holds between rounds (iterations, evaluations, wall time, FLOPs,
   no improvement, ``RUN_DIR/STOP``) or the method has nothing left to try; after each round a point of the
   search curve (best estimate, evaluation and optimizer calls and FLOPs, wall time and the optimizer's share) is
   stored;
2. **validate** — the ``top_k`` graphs by estimate, and the graphs of the search's accuracy–latency Pareto front,
   are evaluated on the same ``validation_size`` questions (the first of the search split), so the reported
   Pareto front compares its points on the same questions; the choice (among the ``top_k``) is the best estimate
   over its search and validation questions, compared with the runner-up on the validation questions (paired);
3. **test** — the chosen graph is evaluated on held-out test questions, with a bootstrap CI. The test questions
   are drawn before the search questions, so they stay the same when a run is extended.

A finished or stopped run is **extended** by resuming it with stop conditions it has not met (more
``iterations``, a later ``wall_time_s``, ``RUN_DIR/STOP`` removed, ...): the search goes on from its state, then
validation and test run again for the new candidates. Only the fields of
:data:`~langtts.search.records.RESUMABLE_CHANGES` may change (and ``n_search`` grow); the rest must match.

Every evaluation (one chunk of one graph) is appended to the ledger in ``RUN_DIR/state.json``, which is replaced
atomically after each one together with the method's state, so ``optimize(..., run_dir=existing)`` /
:func:`resume` continue where a run stopped — even after SIGKILL — without losing or repeating an evaluation (an
evaluation cut off midway is run again, its finished calls from the pool's cache; a round cut off midway goes on
from its last chunk and ends before any stop condition is read). See :mod:`langtts.search.records` for the files.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from langtts.compare import paired_comparison
from langtts.compile import GenerationSettings, default_settings
from langtts.cost import Budget, default_catalog, largest_model, smallest_model, task_lengths
from langtts.evaluation import bootstrap_ci
from langtts.files import write_text_atomic
from langtts.graph import CollaborationGraph
from langtts.models.ledger import UsageLedger, track
from langtts.models.pool import ModelPool
from langtts.pareto import pareto_front
from langtts.profile import profile_lengths, search_warnings
from langtts.search.base import (
    METHODS,
    Evaluation,
    EvaluationError,
    MethodContext,
    OptimizationError,
    Optimizer,
    Outcome,
    Phase,
    SearchSpace,
)
from langtts.search.evaluator import Evaluator, PoolEvaluator
from langtts.search.objectives import ObjectiveLike, make_objective
from langtts.search.racing import Decision, Pairs, decide, shrunk
from langtts.search.records import (
    RESUMABLE_CHANGES,
    Choice,
    CurvePoint,
    OptimizationResult,
    ParetoPoint,
    RunConfig,
    RunState,
    read_json,
    write_json,
)
from langtts.search.stoppers import (
    Evaluations,
    FlopsSpent,
    Iterations,
    NoImprovement,
    Progress,
    StopFile,
    Stopper,
    WallTime,
)
from langtts.sync import run_sync
from langtts.tasks import JsonlTask, get_task
from langtts.tasks.base import Example, Task
from langtts.tasks.splits import search_test_split

T = TypeVar("T")
EvaluatorLike = Evaluator | Callable[[SearchSpace], Evaluator]
ProgressLike = bool | Callable[[str], None]
STOP_FILE = "STOP"
RUN_OPTIONS = set(RunConfig.model_fields) - {"schema_version", "run_id", "test_first"}
OPTIMIZE_OPTIONS = RUN_OPTIONS - {"task", "task_options", "budget"}
"""The options of :func:`aoptimize`: the fields of :class:`~langtts.search.records.RunConfig` it does not fill."""


def options_in(values: Mapping[str, Any]) -> dict[str, Any]:
    """The options of :func:`aoptimize` among ``values`` (e.g. parsed command-line arguments), None left out."""
    return {key: value for key, value in values.items() if key in OPTIMIZE_OPTIONS and value is not None}


def optimize(task: Task | str, pool: ModelPool | None, budget: Budget | float, **options: Any) -> OptimizationResult:
    """Search for the best collaboration graph for ``task`` within ``budget``; see :func:`aoptimize`."""
    return run_sync(aoptimize(task, pool, budget, **options))


async def aoptimize(
    task: Task | str,
    pool: ModelPool | None,
    budget: Budget | float,
    *,
    run_dir: str | Path | None = None,
    stop: Stopper | None = None,
    evaluator: EvaluatorLike | None = None,
    progress: ProgressLike = True,
    **options: Any,
) -> OptimizationResult:
    """Search for the best collaboration graph for ``task`` on ``pool`` within ``budget``.

    - ``budget``: a :class:`~langtts.cost.Budget`, or a number of units — no-input calls of the smallest worker
      model at the task's average lengths (``Budget.from_flops`` for raw FLOPs per question).
    - ``options``: the run's settings, fields of :class:`~langtts.search.records.RunConfig` (validated and
      defaulted there; see :func:`run_config`), e.g. ``method="bayes", iterations=20``.
    - stop conditions, read between rounds: the options ``iterations``, ``max_evaluations`` (search evaluations,
      one per chunk), ``wall_time_s``, ``max_flops`` (evaluation and optimizer FLOPs together, so methods compare
      at equal compute), ``patience`` (rounds without improvement), ``RUN_DIR/STOP``, and any extra ``stop``
      stopper (not stored: pass it again to resume).
    - ``run_dir``: where everything is written (default ``langtts-runs/<task>-<method>-<time>``); an existing
      run directory of the same run is resumed with this call's stop conditions and ``concurrency`` (a finished
      run is extended if they allow more search, else its result is returned); any other option must match.
    - ``evaluator``: replaces real evaluation on the pool (an object or ``space -> evaluator``; tests use
      :class:`~langtts.search.synthetic.SyntheticEvaluator`).
    """
    task = get_task(task) if isinstance(task, str) else task
    if pool is None and evaluator is None:
        raise ValueError("a model pool is needed unless an evaluator is given")
    run_id = Path(run_dir).resolve().name if run_dir is not None else None
    config = run_config(task, pool, budget, run_id=run_id, **options)
    run_path = Path(run_dir) if run_dir is not None else Path("langtts-runs") / config.run_id
    config_file = run_path / "config.json"
    new = not config_file.exists()
    if not new:
        stored = RunConfig.model_validate(read_json(config_file, "config"))
        config = updated_config(stored, config.model_dump(include=RUN_OPTIONS), run_path)
    objective = make_objective(options.get("objective") or config.objective)  # a function is not in the config
    run = _Run(config, run_path, task, pool, objective, evaluator, stop, _reporter(progress))
    if new:
        run.check_method()  # bad method options fail before anything is stored
        run_path.mkdir(parents=True, exist_ok=True)
    write_json(config_file, config.model_dump(mode="json"))
    return await run.execute()


def run_config(
    task: Task, pool: ModelPool | None, budget: Budget | float, *, run_id: str | None = None, **options: Any
) -> RunConfig:
    """The validated config of a new run of ``task`` on ``pool`` (or the default catalog) within ``budget``.

    ``options`` are fields of :class:`~langtts.search.records.RunConfig`; those left out take its defaults, and:

    - ``method``: a name in :data:`~langtts.search.base.METHODS` (``random``, ``reinforce``, ``bayes``,
      ``grid``, ``agent-reinforce``); ``method_options`` go to its constructor.
    - ``objective``: ``"accuracy"`` (default), ``"joint"`` / ``{"name": "joint", "weight": w}`` (accuracy − w ·
      latency / first latency) or a function of the :class:`~langtts.search.base.Outcome`. A method that takes
      an ``objective_kind`` option (agent-reinforce: latency in its feedback and the latency rules in its prompt)
      gets ``"joint"`` with the joint objective.
    - questions: ``n_search`` search and ``n_test`` held-out test questions drawn from ``split`` without overlap
      (seeded); ``n_search`` defaults to ``iterations × batch_size``, at least the validation set. A round races
      its candidate on chunks of ``batch_size`` of them, up to ``race_max_questions`` (default 4 × ``batch_size``).
    - ``lengths``: the task's average prompt/answer tokens for the cost model (default: the task's preset, the
      math preset for tasks without one; ``"profile"``: those measured by the stored ``langtts profile`` of these
      models under this run's settings, see :func:`~langtts.profile.profile_lengths`; or your own
      :class:`~langtts.cost.TaskLengths`, e.g. from :func:`~langtts.cost.measure_task_lengths`).
    - ``models``: worker models (default: every pool model); ``sink_model``: the decider's model (default: the
      pool's largest).
    - ``run_id``: default ``<task>-<method>-<time>``.
    """
    if unknown := sorted(set(options) - OPTIMIZE_OPTIONS):
        raise TypeError(f"unknown run option(s) {unknown}; the options are {sorted(OPTIMIZE_OPTIONS)}")
    given = {k: v for k, v in options.items() if v is not None}

    def option(name: str) -> Any:
        return given.get(name, RunConfig.model_fields[name].default)

    catalog = pool.catalog_for() if pool is not None else default_catalog()
    models = list(given.get("models", pool.ids() if pool is not None else ()))
    if not models:
        raise ValueError("no worker models: pass models=... or a pool")
    unknown = [m for m in models if m not in catalog]
    sink_model = given.get("sink_model") or largest_model(models, catalog)
    if unknown or sink_model not in catalog:
        raise ValueError(f"unknown model id(s) {unknown or [sink_model]}; known: {list(catalog.ids())}")
    lengths = given.get("lengths") or task_lengths(task.lengths_key or "math")
    if lengths == "profile":
        if pool is None:
            raise ValueError("lengths='profile' needs the pool the profile was measured on")
        lengths = profile_lengths(
            task, pool, models, split=option("split"), temperature=option("temperature"),
            max_tokens=given.get("max_tokens"),
        )  # fmt: skip
    if not isinstance(budget, Budget):
        budget = Budget.from_units(float(budget), catalog.get(smallest_model(models, catalog)), lengths)
    n_test, batch_size = option("n_test"), option("batch_size")
    examples_available = len(task.load(option("split")))
    wanted = given.get("n_search", max(option("iterations") * batch_size, option("validation_size")))
    wanted = min(wanted, examples_available - n_test)
    if wanted < min(batch_size, 1):
        raise ValueError(f"{task.name} has {examples_available} questions: too few for n_test={n_test} and a search")
    objective = make_objective(given.get("objective", "accuracy")).spec()
    method = option("method")
    task_name, task_options = _task_spec(task)
    return RunConfig.model_validate(
        given
        | {
            "run_id": run_id or f"{task.name}-{method}-{time.strftime('%Y%m%d-%H%M%S')}",
            "task": task_name,
            "task_options": task_options,
            "method_options": _with_objective(method, dict(given.get("method_options", {})), objective),
            "objective": objective,
            "budget": budget,
            "models": models,
            "sink_model": sink_model,
            "lengths": lengths,
            "n_search": wanted,
            "test_first": True,
            "paper_faithful": bool(given.get("paper_faithful", False)),
        }
    )


def search_space(config: RunConfig, pool: ModelPool | None, task: Task) -> SearchSpace:
    """The space a run searches: its models, sink options, budget and size limit, on the pool's catalog (or the
    default one). Unless ``paper_faithful``, the sink may run any worker model or the sink model, or be a vote
    (when the task has answers to count: not for code)."""
    extended = not config.paper_faithful
    return SearchSpace(
        models=tuple(config.models),
        sink_model=config.sink_model,
        budget=config.budget,
        lengths=config.lengths,
        catalog=pool.catalog_for() if pool is not None else default_catalog(),
        max_nodes=config.max_nodes,
        sink_models=tuple(config.models) if extended else (),
        vote_sink=extended and task.answer_schema() is not None,
        paper_faithful=config.paper_faithful,
    )


def resume(run_dir: str | Path, pool: ModelPool | None, **options: Any) -> OptimizationResult:
    """Continue or extend the run in ``run_dir`` (or return its result if it finished); see :func:`aresume`."""
    return run_sync(aresume(run_dir, pool, **options))


async def aresume(
    run_dir: str | Path,
    pool: ModelPool | None,
    *,
    task: Task | None = None,
    objective: ObjectiveLike | None = None,
    evaluator: EvaluatorLike | None = None,
    stop: Stopper | None = None,
    progress: ProgressLike = True,
    **options: Any,
) -> OptimizationResult:
    """Continue a run from its directory, or extend a finished or stopped one: ``options`` are run options
    (fields of :class:`~langtts.search.records.RunConfig`); those of ``RESUMABLE_CHANGES`` replace the stored
    ones (e.g. ``iterations=20``), any other must equal the stored value. A user-defined task or objective
    function must be passed again."""
    run_path = Path(run_dir)
    config_file = run_path / "config.json"
    if "objective" in options:
        options["objective"] = make_objective(options["objective"]).spec()
    config = updated_config(RunConfig.model_validate(read_json(config_file, "config")), options, run_path)
    write_json(config_file, config.model_dump(mode="json"))
    task = task or get_task(config.task, **config.task_options)
    if objective is None:
        objective = config.objective
    if pool is None and evaluator is None:
        raise ValueError("a model pool is needed to resume unless an evaluator is given")
    run = _Run(config, run_path, task, pool, make_objective(objective), evaluator, stop, _reporter(progress))
    return await run.execute()


class _Run:
    """One session of a run: loads the state, runs the remaining phases, saves after every evaluation."""

    def __init__(
        self,
        config: RunConfig,
        run_dir: Path,
        task: Task,
        pool: ModelPool | None,
        objective: Any,
        evaluator: EvaluatorLike | None,
        stop: Stopper | None,
        report: Callable[[str], None],
    ) -> None:
        self.config, self.run_dir, self.task, self.pool = config, run_dir, task, pool
        self.report = report
        self.space = search_space(config, pool, task)
        self.search, self.test = search_test_split(
            task.load(config.split), config.n_search, config.n_test, seed=config.seed, test_first=config.test_first
        )
        self.state_file = run_dir / "state.json"
        self.state = (
            RunState.model_validate(read_json(self.state_file, "state")) if self.state_file.exists() else RunState()
        )
        self.objective = make_objective(self.state.objective) if self.state.objective else objective
        if self.state.objective.get("name") == "custom" or (
            not self.state.objective and config.objective.get("name") == "custom"
        ):
            self.objective = objective  # a user function is never stored
        self.tags = {"run": config.run_id}
        self.evaluator = self._evaluator(evaluator)
        self.stopper = self._stopper(stop)
        self.session = UsageLedger()
        self.base_costs = (self.state.evaluation_cost, self.state.optimizer_cost)
        self.base_elapsed = self.state.elapsed_s
        self.started = time.monotonic()
        self.extended = False  # this session extends a run whose search had stopped (not one cut off midway)
        self._intervals: dict[tuple[str, tuple[Phase, ...], int], tuple[float, float]] = {}  # bootstrap, by entries

    # -- phases -----------------------------------------------------------------------------------------------

    async def execute(self) -> OptimizationResult:
        if self.state.phase != "search" and self._search_may_go_on():
            self.report(f"extending {self.run_dir}: it stopped because {self.state.stop_reason}, which no longer holds")
            self.state.phase, self.state.stop_reason = "search", None
            self.extended = True
        if self.state.phase == "done":
            self.report(f"run {self.run_dir} is already finished")
            return OptimizationResult.load(self.run_dir / "result.json")
        self.state.sessions += 1
        self.state.error = None
        if self.state.evaluations:
            self.report(f"resuming {self.run_dir}: {len(self.state.evaluations)} evaluations in the ledger")
        elif self.pool is not None:
            for warning in search_warnings(
                self.task, self.pool, self.config.models, self.config.budget, split=self.config.split,
                temperature=self.config.temperature, max_tokens=self.config.max_tokens,
            ):  # fmt: skip
                self.report(f"profile: {warning}")
        try:
            with track(self.session):
                if self.state.phase == "search":
                    await self._search()
                    self.state.phase = "validate"
                    self._save()
                if self.state.phase == "validate":
                    await self._validate()
                    self.state.phase = "test"
                    self._save()
                chosen = self._choose()
                test = await self._test(chosen) if self.config.n_test else None
        except (KeyboardInterrupt, asyncio.CancelledError):
            self._save()
            self.report(f"interrupted; resume with: langtts optimize --resume {self.run_dir}")
            raise
        except Exception as error:
            message = " ".join(f"{type(error).__name__}: {error}".split())
            self.state.error = message
            self._save()
            raise OptimizationError(
                f"run stopped in its {self.state.phase} phase: {message}; its state is saved — resume with "
                f"`langtts optimize --resume {self.run_dir}` once the cause is fixed"
            ) from error
        self.state.phase = "done"
        result = self._result(chosen, test)
        result.save(self.run_dir / "result.json")
        chosen.collaboration_graph().pruned().save(self.run_dir / "graph.json")  # what runs: no unreachable nodes
        self._save()
        return result

    def check_method(self) -> None:
        """Build the method once, so that options it does not take fail as a `ValueError`."""
        try:
            self._optimizer()
        except TypeError as error:
            raise ValueError(f"{self.config.method} options {self.config.method_options}: {error}") from None

    def _optimizer(self) -> Optimizer:
        context = MethodContext(
            space=self.space,
            seed=self.config.seed,
            pool=self.pool,
            task=self.task,
            tags={**self.tags, "purpose": "optimizer"},
            calibrate=self._calibrate,
            run_dir=self.run_dir,
            report=self.report,
            settings={k: getattr(self.config, k) for k in ("split", "temperature", "max_tokens")},
        )
        return METHODS[self.config.method](context, **self.config.method_options)

    def _search_may_go_on(self) -> bool:
        """The search stopped on a condition that no longer holds (more iterations, STOP removed, ...)."""
        exhausted = self.state.stop_reason == self._exhausted()
        return self.state.stop_reason is not None and not exhausted and self.stopper.reason(self._progress()) is None

    def _exhausted(self) -> str:
        return f"{self.config.method} has no more graphs to try"

    async def _search(self) -> None:
        optimizer = self._optimizer()
        # after a resume of a search cut off midway, the calls the method made to redo its unsaved step: counted after
        # the first propose, or after the first observe when a round was cut off (its evaluations are in the ledger);
        # an extended run's next step is new, not redone
        resumed = self.state.sessions > 1 and not self.extended
        recount = ("observe" if self._round_started() else "propose") if resumed else None
        if self.state.optimizer_state is not None:
            optimizer.load_state_dict(self.state.optimizer_state)
        # a round cut off midway (its evaluations in the ledger) is finished before any stop condition is read
        while self._round_started() or (reason := self.stopper.reason(self._progress())) is None:
            graph = await self._timed(optimizer.propose())
            if recount == "propose":
                self._count_repeated_calls()
                recount = None
            if graph is None:
                reason = self._exhausted()
                break
            self._check_proposal(graph)
            decision = await self._race(graph)
            observed = self._observed(graph.fingerprint(), self.state.rounds)
            self.state.pending_observe = observed.index
            self._save()
            await self._timed(optimizer.observe(graph, observed))
            if recount == "observe":
                self._count_repeated_calls()
                recount = None
            self._end_round(optimizer, observed, decision)
        self.state.stop_reason = reason
        report = getattr(optimizer, "report", None)
        if callable(report):
            write_json(self.run_dir / "method_report.json", report())
        self.report(f"search stopped: {reason}")

    async def _timed(self, step: Awaitable[T]) -> T:
        """``step`` awaited, its seconds added to the optimizer's wall time."""
        started = time.monotonic()
        try:
            return await step
        finally:
            self.state.optimizer_wall_s += time.monotonic() - started

    def _round_started(self) -> bool:
        return any(e.phase == "search" and e.round == self.state.rounds for e in reversed(self.state.evaluations))

    async def _race(self, graph: CollaborationGraph) -> Decision | None:
        """Round r's evaluations: the candidate on the search questions in chunks of ``batch_size`` from the first,
        the incumbent on every chunk the candidate holds that it lacks (paired), while the race is in contention
        and the candidate has fewer than ``race_max_questions``; at least one chunk the candidate lacks (a graph
        proposed again is measured further). A question a graph has in the ledger is never evaluated again, so a
        round cut off midway resumes where it stopped. The race's decision (None: no incumbent to race)."""
        r, fingerprint = self.state.rounds, graph.fingerprint()
        rival = self.state.incumbent if self.state.incumbent != fingerprint else None
        cap = min(self.config.race_max_questions or 4 * self.config.batch_size, len(self.search))
        size = self.config.batch_size
        for start in range(0, len(self.search), size):
            chunk = self.search[start : start + size]
            mine = self._answers(fingerprint)
            if missing := [ex for ex in chunk if ex.id not in mine]:
                measured = any(e.round == r and e.fingerprint == fingerprint for e in self._search_entries())
                if measured and (
                    rival is None or len(mine) >= cap or self._decision(fingerprint, rival) != "contention"
                ):
                    break
                await self._measure(graph, missing, "search", r)
                self._save()
            if rival is not None and (theirs := [ex for ex in chunk if ex.id not in self._answers(rival)]):
                await self._measure(self._graph_of(rival), theirs, "search", r)
                self._save()
        return self._decision(fingerprint, rival) if rival is not None else None

    def _decision(self, candidate: str, incumbent: str) -> Decision:
        return decide(Pairs.of(self._answers(candidate), self._answers(incumbent)))

    def _count_repeated_calls(self) -> None:
        """After a resume, the LLM calls the method made up to its first proposal redid the step it had not saved:
        count and show those the call cache did not answer (asked again, or for the first time if the killed
        session had not got that far)."""
        usage = self.session.totals(purpose="optimizer")
        if usage.calls:
            self.state.reasked_calls += usage.misses
            self.report(
                f"resume: the method redid its interrupted step with {usage.calls} LLM call(s): {usage.hits} from the "
                f"call cache, {usage.misses} asked" + (" (their answers may differ)" if usage.misses else "")
            )

    def _end_round(self, optimizer: Optimizer, observed: Evaluation, decision: Decision | None) -> None:
        """Record the round: a candidate the race declared better becomes the incumbent, else the graph with the
        best estimate does; the best estimate, the optimizer's state and a point of the search curve."""
        self.state.rounds += 1
        ranked = self._ranked()
        best = ranked[0][1].score
        self.state.incumbent = observed.fingerprint if decision == "better" else ranked[0][0]
        self.state.best_scores.append(best)
        self.state.pending_observe = None
        self.state.optimizer_state = optimizer.state_dict()
        self._sync()
        evaluation_calls, evaluation_flops = self._evaluation_cost()
        self.state.curve.append(
            CurvePoint(
                round=self.state.rounds,
                best_score=best,
                evaluation_calls=evaluation_calls,
                evaluation_flops=evaluation_flops,
                optimizer_calls=self.state.optimizer_cost.calls,
                optimizer_flops=self.state.optimizer_cost.flops,
                wall_time_s=self.state.elapsed_s,
                optimizer_wall_s=self.state.optimizer_wall_s,
            )
        )
        self._save()
        o = observed.outcome
        limit = f"/{self.config.iterations}"
        race = f", race: {decision}" if decision is not None else ""
        self.report(
            f"round {self.state.rounds}{limit}: estimate {observed.score:.3f} (best {best:.3f}{race}), "
            f"{sum(o.correct)}/{len(o.correct)} q right, {observed.modelled_flops:.3g} FLOPs/q, "
            f"{o.calls} calls ({o.cache_hits} cached), {o.wall_time_s:.1f}s  [{observed.fingerprint[:10]}]"
            + (
                f"; {o.context_overflows} questions overflowed a context window (scored wrong)"
                if o.context_overflows
                else ""
            )
        )

    async def _validate(self) -> None:
        if not self.config.validation_size:
            return
        examples = self.search[: self.config.validation_size]
        done = {e.fingerprint for e in self.state.evaluations if e.phase == "validate"}
        ranked = self._ranked()
        front = {p.fingerprint for p in pareto(self.state.evaluations, phase="search")}
        top = {fp for fp, _ in ranked[: self.config.top_k]}
        candidates = [(fp, estimate) for fp, estimate in ranked if fp in top or fp in front]
        for i, (fingerprint, estimate) in enumerate(candidates, 1):
            if fingerprint in done:
                continue
            evaluation = await self._measure(self._graph_of(fingerprint), examples, "validate", None)
            self._save()
            self.report(
                f"validation {i}/{len(candidates)}: score {evaluation.score:.3f} on {len(examples)} q "
                f"(search estimate {estimate.score:.3f})  [{fingerprint[:10]}]"
            )

    def _choose(self) -> Choice:
        """The validated top-k graph with the best shrunk estimate over its search and validation questions (ties:
        search rank), compared with the runner-up on the validation questions; without validation, the top one."""
        ranked = self._ranked()
        if not ranked:
            raise OptimizationError(f"the search evaluated no graph ({self.state.stop_reason}): nothing to choose from")
        searched = dict(ranked)
        search_rank = {fp: i for i, (fp, _) in enumerate(ranked)}
        top = {fp for fp, _ in ranked[: self.config.top_k]}
        validated = {e.fingerprint: e for e in self.state.evaluations if e.phase == "validate" and e.fingerprint in top}
        overall = self._estimates(("search", "validate"))
        order = sorted(validated, key=lambda fp: (-overall[fp].score, search_rank[fp])) or [ranked[0][0]]
        fingerprint = order[0]
        check = validated.get(fingerprint)
        versus = None
        if check is not None and len(order) > 1:
            other = validated[order[1]].outcome
            assert other.question_ids == check.outcome.question_ids  # validation: the same questions, same order
            versus = paired_comparison(check.outcome.correct, other.correct)
        entries = [e for e in self._search_entries() if e.fingerprint == fingerprint]
        return Choice(
            fingerprint=fingerprint,
            graph=entries[0].graph,
            modelled_flops=entries[0].modelled_flops,
            search_score=searched[fingerprint].score,
            search_evaluations=len(entries),
            validation_score=check.score if check else None,
            validation_accuracy=check.outcome.accuracy if check else None,
            ledger_index=(check or entries[0]).index,
            estimate=(overall if check else searched)[fingerprint].score,
            versus_runner_up=versus,
        )

    async def _test(self, chosen: Choice) -> Evaluation:
        for e in self.state.evaluations:
            if e.phase == "test" and e.fingerprint == chosen.fingerprint:
                return e
        evaluation = await self._measure(chosen.collaboration_graph(), self.test, "test", None)
        self._save()
        return evaluation

    # -- pieces -----------------------------------------------------------------------------------------------

    async def _measure(
        self, graph: CollaborationGraph, examples: Sequence[Example], phase: Phase, round_: int | None
    ) -> Evaluation:
        outcome = await self.evaluator.evaluate(graph, examples)
        if not self.state.objective:
            self.objective = self.objective.bind(outcome)
            self.state.objective = self.objective.spec()
        evaluation = Evaluation(
            index=len(self.state.evaluations),
            phase=phase,
            round=round_,
            fingerprint=graph.fingerprint(),
            graph=graph.to_dict(),
            modelled_flops=self.space.cost(graph),
            score=self.objective(outcome),
            outcome=outcome,
        )
        self.state.evaluations.append(evaluation)
        return evaluation

    async def _calibrate(self, graph: CollaborationGraph, n: int) -> Evaluation:
        fingerprint = graph.fingerprint()
        for e in self.state.evaluations:
            if e.phase == "calibrate" and e.fingerprint == fingerprint and len(e.outcome.question_ids) == n:
                return e
        self._check_proposal(graph)
        started = time.monotonic()
        evaluation = await self._measure(graph, self.search[:n], "calibrate", None)
        # an evaluation the method asks for (its pretest) runs inside its step: not the optimizer's own time
        self.state.optimizer_wall_s -= time.monotonic() - started
        self._save()
        return evaluation

    def _check_proposal(self, graph: CollaborationGraph) -> None:
        graph.check(self.space.model_ids())
        if not self.space.feasible(graph):
            raise OptimizationError(
                f"{self.config.method} proposed a graph over the budget ({self.space.cost(graph):.4g} > "
                f"{self.space.budget.flops:.4g} FLOPs)"
            )

    def _search_entries(self) -> list[Evaluation]:
        return [e for e in self.state.evaluations if e.phase == "search"]

    def _answers(self, fingerprint: str) -> dict[str, bool]:
        """Question id -> correct, for every search question ``fingerprint`` was evaluated on."""
        return _answers_of([e.outcome for e in self._search_entries() if e.fingerprint == fingerprint])

    def _graph_of(self, fingerprint: str) -> CollaborationGraph:
        return next(e for e in self.state.evaluations if e.fingerprint == fingerprint).collaboration_graph()

    def _estimates(self, phases: Sequence[Phase] = ("search",)) -> dict[str, Evaluation]:
        """Each graph's estimate over its distinct questions of ``phases``, in order of first evaluation: its last
        entry with the outcome of all its questions, the accuracy shrunk towards the mean accuracy of every search
        question measured (:func:`~langtts.search.racing.shrunk`), and the objective's score of that outcome."""
        groups: dict[str, list[Evaluation]] = {}
        for e in self.state.evaluations:
            if e.phase in phases:
                groups.setdefault(e.fingerprint, []).append(e)
        measured = [c for e in self._search_entries() for c in e.outcome.correct]
        prior = statistics.fmean(measured) if measured else 0.5
        estimates = {}
        for fingerprint, entries in groups.items():
            key = (fingerprint, tuple(phases), len(entries))  # a graph's entries only grow
            if key not in self._intervals:
                answers = _answers_of([e.outcome for e in entries])
                self._intervals[key] = bootstrap_ci(list(answers.values()))
            outcome = _combined([e.outcome for e in entries], prior, self._intervals[key])
            estimates[fingerprint] = entries[-1].model_copy(
                update={"outcome": outcome, "score": self.objective(outcome)}
            )
        return estimates

    def _observed(self, fingerprint: str, round_: int) -> Evaluation:
        """What the method observes for round ``round_``'s candidate: its estimate over all its search questions."""
        return self._estimates()[fingerprint].model_copy(update={"round": round_})

    def _ranked(self) -> list[tuple[str, Evaluation]]:
        """Distinct search graphs and their estimates, best first (ties: fewer FLOPs, then first evaluated)."""
        return sorted(self._estimates().items(), key=lambda item: (-item[1].score, item[1].modelled_flops))

    def _evaluation_cost(self) -> tuple[int, float]:
        """The calls and FLOPs of every evaluation in the ledger (cached calls included, as in `Usage.flops`): from
        the ledger, so a resumed run counts what the uninterrupted one would."""
        outcomes = [e.outcome for e in self.state.evaluations]
        return sum(o.calls for o in outcomes), sum(o.flops for o in outcomes)

    def _progress(self) -> Progress:
        return Progress(
            rounds=self.state.rounds,
            evaluations=sum(e.phase == "search" for e in self.state.evaluations),
            elapsed_s=self._elapsed(),
            best_scores=tuple(self.state.best_scores),
            flops=self._evaluation_cost()[1]
            + self.base_costs[1].flops
            + self.session.totals(purpose="optimizer").flops,
        )

    def _elapsed(self) -> float:
        return self.base_elapsed + time.monotonic() - self.started

    def _sync(self) -> None:
        """Bring the state's costs and active seconds up to now."""
        evaluation_cost, optimizer_cost = self.base_costs
        self.state.evaluation_cost = evaluation_cost + self.session.totals(purpose="evaluate")
        self.state.optimizer_cost = optimizer_cost + self.session.totals(purpose="optimizer")
        self.state.elapsed_s = self._elapsed()

    def _save(self) -> None:
        self._sync()
        write_text_atomic(self.state_file, self.state.model_dump_json(indent=1) + "\n")  # pydantic's fast encoder

    def _evaluator(self, evaluator: EvaluatorLike | None) -> Evaluator:
        if evaluator is not None:
            return evaluator if hasattr(evaluator, "evaluate") else evaluator(self.space)
        assert self.pool is not None
        defaults = default_settings(self.task.family)
        settings = GenerationSettings(
            temperature=self.config.temperature,
            max_tokens=self.config.max_tokens or defaults.max_tokens,
            seed=defaults.seed,
        )
        return PoolEvaluator(
            self.task,
            self.pool,
            concurrency=self.config.concurrency,
            tags={**self.tags, "purpose": "evaluate"},
            settings=settings,
        )

    def _stopper(self, extra: Stopper | None) -> Stopper:
        c = self.config
        stopper: Stopper = Iterations(c.iterations) | StopFile(self.run_dir / STOP_FILE)
        for condition in (
            Evaluations(c.max_evaluations) if c.max_evaluations else None,
            WallTime(c.wall_time_s) if c.wall_time_s else None,
            FlopsSpent(c.max_flops) if c.max_flops else None,
            NoImprovement(c.patience) if c.patience else None,
            extra,
        ):
            if condition is not None:
                stopper = stopper | condition
        return stopper

    def _result(self, chosen: Choice, test: Evaluation | None) -> OptimizationResult:
        report_file = self.run_dir / "method_report.json"
        return OptimizationResult(
            run_dir=str(self.run_dir),
            config=self.config,
            chosen=chosen,
            test=test,
            stop_reason=self.state.stop_reason or "",
            rounds=self.state.rounds,
            ledger=self.state.evaluations,
            pareto=pareto(self.state.evaluations),
            evaluation_cost=self.state.evaluation_cost,
            optimizer_cost=self.state.optimizer_cost,
            wall_time_s=self._elapsed(),
            method_report=json.loads(report_file.read_text()) if report_file.exists() else {},
            curve=self.state.curve,
            optimizer_wall_s=self.state.optimizer_wall_s,
        )


def pareto(
    evaluations: Sequence[Evaluation], *, phase: Literal["validate", "search"] | None = None
) -> list[ParetoPoint]:
    """The graphs no other beats on both accuracy and latency, fastest first, each with its graph.

    Measured on the validation questions (the same for every point) when the run validated any graph, else (or
    with ``phase="search"``) on the mean of each graph's search evaluations (different batches).
    """
    phase = phase or ("validate" if any(e.phase == "validate" for e in evaluations) else "search")
    groups: dict[str, list[Evaluation]] = {}
    for e in evaluations:
        if e.phase == phase:
            groups.setdefault(e.fingerprint, []).append(e)
    points = [
        ParetoPoint(
            fingerprint=fp,
            graph=es[0].graph,
            accuracy=statistics.fmean(e.outcome.accuracy for e in es),
            latency_s=statistics.fmean(e.outcome.latency_s for e in es),
            modelled_flops=es[0].modelled_flops,
            measured_on=phase,
            questions=len({q for e in es for q in e.outcome.question_ids}),
        )
        for fp, es in groups.items()
    ]
    return [points[i] for i in pareto_front([(p.latency_s, p.accuracy) for p in points])]


def _with_objective(method: str, options: dict[str, Any], objective: dict[str, Any]) -> dict[str, Any]:
    """``options`` with ``objective_kind="joint"`` for a method that takes it, under the joint objective."""
    takes_kind = method in METHODS and "objective_kind" in inspect.signature(METHODS[method]).parameters
    if objective.get("name") == "joint" and takes_kind:
        return {"objective_kind": "joint", **options}
    return options


def _answers_of(outcomes: Sequence[Outcome]) -> dict[str, bool]:
    """Question id -> correct over ``outcomes`` (the last answer of a repeated question)."""
    answers: dict[str, bool] = {}
    for o in outcomes:
        answers.update(zip(o.question_ids, o.correct, strict=True))
    return answers


def _combined(outcomes: Sequence[Outcome], prior: float, interval: tuple[float, float]) -> Outcome:
    """One outcome for ``outcomes`` of a graph: its distinct questions, the accuracy shrunk towards ``prior``, the
    ``interval`` of the raw accuracy, counts and FLOPs summed, latency and per-node figures averaged by questions."""
    answers = _answers_of(outcomes)
    weights = [len(o.question_ids) for o in outcomes]
    low, high = interval

    def total(name: str) -> Any:
        return sum(getattr(o, name) for o in outcomes)

    def per_node(name: str) -> dict[str, float]:
        values: dict[str, list[tuple[float, int]]] = {}
        for o, w in zip(outcomes, weights, strict=True):
            for node, value in getattr(o, name).items():
                values.setdefault(node, []).append((value, w))
        return {node: _weighted(pairs) for node, pairs in values.items()}

    return Outcome(
        question_ids=list(answers),
        correct=list(answers.values()),
        accuracy=shrunk(sum(answers.values()), len(answers), prior),
        ci_low=low,
        ci_high=high,
        flops=total("flops"),
        latency_s=_weighted([(o.latency_s, w) for o, w in zip(outcomes, weights, strict=True)]),
        **{name: total(name) for name in ("prompt_tokens", "completion_tokens", "calls", "cache_hits", "errors")},
        context_overflows=total("context_overflows"),
        wall_time_s=total("wall_time_s"),
        node_accuracy=per_node("node_accuracy"),
        node_agreement=per_node("node_agreement"),
    )


def _weighted(pairs: Sequence[tuple[float, int]]) -> float:
    """The mean of the values weighted by their counts (plain mean when every count is 0)."""
    weight = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / weight if weight else statistics.fmean(v for v, _ in pairs)


def _task_spec(task: Task) -> tuple[str, dict[str, Any]]:
    """The name and options that rebuild ``task`` with `get_task` at resume: a JSONL task with a declared scorer is
    its resolved path, scorer and sha256 (a changed file is refused)."""
    if isinstance(task, JsonlTask) and (options := task.options()) is not None:
        return str(task.path.resolve()), options
    subjects = getattr(task, "subjects", None)
    return task.name, {"subjects": sorted(subjects)} if subjects else {}


def updated_config(stored: RunConfig, given: Mapping[str, Any], run_dir: Path) -> RunConfig:
    """``stored`` with the `RESUMABLE_CHANGES` of ``given`` and, for a ``test_first`` run, a larger ``n_search``;
    any other option of ``given`` must equal the stored one."""
    if unknown := sorted(set(given) - RUN_OPTIONS):
        raise ValueError(f"unknown run options {unknown}")
    fixed = [k for k in given if k not in (*RESUMABLE_CHANGES, "n_search")]
    before = stored.model_dump(mode="json")
    after = RunConfig.model_validate({**stored.model_dump(), **{k: given[k] for k in fixed}}).model_dump(mode="json")
    if differ := [k for k in fixed if after[k] != before[k]]:
        detail = ", ".join(f"{k}: {before[k]!r} there vs {after[k]!r} now" for k in differ)
        raise ValueError(
            f"{run_dir} holds a different run ({detail}); a resume may change only {', '.join(RESUMABLE_CHANGES)} "
            "(and grow n_search): resume it with those or use another run directory"
        )
    changes = {k: given[k] for k in RESUMABLE_CHANGES if k in given}
    if stored.test_first and given.get("n_search") is not None:
        changes["n_search"] = max(stored.n_search, given["n_search"])
    return RunConfig.model_validate(stored.model_dump() | changes)


def _reporter(progress: ProgressLike) -> Callable[[str], None]:
    if callable(progress):
        return progress
    if progress:
        return lambda line: print(line, file=sys.stderr, flush=True)
    return lambda line: None


__all__ = ["EvaluationError", "aoptimize", "aresume", "optimize", "pareto", "resume"]

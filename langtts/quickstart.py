"""The quick start's main job: a small real Agent-REINFORCE search on the embedded server, end to end.

Sets up and starts the embedded llama.cpp server (or reuses a running one), searches a graph for a handful of
MMLU questions, evaluates the chosen graph and a single-model baseline on the same held-out questions with a
paired test, and writes the graph (JSON + picture), the search curve and the comparison to ``out_dir``. Safe to
run twice: builds, weights, the call cache and a finished run are reused.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from langtts import shapes
from langtts.compare import ComparisonResult, compare
from langtts.compile import GenerationSettings, default_settings
from langtts.models import CallCache, ModelPool
from langtts.plots import draw_graph, search_curves
from langtts.search import OptimizationResult, optimize
from langtts.serve.embedded import EmbeddedServer
from langtts.tasks import CODE_TASKS, get_task
from langtts.tasks.sandbox import SandboxMode

WORKERS: tuple[str, ...] = ("smollm2-135m", "qwen2.5-coder-0.5b")  # the sink runs the larger one
AGENT_MODEL = "qwen2.5-coder-1.5b"


@dataclass(frozen=True)
class QuickstartReport:
    search: OptimizationResult
    comparison: ComparisonResult
    files: dict[str, Path]

    def summary(self) -> str:
        lines = [self.search.summary(), "", f"held-out comparison on {len(self.comparison.question_ids)} questions:"]
        for name, result in self.comparison.results.items():
            lines.append(
                f"  {name:<28} accuracy {result.accuracy:6.1%}  (95% CI {result.ci_low:.1%} – {result.ci_high:.1%})"
                f"  {result.flops / max(result.n, 1):.3g} FLOPs/q  latency p50 {result.latency_p50_s:.1f}s"
            )
        for name, c in self.comparison.comparisons.items():
            lines.append(
                f"  {name} − {self.comparison.reference}: {c.difference:+.1%} (95% CI {c.ci_low:+.1%} – "
                f"{c.ci_high:+.1%}), McNemar p = {c.p_value:.3g}"
            )
        lines += ["", "files:"] + [f"  {name}: {path}" for name, path in self.files.items()]
        return "\n".join(lines)


def run_quickstart(
    out_dir: str | Path = "langtts-quickstart",
    *,
    task: str = "mmlu",
    budget_units: float = 12.0,
    iterations: int = 3,
    batch_size: int = 3,
    n_test: int = 8,
    max_tokens: int | None = None,
    workers: Sequence[str] = WORKERS,
    agent_model: str = AGENT_MODEL,
    seed: int = 0,
    report: Callable[[str], None] | None = None,
    sandbox: SandboxMode = "auto",
) -> QuickstartReport:
    """Run the quick start (see the module docstring) and return what it measured and wrote; `sandbox`
    (``"auto"`` or ``"strict"``) is how a code task runs model-written code (see :func:`select_backend`)."""
    say = report or (lambda line: print(line, file=sys.stderr, flush=True))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    the_task = get_task(task, **({"sandbox": sandbox} if task in CODE_TASKS else {}))  # strict fails here
    models = tuple(dict.fromkeys([*workers, agent_model]))
    server = EmbeddedServer(models, progress=say)
    info = server.start()
    try:
        with ModelPool.from_file(info.pool_file, cache=CallCache.default()) as pool:
            search = optimize(
                the_task,
                pool,
                budget_units,
                method="agent-reinforce",
                method_options={"agent_model": agent_model},
                models=list(workers),
                iterations=iterations,
                batch_size=batch_size,
                top_k=2,
                validation_size=batch_size,
                n_test=n_test,
                max_tokens=max_tokens,
                seed=seed,
                run_dir=out / "run",
                progress=say,
            )
            chosen = search.graph
            assert search.test is not None
            held_out = set(search.test.outcome.question_ids)
            examples = [ex for ex in the_task.load(search.config.split) if ex.id in held_out]
            baseline = f"single {search.config.sink_model}"
            say(f"comparing the chosen graph with {baseline} on {len(examples)} held-out questions")
            comparison = compare(
                {"optimized graph": chosen, baseline: shapes.single(search.config.sink_model)},
                the_task,
                pool,
                examples=examples,
                settings=default_settings(the_task.family)
                if max_tokens is None
                else GenerationSettings(max_tokens=max_tokens),
                progress=False,
            )
            comparison.raise_for_call_failures()  # a server down: fail, not an accuracy
            files = {
                "graph": out / "graph.json",
                "picture": out / "graph.png",
                "search curve": out / "search_curve.png",
                "comparison": out / "comparison.json",
            }
            chosen.save(files["graph"])
            draw_graph(chosen, files["picture"], catalog=pool.catalog_for(chosen), title="optimized graph")
            search_curves({"agent-reinforce": search.ledger}, files["search curve"])
            comparison.save(files["comparison"])
    finally:
        if not info.reused:
            server.stop()
    return QuickstartReport(search=search, comparison=comparison, files=files)

"""Figures: files are written with valid PNG/SVG headers; the Pareto front on hand-checked point sets."""

from pathlib import Path

import pytest

from langtts.cost import ModelCatalog, ModelSpec, task_lengths
from langtts.evaluation import EvaluationResult
from langtts.graph import load_graph
from langtts.plots import accuracy_vs_cost, draw_graph, pareto_front, scatter, search_curves
from langtts.search.base import Evaluation, Outcome
from langtts.search.records import CurvePoint
from langtts.shapes import single

GRAPHS = Path(__file__).resolve().parents[1] / "examples" / "graphs"
PNG = b"\x89PNG\r\n\x1a\n"


def assert_image(path: Path) -> None:
    data = path.read_bytes()
    if path.suffix == ".png":
        assert data.startswith(PNG)
    else:
        assert data.lstrip().startswith(b"<?xml") and b"<svg" in data[:1000]


def evaluation(index: int, score: float, *, phase: str = "search", flops: float = 1e12, wall: float = 2.0):
    outcome = Outcome(
        question_ids=["q0", "q1"],
        correct=[score >= 0.5, score >= 1.0],
        accuracy=score,
        ci_low=0.0,
        ci_high=1.0,
        flops=2 * flops,
        latency_s=0.1 * (index + 1),
        prompt_tokens=10,
        completion_tokens=10,
        calls=2,
        cache_hits=0,
        wall_time_s=wall,
    )
    graph = single("smollm2-135m")
    return Evaluation(
        index=index,
        phase=phase,
        round=index if phase == "search" else None,
        fingerprint=graph.fingerprint(),
        graph=graph.to_dict(),
        modelled_flops=flops,
        score=score,
        outcome=outcome,
    )


@pytest.mark.parametrize(
    ("name", "suffix"), [("hybrid.yaml", ".png"), ("single.json", ".png"), ("chain2.yaml", ".svg")]
)
def test_draw_graph_writes_an_image(tmp_path, name, suffix):
    path = draw_graph(load_graph(GRAPHS / name), tmp_path / "out" / f"graph{suffix}", title="a graph")
    assert path == tmp_path / "out" / f"graph{suffix}"
    assert_image(path)


def test_draw_graph_labels_nodes_with_model_and_flops_share(tmp_path):
    path = draw_graph(load_graph(GRAPHS / "parallel3.json"), tmp_path / "graph.svg", lengths=task_lengths("mmlu"))
    text = path.read_text()
    assert "smollm2-135m" in text and "FLOPs" in text and "decider (sink)" in text


def test_draw_graph_draws_a_vote_sink(tmp_path):
    path = draw_graph(
        load_graph(GRAPHS / "self_consistency5.json"), tmp_path / "graph.svg", lengths=task_lengths("mmlu")
    )
    text = path.read_text()
    assert "majority vote" in text and "vote (no LLM call)" in text and "0.0% FLOPs" in text and "20.0% FLOPs" in text


def test_draw_graph_uses_the_given_catalog(tmp_path):
    graph = single("smollm2-135m").relabel_models({"smollm2-135m": "my-model"})
    with pytest.raises(KeyError, match="my-model"):
        draw_graph(graph, tmp_path / "graph.png")
    catalog = ModelCatalog([ModelSpec(id="my-model", params=1e9, layers=16, hidden=2048)])
    assert_image(draw_graph(graph, tmp_path / "graph.png", catalog=catalog))


def test_unsupported_suffix_is_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        draw_graph(single("smollm2-135m"), tmp_path / "graph.jpg")


@pytest.mark.parametrize(
    ("points", "front"),
    [
        ([], []),
        ([(1.0, 0.5)], [0]),
        # (2, .4) is dominated by (1, .5); (3, .7) by (2, .7)
        ([(1, 0.5), (2, 0.4), (2, 0.7), (3, 0.7), (0.5, 0.2), (4, 0.9)], [4, 0, 2, 5]),
        ([(1, 0.3), (1, 0.6)], [1]),  # same cost: the more accurate one
        ([(1, 0.6), (2, 0.6)], [0]),  # same accuracy: the cheaper one
        ([(1, 1.0), (1, 1.0), (2, 0.5)], [0, 1]),  # duplicates of a front point stay
        ([(3, 0.9), (2, 0.8), (1, 0.7)], [2, 1, 0]),  # all on the front, returned by cost
    ],
)
def test_pareto_front_hand_checked(points, front):
    assert pareto_front(points) == front


def curve(scores, *, optimizer: bool = False, eval_flops: float = 1e12, eval_wall: float = 2.0):
    """One point per round: 4 evaluation calls and ``eval_flops`` a round; an optimizer adds 1 call, 5e11 FLOPs
    and 6 s a round."""
    best, points = float("-inf"), []
    for r, score in enumerate(scores, start=1):
        best = max(best, score)
        opt_wall = 6.0 * r if optimizer else 0.0
        points.append(
            CurvePoint(
                round=r, best_score=best, evaluation_calls=4 * r, evaluation_flops=eval_flops * r,
                optimizer_calls=r if optimizer else 0, optimizer_flops=5e11 * r if optimizer else 0.0,
                wall_time_s=eval_wall * r + opt_wall, optimizer_wall_s=opt_wall,
            )
        )  # fmt: skip
    return points


def test_search_curves_for_two_methods(tmp_path):
    runs = {"random": curve([0.4, 0.3, 0.6]), "agent-reinforce": curve([0.5, 0.7, 0.65], optimizer=True)}
    for suffix in (".png", ".svg"):
        assert_image(search_curves(runs, tmp_path / f"curves{suffix}"))
    text = (tmp_path / "curves.svg").read_text()
    assert "agent-reinforce" in text and "random" in text
    for axis in ("LLM calls (evaluation + optimizer)", "FLOPs (evaluation + optimizer)", "optimizer included"):
        assert axis in text
    assert "evaluations only" in text


def test_search_curves_draw_the_evaluation_only_line_for_an_optimizer_that_spent(tmp_path, monkeypatch):
    from matplotlib.axes import Axes

    lines = []
    plot = Axes.plot

    def spy(self, *args, **kwargs):
        lines.append((kwargs.get("label"), kwargs.get("linestyle"), list(args[0])))
        return plot(self, *args, **kwargs)

    monkeypatch.setattr(Axes, "plot", spy)
    search_curves({"random": curve([0.4]), "agent": curve([0.5, 0.7], optimizer=True)}, tmp_path / "c.png")
    solid = [(label, x) for label, style, x in lines if style is None]
    dashed = [x for _, style, x in lines if style == "--"]
    assert [label for label, _ in solid] == ["random"] * 3 + ["agent"] * 3
    # agent: calls 4+1 a round, FLOPs 1e12 + 5e11, wall 2 + 6 s; dashed: the evaluations alone
    assert [x for _, x in solid[3:]] == [[5, 10], [1.5e12, 3e12], [8.0, 16.0]]
    assert dashed == [[4, 8], [1e12, 2e12], [2.0, 4.0]]


def test_search_curves_need_curve_points(tmp_path):
    with pytest.raises(ValueError, match="every run's curve is empty"):
        search_curves({"random": [], "bayes": []}, tmp_path / "curves.png")
    with pytest.raises(ValueError, match="no runs"):
        search_curves({}, tmp_path / "curves.png")
    assert_image(search_curves({"random": [], "bayes": curve([0.3])}, tmp_path / "curves.png"))


@pytest.mark.parametrize("x", ["flops", "latency"])
def test_scatter_with_pareto_front(tmp_path, x):
    evaluations = [evaluation(i, s, flops=f) for i, (s, f) in enumerate([(0.3, 1e12), (0.5, 2e12), (0.4, 3e12)])]
    evaluations.append(evaluation(3, 0.6, phase="test", flops=4e12))
    path = scatter(evaluations, tmp_path / f"scatter_{x}.svg", x=x)
    assert_image(path)
    assert "Pareto front" in path.read_text()


def test_scatter_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="'flops' or 'latency'"):
        scatter([evaluation(0, 0.5)], tmp_path / "s.png", x="tokens")
    with pytest.raises(ValueError, match="no evaluations"):
        scatter([], tmp_path / "s.png")


def result(accuracy: float | None, flops: float) -> EvaluationResult:
    low, high = (None, None) if accuracy is None else (max(accuracy - 0.1, 0.0), min(accuracy + 0.1, 1.0))
    return EvaluationResult(
        task="t", split=None, graph=None, fingerprint=None, n=10, accuracy=accuracy, ci_low=low, ci_high=high,
        errors_as_wrong=False, n_correct=0, n_errors=10 if accuracy is None else 0, n_no_answer=0, n_truncated=0,
        extraction_failure_rate=0.0, error_rate=1.0 if accuracy is None else 0.0, prompt_tokens=0,
        completion_tokens=0, flops=flops, analytic_flops=flops, flops_ratio=1.0, lengths=None, latency_mean_s=1.0,
        latency_p50_s=1.0, latency_p95_s=1.0, calls=10, cache_hits=0, wall_time_s=1.0, records=[],
    )  # fmt: skip


def test_accuracy_vs_cost_leaves_out_undetermined_accuracy(tmp_path):
    results = {"small": result(0.4, 1e12), "large": result(0.7, 4e12), "broken": result(None, 2e12)}
    path = accuracy_vs_cost(results, tmp_path / "compare.svg")
    assert_image(path)
    text = path.read_text()
    assert "large" in text and "Pareto front" in text and "broken" not in text
    with pytest.raises(ValueError, match="no result with a determined accuracy"):
        accuracy_vs_cost({"broken": result(None, 2e12)}, tmp_path / "none.svg")

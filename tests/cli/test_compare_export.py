"""``langtts export`` in every format (with --map) and ``langtts compare`` against an OpenAI-compatible stub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from langtts.cli import main
from langtts.compare import ComparisonResult
from langtts.graph import CollaborationGraph, load_graph
from langtts.models.config import Endpoint, PoolConfig, PoolModel
from langtts.tasks import get_task
from tests.models.stub_server import StubServer

GRAPHS = Path(__file__).resolve().parents[2] / "examples" / "graphs"
MODELS = ("qwen2.5-coder-0.5b", "smollm2-135m", "gemma3-270m", "qwen2.5-coder-1.5b")
SINK = "qwen2.5-coder-1.5b"
PNG = b"\x89PNG\r\n\x1a\n"


def one_line_error(err: str) -> None:
    assert err.count("\n") == 1 and "Traceback" not in err, err


# ----- export


def test_export_text_formats_print_to_stdout(capsys) -> None:
    graph = load_graph(GRAPHS / "hybrid.yaml")
    assert main(["export", str(GRAPHS / "hybrid.yaml"), "--format", "json"]) == 0
    assert CollaborationGraph.from_json(capsys.readouterr().out) == graph
    assert main(["export", str(GRAPHS / "hybrid.yaml"), "--format", "yaml"]) == 0
    assert CollaborationGraph.from_dict(yaml.safe_load(capsys.readouterr().out)) == graph
    assert main(["export", str(GRAPHS / "hybrid.yaml"), "--format", "mermaid"]) == 0
    assert capsys.readouterr().out == graph.to_mermaid()


def test_export_map_retargets_models(tmp_path: Path, capsys) -> None:
    out = tmp_path / "mapped.yaml"
    mapping = "qwen2.5-coder-1.5b=big, smollm2-135m=tiny"
    assert (
        main(["export", str(GRAPHS / "parallel3.json"), "--format", "yaml", "--out", str(out), "--map", mapping]) == 0
    )
    assert str(out) in capsys.readouterr().out
    graph = load_graph(out)
    assert graph.sink.model == "big" and [n.model for n in graph.workers] == [
        "qwen2.5-coder-0.5b",
        "tiny",
        "gemma3-270m",
    ]
    assert graph.edges == load_graph(GRAPHS / "parallel3.json").edges


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_export_drawings_need_out(tmp_path: Path, fmt: str, capsys) -> None:
    out = tmp_path / f"graph.{fmt}"
    assert main(["export", str(GRAPHS / "fused3.yaml"), "--format", fmt, "--out", str(out)]) == 0
    data = out.read_bytes()
    assert data.startswith(PNG) if fmt == "png" else b"<svg" in data[:1000]
    capsys.readouterr()
    assert main(["export", str(GRAPHS / "fused3.yaml"), "--format", fmt]) == 2
    err = capsys.readouterr().err
    one_line_error(err)
    assert "--out" in err


def test_export_drawing_of_a_mapped_graph_uses_the_models_catalog(tmp_path: Path, capsys) -> None:
    catalog = tmp_path / "models.yaml"
    catalog.write_text("- {id: my-model, params: 2.0e9, layers: 20, hidden: 2048}\n")
    argv = ["export", str(GRAPHS / "chain2.yaml"), "--format", "png", "--out", str(tmp_path / "g.png")]
    argv += ["--map", f"{SINK}=my-model"]
    assert main(argv) == 2
    one_line_error(capsys.readouterr().err)
    assert main([*argv, "--models", str(catalog), "--task", "mmlu"]) == 0
    assert (tmp_path / "g.png").read_bytes().startswith(PNG)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--format", "json", "--map", "smollm2-135m"], "OLD=NEW"),
        (["--format", "json", "--map", "a=b,a=c"], "twice"),
        (["--format", "json", "--map", "llama-3.1-8b=x"], "does not use"),
        (["--format", "png", "--out", "graph.svg"], ".png"),
    ],
)
def test_export_usage_errors(extra: list[str], message: str, capsys) -> None:
    assert main(["export", str(GRAPHS / "parallel3.json"), *extra]) == 2
    err = capsys.readouterr().err
    one_line_error(err)
    assert message in err


def test_export_of_an_invalid_graph_is_a_usage_error(capsys) -> None:
    assert main(["export", str(GRAPHS / "invalid" / "cycle.yaml"), "--format", "json"]) == 2
    one_line_error(capsys.readouterr().err)


# ----- compare


@pytest.fixture
def pool_file(tmp_path: Path) -> Path:
    """Workers answer every question right; the sink repeats a worker's answer, alone it only knows question 0."""
    key = {ex.question: ex.answer for ex in get_task("gsm8k").load("test")[:3]}

    def reply(request: dict) -> str:
        text = " ".join(m["content"] for m in request["messages"])
        for i, (question, answer) in enumerate(key.items()):
            if question in text and (request["model"] != SINK or "[worker]" in text or i == 0):
                return f"The answer is {answer}. #### {answer} [worker]"
        return "I am not sure."

    with StubServer(models=MODELS, reply=reply) as server:
        path = tmp_path / "pool.yaml"
        models = [PoolModel(id=m, endpoints=[Endpoint(base_url=server.base_url)], context_window=4096) for m in MODELS]
        PoolConfig(models=models).save(path)
        yield path


def test_compare_prints_the_table_and_writes_json_and_plot(pool_file: Path, tmp_path: Path, capsys) -> None:
    reference, other = str(GRAPHS / "single.json"), str(GRAPHS / "parallel3.json")
    out, plot = tmp_path / "comparison.json", tmp_path / "comparison.png"
    argv = ["compare", reference, other, "--task", "gsm8k", "--n", "3", "--pool", str(pool_file), "--no-cache"]
    assert main([*argv, "--out", str(out), "--plot", str(plot)]) == 0
    text = capsys.readouterr().out
    assert "(reference)" in text and "+66.7%" in text and "McNemar p" in text, text
    saved = ComparisonResult.load(out)
    assert saved.reference == reference and len(saved.results[other].records) == 3
    versus = saved.comparisons[other]
    assert (versus.only_a, versus.only_b) == (2, 0) and versus.p_value == pytest.approx(0.5)
    assert saved.results[reference].accuracy == pytest.approx(1 / 3) and saved.results[other].accuracy == 1.0
    assert plot.read_bytes().startswith(PNG)
    assert main([*argv, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["comparisons"][other]["difference"] == pytest.approx(2 / 3)
    assert "records" not in summary["results"][other]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "at least two"),
        ([str(GRAPHS / "chain2.yaml"), "--plot", "x.jpg"], ".png or .svg"),
        ([str(GRAPHS / "single.json")], "only once"),
        ([str(GRAPHS / "chain2.yaml"), "--n", "0"], "--n"),
    ],
)
def test_compare_usage_errors(extra: list[str], message: str, pool_file: Path, capsys) -> None:
    argv = ["compare", str(GRAPHS / "single.json"), *extra, "--task", "gsm8k", "--pool", str(pool_file)]
    assert main([*argv, "--no-cache"]) == 2
    err = capsys.readouterr().err
    one_line_error(err)
    assert message in err


def test_compare_on_a_dead_server_fails(tmp_path: Path, capsys) -> None:
    with StubServer(models=MODELS, fail_first=10**6) as server:  # answers GET /models, fails every chat call
        path = tmp_path / "pool.yaml"
        PoolConfig(models=[PoolModel(id=m, endpoints=[Endpoint(base_url=server.base_url)]) for m in MODELS]).save(path)
        argv = ["compare", str(GRAPHS / "single.json"), str(GRAPHS / "chain2.yaml"), "--task", "gsm8k", "--n", "1"]
        assert main([*argv, "--pool", str(path), "--no-cache"]) == 1
    err = capsys.readouterr().err
    one_line_error(err)
    assert "questions failed after the pool's retries" in err and "HTTP 503" in err


def test_export_a_runs_chosen_graph_or_any_pareto_point(tmp_path: Path, capsys) -> None:
    from tests.search.synthetic_run import run

    result = run("grid", str(tmp_path / "run"), top_k=1, paper_faithful=True)  # a front of several points
    assert len(result.pareto) > 1
    assert main(["export", str(tmp_path / "run"), "--format", "json"]) == 0
    assert CollaborationGraph.from_json(capsys.readouterr().out) == result.graph
    for k, point in enumerate(result.pareto):
        assert main(["export", str(tmp_path / "run"), "--pareto", str(k), "--format", "yaml"]) == 0
        assert CollaborationGraph.from_dict(yaml.safe_load(capsys.readouterr().out)).fingerprint() == point.fingerprint
    assert main(["export", str(tmp_path / "run"), "--pareto", "99", "--format", "json"]) == 2
    assert "Pareto front has" in capsys.readouterr().err
    assert main(["export", str(GRAPHS / "chain2.yaml"), "--pareto", "0", "--format", "json"]) == 2
    assert "needs an optimize run directory" in capsys.readouterr().err


def test_export_a_standalone_program(tmp_path: Path, capsys) -> None:
    out = tmp_path / "duo_app.py"
    argv = ["export", str(GRAPHS / "parallel3.json"), "--format", "python"]
    assert main([*argv, "--task", "mmlu", "--out", str(out)]) == 0
    source = out.read_text()
    assert "def build_app(" in source and "from langgraph.graph import" in source and "import langtts" not in source
    compile(source, str(out), "exec")
    assert main(argv) == 2
    assert "--format python needs --task" in capsys.readouterr().err


def test_export_a_program_for_a_jsonl_task(tmp_path: Path, capsys) -> None:
    mine = tmp_path / "mine.jsonl"
    mine.write_text('{"id": 1, "question": "q", "answer": "B"}\n')
    argv = ["export", str(GRAPHS / "single.json"), "--format", "python", "--task", str(mine)]
    assert main(argv) == 2
    assert "needs a scorer" in capsys.readouterr().err
    assert main([*argv, "--scorer", "choice"]) == 0
    assert "return extract_choice(text, 'ABCD')" in capsys.readouterr().out

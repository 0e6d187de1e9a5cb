import json
from pathlib import Path

import pytest

from langtts.cli import main

GRAPHS = Path(__file__).resolve().parents[2] / "examples" / "graphs"
INVALID = sorted((GRAPHS / "invalid").iterdir())


def test_cost_prints_a_table_with_totals(capsys):
    assert main(["cost", str(GRAPHS / "parallel3.json"), "--task", "mmlu"]) == 0
    out = capsys.readouterr().out
    assert "sink" in out and "decider" in out and "units of smollm2-135m" in out and "width 3, depth 1" in out


def test_cost_json_has_the_documented_keys(capsys):
    assert main(["cost", str(GRAPHS / "chain2.yaml"), "--task", "math500", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"flops", "units", "width", "depth", "nodes", "unit_model"} <= set(report)
    assert report["width"] == 1 and report["depth"] == 2
    assert sum(n["flops"] for n in report["nodes"]) == pytest.approx(report["flops"])
    assert report["units"] == pytest.approx(report["flops"] / report["unit_flops"])


def test_cost_takes_every_verbs_tasks_with_the_lengths_a_search_budgets_with(tmp_path: Path, capsys):
    mine = tmp_path / "mine.jsonl"
    mine.write_text('{"id": 1, "question": "q", "answer": "a"}\n')
    lengths = {}
    for task in ("gsm8k", "math500", "mmlu", "humaneval", str(mine)):
        assert main(["cost", str(GRAPHS / "chain2.yaml"), "--task", task, "--json"]) == 0
        lengths[task] = json.loads(capsys.readouterr().out)["lengths"]
    assert lengths["gsm8k"] == lengths["math500"] == lengths[str(mine)] == {"input_tokens": 202, "output_tokens": 275}
    assert lengths["mmlu"]["input_tokens"] == 213
    assert main(["cost", str(GRAPHS / "chain2.yaml"), "--task", "math"]) == 2
    assert "unknown task 'math'" in capsys.readouterr().err
    assert main(["cost", str(GRAPHS / "chain2.yaml"), "--task", str(tmp_path / "gone.jsonl")]) == 2


def test_cost_with_explicit_lengths_and_unit_model(capsys):
    args = [
        "cost",
        str(GRAPHS / "parallel3.json"),
        "--lengths",
        "100,50",
        "--unit-model",
        "qwen2.5-coder-1.5b",
    ]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["unit_model"] == "qwen2.5-coder-1.5b" and report["lengths"]["input_tokens"] == 100


def test_cost_with_a_user_catalog(tmp_path, capsys):
    catalog = tmp_path / "models.yaml"
    catalog.write_text("- {id: my-model, params: 2.0e9, layers: 20, hidden: 2048}\n")
    graph = tmp_path / "g.json"
    graph.write_text(
        json.dumps(
            {
                "schema_version": 1,
                "nodes": [
                    {"id": "a", "role": "assistant", "model": "my-model"},
                    {"id": "s", "role": "decider", "model": "my-model"},
                ],
                "edges": [["a", "s"]],
            }
        )
    )
    assert main(["cost", str(graph), "--task", "mmlu", "--models", str(catalog), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["units"] > 2
    assert main(["cost", str(graph), "--task", "mmlu"]) == 2
    assert "my-model" in capsys.readouterr().err


def test_show_prints_validation_and_mermaid(capsys):
    assert main(["show", str(GRAPHS / "fused3.yaml")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("valid:") and "flowchart TD" in out and "fuser" in out


@pytest.mark.parametrize("path", INVALID, ids=[p.name for p in INVALID])
def test_invalid_graph_files_give_one_clear_line(path, capsys):
    assert main(["show", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("langtts show: error: ")
    assert "Traceback" not in captured.err


def test_missing_file_and_bad_lengths_are_usage_errors(capsys):
    assert main(["show", "no/such/graph.json"]) == 2
    assert "no/such/graph.json" in capsys.readouterr().err
    assert main(["cost", str(GRAPHS / "parallel3.json"), "--lengths", "abc"]) == 2
    assert "--lengths" in capsys.readouterr().err


def test_invalid_file_count_covers_at_least_eight_kinds():
    assert len(INVALID) >= 8


def test_show_cost_and_export_handle_a_vote_sink(tmp_path: Path, capsys) -> None:
    path = str(GRAPHS / "self_consistency5.json")
    assert main(["show", path]) == 0
    out = capsys.readouterr().out
    assert 'sink(("sink: vote<br/>majority"))' in out and "width 5, depth 1" in out
    assert main(["cost", path, "--task", "mmlu", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["units"] == pytest.approx(5.0)
    assert report["nodes"][-1] == {
        "id": "sink",
        "role": "vote",
        "model": None,
        "in_degree": 5,
        "flops": 0.0,
        "share": 0.0,
    }
    assert main(["cost", path, "--task", "mmlu"]) == 0
    assert "\nsink  vote       -                    5          0   0.0%\n" in capsys.readouterr().out
    assert main(["export", path, "--format", "png", "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").read_bytes().startswith(b"\x89PNG")
    assert main(["export", path, "--format", "yaml", "--map", "qwen2.5-coder-0.5b=other"]) == 0
    exported = capsys.readouterr().out
    assert "- {id: sink, role: vote}" in exported and "model: other, temperature: 0.7}" in exported
    assert main(["export", path, "--format", "yaml", "--map", "nope=other"]) == 2
    assert "which the graph does not use (qwen2.5-coder-0.5b)" in capsys.readouterr().err

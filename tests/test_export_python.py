"""The exported standalone program sends the compiled app's requests, byte for byte, and returns its answers."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from langtts import compile_graph, shapes
from langtts.export_python import export_python
from langtts.models import ModelPool
from langtts.models.config import Endpoint, PoolConfig, PoolModel
from langtts.tasks import get_task
from tests.models.stub_server import StubServer

QWEN, SMOL = "qwen2.5-coder-0.5b", "smollm2-135m"


def reply(request: dict) -> str:
    """smollm answers with a number; qwen gives no answer on questions mentioning 'stuck' (its recovery call,
    constrained by a JSON schema, then answers 7); every reply names its seed, so distinct samples differ."""
    text = request["messages"][-1]["content"]
    if "response_format" in request:
        return '{"answer": 7}'
    if "stuck" in text and request["model"] == QWEN:
        return "I cannot decide."
    return f"Adding up gives 12. The final answer is $\\boxed{{12}}$ [seed {request['seed']}]"


def load_program(source: str, path: Path):
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "graph",
    [
        shapes.parallel([QWEN, QWEN, SMOL], sink_model=QWEN),  # identical requests: distinct sample seeds
        shapes.fused([SMOL, QWEN], sink_model=QWEN),
        shapes.single(QWEN),
    ],
    ids=["parallel", "fused", "single"],
)
def test_the_program_sends_the_compiled_apps_requests_and_returns_its_answers(graph, tmp_path: Path) -> None:
    task = get_task("gsm8k")
    questions = ["Tom has 5 apples and buys 7. How many?", "I am stuck: what is 3 + 4?"]
    with StubServer(models=[QWEN, SMOL], reply=reply) as server:
        models = [PoolModel(id=m, endpoints=[Endpoint(base_url=server.base_url)]) for m in (QWEN, SMOL)]
        with ModelPool(PoolConfig(models=models)) as pool:  # no cache: every call reaches the server
            app = compile_graph(graph, pool, task)
            expected = [app.invoke({"question": q})["answer"] for q in questions]
        sent_by_langtts = [json.dumps(r) for r in server.requests]
        server.requests.clear()
        program = load_program(export_python(graph, task), tmp_path / "graph_app.py")
        standalone = program.build_app({QWEN: server.base_url, SMOL: server.base_url})
        answers = [standalone.invoke({"question": q})["answer"] for q in questions]
        sent_by_program = [json.dumps(r) for r in server.requests]
    assert answers == expected and "The final answer is $\\boxed{7}$" in answers[1]
    assert sorted(sent_by_program) == sorted(sent_by_langtts)
    assert any("response_format" in r for r in sent_by_program)  # the answer-recovery call


def test_the_program_imports_no_langtts_and_runs_as_a_script(tmp_path: Path) -> None:
    source = export_python(shapes.parallel([QWEN, SMOL], sink_model=QWEN), get_task("mmlu"))
    assert "import langtts" not in source and "from langtts" not in source
    path = tmp_path / "app.py"
    path.write_text(source, encoding="utf-8")
    block_langtts = "import runpy, sys; sys.modules['langtts'] = None; sys.argv = sys.argv[1:]; "
    block_langtts += "runpy.run_path(sys.argv[0], run_name='__main__')"
    with StubServer(models=[QWEN, SMOL], reply=lambda request: "It is B.\nAnswer: B") as server:
        urls = ["--url", f"{QWEN}={server.base_url}", "--url", f"{SMOL}={server.base_url}"]
        done = subprocess.run(
            [sys.executable, "-I", "-c", block_langtts, str(path), *urls, "Which planet is red?\nA. Venus\nB. Mars"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("Answer: B")


def recovering_reply(request: dict) -> str:
    """Like `reply`, answering the recovery call in the type its schema asks for."""
    if "response_format" in request:
        answer = request["response_format"]["json_schema"]["schema"]["properties"]["answer"]
        return json.dumps({"answer": answer["enum"][1] if "enum" in answer else 7})
    return reply(request)


def sampled_reply(request: dict) -> str:
    """An answer chosen by the sample's seed: samples 0 to 4 answer 13, 13, 11, 10, 12, or letters D, D, B, A, C to
    a question with options, or 1/2, 0.5, 2, 0.5, 3 (in LaTeX, boxed) to a question about a half; on questions
    mentioning 'stuck' sample 0 gives no answer (recovered as 7 or B: a three-way tie, or B's majority with k = 3)."""
    if "response_format" in request:
        return recovering_reply(request)
    seed, text = request["seed"], request["messages"][-1]["content"]
    if "stuck" in text and seed % 5 == 0:
        return "I cannot decide."
    if "half" in text:
        half = (r"\frac{1}{2}", "0.5", "3", "2")[seed % 5]
        return f"Thinking [seed {seed}]. So $\\boxed{{{half}}}$"
    answer = "ABCD"[seed % 7 % 4] if "\nA. " in text else str(seed % 7 + 10)
    return f"Thinking [seed {seed}].\nAnswer: {answer}"


@pytest.mark.parametrize(
    ("task_name", "questions"),
    [
        ("gsm8k", ["Tom has 5 apples and buys 7. How many?", "I am stuck: what is 3 + 4?"]),
        ("mmlu", ["Which planet is red?\nA. Venus\nB. Mars\nC. Jupiter\nD. Saturn", "I am stuck.\nA. x\nB. y"]),
        ("math500", ["What is half of one?", "I am stuck: what is half of one?"]),
    ],
)
@pytest.mark.parametrize("k", [3, 5])
def test_a_self_consistency_program_votes_as_the_compiled_app(
    task_name: str, questions: list[str], k: int, tmp_path: Path
) -> None:
    task, graph = get_task(task_name), shapes.self_consistency(QWEN, k)
    with StubServer(models=[QWEN], reply=sampled_reply) as server:
        models = [PoolModel(id=QWEN, endpoints=[Endpoint(base_url=server.base_url)])]
        with ModelPool(PoolConfig(models=models)) as pool:
            app = compile_graph(graph, pool, task)
            expected = [app.invoke({"question": q})["answer"] for q in questions]
        sent_by_langtts = sorted(json.dumps(r) for r in server.requests)
        server.requests.clear()
        source = export_python(graph, task)
        program = load_program(source, tmp_path / "sc_app.py")
        standalone = program.build_app({QWEN: server.base_url})
        answers = [standalone.invoke({"question": q})["answer"] for q in questions]
        sent_by_program = sorted(json.dumps(r) for r in server.requests)
    assert answers == expected and all(a.startswith("Vote: ") for a in answers)
    assert "import langtts" not in source and "from langtts" not in source
    assert sent_by_program == sent_by_langtts
    assert len({json.loads(r)["seed"] for r in sent_by_program}) > 1  # the inputs sample with distinct seeds
    assert {json.loads(r)["temperature"] for r in sent_by_program if "response_format" not in r} == {0.7}
    assert any("response_format" in r for r in sent_by_program)  # an input without an answer was recovered


def test_votes_need_a_task_with_answers() -> None:
    with pytest.raises(ValueError, match="vote node 'sink' needs answers to count: task 'humaneval'"):
        export_python(shapes.self_consistency(QWEN, 3), get_task("humaneval"))


@pytest.mark.parametrize(
    "scorer", ["exact", "number", "choice:ABC", r"regex:RESULT=(\d+)", "tests.tasks.test_scorers:contains_gold"]
)
def test_jsonl_tasks_export_their_scorers_answer_reading(scorer: str, tmp_path: Path) -> None:
    rows = [{"id": "a", "question": "Tom has 5 apples and buys 7. How many?", "answer": "12"}]
    (tmp_path / "mine.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    task = get_task(str(tmp_path / "mine.jsonl"), scorer=scorer)
    graph = shapes.fused([SMOL, QWEN], sink_model=QWEN)
    questions = [rows[0]["question"], "I am stuck: what is 3 + 4?"]
    with StubServer(models=[QWEN, SMOL], reply=recovering_reply) as server:
        models = [PoolModel(id=m, endpoints=[Endpoint(base_url=server.base_url)]) for m in (QWEN, SMOL)]
        with ModelPool(PoolConfig(models=models)) as pool:
            app = compile_graph(graph, pool, task)
            expected = [app.invoke({"question": q})["answer"] for q in questions]
        sent_by_langtts = sorted(json.dumps(r) for r in server.requests)
        server.requests.clear()
        program = load_program(export_python(graph, task), tmp_path / "mine_app.py")
        standalone = program.build_app({QWEN: server.base_url, SMOL: server.base_url})
        assert [standalone.invoke({"question": q})["answer"] for q in questions] == expected
        assert sorted(json.dumps(r) for r in server.requests) == sent_by_langtts
    assert task.extract(expected[1]) is not None  # the stuck question was recovered

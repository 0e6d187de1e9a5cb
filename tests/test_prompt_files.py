"""Every prompt sent from Python is a file under prompts/: the requests are those of before the move, byte for byte
(so call-cache keys stay), every file's placeholders are filled, and a user's prompt directory reaches them all."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from langtts.compile import INPUT_PLACEHOLDERS, ROLE_PLACEHOLDERS, GenerationSettings, compile_graph
from langtts.export_python import export_python
from langtts.prompts import SHIPPED_DIR, PromptLibrary
from langtts.shapes import parallel, single
from langtts.tasks import get_task
from langtts.tasks.base import Task
from langtts.tasks.jsonl import JsonlTask
from tests.fakes import fake_pool

QWEN = "qwen2.5-coder-0.5b"

# The strings as they were in Python before they moved to prompts/ (answers/*, inputs/*, questions/*, serve/*).
ANSWER_FORMATS = {
    "gsm8k": "Please reason step by step, and put your final answer within \\boxed{}.",
    "mmlu": "Answer the following multiple choice question. The last line of your response should be of the following "
    "format: 'Answer: $LETTER' (without quotes) where LETTER is one of ABCD. Think step by step before answering.",
    "math500": "Put your final answer, in simplest form, inside \\boxed{} at the end of your reply.",
    "humaneval": "Reply with the complete Python function (its signature, body and any imports it needs) "
    "in a single ```python code block.",
    "exact": 'End your reply with a final line of the form "Answer: <your final answer>".',
    "number": 'End your reply with a final line of the form "Answer: <number>".',
    "choice:ABCDE": 'End your reply with a final line of the form "Answer: X", where X is A, B, C, D or E.',
    "none": "State your final answer clearly on the last line.",
}
BASE_MODEL_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' -%}The following is a conversation between a curious user and a "
    "knowledgeable, helpful assistant. The assistant answers questions correctly and concisely.{{ '\\n\\n' }}"
    "{%- endif -%}\n"
    "{%- for message in messages -%}\n"
    "{%- if message['role'] == 'system' -%}{{ message['content'] }}{{ '\\n\\n' }}\n"
    "{%- elif message['role'] == 'user' -%}User: {{ message['content'] }}{{ '\\n' }}\n"
    "{%- elif message['role'] == 'assistant' -%}Assistant: {{ message['content'] }}{{ '\\n' }}\n"
    "{%- endif -%}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}Assistant:{%- endif -%}\n"
)
# Measured before the move: a digest of every request's messages (parallel graph: truncated inputs and an answer
# recovery; single graph) and the nodes' call-cache request keys (first 16 hex digits).
BEFORE = {
    "gsm8k": ("06e2768c4e68b2ef", ["577013e56a55f9b1", "577013e56a55f9b1", "cae3910b1c585ec7"], "edfbdfbc8f65013b"),
    "mmlu": ("32cdcf0e86d86edf", ["7f82e39a64892a4d", "7f82e39a64892a4d", "53e840e9ce4448a1"], "89991dd1f9972eb3"),
    "math500": ("87ef159da07dec69", ["355cfe84d9e9db83", "355cfe84d9e9db83", "4f7350d5ff2acde0"], "75acbf0a850f62c3"),
    "humaneval": ("4d31a6b404f4f987", ["5b9ab0e299992c7c", "5b9ab0e299992c7c", "1699ec7ee27f7d2a"], "d2d528e328d5054b"),
    "exact": ("c940678e48c68ad8", ["4419609ef4f7ab44", "4419609ef4f7ab44", "74400cc88032d989"], "dda3fb535feeaeaf"),
    "number": ("d1673ce06a9cbe35", ["310fd08300f14d23", "310fd08300f14d23", "78ffc953c8d7ecff"], "6f9023e90844b41a"),
    "choice:ABCDE": (
        "ad088e9b90efe000",
        ["b3b8e37787abe17c", "b3b8e37787abe17c", "f53f6f503c1938ad"],
        "cb421cbd06f66699",
    ),
    "none": ("c1888f07d39eb241", ["1082335cdf36b4ea", "1082335cdf36b4ea", "f8acbe0b202fb312"], "18cfd9c8df6fa3b5"),
}


def respond(model, messages, kwargs):
    """Long replies without an answer: the sink's inputs are truncated and its reply is recovered."""
    if "extra_body" in kwargs:
        return '{"answer": "B"}'
    return "I considered it " + "at length " * 300 + "without deciding."


def make_task(name: str, tmp_path: Path) -> Task | None:
    if name == "none":
        return None
    if name in ("exact", "number", "choice:ABCDE"):
        (tmp_path / "q.jsonl").write_text('{"id": "1", "question": "Pick one.", "answer": "B"}\n')
        return JsonlTask(tmp_path / "q.jsonl", name)
    return get_task(name)


def run(task: Task | None, graph, prompts: PromptLibrary | None = None):
    """The app's output and every request's messages, as (model, [(type, content)]) sorted."""
    pool, log = fake_pool(respond, context_window=1500)
    settings = GenerationSettings(max_tokens=400)
    app = compile_graph(graph, pool, task, prompts=prompts, settings=settings, context_policy="truncate")
    out = app.invoke({"question": task.format_question(task.load()[0]) if task else "What is 2+2?"})
    return out, sorted(
        ([name, [[m.type, m.content] for m in messages]] for name, messages, *_ in log.calls), key=json.dumps
    )


def digest(calls) -> str:
    return hashlib.sha256(json.dumps(calls).encode()).hexdigest()[:16]


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_requests_are_byte_identical_to_before_the_move(name: str, tmp_path: Path) -> None:
    task = make_task(name, tmp_path)
    messages, keys, single_messages = BEFORE[name]
    out, calls = run(task, parallel(QWEN, n=2))
    assert (digest(calls), [t["request_key"][:16] for t in out["trace"]]) == (messages, keys)
    assert digest(run(task, single(QWEN))[1]) == single_messages
    sink = out["trace"][-1]
    recovered = task is not None and task.answer_schema() is not None  # no recovery without a task, nor for code
    assert sink["inputs_truncated"] and (sink["recovery"] or {}).get("reason") == ("truncated" if recovered else None)
    sink_prompt = next(c[1][-1][1] for c in calls if "Answers received" in c[1][-1][1])
    assert (
        sink_prompt.startswith("Problem:\n")
        and "\n\nAnswers received:\n[Answer 1 — from n0 (assistant)]\n" in sink_prompt
    )
    assert "\n[... truncated to fit the context window]\n\n[Answer 2 — from n1 (assistant)]\n" in sink_prompt
    assert sink_prompt.endswith(ANSWER_FORMATS[name])
    assert task is None or task.answer_format == ANSWER_FORMATS[name]


def test_the_humaneval_question_and_the_base_model_template_are_unchanged() -> None:
    task = get_task("humaneval")
    example = task.load()[0]
    assert (
        task.format_question(example)
        == f"Complete the following Python function.\n\n```python\n{example.meta['prompt']}```"
    )
    assert PromptLibrary().file("serve/base_model.jinja").read_text(encoding="utf-8") == BASE_MODEL_TEMPLATE


VALUES = {  # (required, provided) values of the files the code fills in beside the roles (ROLE_PLACEHOLDERS)
    "answers/choice": ({"letters"}, {"letters"}),
    "inputs/answer": (INPUT_PLACEHOLDERS, INPUT_PLACEHOLDERS),
    "questions/humaneval": ({"prompt"}, {"prompt"}),
}


def provided(name: str) -> tuple[set[str], set[str]] | None:
    """The placeholders the code requires and the values it provides when it renders the prompt file ``name``."""
    if name.startswith("roles/"):
        return ROLE_PLACEHOLDERS[name.rsplit("/", 1)[1]]
    if name in VALUES:
        return VALUES[name]
    return (set(), set()) if name.startswith(("answers/", "inputs/")) else None


SHIPPED = sorted(
    name
    for path in SHIPPED_DIR.rglob("*.txt")
    if not (name := str(path.relative_to(SHIPPED_DIR).with_suffix(""))).startswith("agent/")
)  # agent/: the Agent-REINFORCE prompts, checked against their values when the agent starts


@pytest.mark.parametrize("name", SHIPPED)
def test_every_prompt_file_is_filled_by_the_values_the_code_provides(name: str) -> None:
    needs = provided(name)
    assert needs is not None, f"no code renders prompts/{name}.txt"
    required, values = needs
    rendered = "\n".join(
        m["content"] for m in PromptLibrary(SHIPPED_DIR).get(name).messages(**{v: f"<<{v}>>" for v in values})
    )
    assert not re.findall(r"\{[A-Za-z_]\w*\}", rendered), "a placeholder is left unfilled"
    assert all(f"<<{v}>>" in rendered for v in required), "a required value is unused"


def test_a_prompt_directory_reaches_every_prompt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = tmp_path / "prompts"
    for name, text in {
        "answers/gsm8k": "MY FORMAT",
        "inputs/answer": "<{number}|{node}|{role}> {text}",
        "inputs/truncated": "[CUT]",
        "questions/humaneval": "MY QUESTION {prompt}",
    }.items():
        (mine / name).parent.mkdir(parents=True, exist_ok=True)
        (mine / name).with_suffix(".txt").write_text(text)
    (mine / "serve").mkdir()
    (mine / "serve" / "base_model.jinja").write_text("MY TEMPLATE")
    _, calls = run(get_task("gsm8k"), parallel(QWEN, n=2), PromptLibrary(mine))
    sink_prompt = next(c[1][-1][1] for c in calls if "Answers received" in c[1][-1][1])
    assert "<1|n0|assistant> I considered it" in sink_prompt and "\n[CUT]\n\n<2|n1|assistant>" in sink_prompt
    assert sink_prompt.endswith("MY FORMAT")
    program = export_python(parallel(QWEN, n=2), get_task("gsm8k"), prompts=PromptLibrary(mine))
    assert "'MY FORMAT'" in program and "'<{number}|{node}|{role}> {text}'" in program
    monkeypatch.setenv("LANGTTS_PROMPTS_DIR", str(mine))
    humaneval = get_task("humaneval")
    assert get_task("gsm8k").answer_format == "MY FORMAT"
    assert humaneval.format_question(humaneval.load()[0]).startswith("MY QUESTION from typing")
    assert PromptLibrary().file("serve/base_model.jinja").read_text() == "MY TEMPLATE"

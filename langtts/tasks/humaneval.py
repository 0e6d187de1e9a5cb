"""HumanEval (164 problems): the completed function must pass the problem's tests, run in the sandbox."""

from __future__ import annotations

import re

from langtts.prompts import PromptLibrary
from langtts.tasks.base import Example, Score, Task
from langtts.tasks.jsonl import packaged_examples
from langtts.tasks.sandbox import DEFAULT_TIMEOUT_S, SandboxMode, SandboxResult, run_python, select_backend

_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.S | re.I)
_ERRORS = {"failed": None, "timeout": "timeout", "killed": "killed", "error": "sandbox"}


def _def_line(entry_point: str) -> re.Pattern[str]:
    return re.compile(rf"^(?:async[ \t]+)?def[ \t]+{re.escape(entry_point)}[ \t]*\(", re.M)


def extract_code(completion: str, entry_point: str) -> str:
    """The code of a reply: the last fenced block defining `entry_point`, else the first block, else all."""
    blocks = _FENCE.findall(completion)
    if not blocks:
        return completion
    defining = [b for b in blocks if _def_line(entry_point).search(b)]
    return defining[-1] if defining else blocks[0]


def build_program(prompt: str, completion: str, test: str, entry_point: str) -> str:
    """``prompt + completion + test + check(entry_point)``; a completion that defines `entry_point` itself
    replaces the prompt's function and keeps what the prompt has before it (imports, helper functions)."""
    code = extract_code(completion, entry_point)
    if _def_line(entry_point).search(code):
        head = _def_line(entry_point).search(prompt)
        body = (prompt[: head.start()] if head else "") + code
    else:
        body = prompt + code
    return f"{body}\n\n{test}\n\ncheck({entry_point})\n"


def check_completion(
    prompt: str,
    completion: str,
    test: str,
    entry_point: str,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    sandbox: SandboxMode = "auto",
) -> SandboxResult:
    """Run the problem's tests on `completion` in the sandbox."""
    return run_python(build_program(prompt, completion, test, entry_point), timeout_s=timeout_s, sandbox=sandbox)


class HumanEvalTask(Task):
    """OpenAI HumanEval; `timeout_s` is the wall-clock limit of each sandboxed test run. With `sandbox`
    ``"strict"`` the task cannot be built where code cannot be confined (see :func:`select_backend`)."""

    name = "humaneval"
    family = "code"
    lengths_key = "humaneval"
    answer_prompt = "answers/humaneval"

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S, sandbox: SandboxMode = "auto") -> None:
        self.timeout_s = timeout_s
        self.sandbox = sandbox
        if sandbox != "auto":
            select_backend(sandbox)  # strict: fail now, before any model is called (a bad value too)

    @property
    def sandbox_backend(self) -> str:
        """What confines the scored code: a namespace backend, or ``"rlimits only"``."""
        return select_backend(self.sandbox)

    def _load(self, split: str) -> list[Example]:
        return list(packaged_examples("humaneval/humaneval.jsonl"))

    def format_question(self, ex: Example) -> str:
        return PromptLibrary().text("questions/humaneval", prompt=ex.meta["prompt"])

    def extract(self, text: str) -> str | None:
        """The reply's code: its last fenced block, else the whole reply; None when it has no code at all."""
        blocks = _FENCE.findall(text)
        code = blocks[-1] if blocks else text
        return code if code.strip() else None

    def answer_schema(self) -> None:
        """Code is not constrained: a reply cut short simply fails its tests."""
        return None

    def score(self, text: str, ex: Example) -> Score:
        entry_point = ex.meta["entry_point"]
        code = extract_code(text, entry_point)
        if not code.strip():
            return Score(correct=False, prediction=None, error="no_answer", detail="no code in output")
        result = check_completion(ex.meta["prompt"], text, ex.meta["test"], entry_point, self.timeout_s, self.sandbox)
        error = None if result.passed else _ERRORS[result.status]
        return Score(correct=result.passed, prediction=code, error=error, detail=result.detail)

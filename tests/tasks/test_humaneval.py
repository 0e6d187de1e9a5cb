"""HumanEval: code extraction, program assembly, and the canonical solutions run in the sandbox."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from langtts.tasks import Example, Score, get_task
from langtts.tasks.humaneval import build_program, extract_code

TASK = get_task("humaneval")
EXAMPLES = TASK.load()


def _score_all(pairs: list[tuple[str, Example]]) -> list[Score]:
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda pair: TASK.score(*pair), pairs))


def _full_function(ex: Example) -> str:
    """The canonical solution as a model would write it: the whole function, in a fenced block with prose."""
    prompt = ex.meta["prompt"]
    start = re.search(rf"^def {ex.meta['entry_point']}\(", prompt, re.M)
    assert start is not None
    return f"Here is my solution.\n\n```python\n{prompt[start.start() :]}{ex.answer}```\n\nIt is O(n)."


def test_format_question_shows_the_prompt() -> None:
    ex = EXAMPLES[0]
    text = TASK.format_question(ex)
    assert ex.meta["prompt"] in text and "```python" in text
    assert len(EXAMPLES) == 164


def test_extract_code() -> None:
    assert extract_code("    return 1\n", "f") == "    return 1\n"
    fenced = "text\n```python\ndef f():\n    return 1\n```\nmore"
    assert extract_code(fenced, "f") == "def f():\n    return 1\n"
    two = "```python\ndef helper():\n    pass\n```\nthen\n```py\ndef f(x):\n    return x\n```"
    assert extract_code(two, "f") == "def f(x):\n    return x\n"
    assert extract_code("```\nx = 1\n```\n```python\ny = 2\n```", "f") == "x = 1\n"
    unclosed = "```python\ndef f():\n    return 2"
    assert extract_code(unclosed, "f") == "def f():\n    return 2"


def test_build_program_body_and_full_function() -> None:
    prompt = "import math\n\ndef helper(x):\n    return x\n\n\ndef f(x):\n    '''doc'''\n"
    test = "def check(candidate):\n    assert candidate(4) == 2\n"
    body = build_program(prompt, "    return math.isqrt(x)\n", test, "f")
    assert body == prompt + "    return math.isqrt(x)\n" + "\n\n" + test + "\n\ncheck(f)\n"
    full = build_program(prompt, "```python\ndef f(x):\n    return helper(math.isqrt(x))\n```", test, "f")
    assert full.startswith("import math\n\ndef helper(x):\n    return x\n\n\ndef f(x):\n    return helper(")
    assert full.count("def f(") == 1 and full.endswith("check(f)\n")


def test_canonical_solutions_all_pass(timed) -> None:
    with timed("HumanEval canonical bodies, 164 sandbox runs"):
        scores = _score_all([(ex.answer, ex) for ex in EXAMPLES])
    failed = [(ex.id, s) for ex, s in zip(EXAMPLES, scores, strict=True) if not s.correct]
    assert failed == []
    assert all(s.error is None for s in scores)


def test_canonical_solutions_written_as_full_functions_all_pass(timed) -> None:
    with timed("HumanEval canonical full functions, 164 sandbox runs"):
        scores = _score_all([(_full_function(ex), ex) for ex in EXAMPLES])
    failed = [(ex.id, s) for ex, s in zip(EXAMPLES, scores, strict=True) if not s.correct]
    assert failed == []


def test_wrong_solutions_fail() -> None:
    sample = EXAMPLES[::8]
    scores = _score_all([("    return None\n", ex) for ex in sample])
    scores += _score_all([(EXAMPLES[(i + 1) % 164].answer, ex) for i, ex in enumerate(sample)])
    assert not any(s.correct for s in scores)
    assert {s.error for s in scores} <= {None, "timeout"}


@pytest.mark.parametrize("text", ["", "   \n", "```python\n```"])
def test_no_code_is_no_answer(text: str) -> None:
    score = TASK.score(text, EXAMPLES[0])
    assert (score.correct, score.prediction, score.error) == (False, None, "no_answer")


def test_sandbox_failures_map_to_errors() -> None:
    task = get_task("humaneval", timeout_s=1)
    ex = EXAMPLES[0]
    assert task.score("    while True:\n        pass\n", ex).error == "timeout"
    assert task.score("    import os\n    os._exit(0)\n", ex).error is None
    killed = task.score("    import os, signal\n    os.kill(os.getpid(), signal.SIGKILL)\n", ex)
    assert (killed.correct, killed.error) == (False, "killed")

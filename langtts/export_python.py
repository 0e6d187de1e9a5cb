"""Export a collaboration graph as a small, standalone LangGraph program (``langtts export --format python``).

The program depends only on langgraph and langchain-openai (and, for MATH with votes, math-verify). It inlines what
the compiled app (:mod:`langtts.compile`) uses: each node's prompt and sampling settings, the sample seeds, the
task's answer extraction and answer line, the answer-recovery call and, for vote nodes, the vote rule
(:mod:`langtts.vote`) with the task's answer equivalence and the inputs' model sizes, so it sends the same requests
and returns the same answer. The model servers' URLs are parameters. Not exported: the context-window guard (the
program sends prompts as they are), the call cache, retries and the usage trace.
"""

from __future__ import annotations

import inspect
import pprint
import re
import string
import textwrap
import types
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from langtts import __version__
from langtts.compile import (
    RECOVERY_MAX_TOKENS,
    ROLE_PLACEHOLDERS,
    GenerationSettings,
    answer_format,
    default_settings,
    input_template,
)
from langtts.cost import default_catalog
from langtts.graph import SAMPLE_TEMPERATURE, CollaborationGraph
from langtts.models.config import PoolConfig
from langtts.models.pool import ModelPool
from langtts.prompts import PromptLibrary
from langtts.tasks.base import Task, extract_answer_line
from langtts.tasks.gsm8k import GSM8KTask
from langtts.tasks.jsonl import JsonlTask
from langtts.tasks.math500 import Math500Task
from langtts.tasks.scorers import AnswerScorer, ChoiceScorer, NumberScorer, RegexScorer, extract_choice, extract_match
from langtts.vote import NO_ANSWER_TEXT, Tally, _same, tally

_API = ("extract", "format_answer", "equivalent")
_VOTE_IMPORTS = {"from collections.abc import Callable, Sequence", "from dataclasses import dataclass"}
_MATH_EQUIVALENT = r'''def equivalent(a: str, b: str) -> bool:
    """math-verify's verdict, as langtts reaches it (langtts also bounds each check's time; this program waits)."""
    import math_verify  # slow to import (sympy): only votes need it

    config = [math_verify.LatexExtractionConfig()]
    gold, prediction = (
        math_verify.parse("\\boxed{" + x + "}", extraction_config=config, parsing_timeout=None) for x in (b, a)
    )
    return math_verify.verify(gold, prediction, timeout_seconds=None)
'''
_TEMPLATE = string.Template((Path(__file__).parent / "data" / "standalone_app.py.txt").read_text(encoding="utf-8"))


def export_python(
    graph: CollaborationGraph,
    task: Task,
    *,
    settings: GenerationSettings | None = None,
    prompts: PromptLibrary | None = None,
    pool: PoolConfig | None = None,
) -> str:
    """The source of a standalone program running ``graph`` on ``task`` as :func:`~langtts.compile.compile_graph`
    does with the same ``settings`` (default: the task family's) and ``prompts``; ``pool`` supplies the names the
    servers know the models by and their stop sequences (default: the model ids, none)."""
    graph = graph.pruned()
    votes = [n.id for n in graph.nodes if not n.calls_model]
    if votes and task.answer_schema() is None:
        raise ValueError(f"vote node {votes[0]!r} needs answers to count: task {task.name!r} has none")
    prompts = prompts or PromptLibrary()
    settings = settings or default_settings(task.family)
    kinds = {n.id: _kind(graph, n.id) for n in graph.nodes if n.calls_model}
    templates = {}
    for kind in sorted(set(kinds.values())):
        template = prompts.first(f"roles/{task.family}/{kind}", f"roles/generic/{kind}")
        template.check(*ROLE_PLACEHOLDERS[kind])
        templates[kind] = (template.system, template.user)
    answers = answer_format(task, prompts)
    schema = task.answer_schema()
    recovery: list[dict[str, str]] | None = None
    if schema is not None:
        template = prompts.first(f"roles/{task.family}/recover", "roles/generic/recover")
        template.check(*ROLE_PLACEHOLDERS["recover"])
        recovery = template.messages(answer_format=answers)
    layers = graph.layers()
    served = {m.id: m for m in pool.models} if pool else {}
    feeds_vote = {p for v in votes for p in graph.predecessors(v)}
    nodes: dict[str, dict[str, Any]] = {}
    for layer, ids in enumerate(layers):
        for node_id in ids:
            node = graph.node(node_id)
            inputs = list(graph.predecessors(node_id))
            if not node.calls_model:
                sizes = [_params(graph.node(p).model, pool) if graph.node(p).calls_model else 0.0 for p in inputs]
                nodes[node_id] = {"model": None, "role": "vote", "inputs": inputs, "layer": layer, "sizes": sizes}
                continue
            temperature = node.temperature
            if temperature is None and node_id in feeds_vote:
                temperature = SAMPLE_TEMPERATURE
            s = settings if temperature is None else replace(settings, temperature=float(temperature))
            nodes[node_id] = {
                "model": node.model,
                "role": node.role,
                "inputs": inputs,
                "layer": layer,
                "prompt": kinds[node_id],
                "temperature": s.temperature,
                "max_tokens": s.max_tokens,
                "stop": list(s.stop),
                "seed": s.seed,
            }
    models = sorted({n.model for n in graph.nodes if n.calls_model})
    values = {
        "title": f"The {task.name} collaboration graph {graph.fingerprint()[:12]} as a standalone LangGraph program.",
        "task": task.name,
        "version": __version__,
        "nodes": _literal(nodes),
        "layers": _literal(layers),
        "sink": repr(graph.sink.id),
        "recovered": _literal(sorted({graph.sink.id, *feeds_vote} - set(votes)) if schema is not None else []),
        "served_names": _literal({m: served[m].name_on_server if m in served else m for m in models}),
        "stops": _literal({m: list(served[m].stop) if m in served else [] for m in models}),
        "answer_format": repr(answers),
        "input_template": repr(input_template(prompts).user),
        "prompts": _literal(templates),
        "recovery_messages": _literal(recovery),
        "recovery_format": _literal(
            None
            if schema is None
            else {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}
        ),
        "recovery_max_tokens": str(RECOVERY_MAX_TOKENS),
    }
    values["imports"], values["answer_code"] = _answer_code(task, votes=bool(votes))
    values["vote_code"] = _vote_code() if votes else ""
    values["runner"] = 'voter(node) if spec["role"] == "vote" else runner(node)' if votes else "runner(node)"
    return _TEMPLATE.substitute(values)


def _params(model_id: str, pool: PoolConfig | None) -> float:
    """The model's matmul parameters, which break a vote's ties (from the pool file's spec, else the catalog)."""
    if pool is not None and model_id in {m.id for m in pool.models}:
        return ModelPool(pool).spec(model_id).params
    return default_catalog().get(model_id).params


def _vote_code() -> str:
    """The vote rule of :mod:`langtts.vote` and a vote node's runner."""
    sources = [inspect.getsource(Tally), inspect.getsource(tally), inspect.getsource(_same)]
    voter = """def voter(node: str) -> Any:
    \"\"\"A vote node: the majority of its inputs' answers (no model call).\"\"\"

    def run(state: State) -> dict[str, Any]:
        spec = NODES[node]
        answers = [extract(state["outputs"][p]["text"]) for p in spec["inputs"]]
        return output(node, tally(answers, equivalent, spec["sizes"]).text(format_answer), None)

    return run
"""
    header = (
        "# ---- votes (langtts.vote, inlined): the majority under `equivalent`; ties to the larger model, then the\n"
        f"# earlier input\n\nNO_ANSWER_TEXT = {NO_ANSWER_TEXT!r}\n"
    )
    return "\n\n".join([header, *sources, voter]).rstrip() + "\n\n\n"


def _kind(graph: CollaborationGraph, node_id: str) -> str:
    """The node's prompt, as :mod:`langtts.compile` chooses it."""
    role, has_inputs = graph.node(node_id).role, bool(graph.predecessors(node_id))
    if role == "decider":
        return "decider" if has_inputs else "decider_alone"
    if role == "fuser":
        return "fuser"
    return "assistant_with_inputs" if has_inputs else "assistant"


def _answer_code(task: Task, *, votes: bool) -> tuple[str, str]:
    """The imports and the code of ``extract(text)`` and ``format_answer(answer)`` of ``task`` (and, for
    ``votes``, ``equivalent(a, b)``), with the module-level helpers they use."""
    imports: set[str] = set(_VOTE_IMPORTS) if votes else set()
    constants: dict[str, str] = {}
    functions: dict[str, str] = {}
    methods = []
    api = _answer_api(task)
    if not votes:
        del api["equivalent"]
    for name, (source, uses, called) in api.items():
        if "self" in source.split(":", 1)[1]:
            raise ValueError(f"task {task.name!r} cannot be exported: its {name} reads the task object")
        methods.append(source)
        if uses is None:
            continue
        if called:
            functions[uses.__name__] = textwrap.dedent(inspect.getsource(uses))
        _collect(uses, imports, constants, functions)
    sections = ["\n".join(f"{name} = {value}" for name, value in constants.items()), *functions.values(), *methods]
    return _imports(imports), "\n\n\n".join(s.rstrip() for s in sections if s.strip())


def _answer_api(task: Task) -> dict[str, tuple[str, Callable[..., Any] | None, bool]]:
    """``extract``, ``format_answer`` and ``equivalent`` as the program's source, the function whose module-level
    names it needs (None: none), and whether the source calls that function (then inlined too). A JSONL task's
    come from its scorer (a Python scorer's answers are read from the answer line: the program needs no checker);
    MATH's equivalence calls math-verify."""
    if not isinstance(task, JsonlTask):
        api = {name: (_method_source(getattr(type(task), name)), getattr(type(task), name), False) for name in _API}
        if isinstance(task, Math500Task):
            api["equivalent"] = (_MATH_EQUIVALENT, None, False)
        return api
    scorer = task.scorer
    format_answer = (_method_source(AnswerScorer.format_answer), AnswerScorer.format_answer, False)
    if isinstance(scorer, NumberScorer):
        return {
            "extract": (_method_source(GSM8KTask.extract), GSM8KTask.extract, False),
            "format_answer": format_answer,
            "equivalent": (_method_source(GSM8KTask.equivalent), GSM8KTask.equivalent, False),
        }
    equivalent = type(scorer).equivalent
    call: tuple[Callable[..., Any], str] = (extract_answer_line, "extract_answer_line(text)")
    if isinstance(scorer, ChoiceScorer):
        call = (extract_choice, f"extract_choice(text, {scorer.letters!r})")
    elif isinstance(scorer, RegexScorer):
        call = (extract_match, f"extract_match(text, {_string(scorer.pattern)})")
    source = f"def extract(text: str) -> str | None:\n    return {call[1]}\n"
    return {
        "extract": (source, call[0], True),
        "format_answer": format_answer,
        "equivalent": (_method_source(equivalent), equivalent, False),
    }


def _method_source(method: Callable[..., Any]) -> str:
    """A method's source as a module-level function (without ``self``)."""
    name = method.__name__
    return textwrap.dedent(inspect.getsource(method)).replace(f"def {name}(self, ", f"def {name}(", 1)


def _imports(extra: set[str]) -> str:
    """The program's standard-library imports, sorted as isort does (``import``s first)."""
    lines = {"import argparse", "import hashlib", "import json", "from typing import Annotated, Any, TypedDict", *extra}
    plain = sorted(line for line in lines if line.startswith("import "))
    return "\n".join([*plain, *sorted(lines - set(plain))])


def _collect(function: Callable[..., Any], imports: set[str], constants: dict[str, str], functions: dict[str, str]):
    """Add the module-level names ``function`` refers to: imports, constants and functions (recursively)."""
    for name in sorted(_names(function.__code__)):
        if name in constants or name in functions or name not in function.__globals__:
            continue
        value = function.__globals__[name]
        if isinstance(value, types.ModuleType):
            imports.add(f"import {value.__name__}")
        elif isinstance(value, types.FunctionType):
            functions[name] = textwrap.dedent(inspect.getsource(value))
            _collect(value, imports, constants, functions)
        elif isinstance(value, type) and not value.__module__.startswith("langtts"):
            imports.add(f"from {value.__module__} import {value.__name__}")
        elif _is_data(value):
            if _has_pattern(value):
                imports.add("import re")
            constants[name] = _literal(value)
        else:
            raise ValueError(f"cannot inline {name!r} ({type(value).__name__}) into the exported program")


def _names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _is_data(value: Any) -> bool:
    if isinstance(value, str | int | float | bool | re.Pattern) or value is None:
        return True
    if isinstance(value, tuple | list | frozenset):
        return all(_is_data(v) for v in value)
    return isinstance(value, Mapping) and all(_is_data(k) and _is_data(v) for k, v in value.items())


def _has_pattern(value: Any) -> bool:
    if isinstance(value, re.Pattern):
        return True
    if isinstance(value, Mapping):
        return any(_has_pattern(v) for v in value.values())
    return isinstance(value, tuple | list | frozenset) and any(_has_pattern(v) for v in value)


def _literal(value: Any, indent: int = 0) -> str:
    """Python source of ``value`` (data and compiled patterns) for a line indented by ``indent``."""
    if isinstance(value, re.Pattern):
        flags = re.RegexFlag(value.flags & ~re.UNICODE)
        return f"re.compile({_string(value.pattern)}{', ' + repr(flags) if flags else ''})"
    if isinstance(value, dict) and value and not _has_pattern(value):  # one entry a line
        entries = "".join(
            f"{' ' * (indent + 4)}{k!r}: {_indented(v, indent + len(repr(k)) + 6)},\n" for k, v in value.items()
        )
        return "{\n" + entries + " " * indent + "}"
    if not _has_pattern(value):
        return _indented(value, indent)
    if isinstance(value, tuple | list):
        items = [_literal(v, indent + 4) for v in value]
        one_line = ", ".join(items) + ("," if isinstance(value, tuple) and len(items) == 1 else "")
        brackets = "()" if isinstance(value, tuple) else "[]"
        if len(one_line) + indent < 100:
            return brackets[0] + one_line + brackets[1]
        return (
            brackets[0]
            + "\n"
            + "".join(f"{' ' * (indent + 4)}{item},\n" for item in items)
            + " " * indent
            + brackets[1]
        )
    if isinstance(value, frozenset):
        return f"frozenset({_literal(sorted(value), indent)})"
    return "{" + ", ".join(f"{k!r}: {_literal(v, indent)}" for k, v in value.items()) + "}"


def _indented(value: Any, indent: int) -> str:
    """``pprint`` of ``value`` whose continuation lines are indented by ``indent``."""
    text = pprint.pformat(value, width=116 - indent, sort_dicts=False)
    return text.replace("\n", "\n" + " " * indent)


def _string(text: str) -> str:
    """A raw string literal of ``text`` when one can hold it, else its repr."""
    if "'" in text or "\n" in text or text.endswith("\\"):
        return repr(text)
    return f"r'{text}'"


__all__ = ["export_python"]

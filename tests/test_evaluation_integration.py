"""A real 3-node graph on the embedded server: two assistants on different models feeding the sink, with the
task family's default max_tokens (the reasoning prompts need room; no tiny caps that make recovery fire always)."""

import pytest

from langtts.evaluation import evaluate
from langtts.models import CallCache, ModelPool
from langtts.shapes import parallel
from langtts.tasks import get_task

pytestmark = pytest.mark.integration
QWEN, SMOL = "qwen2.5-coder-0.5b", "smollm2-135m"


@pytest.fixture(scope="module")
def pool(embedded_server, tmp_path_factory):
    cache = CallCache(tmp_path_factory.mktemp("cache") / "calls.sqlite")
    with ModelPool.from_file(embedded_server.pool_file, cache=cache) as pool:
        yield pool


@pytest.mark.parametrize(("task_name", "options"), [("gsm8k", {}), ("mmlu", {"split": "val"})])
def test_three_node_graph_on_real_questions(pool, task_name, options):
    task = get_task(task_name, **options)
    examples = task.load()[:3]
    graph = parallel([QWEN, SMOL], sink_model=QWEN)
    result = evaluate(graph, task, pool, examples=examples, progress=False)
    print(result.summary())
    assert result.n == 3 and result.n_errors == 0
    for record, example in zip(result.records, examples, strict=True):
        assert record.id == example.id and record.gold == example.answer
        assert [t["node"] for t in record.trace] == ["n0", "n1", "sink"]
        assert {t["model"] for t in record.trace} == {QWEN, SMOL}
        assert all(t["prompt_tokens"] > 0 and t["completion_tokens"] > 0 for t in record.trace)
        recovered = sum(t["recovery"]["flops"] for t in record.trace if t["recovery"])
        assert record.flops == pytest.approx(sum(t["flops"] for t in record.trace) + recovered) and record.flops > 0
        assert record.analytic_flops > 0 and record.latency_s > 0
        rescored = task.score(record.answer, example)
        assert (rescored.correct, rescored.prediction) == (record.correct, record.prediction)
    assert result.accuracy == sum(r.correct for r in result.records) / 3
    assert result.calls == 9 + result.n_recovery_calls and 0.1 < result.flops_ratio < 10
    # the nodes reason before answering (the broken prompts gave 4-token "Answer: X" replies)
    sink_tokens = [r.trace[-1]["completion_tokens"] for r in result.records]
    assert sum(sink_tokens) / len(sink_tokens) > 30, sink_tokens
    again = evaluate(graph, task, pool, examples=examples, progress=False)
    assert again.cache_hits == result.calls and again.accuracy == result.accuracy

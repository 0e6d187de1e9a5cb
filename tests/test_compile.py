import asyncio

import pytest

from langtts.compile import ContextOverflowError, GenerationSettings, compile_graph
from langtts.graph import SAMPLE_TEMPERATURE, CollaborationGraph, Node
from langtts.models.cache import CallCache
from langtts.models.pool import sample_seed
from langtts.prompts import PromptError, PromptLibrary
from langtts.shapes import chain, fused, parallel, self_consistency, self_moa, single
from langtts.tasks import get_task
from langtts.tasks.base import Example, Task, extract_answer_line
from tests.fakes import fake_pool

QWEN, SMOL = "qwen2.5-coder-0.5b", "smollm2-135m"


def echo(model, messages, kwargs):
    """Answer with the model id and the last line of the prompt, so tests can see what each node saw."""
    return f"{model} says: " + str(messages[-1].content).strip().splitlines()[-1]


def test_single_model_graph_is_one_direct_call():
    pool, log = fake_pool(echo)
    out = compile_graph(single(QWEN), pool, get_task("gsm8k")).invoke({"question": "What is 2+2?"})
    assert len(log.calls) == 1 and out["calls"] == 1
    prompt = log.prompts()[0]
    assert "What is 2+2?" in prompt and get_task("gsm8k").answer_format in prompt
    assert out["answer"].startswith(QWEN)
    assert out["trace"][0]["role"] == "decider"


def test_parallel_nodes_run_in_one_superstep_and_the_sink_waits_for_all():
    pool, log = fake_pool(echo, delay_s=0.2)
    app = compile_graph(parallel([QWEN, SMOL, QWEN], sink_model=QWEN), pool)
    out = app.invoke({"question": "Q?"})
    workers = [c for c in log.calls if "Answers received" not in str(c[1][-1].content)]
    sink = [c for c in log.calls if "Answers received" in str(c[1][-1].content)]
    assert len(workers) == 3 and len(sink) == 1
    assert max(start for *_, start, _ in workers) < min(end for *_, _, end in workers)  # overlapping
    assert sink[0][3] >= max(end for *_, end in workers)  # the sink started after every worker finished
    sink_prompt = str(sink[0][1][-1].content)
    assert sink_prompt.count("[Answer ") == 3 and "from n0" in sink_prompt and "from n2" in sink_prompt
    assert [t["node"] for t in out["trace"]] == ["n0", "n1", "n2", "sink"]


def test_fan_in_across_layers_waits_for_the_slowest_predecessor():
    graph = CollaborationGraph(
        nodes=(
            Node("a", "assistant", QWEN),
            Node("b", "assistant", SMOL),
            Node("c", "assistant", QWEN),
            Node("sink", "decider", QWEN),
        ),
        edges=(("a", "b"), ("b", "sink"), ("a", "sink"), ("c", "sink")),
    )
    pool, log = fake_pool(echo)
    out = compile_graph(graph, pool).invoke({"question": "Q?"})
    order = [t["node"] for t in out["trace"]]
    assert order.index("b") > order.index("a") and order[-1] == "sink"
    assert len(log.calls) == 4  # the sink ran once, not once per incoming edge
    refine_prompt = next(str(m[-1].content) for name, m, *_ in log.calls if name == SMOL)
    assert "Answers from other solvers" in refine_prompt and "from a" in refine_prompt


def test_unreachable_nodes_are_pruned():
    graph = CollaborationGraph(
        nodes=(Node("a", "assistant", QWEN), Node("lost", "assistant", SMOL), Node("sink", "decider", QWEN)),
        edges=(("a", "sink"),),
    )
    pool, log = fake_pool(echo)
    app = compile_graph(graph, pool)
    assert "lost" not in app.get_graph().nodes
    app.invoke({"question": "Q?"})
    assert all(name != SMOL for name, *_ in log.calls)


def test_fuser_prompt_and_trace_totals():
    pool, log = fake_pool(echo)
    out = compile_graph(fused([SMOL, SMOL], sink_model=QWEN), pool).invoke({"question": "Q?"})
    fuser = next(t for t in out["trace"] if t["role"] == "fuser")
    assert fuser["model"] == QWEN and fuser["inputs"] == ["n0", "n1"]
    assert any("Candidate answers" in p for p in log.prompts())
    assert out["flops"] == pytest.approx(sum(t["flops"] for t in out["trace"]))
    assert out["prompt_tokens"] == sum(t["prompt_tokens"] for t in out["trace"])
    by_node = {t["node"]: t for t in out["trace"]}
    critical = max(by_node["n0"]["latency_s"], by_node["n1"]["latency_s"]) + fuser["latency_s"]
    assert out["latency_s"] == pytest.approx(critical + by_node["sink"]["latency_s"])


def test_identical_parallel_requests_get_distinct_sample_indices_and_replay_from_cache(tmp_path):
    seen = []

    def sampler(model, messages, kwargs):
        seen.append(kwargs.get("seed"))
        return f"sample with seed {kwargs.get('seed')}"

    pool, _ = fake_pool(sampler, cache=CallCache(tmp_path / "calls.sqlite"))
    app = compile_graph(parallel(QWEN, n=3), pool, settings=GenerationSettings(temperature=0.7))
    first = app.invoke({"question": "Q?"})
    indices = sorted(t["sample_index"] for t in first["trace"] if t["node"] != "sink")
    assert indices == [0, 1, 2]
    assert len({t["text"] for t in first["trace"] if t["node"] != "sink"}) == 3
    again = app.invoke({"question": "Q?"})
    assert again["cache_hits"] == 4 and again["answer"] == first["answer"]
    assert [t["text"] for t in again["trace"]] == [t["text"] for t in first["trace"]]


def test_batch_ainvoke_and_stream():
    pool, _ = fake_pool(echo)
    app = compile_graph(chain([QWEN, SMOL], sink_model=QWEN), pool)
    outs = app.batch([{"question": "one?"}, {"question": "two?"}])
    assert [o["question"] for o in outs] == ["one?", "two?"]
    out = asyncio.run(app.ainvoke({"question": "three?"}))
    assert out["calls"] == 3
    updates = list(app.stream({"question": "four?"}, stream_mode="updates"))
    assert [next(iter(u)) for u in updates] == ["n0", "n1", "sink"]


def test_truncated_and_empty_answers_are_flagged():
    pool, _ = fake_pool(lambda model, messages, kwargs: "word " * 50)
    out = compile_graph(single(QWEN), pool, settings=GenerationSettings(max_tokens=10)).invoke({"question": "Q"})
    assert out["truncated"] and not out["empty"] and out["trace"][0]["finish_reason"] == "length"
    pool, _ = fake_pool(lambda model, messages, kwargs: "   ")
    out = compile_graph(single(QWEN), pool).invoke({"question": "Q"})
    assert out["empty"]


def test_context_guard_errors_at_compile_time_or_truncates():
    pool, _ = fake_pool(lambda model, messages, kwargs: "x " * 400, context_window=1500)
    graph = parallel(QWEN, n=4)
    with pytest.raises(ContextOverflowError, match="node 'sink'"):
        compile_graph(graph, pool, settings=GenerationSettings(max_tokens=400))
    app = compile_graph(graph, pool, settings=GenerationSettings(max_tokens=400), context_policy="truncate")
    out = app.invoke({"question": "Q"})
    sink = out["trace"][-1]
    assert sink["inputs_truncated"] and not any(t["inputs_truncated"] for t in out["trace"][:-1])


def test_context_guard_runtime_error_for_a_huge_question():
    pool, _ = fake_pool(echo, context_window=1000)
    app = compile_graph(single(QWEN), pool, settings=GenerationSettings(max_tokens=100))
    with pytest.raises(ContextOverflowError, match="exceeds the context window"):
        app.invoke({"question": "long " * 2000})


def test_prompt_overrides_and_errors(tmp_path):
    pool, log = fake_pool(echo)
    custom = "[system]\nBe terse.\n[user]\nQ: {question}\n{answer_format}"
    compile_graph(single(QWEN), pool, prompts={"roles/generic/decider_alone": custom}).invoke({"question": "hi"})
    assert log.prompts()[-1].startswith("Q: hi")
    with pytest.raises(PromptError, match=r"lacks placeholder\(s\) \{question\}"):
        compile_graph(single(QWEN), pool, prompts={"roles/generic/decider_alone": "{answer_format}"})
    with pytest.raises(PromptError, match="unknown placeholder"):
        compile_graph(single(QWEN), pool, prompts={"roles/generic/decider_alone": "{question} {answer_format} {x}"})
    (tmp_path / "roles" / "gsm8k").mkdir(parents=True)
    (tmp_path / "roles" / "gsm8k" / "decider_alone.txt").write_text("[user]\nDIR {question} {answer_format}")
    compile_graph(single(QWEN), pool, get_task("gsm8k"), prompts=PromptLibrary(tmp_path)).invoke({"question": "q"})
    assert log.prompts()[-1].startswith("DIR q")
    with pytest.raises(PromptError, match="unknown prompt"):
        PromptLibrary().get("roles/nope/assistant")


def test_unknown_model_and_node_settings_errors():
    pool, _ = fake_pool(echo)
    with pytest.raises(LookupError, match="no-such-model"):
        compile_graph(single("no-such-model"), pool)
    with pytest.raises(KeyError, match="ghost"):
        compile_graph(single(QWEN), pool, node_settings={"ghost": GenerationSettings()})


def test_per_node_settings_reach_the_server():
    pool, log = fake_pool(echo)
    app = compile_graph(
        parallel(QWEN, n=2), pool, node_settings={"n1": GenerationSettings(temperature=0.9, max_tokens=77)}
    )
    app.invoke({"question": "Q"})
    max_tokens = sorted(kwargs.get("max_tokens") for *_, kwargs, _, _ in log.calls)
    assert 77 in max_tokens and max_tokens.count(512) == 2


def test_drawing_uses_langgraph_api():
    pool, _ = fake_pool(echo)
    mermaid = compile_graph(fused([QWEN, SMOL], sink_model=QWEN), pool).get_graph().draw_mermaid()
    assert "n0" in mermaid and "sink" in mermaid and "__start__" in mermaid


def _replies(reply, recovered='{"answer": "C"}'):
    """A responder: `reply` to node prompts, `recovered` to answer-recovery requests (those with a schema)."""

    def respond(model, messages, kwargs):
        return recovered if "extra_body" in kwargs else reply

    return respond


MMLU_Q = "Which planet is red?\n\nA. Venus\nB. Mars\nC. Jupiter\nD. Saturn"


def test_a_reply_with_an_answer_is_not_recovered():
    pool, log = fake_pool(_replies("Mars is red.\nAnswer: B"))
    out = compile_graph(single(QWEN), pool, get_task("mmlu")).invoke({"question": MMLU_Q})
    assert len(log.calls) == 1 and out["calls"] == 1 and out["trace"][0]["recovery"] is None
    assert out["answer"] == "Mars is red.\nAnswer: B"


def test_a_reply_without_an_answer_is_continued_once_with_the_answer_schema(tmp_path):
    pool, log = fake_pool(_replies("Mars is the red one, I think."), cache=CallCache(tmp_path / "c.sqlite"))
    app = compile_graph(single(QWEN), pool, get_task("mmlu"), tags={"purpose": "evaluate"})
    out = app.invoke({"question": MMLU_Q})
    assert len(log.calls) == 2 and out["calls"] == 2
    _, messages, kwargs, *_ = log.calls[1]
    assert [m.type for m in messages] == ["human", "ai", "human"]  # the same conversation, continued
    assert messages[1].content == "Mars is the red one, I think."
    schema = kwargs["extra_body"]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["answer"]["enum"] == ["A", "B", "C", "D"]
    assert out["answer"] == "Mars is the red one, I think.\n\nAnswer: C"
    recovery = out["trace"][0]["recovery"]
    assert (recovery["reason"], recovery["answer"], recovery["reply"]) == (
        "no_answer",
        "C",
        "Mars is the red one, I think.",
    )
    # counted: the recovery call's tokens and FLOPs are in the totals
    node = out["trace"][0]
    assert out["completion_tokens"] == node["completion_tokens"] + recovery["completion_tokens"]
    assert out["flops"] == pytest.approx(node["flops"] + recovery["flops"]) and recovery["flops"] > 0
    assert [r.tags.get("call") for r in pool.ledger.records()] == [None, "recovery"]
    assert {r.tags["purpose"] for r in pool.ledger.records()} == {"evaluate"}  # counted in the run's cost
    # cached: a second run replays both calls
    again = app.invoke({"question": MMLU_Q})
    assert len(log.calls) == 2 and again["cache_hits"] == 2 and again["answer"] == out["answer"]


def test_a_reply_cut_at_max_tokens_is_recovered_even_with_a_number_in_it():
    pool, log = fake_pool(_replies("She has 3 apples and then 4 more so", '{"answer": 7}'))
    settings = GenerationSettings(max_tokens=5)
    out = compile_graph(single(QWEN), pool, get_task("gsm8k"), settings=settings).invoke({"question": "3+4?"})
    assert len(log.calls) == 2 and out["truncated"]
    assert out["trace"][0]["recovery"]["reason"] == "truncated"
    assert get_task("gsm8k").extract(out["answer"]) == "7"


def test_only_the_sink_and_the_inputs_of_a_vote_are_recovered_and_code_never():
    pool, log = fake_pool(_replies("no answer here"))
    compile_graph(parallel([QWEN, SMOL], sink_model=QWEN), pool, get_task("mmlu")).invoke({"question": MMLU_Q})
    assert len(log.calls) == 4  # two workers, the sink, one recovery of the sink
    pool, log = fake_pool(_replies("no code here"))
    out = compile_graph(single(QWEN), pool, get_task("humaneval")).invoke({"question": "def f():"})
    assert len(log.calls) == 1 and out["trace"][0]["recovery"] is None


def test_an_unparsable_recovery_leaves_the_reply_as_it_was():
    pool, log = fake_pool(_replies("no answer here", recovered="not json"))
    out = compile_graph(single(QWEN), pool, get_task("mmlu")).invoke({"question": MMLU_Q})
    assert len(log.calls) == 2 and out["answer"] == "no answer here"
    assert out["trace"][0]["recovery"]["answer"] is None


class Capitals(Task):
    """Answers on an ``Answer:`` line, equivalent up to case."""

    name = "capitals"

    def _load(self, split: str) -> list[Example]:
        return []

    def extract(self, text: str) -> str | None:
        return extract_answer_line(text)

    def equivalent(self, a: str, b: str) -> bool:
        return a.casefold() == b.casefold()


def by_sample(*replies: str, recovered: str = '{"answer": "Paris"}'):
    """A responder giving sample i the i-th reply (samples told apart by their server seed); `recovered` to
    answer-recovery requests; a decider (whose prompt shows inputs) echoes the last line of its prompt."""
    seeds = {sample_seed(0, i): reply for i, reply in enumerate(replies)}

    def respond(model, messages, kwargs):
        if "extra_body" in kwargs:
            return recovered
        if "[Answer 1" in str(messages[-1].content):
            return "Decided.\nAnswer: " + ("Paris" if "Answer: Paris" in str(messages[-1].content) else "Rome")
        return seeds[kwargs["seed"]]

    return respond


def test_a_vote_sink_makes_no_call_adds_no_flops_and_writes_the_majority_with_its_count():
    pool, log = fake_pool(by_sample("Answer: Paris", "Answer: Lyon", "answer: PARIS"))
    out = compile_graph(self_consistency(QWEN, 3), pool, Capitals()).invoke({"question": "Capital of France?"})
    assert len(log.calls) == 3 and out["calls"] == 3 and len(pool.ledger.records()) == 3
    assert [c[2]["temperature"] for c in log.calls] == [SAMPLE_TEMPERATURE] * 3 == [0.7] * 3
    assert out["answer"] == "Vote: 2 of 3 inputs agree.\nAnswer: Paris"
    vote = out["trace"][-1]
    assert (vote["node"], vote["role"], vote["model"], vote["answer"], vote["agreement"]) == (
        "sink",
        "vote",
        None,
        "Paris",
        pytest.approx(2 / 3),
    )
    assert (vote["flops"], vote["prompt_tokens"], vote["completion_tokens"], vote["latency_s"]) == (0.0, 0, 0, 0.0)
    assert out["flops"] == sum(e["flops"] for e in out["trace"][:3]) > 0
    assert out["prompt_tokens"] == sum(e["prompt_tokens"] for e in out["trace"][:3])
    assert [e["answer"] for e in out["trace"][:3]] == ["Paris", "Lyon", "PARIS"]
    assert [e["agreement"] for e in out["trace"][:3]] == [None] * 3  # no inputs


def test_a_vote_sink_streams_its_reply_as_one_chunk_without_a_call():
    pool, log = fake_pool(by_sample("Answer: Paris", "Answer: Lyon", "answer: PARIS"))
    app = compile_graph(self_consistency(QWEN, 3), pool, Capitals())
    question = {"question": "Capital of France?"}
    streamed = [(chunk, meta) for chunk, meta in app.stream(question, stream_mode="messages")]
    sink = [chunk for chunk, meta in streamed if meta["langgraph_node"] == "sink"]
    assert [(c.text, type(c).__name__) for c in sink] == [
        ("Vote: 2 of 3 inputs agree.\nAnswer: Paris", "AIMessageChunk")
    ]
    assert sink[0].response_metadata["cached"] is False and sink[0].usage_metadata["total_tokens"] == 0
    assert len(log.calls) == 3 and len(pool.ledger.records()) == 3  # no call, nothing counted

    async def events() -> list[tuple[str, str]]:
        return [
            (event["event"], event["metadata"]["langgraph_node"])
            async for event in app.astream_events(question, version="v2")
            if event["event"].startswith("on_chat_model") and event["metadata"]["langgraph_node"] == "sink"
        ]

    assert asyncio.run(events()) == [
        ("on_chat_model_start", "sink"),
        ("on_chat_model_stream", "sink"),
        ("on_chat_model_end", "sink"),
    ]
    assert len(log.calls) == 6 and len(pool.ledger.records()) == 6


def test_a_vote_ties_to_the_larger_model_and_ignores_inputs_without_an_answer():
    graph = CollaborationGraph(
        nodes=(
            Node("small", "assistant", SMOL),
            Node("big", "assistant", QWEN),
            Node("mute", "assistant", SMOL),
            Node("v", "vote"),
        ),
        edges=(("small", "v"), ("big", "v"), ("mute", "v")),
        sink_id="v",
    )

    def respond(model, messages, kwargs):
        if "extra_body" in kwargs:
            return "not json"  # the recovery of the mute node fails: it stays without an answer
        return {QWEN: "Answer: Rome"}.get(model, "Answer: Paris" if kwargs["seed"] == sample_seed(0, 0) else "...")

    pool, log = fake_pool(respond)
    out = compile_graph(graph, pool, Capitals()).invoke({"question": "Q?"})
    assert out["answer"] == "Vote: 1 of 3 inputs agree (1 gave none).\nAnswer: Rome"
    assert out["calls"] == 4 and len(log.calls) == 4  # three samples, one recovery of the mute input
    assert out["trace"][-1]["agreement"] == pytest.approx(1 / 3)


def test_a_vote_with_no_answer_at_all_has_none():
    pool, _ = fake_pool(by_sample("no idea", "none", recovered="not json"))
    out = compile_graph(self_consistency(QWEN, 2), pool, Capitals()).invoke({"question": "Q?"})
    assert out["answer"] == "Vote: no input gave an answer." and out["trace"][-1]["answer"] is None
    assert out["trace"][-1]["agreement"] == 0.0 and not out["empty"]


def test_inputs_of_a_vote_are_recovered_and_the_vote_before_recovery_is_kept():
    pool, log = fake_pool(by_sample("Answer: Lyon", "I think it is Paris", "Answer: Rome"))
    out = compile_graph(self_consistency(QWEN, 3), pool, Capitals()).invoke({"question": "Q?"})
    assert len(log.calls) == 4 and out["calls"] == 4
    recovered = out["trace"][1]
    assert recovered["recovery"]["reason"] == "no_answer" and recovered["answer"] == "Paris"
    vote = out["trace"][-1]
    assert vote["text"] == "Vote: 1 of 3 inputs agree.\nAnswer: Lyon"  # a three-way tie: the earliest input
    assert vote["text_before_recovery"] == "Vote: 1 of 3 inputs agree (1 gave none).\nAnswer: Lyon"
    assert out["flops"] == pytest.approx(sum(e["flops"] for e in out["trace"]) + recovered["recovery"]["flops"])


def test_a_vote_can_feed_a_decider_whose_agreement_is_measured():
    graph = CollaborationGraph(
        nodes=(
            Node("a", "assistant", QWEN),
            Node("b", "assistant", QWEN),
            Node("v", "vote"),
            Node("sink", "decider", QWEN),
        ),
        edges=(("a", "v"), ("b", "v"), ("v", "sink"), ("a", "sink")),
    )
    pool, log = fake_pool(by_sample("Answer: Paris", "Answer: Rome"))
    out = compile_graph(graph, pool, Capitals()).invoke({"question": "Q?"})
    decider_prompt = str(log.calls[-1][1][-1].content)
    assert "from v (vote)]\nVote: 1 of 2 inputs agree.\nAnswer: Paris" in decider_prompt
    assert out["answer"] == "Decided.\nAnswer: Paris" and out["calls"] == 3
    sink = out["trace"][-1]
    assert (sink["answer"], sink["agreement"]) == ("Paris", 1.0)  # the vote and `a` both say Paris
    assert [c[2]["temperature"] for c in log.calls] == [0.7, 0.7, 0.1]  # only the vote's inputs sample hot


def test_temperatures_from_the_graph_file_and_node_settings():
    graph = CollaborationGraph(
        nodes=(Node("a", "assistant", QWEN, 0.3), Node("b", "assistant", QWEN), Node("sink", "vote")),
        edges=(("a", "sink"), ("b", "sink")),
        sink_id="sink",
    )
    pool, log = fake_pool(by_sample("Answer: x", "Answer: y"))
    compile_graph(graph, pool, Capitals()).invoke({"question": "Q?"})
    assert sorted(c[2]["temperature"] for c in log.calls) == [0.3, 0.7]
    pool, log = fake_pool(lambda m, msgs, kw: "Answer: x")
    hot = {"a": GenerationSettings(temperature=1.0, max_tokens=9)}
    compile_graph(graph, pool, Capitals(), node_settings=hot).invoke({"question": "Q?"})
    assert sorted((c[2]["temperature"], c[2]["max_tokens"]) for c in log.calls) == [(0.7, 512), (1.0, 9)]
    with pytest.raises(ValueError, match="node_settings for 'sink': a vote makes no LLM call"):
        compile_graph(graph, pool, Capitals(), node_settings={"sink": GenerationSettings()})


def test_votes_need_a_task_with_comparable_answers():
    pool, _ = fake_pool(echo)
    with pytest.raises(ValueError, match="vote node 'sink' needs answers to count: task 'humaneval'"):
        compile_graph(self_consistency(QWEN, 2), pool, get_task("humaneval"))
    with pytest.raises(ValueError, match="compiling without a task"):
        compile_graph(self_consistency(QWEN, 2), pool)


def test_agreement_among_a_deciders_inputs():
    pool, _ = fake_pool(by_sample("Answer: B", "Answer: B", "Answer: C"))
    out = compile_graph(self_moa(QWEN, 3), pool, get_task("mmlu")).invoke({"question": MMLU_Q})
    assert [e["answer"] for e in out["trace"][:3]] == ["B", "B", "C"]
    assert out["trace"][-1]["agreement"] == pytest.approx(2 / 3)


def test_cache_keys_stay_as_they_were(tmp_path):
    """Users' call caches depend on the keys: these were computed by langtts before requests became objects."""
    pool, _ = fake_pool(lambda *_: "no answer here", cache=CallCache(tmp_path / "c.sqlite"))
    settings = GenerationSettings(temperature=0.7)
    app = compile_graph(parallel(QWEN, n=3), pool, get_task("mmlu"), settings=settings)
    app.invoke({"question": "Which planet? A) x B) y C) z D) w"})  # 3 samples, the sink and its recovery
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    options = {"temperature": 0.5, "max_tokens": 7, "stop": ["###"], "seed": 3, "sample_index": 2}
    pool.chat(SMOL, messages, response_format={"type": "json_object"}, **options)
    assert sorted(pool.cache._connection().execute("SELECT key FROM calls").fetchall()) == [
        ("1f76e0e5d1e93326167d78026bfeec3599db1e677f13994af8d2504a708670af",),
        ("36edebdb6fa588a52cb9b8017cddad11b4ba377338db637c37f43371099f25e8",),
        ("377d4c04f58694bc2e5e0f8aa46f6f296d6e550dc130c7fda2ccb09b69b25174",),
        ("5fa568f1960a93872fe85b79554d85992e4fe8b76dea10dbe288e342c242b9d3",),
        ("a85cb3defd7c8e09caf7a4d3215cea7448e07bf35a5c41b32c93f05a7a32b908",),
        ("deab8974f768d0df8f1f0d7678f1af483f3120152421cf93d7851e684f992ea9",),
    ]
    logprobs = pool.request(SMOL, [{"role": "user", "content": "u"}], logprobs=4).sample(1)
    assert logprobs.key == "d21b9d71b832b9590a0dc389929df55208b4bcb92231eec4df0e81af36fd29dd"


def test_a_layers_requests_are_built_once_per_question(monkeypatch):
    pool, _ = fake_pool(echo)
    built = []
    original = pool.request
    monkeypatch.setattr(pool, "request", lambda *a, **k: built.append(a[0]) or original(*a, **k))
    app = compile_graph(parallel(QWEN, n=6), pool, settings=GenerationSettings(temperature=0.7))
    out = app.invoke({"question": "Q?"})
    assert len(built) == 7  # each node's request once, however wide its layer
    assert sorted(t["sample_index"] for t in out["trace"] if t["node"] != "sink") == list(range(6))

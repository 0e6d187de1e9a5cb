"""A scripted fake chat model and a model pool built on it, for offline unit tests.

The pool is the real :class:`~langtts.models.ModelPool` (cache, ledger, sample indices, FLOPs accounting); only
the chat model behind each endpoint is replaced by :class:`ScriptedChatModel`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from langtts.models.config import Endpoint, PoolConfig, PoolModel
from langtts.models.pool import ModelPool

Responder = Callable[[str, list[BaseMessage], Mapping[str, Any]], str]


@dataclass
class CallLog:
    """Every request the fake models received: (model, messages, kwargs, start, end)."""

    calls: list[tuple[str, list[BaseMessage], dict[str, Any], float, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def prompts(self, model: str | None = None) -> list[str]:
        return [m[-1].content for name, m, _, _, _ in self.calls if model in (None, name)]


class ScriptedChatModel(BaseChatModel):
    """Answers with ``responder(model, messages, kwargs)``; reports usage as whitespace-split token counts."""

    model_name: str
    responder: Any
    log: Any
    delay_s: float = 0.0

    @property
    def _llm_type(self) -> str:
        return "scripted-fake"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any):
        started = time.monotonic()
        time.sleep(self.delay_s)
        text = self.responder(self.model_name, messages, kwargs)
        max_tokens = kwargs.get("max_tokens") or 10**9
        words = text.split()
        finish = "length" if len(words) > max_tokens else "stop"
        text = " ".join(words[:max_tokens]) if finish == "length" else text
        with self.log.lock:
            self.log.calls.append((self.model_name, messages, dict(kwargs), started, time.monotonic()))
        prompt_tokens = sum(len(str(m.content).split()) for m in messages)
        message = AIMessage(
            content=text,
            usage_metadata={
                "input_tokens": prompt_tokens,
                "output_tokens": min(len(words), max_tokens),
                "total_tokens": prompt_tokens + min(len(words), max_tokens),
            },
            response_metadata={"finish_reason": finish},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def fake_pool(
    responder: Responder,
    models: Mapping[str, str] | None = None,
    *,
    context_window: int | None = 4096,
    delay_s: float = 0.0,
    cache: Any = None,
) -> tuple[ModelPool, CallLog]:
    """A pool of fake models: ``models`` maps pool id → catalog spec id (default: two embedded models)."""
    models = models or {"qwen2.5-coder-0.5b": "qwen2.5-coder-0.5b", "smollm2-135m": "smollm2-135m"}
    config = PoolConfig(
        models=[
            PoolModel(
                id=model_id,
                spec=spec,
                endpoints=[Endpoint(base_url=f"fake://{model_id}", max_concurrency=8)],
                context_window=context_window,
            )
            for model_id, spec in models.items()
        ]
    )
    log = CallLog()

    def factory(model: PoolModel, endpoint: Endpoint) -> BaseChatModel:
        return ScriptedChatModel(model_name=model.id, responder=responder, log=log, delay_s=delay_s)

    return ModelPool(config, cache=cache, chat_model_factory=factory), log

"""A chat model that replays a known answer, so a cache hit (or a vote's reply) emits the callbacks of a model call.

Tracing (LangSmith), `astream_events` and LangGraph's `stream_mode="messages"` see the answer as one model call that
streams its whole text as a single chunk; its `response_metadata` has `cached: True` for a cache hit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import ensure_config
from langsmith.utils import tracing_is_enabled

from langtts.models.cache import CachedAnswer


def callbacks_active() -> bool:
    """Whether the running call has callbacks (streaming, `astream_events`) or LangSmith tracing to emit to."""
    return bool(ensure_config().get("callbacks") or tracing_is_enabled())


class CachedChatModel(BaseChatModel):
    """Answers every request with `answer` (the pool only invokes it for the request that `answer` is cached for;
    a vote node, with `cached=False`, for its own reply)."""

    answer: CachedAnswer
    model_name: str
    cached: bool = True

    @property
    def _llm_type(self) -> str:
        return "langtts-cache"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def _usage_and_metadata(self) -> tuple[UsageMetadata, dict[str, Any]]:
        answer = self.answer
        usage = UsageMetadata(
            input_tokens=answer.prompt_tokens,
            output_tokens=answer.completion_tokens,
            total_tokens=answer.prompt_tokens + answer.completion_tokens,
        )
        if answer.cached_prompt_tokens:
            usage["input_token_details"] = {"cache_read": answer.cached_prompt_tokens}
        return usage, {"finish_reason": answer.finish_reason, "model_name": self.model_name, "cached": self.cached}

    def _message(self) -> AIMessage:
        usage, metadata = self._usage_and_metadata()
        return AIMessage(content=self.answer.text, usage_metadata=usage, response_metadata=metadata)

    def _chunk(self) -> AIMessageChunk:
        usage, metadata = self._usage_and_metadata()
        return AIMessageChunk(
            content=self.answer.text, usage_metadata=usage, response_metadata=metadata, chunk_position="last"
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._message())])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        yield ChatGenerationChunk(message=self._chunk())  # the caller emits it as a new token

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        yield ChatGenerationChunk(message=self._chunk())  # the caller emits it as a new token

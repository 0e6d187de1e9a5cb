"""The model pool: every LLM call of langtts goes through `ModelPool`.

One place for the clients (LangChain `ChatOpenAI` against OpenAI-compatible servers), retries (tenacity),
timeouts, per-endpoint concurrency caps, replica load balancing with circuit breaking (`langtts.models.breaker`),
the call cache, and usage/FLOPs accounting.

Sample indices: identical requests within one graph execution are numbered 0, 1, 2, ... (by the compiler, with
`ChatRequest.request_key`); the index is part of the cache key, so parallel samples stay distinct and a repeated search
replays them. When `temperature > 0` the server gets the seed `sample_seed(seed, sample_index)`, so distinct
indices give distinct samples and a replay against the server reproduces them (as far as the server's sampling
is deterministic).

Streaming: when a callback asks for tokens (LangGraph's `stream_mode="messages"`, `astream_events`), `ChatOpenAI`
streams the answer and the pool asks for its usage in the stream (`stream_options.include_usage`). A cache hit
emits the callbacks of one model call (`CachedChatModel`) when callbacks or LangSmith tracing are active.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar, overload

import httpx
import openai
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, convert_to_openai_messages
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, SecretStr, ValidationError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from langtts.cost import ModelCatalog, ModelSpec, call_flops, default_catalog
from langtts.graph import CollaborationGraph
from langtts.models.breaker import Breaker
from langtts.models.cache import CachedAnswer, CallCache, cache_key, request_key
from langtts.models.config import Endpoint, PoolConfig, PoolModel
from langtts.models.errors import (
    ErrorKind,
    ModelCallError,
    ModelNotServedError,
    PoolError,
    StructuredOutputError,
    UnknownModelError,
)
from langtts.models.ledger import CallRecord, UsageLedger, active_ledgers
from langtts.models.replay import CachedChatModel, callbacks_active

Message = Mapping[str, Any] | BaseMessage
T = TypeVar("T")
S = TypeVar("S", bound=BaseModel)

log = logging.getLogger(__name__)

DUMMY_API_KEY = "sk-no-key-required"
"""Sent to endpoints that name no API key variable (local servers ignore it)."""


@dataclass(frozen=True)
class ChatRequest:
    """One chat request as the pool sends it (built by `ModelPool.request`, sent by `ModelPool.asend`).

    `messages` in OpenAI form; `stop`: the caller's stop sequences, then the model's own. `request_key` (the
    request without its sample index: identical requests share it) and `key` (the cache key) are computed once.
    """

    model: PoolModel
    messages: tuple[dict[str, Any], ...]
    temperature: float = 0.0
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    seed: int | None = None
    response_format: Mapping[str, Any] | None = None
    logprobs: int | None = None
    sample_index: int = 0

    @cached_property
    def request_key(self) -> str:
        model = self.model
        request = {
            "model": {"id": model.id, "served_name": model.name_on_server, "fingerprint": model.fingerprint},
            "messages": list(self.messages),
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "stop": list(self.stop),
            "seed": self.seed,
            "response_format": self.response_format,
        }
        if self.logprobs is not None:  # only when set: the keys of requests without it stay as they were
            request["logprobs"] = self.logprobs
        return request_key(request)

    @cached_property
    def key(self) -> str:
        return cache_key(self.request_key, self.sample_index)

    def sample(self, index: int) -> ChatRequest:
        """This request as sample `index` (its request key is kept, not recomputed)."""
        request = replace(self, sample_index=index)
        request.__dict__["request_key"] = self.request_key
        return request


@dataclass(frozen=True, kw_only=True)
class ChatResult(CachedAnswer):
    """One answer and how it was obtained. `latency_s`: duration of the successful request (for a cache hit:
    the original one). `top_logprobs` (when asked for with `logprobs=N`): for each generated token, its top N
    alternatives token -> log-probability."""

    cached: bool
    flops: float
    sample_index: int = 0
    retries: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def sample_seed(seed: int | None, sample_index: int) -> int:
    """The server seed for sample `sample_index` of a request with user seed `seed` (a 31-bit integer)."""
    digest = hashlib.sha256(f"{seed or 0}:{sample_index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class ModelPool:
    """The models of a pool file behind one small API: `chat`/`achat` (or `request` then `send`/`asend`),
    `structured`/`astructured`.

    Every call (cache hit, answer or failure) is recorded in `pool.ledger` and in any ledger opened with
    `langtts.models.track()`. Failed calls raise `ModelCallError` and are never cached.
    """

    def __init__(
        self,
        config: PoolConfig,
        *,
        cache: CallCache | None = None,
        catalog: ModelCatalog | None = None,
        timeout: float = 120.0,
        max_retries: int = 4,
        retry_wait: float = 0.5,
        retry_wait_max: float = 20.0,
        breaker_failures: int = 3,
        breaker_cooldown: float = 30.0,
        chat_model_factory: Callable[[PoolModel, Endpoint], BaseChatModel] | None = None,
    ) -> None:
        """`timeout` bounds each request (seconds); transient failures are retried `max_retries` times with
        exponential backoff and full jitter (`retry_wait` * 2^n seconds, at most `retry_wait_max`). An endpoint
        of a model with several leaves the rotation after `breaker_failures` consecutive failures or one timeout,
        for `breaker_cooldown` seconds, and returns once a probe (`GET /models`) succeeds.
        `chat_model_factory(model, endpoint)` replaces the `ChatOpenAI` client of each endpoint (e.g. a fake chat
        model in tests, or another LangChain chat model); its answers must carry `usage_metadata`."""
        ids = [m.id for m in config.models]
        if duplicates := sorted({i for i in ids if ids.count(i) > 1}):
            raise PoolError(f"duplicate model ids in the pool: {', '.join(duplicates)}")
        self.config = config
        self.cache = cache
        self.catalog = catalog if catalog is not None else default_catalog()
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_wait = retry_wait
        self.retry_wait_max = retry_wait_max
        self.chat_model_factory = chat_model_factory
        self.ledger = UsageLedger()
        self._models = {m.id: m for m in config.models}
        self._specs = {m.id: self._resolve_spec(m) for m in config.models}
        self._limiters = {m.id: [_Limiter(e.max_concurrency) for e in m.endpoints] for m in config.models}
        self._breakers = {
            m.id: [Breaker(breaker_failures, breaker_cooldown) for _ in m.endpoints] for m in config.models
        }
        self._probes: set[asyncio.Task[None]] = set()
        self._next_replica = dict.fromkeys(ids, 0)
        self._lock = threading.Lock()
        self._clients: dict[int, _LoopClients] = {}
        self._sync_loop: _LoopThread | None = None

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> ModelPool:
        """Load a pool file (YAML or JSON); `kwargs` as for `ModelPool(...)`."""
        return cls(PoolConfig.load(path), **kwargs)

    def save(self, path: str | Path) -> None:
        self.config.save(path)

    # --- the models -------------------------------------------------------------------------------------

    def ids(self) -> list[str]:
        return list(self._models)

    def model(self, model_id: str) -> PoolModel:
        try:
            return self._models[model_id]
        except KeyError:
            raise UnknownModelError(model_id, self._models, where="the pool has") from None

    def spec(self, model_id: str) -> ModelSpec:
        self.model(model_id)
        return self._specs[model_id]

    def catalog_for(self, models: CollaborationGraph | Iterable[str] | None = None) -> ModelCatalog:
        """The FLOPs specs of a graph's models, of the given model ids, or of every model (None), keyed by their
        pool ids (for `langtts.cost.graph_cost`)."""
        if models is None:
            ids: Iterable[str] = self._models
        elif isinstance(models, CollaborationGraph):
            ids = sorted({node.model for node in models.nodes if node.calls_model})
        else:
            ids = models
        return ModelCatalog(self.spec(i).model_copy(update={"id": i}) for i in ids)

    def context_window(self, model_id: str) -> int | None:
        """Tokens per request: the pool file's value, else the spec's, else unknown (`None`)."""
        return self.model(model_id).context_window or self.spec(model_id).context_window

    def _resolve_spec(self, model: PoolModel) -> ModelSpec:
        try:
            if isinstance(model.spec, dict):
                return ModelSpec.model_validate({"id": model.id, **model.spec})
            return self.catalog.get(model.spec or model.id)
        except (KeyError, ValidationError) as e:
            raise PoolError(
                f"no usable FLOPs spec for model {model.id!r}: {e}. Give `spec:` in the pool file (a catalog "
                "id or the ModelSpec fields params, layers, hidden)"
            ) from e

    def discover(self, base_url: str, *, api_key: str | None = None) -> list[str]:
        """The model ids an OpenAI-compatible server serves (`GET {base_url}/models`)."""
        url = base_url.rstrip("/") + "/models"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        try:
            response = httpx.get(url, headers=headers, timeout=min(self.timeout, 30.0))
        except httpx.HTTPError as e:
            message = f"{type(e).__name__}: {e}"
            raise ModelCallError("(discover)", "unavailable", message, endpoint=base_url) from e
        if response.status_code != 200:
            kind: ErrorKind = "http_4xx" if 400 <= response.status_code < 500 else "unavailable"
            raise ModelCallError(
                "(discover)", kind, response.text[:500], status=response.status_code, endpoint=base_url
            )
        return [entry["id"] for entry in response.json().get("data", [])]

    def check(self) -> dict[str, list[str]]:
        """Health check: ask every endpoint which models it serves; returns what each server that answered has.

        An endpoint that does not answer leaves the rotation (its breaker opens; it is probed after the
        cool-down). Raises `ModelNotServedError` naming each model that a server does not serve, and each model
        none of whose endpoints answers.
        """
        served: dict[str, list[str]] = {}
        down: dict[str, ModelCallError] = {}
        problems: dict[str, str] = {}
        for model in self._models.values():
            for index, endpoint in enumerate(model.endpoints):
                url = endpoint.base_url
                if url not in served and url not in down:
                    try:
                        served[url] = self.discover(url, api_key=_api_key(endpoint))
                    except ModelCallError as e:
                        down[url] = e
                if url in down:
                    with self._lock:
                        self._breakers[model.id][index].cool_down()
                    log.warning("%s: endpoint %s leaves the rotation: %s", model.id, url, down[url])
                elif model.name_on_server not in served[url]:
                    problems[f"{model.id}@{url}"] = (
                        f"model {model.id!r} (served name {model.name_on_server!r}) is not served at "
                        f"{url}; the server has: {', '.join(served[url]) or '(none)'}"
                    )
            if all(e.base_url in down for e in model.endpoints):
                problems[model.id] = f"no endpoint of model {model.id!r} answers: " + "; ".join(
                    str(down[e.base_url]) for e in model.endpoints
                )
        if problems:
            raise ModelNotServedError(problems)
        return served

    # --- chat -------------------------------------------------------------------------------------------

    def request(
        self,
        model_id: str,
        messages: Sequence[Message],
        *,
        temperature: float = 0.0,
        max_tokens: int = 512,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        sample_index: int = 0,
        response_format: Mapping[str, Any] | None = None,
        logprobs: int | None = None,
    ) -> ChatRequest:
        """The request `achat` would send (same arguments and defaults), for `asend`."""
        model = self.model(model_id)
        return ChatRequest(
            model,
            tuple(_openai_messages(messages)),
            temperature,
            max_tokens,
            tuple(_stops(model, stop)),
            seed,
            response_format,
            logprobs,
            sample_index,
        )

    async def achat(
        self,
        model_id: str,
        messages: Sequence[Message],
        *,
        temperature: float = 0.0,
        max_tokens: int = 512,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        sample_index: int = 0,
        response_format: Mapping[str, Any] | None = None,
        logprobs: int | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> ChatResult:
        """One chat completion: from the cache if this request and sample index were answered before.

        `messages`: `{"role", "content"}` dicts or LangChain messages. `logprobs=N` asks the server for the top
        N log-probabilities of each generated token (`ChatResult.top_logprobs`). `tags` (e.g. node, graph, run,
        purpose) go to the ledger. Raises `ModelCallError` when the call fails after retries.
        """
        request = self.request(
            model_id,
            messages,
            temperature=temperature,
            max_tokens=max_tokens,
            stop=stop,
            seed=seed,
            sample_index=sample_index,
            response_format=response_format,
            logprobs=logprobs,
        )
        return await self.asend(request, tags=tags)

    async def asend(self, request: ChatRequest, *, tags: Mapping[str, str] | None = None) -> ChatResult:
        """Answer a request built by `request`: from the cache if it was answered before; as for `achat`."""
        model, sample_index = request.model, request.sample_index
        tags = dict(tags or {})
        answer = self.cache.get(request.key) if self.cache is not None else None
        if answer is not None:
            if callbacks_active():  # emit the callbacks of a model call
                replay = CachedChatModel(answer=answer, model_name=model.name_on_server)
                await replay.ainvoke(list(request.messages), config={"metadata": tags})
            return self._finish(model, answer, sample_index, tags, cached=True, retries=0)
        kwargs: dict[str, Any] = {"temperature": request.temperature, "max_tokens": request.max_tokens}
        if request.stop:
            kwargs["stop"] = list(request.stop)
        server_seed = sample_seed(request.seed, sample_index) if request.temperature > 0 else request.seed
        if server_seed is not None:
            kwargs["seed"] = server_seed
        if request.response_format is not None:  # sent as is: ChatOpenAI would otherwise switch to its parse API
            kwargs["extra_body"] = {"response_format": dict(request.response_format)}
        if request.logprobs is not None:
            kwargs |= {"logprobs": True, "top_logprobs": request.logprobs}
        started = time.monotonic()
        failed: list[str] = []
        try:
            answer, retries = await self._call(model, list(request.messages), kwargs, tags, failed)
        except ModelCallError as e:
            self._record(
                CallRecord(
                    model=model.id,
                    prompt_tokens=0,
                    completion_tokens=0,
                    latency_s=time.monotonic() - started,
                    cached=False,
                    flops=0.0,
                    finish_reason=None,
                    timestamp=time.time(),
                    tags=tags,
                    sample_index=sample_index,
                    retries=e.attempts - 1,
                    endpoint=e.endpoint,
                    error=str(e),
                    failed_endpoints=tuple(failed),
                )
            )
            raise
        if self.cache is not None:
            self.cache.put(request.key, answer)
        return self._finish(model, answer, sample_index, tags, cached=False, retries=retries, failed=failed)

    def chat(self, model_id: str, messages: Sequence[Message], **kwargs: Any) -> ChatResult:
        """Blocking `achat` (runs on the pool's own event loop thread; usable from any thread)."""
        return self._run_sync(self.achat(model_id, messages, **kwargs))

    def send(self, request: ChatRequest, *, tags: Mapping[str, str] | None = None) -> ChatResult:
        """Blocking `asend`."""
        return self._run_sync(self.asend(request, tags=tags))

    @overload
    async def astructured(self, model_id: str, messages: Sequence[Message], schema: type[S], **kwargs: Any) -> S: ...
    @overload
    async def astructured(
        self, model_id: str, messages: Sequence[Message], schema: Mapping[str, Any], **kwargs: Any
    ) -> dict[str, Any]: ...
    async def astructured(
        self,
        model_id: str,
        messages: Sequence[Message],
        schema: type[BaseModel] | Mapping[str, Any],
        **kwargs: Any,
    ) -> BaseModel | dict[str, Any]:
        """Ask for JSON conforming to `schema` (a pydantic model class or a JSON-schema dict), enforced by the
        server through `response_format: json_schema`; returns the parsed model (or dict).

        Raises `StructuredOutputError` (with the raw text and the validation message) when the answer does not
        parse. `kwargs` as for `achat`.
        """
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            name, json_schema = schema.__name__, schema.model_json_schema()
        else:
            name, json_schema = str(schema.get("title", "output")), dict(schema)
        response_format = {
            "type": "json_schema",
            "json_schema": {"name": _schema_name(name), "schema": json_schema, "strict": True},
        }
        result = await self.achat(model_id, messages, response_format=response_format, **kwargs)
        try:
            if isinstance(schema, type):
                return schema.model_validate_json(result.text)
            parsed = json.loads(result.text)
        except (ValidationError, ValueError) as e:
            raise StructuredOutputError(model_id, result.text, str(e), finish_reason=result.finish_reason) from e
        if not isinstance(parsed, dict):
            message = f"expected a JSON object, got {type(parsed).__name__}"
            raise StructuredOutputError(model_id, result.text, message, finish_reason=result.finish_reason)
        return parsed

    def structured(
        self,
        model_id: str,
        messages: Sequence[Message],
        schema: type[BaseModel] | Mapping[str, Any],
        **kwargs: Any,
    ) -> Any:
        """Blocking `astructured`."""
        return self._run_sync(self.astructured(model_id, messages, schema, **kwargs))

    # --- internals --------------------------------------------------------------------------------------

    async def _call(
        self,
        model: PoolModel,
        messages: list[dict[str, Any]],
        kwargs: dict[str, Any],
        tags: dict[str, str],
        failed: list[str],
    ) -> tuple[CachedAnswer, int]:
        """Call with retries on transient failures; returns the answer and the number of retries. Appends the
        endpoint of each failed attempt to `failed`."""
        attempts = 0
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=wait_random_exponential(multiplier=self.retry_wait, max=self.retry_wait_max),
            retry=retry_if_exception(lambda e: isinstance(e, ModelCallError) and e.retryable),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    try:
                        answer = await self._attempt(model, messages, kwargs, tags)
                    except ModelCallError as e:
                        failed.append(e.endpoint or "")
                        raise
        except ModelCallError as e:
            e.attempts = attempts
            raise
        return answer, attempts - 1

    async def _attempt(
        self, model: PoolModel, messages: list[dict[str, Any]], kwargs: dict[str, Any], tags: dict[str, str]
    ) -> CachedAnswer:
        """One request to the least loaded replica in rotation, within its concurrency cap and the timeout."""
        while True:
            index = self._pick_replica(model.id)
            limiter = self._limiters[model.id][index]
            await limiter.acquire()
            if not self._left_rotation(model.id, index):
                break
            limiter.release()  # it left the rotation while we waited for a slot: choose again
        endpoint = model.endpoints[index]
        try:
            client = self._client(model, index)
            started = time.monotonic()
            async with asyncio.timeout(self.timeout):
                message = await client.ainvoke(messages, config={"metadata": tags}, **kwargs)
            latency = time.monotonic() - started
            answer = _answer(model, endpoint, message, latency, kwargs)
        except TimeoutError as e:
            error = _call_error(model, endpoint, "timeout", f"no answer within {self.timeout:g} s")
            raise self._failed(model, index, error) from e
        except openai.APIStatusError as e:
            raise self._failed(model, index, _status_error(model, endpoint, e)) from e
        except openai.APITimeoutError as e:
            raise self._failed(model, index, _call_error(model, endpoint, "timeout", str(e))) from e
        except openai.APIConnectionError as e:
            cause = e.__cause__ or e
            error = _call_error(model, endpoint, "unavailable", f"{type(cause).__name__}: {cause}")
            raise self._failed(model, index, error) from e
        except (openai.OpenAIError, ValueError) as e:  # e.g. a body that is not a chat completion
            raise _call_error(model, endpoint, "bad_response", f"{type(e).__name__}: {e}") from e
        finally:
            limiter.release()
        with self._lock:
            self._breakers[model.id][index].success()
        return answer

    def _failed(self, model: PoolModel, index: int, error: ModelCallError) -> ModelCallError:
        """Count a timeout or transport failure (connection, 5xx) against the endpoint's breaker."""
        if error.kind in ("timeout", "unavailable"):
            with self._lock:
                opened = self._breakers[model.id][index].failure(timeout=error.kind == "timeout")
            if opened and len(model.endpoints) > 1:
                cooldown = self._breakers[model.id][index].cooldown_s
                log.warning(
                    "%s: endpoint %s leaves the rotation for %g s: %s", model.id, error.endpoint, cooldown, error
                )
        return error

    def _left_rotation(self, model_id: str, index: int) -> bool:
        """Whether the endpoint is out of the rotation while another of the model is in it."""
        with self._lock:
            breakers = self._breakers[model_id]
            return breakers[index].state() != "closed" and any(b.state() == "closed" for b in breakers)

    def _pick_replica(self, model_id: str) -> int:
        """The replica in rotation with the fewest requests in flight or waiting (round-robin among ties), or
        when none is, the one whose cool-down ends first; reserves it. Starts the probes that are due."""
        now = time.monotonic()
        with self._lock:
            limiters, breakers = self._limiters[model_id], self._breakers[model_id]
            start = self._next_replica[model_id]
            self._next_replica[model_id] = (start + 1) % len(limiters)
            order = [(start + k) % len(limiters) for k in range(len(limiters))]
            for i in order:
                if len(order) > 1 and breakers[i].state(now) == "due":
                    breakers[i].probing = True
                    self._start_probe(model_id, i)
            closed = [i for i in order if breakers[i].state(now) == "closed"]
            if closed:
                index = min(closed, key=lambda i: limiters[i].load)
            else:
                index = min(order, key=lambda i: breakers[i].open_until or 0.0)
            limiters[index].reserve()
            return index

    def _start_probe(self, model_id: str, index: int) -> None:
        task = asyncio.get_running_loop().create_task(self._probe(self._models[model_id], index))
        self._probes.add(task)
        task.add_done_callback(self._probes.discard)

    async def _probe(self, model: PoolModel, index: int) -> None:
        """Ask a cooled-down endpoint for its models: back in rotation if it lists this one, else cool down."""
        endpoint = model.endpoints[index]
        with self._lock:
            breaker = self._breakers[model.id][index]
        try:
            served = await asyncio.wait_for(self._served(endpoint), timeout=min(self.timeout, 10.0))
            healthy, why = model.name_on_server in served, f"it does not serve {model.name_on_server!r}"
        except asyncio.CancelledError:  # its event loop ended: due again
            with self._lock:
                breaker.probing = False
            raise
        except (httpx.HTTPError, ValueError, KeyError, TimeoutError, PoolError) as e:
            healthy, why = False, f"{type(e).__name__}: {e}"
        with self._lock:
            breaker.success() if healthy else breaker.cool_down()
        if healthy:
            log.warning("%s: endpoint %s is back in the rotation", model.id, endpoint.base_url)
        else:
            log.info("%s: endpoint %s stays out of the rotation: %s", model.id, endpoint.base_url, why)

    async def _served(self, endpoint: Endpoint) -> list[str]:
        key = _api_key(endpoint)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        async with httpx.AsyncClient(timeout=min(self.timeout, 10.0)) as client:
            response = await client.get(endpoint.base_url.rstrip("/") + "/models", headers=headers)
        response.raise_for_status()
        return [entry["id"] for entry in response.json()["data"]]

    def _client(self, model: PoolModel, index: int) -> BaseChatModel:
        """The client of (model, endpoint) for the running event loop (connections belong to one loop)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._clients.get(id(loop))
            if entry is None or entry.loop is not loop:
                self._clients = {k: v for k, v in self._clients.items() if not v.loop.is_closed()}
                entry = self._clients[id(loop)] = _LoopClients(loop, {})
            client = entry.clients.get((model.id, index))
            if client is None and self.chat_model_factory is not None:
                client = entry.clients[(model.id, index)] = self.chat_model_factory(model, model.endpoints[index])
            if client is None:
                endpoint = model.endpoints[index]
                client = ChatOpenAI(
                    model=model.name_on_server,
                    base_url=endpoint.base_url,
                    api_key=SecretStr(_api_key(endpoint) or DUMMY_API_KEY),
                    timeout=self.timeout,
                    max_retries=0,
                    stream_usage=True,  # streamed when a callback asks for tokens (LangGraph's "messages")
                    http_async_client=httpx.AsyncClient(timeout=self.timeout),
                )
                entry.clients[(model.id, index)] = client
            return client

    def _finish(
        self,
        model: PoolModel,
        answer: CachedAnswer,
        sample_index: int,
        tags: dict[str, str],
        *,
        cached: bool,
        retries: int,
        failed: Sequence[str] = (),
    ) -> ChatResult:
        result = ChatResult(
            **{f.name: getattr(answer, f.name) for f in fields(CachedAnswer)} | {"model": model.id},
            cached=cached,
            flops=call_flops(self._specs[model.id], answer.prompt_tokens, answer.completion_tokens),
            sample_index=sample_index,
            retries=retries,
        )
        self._record(
            CallRecord(
                model=model.id,
                prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens,
                latency_s=result.latency_s,
                cached=cached,
                flops=result.flops,
                finish_reason=result.finish_reason,
                timestamp=time.time(),
                tags=tags,
                sample_index=sample_index,
                retries=retries,
                endpoint=result.endpoint,
                failed_endpoints=tuple(failed),
                cached_prompt_tokens=result.cached_prompt_tokens,
            )
        )
        return result

    def _record(self, record: CallRecord) -> None:
        self.ledger.append(record)
        for ledger in active_ledgers():
            if ledger is not self.ledger:
                ledger.append(record)

    def _run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        with self._lock:
            if self._sync_loop is None:
                self._sync_loop = _LoopThread()
            runner = self._sync_loop
        return runner.run(coro, contextvars.copy_context())

    async def aclose(self) -> None:
        """Close the HTTP clients of the running event loop (those of `ChatOpenAI` clients; a
        `chat_model_factory` client may have none)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._clients.pop(id(loop), None)
        if entry is not None and entry.loop is loop:
            for client in entry.clients.values():
                if isinstance(client, ChatOpenAI) and isinstance(client.http_async_client, httpx.AsyncClient):
                    await client.http_async_client.aclose()

    def close(self) -> None:
        """Stop the thread that serves the blocking calls and close its clients."""
        with self._lock:
            runner, self._sync_loop = self._sync_loop, None
        if runner is not None:
            runner.run(self.aclose(), contextvars.copy_context())
            runner.close()

    def __enter__(self) -> ModelPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ModelPool({', '.join(self._models)}; cache={self.cache!r})"


def _openai_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    if isinstance(messages, str | Mapping | BaseMessage):
        raise TypeError("messages must be a list of {'role', 'content'} dicts or LangChain messages")
    return convert_to_openai_messages(list(messages))


def _schema_name(name: str) -> str:
    """A `json_schema` name as OpenAI-compatible servers accept it: [A-Za-z0-9_-], at most 64 characters."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)[:64] or "output"


def _stops(model: PoolModel, stop: Sequence[str] | None) -> list[str]:
    """The caller's stop sequences, then the model's own (base models), without duplicates."""
    return list(dict.fromkeys([*(stop or []), *model.stop]))


def _api_key(endpoint: Endpoint) -> str | None:
    if endpoint.api_key_env is None:
        return None
    key = os.environ.get(endpoint.api_key_env)
    if not key:
        raise PoolError(f"environment variable {endpoint.api_key_env} (key for {endpoint.base_url}) is not set")
    return key


def _call_error(
    model: PoolModel, endpoint: Endpoint, kind: ErrorKind, message: str, status: int | None = None
) -> ModelCallError:
    return ModelCallError(model.id, kind, message, status=status, endpoint=endpoint.base_url)


def _status_error(model: PoolModel, endpoint: Endpoint, e: openai.APIStatusError) -> ModelCallError:
    body = e.body
    message = body.get("message") if isinstance(body, Mapping) else None
    message = str(message or body or e.message)
    status = e.status_code
    kind: ErrorKind = "rate_limited" if status == 429 else "unavailable" if status >= 500 else "http_4xx"
    return _call_error(model, endpoint, kind, message, status)


def _answer(
    model: PoolModel, endpoint: Endpoint, message: Any, latency: float, kwargs: Mapping[str, Any]
) -> CachedAnswer:
    """Read text, usage, finish reason and log-probabilities from an answer; an answer without usage (or
    without the log-probabilities asked for) is a `bad_response`."""
    usage = getattr(message, "usage_metadata", None)
    if not isinstance(message, AIMessage) or not usage:
        raise _call_error(
            model,
            endpoint,
            "bad_response",
            "the server returned no token usage (streamed answers need `stream_options.include_usage`)",
        )
    top_logprobs = None
    if "logprobs" in kwargs:
        content = (message.response_metadata.get("logprobs") or {}).get("content")
        if content is None:
            raise _call_error(model, endpoint, "bad_response", "the server returned no log-probabilities")
        top_logprobs = tuple(_alternatives(token.get("top_logprobs") or ()) for token in content)
    # ChatOpenAI reads `usage.prompt_tokens_details.cached_tokens` into input_token_details["cache_read"]
    cache_read = (usage.get("input_token_details") or {}).get("cache_read")
    return CachedAnswer(
        model=model.id,
        text=message.text,
        prompt_tokens=int(usage["input_tokens"]),
        completion_tokens=int(usage["output_tokens"]),
        finish_reason=message.response_metadata.get("finish_reason"),
        latency_s=latency,
        endpoint=endpoint.base_url,
        top_logprobs=top_logprobs,
        cached_prompt_tokens=int(cache_read or 0),
    )


def _alternatives(top: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """token -> log-probability; of tokens that decode to the same text the likelier one."""
    alternatives: dict[str, float] = {}
    for entry in top:
        token, logprob = entry["token"], float(entry["logprob"])
        alternatives[token] = max(logprob, alternatives.get(token, logprob))
    return alternatives


@dataclass
class _LoopClients:
    loop: asyncio.AbstractEventLoop
    clients: dict[tuple[str, int], BaseChatModel]


class _Limiter:
    """A FIFO counting semaphore shared by all threads and event loops. `load` counts holders and waiters."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.load = 0
        self._free = size
        self._lock = threading.Lock()
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()

    def reserve(self) -> None:
        """Count a caller that is about to `acquire`."""
        with self._lock:
            self.load += 1

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._free > 0:
                self._free -= 1
                return
            waiter = (loop, loop.create_future())
            self._waiters.append(waiter)
        try:
            await waiter[1]
        except BaseException:
            with self._lock:
                queued = waiter in self._waiters
                if queued:
                    self._waiters.remove(waiter)
                    self.load -= 1
            if not queued:  # a slot was handed to us: pass it on
                self.release()
            raise

    def release(self) -> None:
        """Free a slot: hand it to the oldest waiter whose event loop still runs."""
        with self._lock:
            self.load -= 1
            while self._waiters:
                loop, future = self._waiters.popleft()
                try:
                    loop.call_soon_threadsafe(_wake, future)
                    return
                except RuntimeError:  # its event loop is closed: that waiter is gone
                    self.load -= 1
            self._free += 1


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _LoopThread:
    """An event loop in a daemon thread, for the blocking API."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="langtts-pool", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], context: contextvars.Context) -> T:
        """Run `coro` on the loop in the caller's context (ledgers opened with `track`, tracing) and wait."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a blocking ModelPool call from the pool's own event loop: use the async API")

        async def in_context() -> T:
            return await asyncio.get_running_loop().create_task(coro, context=context)

        return asyncio.run_coroutine_threadsafe(in_context(), self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()

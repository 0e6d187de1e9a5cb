"""Run a coroutine to completion from synchronous code, also where an event loop is already running (Jupyter)."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)``; inside a running loop (a notebook cell, an async app) it runs on a fresh loop in a
    worker thread, with the caller's context variables, and blocks until done."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    context = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="langtts-sync") as executor:
        return executor.submit(context.run, asyncio.run, coro).result()

"""run_sync: plain asyncio.run outside a loop, a worker thread's loop inside one (as in a Jupyter cell)."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from langtts.sync import run_sync

LABEL: contextvars.ContextVar[str] = contextvars.ContextVar("LABEL", default="unset")


async def where() -> tuple[str, str]:
    await asyncio.sleep(0)
    return threading.current_thread().name, LABEL.get()


async def fails() -> None:
    raise ValueError("boom")


def test_outside_a_loop_it_runs_here() -> None:
    assert run_sync(where()) == (threading.current_thread().name, "unset")


def test_inside_a_running_loop_it_runs_on_a_worker_thread_with_the_callers_context() -> None:
    async def cell() -> tuple[str, str]:
        LABEL.set("from the cell")
        return run_sync(where())  # a synchronous API called from async code: asyncio.run would refuse

    thread, label = asyncio.run(cell())
    assert thread.startswith("langtts-sync") and label == "from the cell"


def test_exceptions_reach_the_caller() -> None:
    async def cell() -> None:
        run_sync(fails())

    with pytest.raises(ValueError, match="boom"):
        asyncio.run(cell())
    with pytest.raises(ValueError, match="boom"):
        run_sync(fails())

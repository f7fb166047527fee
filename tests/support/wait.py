"""Bounded waits on conditions (never a bare sleep).

A predicate is called with no arguments; it is typed ``Callable[..., T]`` so that a
lambda binding a loop variable as a default (``lambda d=daemon: d.ready()``, ruff's B023
fix) type-checks too.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")


def wait_until(predicate: Callable[..., T | None], timeout_s: float = 10.0, what: str = "") -> T:
    """Call ``predicate`` every 20 ms until it returns a true value, and return that value
    (never None); raise AssertionError (naming ``what``) once ``timeout_s`` has passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what or predicate}")
        time.sleep(0.02)


@overload
async def async_wait_until(
    predicate: Callable[..., Awaitable[T | None]], timeout_s: float = 10.0, what: str = ""
) -> T: ...


@overload
async def async_wait_until(
    predicate: Callable[..., T | None], timeout_s: float = 10.0, what: str = ""
) -> T: ...


async def async_wait_until(
    predicate: Callable[..., object], timeout_s: float = 10.0, what: str = ""
) -> object:
    """Like wait_until, without blocking the loop; ``predicate`` may also be a coroutine
    function (its result is awaited)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        value = await result if inspect.isawaitable(result) else result
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what or predicate}")
        await asyncio.sleep(0.02)

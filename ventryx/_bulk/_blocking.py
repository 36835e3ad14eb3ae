"""``emit_many`` for blocking code: the async engine on a portal that lives for one call.

The sync client's requests never need a thread (DESIGN.md section 2); bulk emission needs real
concurrency, so it alone runs an event loop in a worker thread for the duration of the call,
with its own ``httpx.AsyncClient`` (``_transports.make_async_http_client``). Ctrl-C cancels the
run, waits for it to settle (every pulled event gets its outcome), then re-raises
``KeyboardInterrupt``.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Awaitable, Callable
from typing import TypeVar

from anyio.from_thread import start_blocking_portal

from ventryx._options import ClientOptions
from ventryx._pipeline import Pipeline
from ventryx._shim import AsyncShim
from ventryx._transports import make_async_http_client

__all__ = ["run_on_portal"]

_T = TypeVar("_T")


def run_on_portal(options: ClientOptions, call: Callable[[Pipeline], Awaitable[_T]]) -> _T:
    """``call`` on an async pipeline of ``options``, in an asyncio portal for this one call.

    The sync ``emit_many`` passes its async twin's call; callbacks run in the portal's thread,
    one at a time. On Ctrl-C the run is cancelled and settled first; a ``summary`` passed to
    ``emit_many`` holds the tally after the ``KeyboardInterrupt``.
    """

    async def run() -> _T:
        shim = AsyncShim(make_async_http_client(options), owned=True)
        try:
            return await call(Pipeline(shim, options))
        finally:
            await shim.aclose()

    with start_blocking_portal("asyncio") as portal:
        future = portal.start_task_soon(run)
        try:
            return _wait(future)
        except KeyboardInterrupt:
            future.cancel()
            concurrent.futures.wait([future])
            raise


def _wait(future: concurrent.futures.Future[_T]) -> _T:
    # A timed wait keeps the main thread responsive to Ctrl-C on every platform.
    while True:
        try:
            return future.result(timeout=0.2)
        except concurrent.futures.TimeoutError:
            continue

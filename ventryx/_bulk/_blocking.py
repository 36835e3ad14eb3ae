"""``emit_many`` for blocking code: the async engine on a portal that lives for one call.

The sync client's requests never need a thread (DESIGN.md section 2); bulk emission needs real
concurrency, so it alone runs an event loop in a worker thread for the duration of the call,
with its own ``httpx.AsyncClient`` from ``open_http`` (the client layer's factory, passed in:
this module sits below the client and never imports it). Ctrl-C cancels the run, waits for it
to settle (every pulled event gets its outcome), then re-raises ``KeyboardInterrupt``.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import AsyncIterable, Callable, Iterable

import httpx
from anyio.from_thread import start_blocking_portal

from ventryx._bulk._results import (
    BulkProgress,
    BulkSummary,
    BulkTransport,
    EventInput,
    EventOutcome,
)
from ventryx._bulk._run import run_emit_many
from ventryx._constants import (
    DEFAULT_CANCEL_GRACE,
    DEFAULT_CONCURRENCY,
    DEFAULT_PROGRESS_INTERVAL,
    DEFAULT_RATE_LIMIT_WAIT,
)
from ventryx._options import ClientOptions
from ventryx._pipeline import Pipeline
from ventryx._shim import AsyncShim

__all__ = ["emit_many_blocking"]


def emit_many_blocking(
    options: ClientOptions,
    open_http: Callable[[ClientOptions], httpx.AsyncClient],
    events: Iterable[EventInput] | AsyncIterable[EventInput],
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    max_retries: int | None = None,
    max_rate_limit_wait: float = DEFAULT_RATE_LIMIT_WAIT,
    transport: BulkTransport = "default",
    on_result: Callable[[EventOutcome], object] | None = None,
    on_progress: Callable[[BulkProgress], object] | None = None,
    progress_interval: float = DEFAULT_PROGRESS_INTERVAL,
    cancel_grace: float = DEFAULT_CANCEL_GRACE,
    summary: BulkSummary | None = None,
    stop_after_connection_failures: int | None = None,
) -> BulkSummary:
    """``AsyncEvents.emit_many`` from blocking code; see it for every argument.

    The callbacks run in the portal's thread, one at a time. On Ctrl-C the run is cancelled
    and settled first; pass ``summary`` to read the tally after the ``KeyboardInterrupt``.
    """
    tally = BulkSummary() if summary is None else summary

    async def run() -> BulkSummary:
        shim = AsyncShim(open_http(options), owned=True)
        try:
            return await run_emit_many(
                Pipeline(shim, options),
                events,
                concurrency=concurrency,
                max_retries=max_retries,
                max_rate_limit_wait=max_rate_limit_wait,
                transport=transport,
                on_result=on_result,
                on_progress=on_progress,
                progress_interval=progress_interval,
                cancel_grace=cancel_grace,
                summary=tally,
                stop_after_connection_failures=stop_after_connection_failures,
            )
        finally:
            await shim.aclose()

    backend = "asyncio"
    with start_blocking_portal(backend) as portal:
        future = portal.start_task_soon(run)
        try:
            return _wait(future)
        except KeyboardInterrupt:
            future.cancel()
            concurrent.futures.wait([future])
            raise


def _wait(future: concurrent.futures.Future[BulkSummary]) -> BulkSummary:
    # A timed wait keeps the main thread responsive to Ctrl-C on every platform.
    while True:
        try:
            return future.result(timeout=0.2)
        except concurrent.futures.TimeoutError:
            continue

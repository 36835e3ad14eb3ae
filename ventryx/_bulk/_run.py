"""``emit_many`` behind the resource method: checks, the transport, cancellation, the result."""

from __future__ import annotations

import math
from collections.abc import AsyncIterable, Iterable, Mapping, Sized
from typing import TypeAlias

import anyio

from ventryx._bulk._engine import Engine, OnProgress, OnResult
from ventryx._bulk._gate import Gate, gate_for
from ventryx._bulk._results import BulkSummary, BulkTransport, EventInput, NewEvent
from ventryx._errors import InvalidInputError
from ventryx._options import check_max_retries
from ventryx._pipeline import Pipeline
from ventryx._transports import make_async_shim, transport_of

__all__ = ["EventSource", "client_gate", "run_emit_many", "separate_pipeline"]

EventSource: TypeAlias = "Iterable[EventInput] | AsyncIterable[EventInput]"

# More workers than this only add memory and scheduling: the server paces a run long before.
MAX_CONCURRENCY = 1024


def _positive(value: object, param: str, *, allow_zero: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):  # type: ignore[operator]
        raise InvalidInputError(param, "must be a positive number" + (" or 0" * allow_zero))
    return float(value)  # type: ignore[arg-type]


def client_gate(pipeline: Pipeline) -> Gate:
    """The gate of a client: its shared ``rate_gate`` if it was given one, else its own."""
    shared = pipeline.options.rate_gate
    return gate_for(pipeline.shim) if shared is None else shared


async def run_emit_many(
    pipeline: Pipeline,
    events: EventSource,
    *,
    concurrency: int,
    max_retries: int | None,
    max_rate_limit_wait: float,
    transport: BulkTransport,
    on_result: OnResult | None,
    on_progress: OnProgress | None,
    progress_interval: float,
    cancel_grace: float,
    summary: BulkSummary | None,
    stop_after_connection_failures: int | None = None,
) -> BulkSummary:
    """Check the arguments, pick the transport, run the engine, settle, raise or return."""
    if (
        isinstance(concurrency, bool)
        or not isinstance(concurrency, int)
        or not 1 <= concurrency <= MAX_CONCURRENCY
    ):
        raise InvalidInputError(
            "concurrency", f"must be an integer from 1 to {MAX_CONCURRENCY}, got {concurrency!r}"
        )
    retries = pipeline.options.max_retries if max_retries is None else max_retries
    retries = check_max_retries(retries)
    if isinstance(events, (Mapping, NewEvent)):
        kind = "a dict" if isinstance(events, Mapping) else "a NewEvent"
        raise InvalidInputError(
            "events",
            f"got one event ({kind}), not a collection of them: "
            "pass a list, e.g. emit_many([event])",
        )
    if not isinstance(events, (Iterable, AsyncIterable)) or isinstance(events, (str, bytes)):
        raise InvalidInputError("events", "must be an iterable or async iterable of events")
    if transport not in ("default", "httpx", "aiohttp"):
        raise InvalidInputError("transport", "must be 'default', 'httpx' or 'aiohttp'")
    for name, callback in (("on_result", on_result), ("on_progress", on_progress)):
        if callback is not None and not callable(callback):
            raise InvalidInputError(name, f"must be callable, got {type(callback).__name__}")
    if summary is None:
        summary = BulkSummary()
    elif not isinstance(summary, BulkSummary):
        raise InvalidInputError(
            "summary", f"must be a ventryx.BulkSummary or None, got {type(summary).__name__}"
        )
    if isinstance(events, Sized):  # no more workers than events
        concurrency = max(1, min(concurrency, len(events)))
    gate = client_gate(pipeline)
    wait = _positive(max_rate_limit_wait, "max_rate_limit_wait", allow_zero=True)
    grace = _positive(cancel_grace, "cancel_grace", allow_zero=True)
    interval = _positive(progress_interval, "progress_interval")
    breaker = stop_after_connection_failures
    if breaker is not None and (
        isinstance(breaker, bool) or not isinstance(breaker, int) or breaker < 1
    ):
        raise InvalidInputError("stop_after_connection_failures", "must be None or an integer >= 1")

    through = separate_pipeline(pipeline, transport) or pipeline
    try:
        engine = Engine(
            through,
            gate,
            summary,
            concurrency=concurrency,
            max_retries=retries,
            max_rate_limit_wait=wait,
            cancel_grace=grace,
            on_result=on_result,
            on_progress=on_progress,
            progress_interval=interval,
            stop_after_connection_failures=breaker,
        )
        await _drive(engine, events)
    finally:
        if through is not pipeline:
            with anyio.CancelScope(shield=True):
                await through.shim.aclose()
    if engine.error is not None:
        raise engine.error
    if summary.stopped_by is not None:
        summary.stopped_by.summary = summary  # type: ignore[attr-defined]
        raise summary.stopped_by
    return summary


def separate_pipeline(pipeline: Pipeline, transport: BulkTransport) -> Pipeline | None:
    """A pipeline with a pool of its own when ``transport`` is not the client's, else None.

    Raises at once, before any worker starts, when the transport cannot run here (aiohttp
    off asyncio): one clear error rather than one per event.
    """
    through = None
    if transport not in ("default", transport_of(pipeline.shim)):
        through = Pipeline(make_async_shim(transport, pipeline.options), pipeline.options)
    if transport_of((through or pipeline).shim) == "aiohttp":
        from ventryx._shim_aiohttp import require_asyncio  # noqa: PLC0415 - aiohttp's loaded

        require_asyncio()
    return through


async def _drive(engine: Engine, events: EventSource) -> None:
    """Run the engine; a cancel of the caller interrupts it, waits for it to settle, propagates."""
    done = anyio.Event()

    async def run() -> None:
        try:
            await engine.run(events)
        finally:
            done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        try:
            await done.wait()
        except anyio.get_cancelled_exc_class():
            engine.summary.cancelled = True
            engine.interrupt(engine.cancel_grace)
            raise

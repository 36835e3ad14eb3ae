"""``emit_many`` behind the resource method: the input, the transport, cancellation, the result.

Its keywords arrive checked, as one ``BulkOptions`` (``_bulk/_options.py``).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Mapping, Sized
from typing import TypeAlias

import anyio
import attrs

from ventryx._bulk._engine import Engine
from ventryx._bulk._gate import Gate, gate_for
from ventryx._bulk._options import BulkOptions
from ventryx._bulk._results import BulkSummary, BulkTransport, EventInput, NewEvent
from ventryx._errors import InvalidInputError
from ventryx._pipeline import Pipeline
from ventryx._transports import make_async_shim, transport_of

__all__ = ["EventSource", "client_gate", "run_emit_many", "separate_pipeline"]

EventSource: TypeAlias = "Iterable[EventInput] | AsyncIterable[EventInput]"


def client_gate(pipeline: Pipeline) -> Gate:
    """The gate of a client: its shared ``rate_gate`` if it was given one, else its own."""
    shared = pipeline.options.rate_gate
    return gate_for(pipeline.shim) if shared is None else shared


async def run_emit_many(
    pipeline: Pipeline, events: EventSource, options: BulkOptions, summary: BulkSummary | None
) -> BulkSummary:
    """Check the input, pick the transport, run the engine, settle, raise or return."""
    if isinstance(events, (Mapping, NewEvent)):
        kind = "a dict" if isinstance(events, Mapping) else "a NewEvent"
        raise InvalidInputError(
            "events",
            f"got one event ({kind}), not a collection of them: "
            "pass a list, e.g. emit_many([event])",
        )
    if not isinstance(events, (Iterable, AsyncIterable)) or isinstance(events, (str, bytes)):
        raise InvalidInputError("events", "must be an iterable or async iterable of events")
    if summary is None:
        summary = BulkSummary()
    elif not isinstance(summary, BulkSummary):
        raise InvalidInputError(
            "summary", f"must be a ventryx.BulkSummary or None, got {type(summary).__name__}"
        )
    if isinstance(events, Sized):  # no more workers than events
        options = attrs.evolve(options, concurrency=max(1, min(options.concurrency, len(events))))
    gate = client_gate(pipeline)
    through = separate_pipeline(pipeline, options.transport) or pipeline
    try:
        engine = Engine(through, gate, summary, options)
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
            engine.interrupt(engine.options.cancel_grace)
            raise

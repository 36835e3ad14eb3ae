"""``client.events``: emit events, and list or retrieve the ones emitted."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ventryx._on_first_use import models
from ventryx._validation import event_body, non_empty_str, path_segment
from ventryx.resources._base import AsyncResource

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from ventryx._bulk._options import BulkKeywords
    from ventryx._bulk._results import BulkSummary, EventInput
    from ventryx._emitter._async import AsyncEmitter, EmitterKeywords
    from ventryx._options import RequestOptions
    from ventryx._pagination import AsyncPager
    from ventryx.models import Event

__all__ = ["AsyncEvents"]


class AsyncEvents(AsyncResource):
    """Events: what triggers workflows."""

    async def emit(
        self,
        *,
        type: str,
        data: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        **options: Unpack[RequestOptions],
    ) -> Event:
        """Emit one event of ``type`` with free-form ``data``; returns it with its new id.

        Retries are safe: every attempt carries the same ``Idempotency-Key`` (generated unless
        given), so the event is applied once.
        """
        body = event_body(type, data)
        return await self._call(
            models.Event, "POST", "/events", options, body=body, idempotency_key=idempotency_key
        )

    def list(
        self,
        *,
        page: int | None = None,
        per_page: int | None = None,
        type: str | None = None,
        **options: Unpack[RequestOptions],
    ) -> AsyncPager[Event]:
        """List events, optionally only those of one ``type``: await for a page, iterate for all."""
        event_type = None if type is None else non_empty_str(type, "type")
        return self._list(models.Event, "/events", options, page, per_page, type=event_type)

    async def retrieve(self, event_id: str, **options: Unpack[RequestOptions]) -> Event:
        """Fetch one event by id (``NotFoundError`` when there is none)."""
        path = f"/events/{path_segment(event_id, 'event_id')}"
        return await self._call(models.Event, "GET", path, options)

    async def emit_many(
        self,
        events: Iterable[EventInput] | AsyncIterable[EventInput],
        *,
        summary: BulkSummary | None = None,
        **options: Unpack[BulkKeywords],
    ) -> BulkSummary:
        """Emit many events concurrently; every event pulled gets exactly one ``EventOutcome``.

        ``events`` (an iterable or async iterable of ``NewEvent`` or ``{"type", "data", "key"}``
        dicts) is pulled lazily by ``concurrency`` workers through a bounded queue: memory stays
        flat however long the input. An item with a ``key`` is sent with an Idempotency-Key
        derived from it, so re-running an interrupted import applies nothing twice; the others
        get a random key, the same on every attempt. Invalid items are ``rejected`` with an
        ``InvalidInputError`` without being sent.

        Left out, ``concurrency`` is 32, ``max_retries`` the client's, ``max_rate_limit_wait``
        300 s, ``progress_interval`` 1 s and ``cancel_grace`` 5 s (``BulkKeywords``).

        A 429 pauses every worker of this client until Retry-After (or backoff), then admission
        restarts paced, at a rate adapted to the 429s; one event waits out 429s for at most
        ``max_rate_limit_wait`` seconds in all. Connection errors, timeouts and 5xx are retried
        ``max_retries`` times (the client's setting by default) with the client's
        ``RetryPolicy``. 400/404/413/422 reject that event. 401/403 stop the run: the rest are
        ``not_sent``, and after settling the ``AuthenticationError``/``PermissionDeniedError``
        is raised with the summary as its ``summary`` attribute.

        ``stop_after_connection_failures=N`` is a circuit breaker for an unreachable API (a
        wrong base URL, a network down): after N attempts in a row, across all workers, that
        got no answer at all (connection refused or reset, timeouts), the run stops the same
        way and raises an ``APIConnectionError`` that names the count, with the summary as its
        ``summary``. Any answer from the server resets the count. ``None`` (the default):
        never; each event then uses up its own retries.

        ``on_result`` receives each outcome as it settles; ``on_progress`` a ``BulkProgress``
        every ``progress_interval`` seconds and a final one (``final=True``). An exception from
        a callback or from the input stops the run and is re-raised after settling.

        Cancelling the call stops the pulling and gives requests on the wire ``cancel_grace``
        seconds; every pulled event is reported (``indeterminate`` if sent without an answer,
        ``not_sent`` otherwise) before the cancellation propagates. Pass your own ``summary``
        to read the tally after a cancel: it is filled in place and returned.

        ``transport="default"`` sends through the client's own transport and pool;
        ``"aiohttp"`` (asyncio only, needs ``ventryx[aiohttp]``) or ``"httpx"``, when it is not
        the client's, through a pool of that transport made for this call (an injected
        ``http_client``'s hooks and proxies do not apply to it). Every request goes through the
        same attempt path as single calls: same errors, logging and raw responses.

        Returns the ``BulkSummary``: counts per outcome (summing to ``pulled``), attempts,
        retries, 429s, elapsed time, and the first ``summary.max_problems`` outcomes that were
        not delivered (delivered ones go only to ``on_result``).
        """
        # Imported here: the engine (anyio streams, the aiohttp glue) is not needed by
        # anyone who never bulk-emits, and `import ventryx` stays cheap.
        from ventryx._bulk._options import BulkOptions  # noqa: PLC0415
        from ventryx._bulk._run import run_emit_many  # noqa: PLC0415

        settings = BulkOptions.of(options, self._pipeline.options)
        return await run_emit_many(self._pipeline, events, settings, summary)

    def emitter(self, **options: Unpack[EmitterKeywords]) -> AsyncEmitter:
        """An emitter: ``enqueue`` stores an event and returns; delivery runs in the background.

        ``async with client.events.emitter(outbox="var/outbox.db") as emitter:`` then
        ``emitter.enqueue(type=..., data=..., key=...)`` from request handlers: a plain call
        that checks the event (``InvalidInputError`` at once), fixes its Idempotency-Key (derived
        from ``key`` as in ``emit_many``, else generated) and stores it. Once it has returned the
        event is delivered exactly once: redeliveries after a crash replay the stored key.

        ``outbox=None``: in memory, at most ``max_pending`` events; when full, ``on_full``
        raises ``OutboxFullError``, blocks the calling thread until there is room (``"block"``,
        never on the event loop's own thread), or drops the event (``"drop"``: ``enqueue``
        returns None, ``stats.dropped`` counts it, a warning is logged). ``outbox=PATH``: an
        SQLite file (WAL, created 0600) that survives ``kill -9``; a new emitter on it delivers
        what is left, and several processes on one file each deliver a disjoint share (rows are
        leased for ``lease_seconds``, renewed while held, taken over when a holder dies).
        Left out: ``outbox=None``, ``max_pending=10000``, ``on_full="raise"``,
        ``drain_timeout=5`` and ``lease_seconds=30`` seconds (``EmitterKeywords``).

        Delivery uses the bulk engine with ``concurrency`` workers, and ``max_retries``,
        ``max_rate_limit_wait`` and ``transport`` as in ``emit_many``, on the client's shared
        rate gate. A 4xx (400/404/413/422) moves the event to the dead-letter table (``ventryx
        outbox failed``); an event whose retries ran out, or any event while the API answers
        401/403, stays stored and is tried again after a backoff. ``on_result`` gets the final
        outcome of each event (delivered, or rejected); ``emitter.stats`` counts everything.

        ``await emitter.flush(timeout)`` waits until nothing is left; leaving the ``async with``
        block (or ``aclose``) delivers for at most ``drain_timeout`` seconds, then stops,
        leaving the rest in the outbox file.
        """
        from ventryx._emitter._async import AsyncEmitter  # noqa: PLC0415 - loads the engine

        return AsyncEmitter(self._pipeline, options)

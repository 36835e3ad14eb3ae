"""``AsyncEmitter``: enqueue now (a plain call), deliver in the background on the bulk engine.

``enqueue`` checks the event, fixes its idempotency key and stores it; once it returns the
event is acknowledged. A task in the emitter's own task group feeds the bulk engine (the
client's pipeline and rate gate) from the store: rows are leased, sent by the engine's
workers, then deleted (delivered), moved to the dead-letter table (4xx) or released for a
later attempt (retries spent, the API down, a 401/403, the emitter stopping). A redelivery is a
replay of the same key, never a second effect.
"""

from __future__ import annotations

import collections
import contextlib
import json
import math
import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import anyio
import attrs

from ventryx._bulk._engine import Engine
from ventryx._bulk._input import idempotency_key_for
from ventryx._bulk._options import BulkKeywords, BulkOptions, DeliveryKeywords, check_keywords
from ventryx._bulk._results import BulkSummary, EventOutcome
from ventryx._bulk._run import client_gate, separate_pipeline
from ventryx._constants import DEFAULT_DRAIN_TIMEOUT, DEFAULT_LEASE_SECONDS, DEFAULT_MAX_PENDING
from ventryx._emitter._store import (
    MemoryStore,
    OnFull,
    OutboxFullError,
    Row,
    SQLiteStore,
    Store,
)
from ventryx._errors import (
    APIStatusError,
    AuthenticationError,
    InvalidInputError,
    PermissionDeniedError,
    VentryxError,
)
from ventryx._logging import logger
from ventryx._pipeline import Pipeline, new_idempotency_key
from ventryx._validation import event_body

__all__ = ["AsyncEmitter", "EmitterClosedError", "EmitterKeywords", "EmitterStats"]

POLL_INTERVAL = 0.25  # how often an idle emitter looks for rows other processes released
_LEASE_BATCH = 64  # rows taken per lease (fewer write transactions)
_CHECKPOINT_EVERY = 0.2  # seconds between WAL checkpoints (in a worker thread)
_CLOSE_GRACE = 0.5  # after the drain bound, how long requests on the wire get
_JSON = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False)


class EmitterClosedError(VentryxError):
    """``enqueue`` on an in-memory emitter that was closed: nothing would deliver the event."""


@attrs.frozen(kw_only=True)
class EmitterStats:
    """A snapshot of an emitter.

    ``pending``: stored, not taken by this emitter yet (with an outbox file: every row not
    leased here, other processes' included); ``in_flight``: taken, not settled;
    ``delivered``/``rejected``: settled by this emitter (rejected ones are dead letters);
    ``dropped``: refused by a full in-memory outbox (``on_full="drop"``); ``retries``: attempts
    beyond each event's first; ``oldest_pending_age``: seconds since the oldest pending event
    was enqueued; ``dead_letters``: rows in the dead-letter table.
    """

    pending: int
    in_flight: int
    delivered: int
    rejected: int
    dropped: int
    retries: int
    oldest_pending_age: float | None
    dead_letters: int


def _number(value: object, param: str, *, positive: bool) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):  # type: ignore[operator]
        raise InvalidInputError(param, "must be a positive number" + ("" if positive else " or 0"))
    return float(value)  # type: ignore[arg-type]


def _count(value: object, param: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(param, "must be an integer >= 1")
    return value


def _describe(error: BaseException | None) -> str:
    return "" if error is None else f"{type(error).__name__}: {error}"


class EmitterKeywords(DeliveryKeywords, total=False):
    """``client.events.emitter``'s keywords (see it); each left out has its default."""

    outbox: str | os.PathLike[str] | None
    max_pending: int
    on_full: OnFull
    drain_timeout: float
    lease_seconds: float


class _Source:
    """The engine's input: rows leased by ``pull`` one at a time; it waits for new ones."""

    def __init__(self, pull: Callable[[_Source], Awaitable[dict[str, Any]]]) -> None:
        self.pull = pull
        self.buffer: collections.deque[Row] = collections.deque()  # leased, not handed over
        self.exhausted = False  # ended because closing found nothing left

    def __aiter__(self) -> _Source:
        return self

    async def __anext__(self) -> dict[str, Any]:
        return await self.pull(self)


class AsyncEmitter:
    """Background delivery from an outbox; made by ``client.events.emitter(...)``.

    Use it as ``async with client.events.emitter(...) as emitter:``; ``enqueue`` from anywhere
    in the process (the event loop's thread or others).
    """

    def __init__(self, pipeline: Pipeline, keywords: EmitterKeywords) -> None:
        check_keywords(keywords, EmitterKeywords.__optional_keys__)
        self._pipeline = pipeline
        self._keywords = keywords
        get: Any = keywords.get
        self._max_pending = _count(get("max_pending", DEFAULT_MAX_PENDING), "max_pending")
        on_full = get("on_full", "raise")
        if on_full not in ("raise", "block", "drop"):
            raise InvalidInputError("on_full", "must be 'raise', 'block' or 'drop'")
        self._on_full: OnFull = on_full
        delivery = {k: v for k, v in keywords.items() if k in DeliveryKeywords.__optional_keys__}
        self._bulk = BulkOptions.of(cast("BulkKeywords", delivery), pipeline.options)
        self._through: Pipeline | None = None  # another transport than the client's
        self.drain_timeout = _number(
            get("drain_timeout", DEFAULT_DRAIN_TIMEOUT), "drain_timeout", positive=False
        )
        self._lease_seconds = _number(
            get("lease_seconds", DEFAULT_LEASE_SECONDS), "lease_seconds", positive=True
        )
        outbox: object = get("outbox")
        self._store: Store
        if outbox is None:
            self._store = MemoryStore(self._max_pending)
        elif isinstance(outbox, (str, os.PathLike)) and os.fspath(outbox):
            self._store = SQLiteStore(cast("str | os.PathLike[str]", outbox))
        else:
            raise InvalidInputError("outbox", "must be a file path or None")
        self.outbox: str | None = None if outbox is None else os.fspath(outbox)
        self._delivered = 0
        self._rejected = 0
        self._retries = 0  # from finished engine runs, and requeues
        self._held = 0  # leased and not settled
        self._in_engine: dict[int, Row] = {}
        self._next_index = 0
        self._failure_streak = 0
        self._engine: Engine | None = None
        self._source: _Source | None = None
        self._idle: anyio.Event | None = None
        self._loop_thread: int | None = None
        self._wake_threadsafe: Callable[[Callable[[], object]], object] | None = None
        self._tg: Any = None
        self._entered = False
        self._closing = False
        self._closed = False
        self._stop_pulling = False
        self._finished: anyio.Event | None = None
        self._closing_event: anyio.Event | None = None
        self.last_error: BaseException | None = None

    def _copy(self) -> AsyncEmitter:
        """A new, unstarted emitter with the same settings (in a forked child)."""
        return type(self)(self._pipeline, self._keywords)

    # -- enqueue (plain: any thread) -----------------------------------------------------------

    def enqueue(
        self, *, type: str, data: dict[str, Any] | None = None, key: str | None = None
    ) -> str | None:
        """Store one event; returns its Idempotency-Key, or None if a full outbox dropped it.

        The event is checked at once (``InvalidInputError``). A ``key`` fixes the
        Idempotency-Key exactly as in ``emit_many`` (enqueueing the same key twice applies the
        event once); without one a random key is generated and stored with the event. Once
        this returns, the event will be delivered exactly once: with an outbox file whatever
        happens to the process, in memory as long as the process lives.
        """
        body = event_body(type, data)
        try:
            text = _JSON.encode(body)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError("data", f"must be JSON-serializable ({exc})") from None
        ukey = new_idempotency_key() if key is None else key
        idem = idempotency_key_for(ukey)  # checks a given key: a non-empty string
        if self._closed and self.outbox is None:
            raise EmitterClosedError("this emitter is closed: nothing would deliver the event")
        # Waiting for room needs a running delivery on another thread than this one.
        running = self._loop_thread is not None and not self._closing
        can_wait = running and threading.get_ident() != self._loop_thread
        try:
            stored = self._store.add(idem, ukey, text, on_full=self._on_full, block=can_wait)
        except OutboxFullError:
            if self._on_full == "block":
                raise OutboxFullError(
                    f"the in-memory outbox holds max_pending={self._max_pending} events;"
                    " on_full='block' cannot wait on the event loop's own thread, nor before"
                    " the emitter is started"
                ) from None
            raise
        if not stored:
            dropped = self.dropped
            if dropped == 1 or dropped % 1000 == 0:
                logger.warning(
                    "ventryx emitter: in-memory outbox full (max_pending=%d), %d event(s) dropped",
                    self._max_pending,
                    dropped,
                )
            return None
        self._notify()
        return idem

    @property
    def dropped(self) -> int:
        return self._store.dropped if isinstance(self._store, MemoryStore) else 0

    def _notify(self) -> None:
        idle = self._idle
        if idle is None:
            return
        self._idle = None
        if threading.get_ident() == self._loop_thread:
            idle.set()
        elif self._wake_threadsafe is not None:
            # RuntimeError: the loop is gone (nothing to wake)
            with contextlib.suppress(RuntimeError):
                self._wake_threadsafe(idle.set)

    # -- stats, flush, close ---------------------------------------------------------------------

    @property
    def stats(self) -> EmitterStats:
        """Counts now (see ``EmitterStats``)."""
        counts = self._store.counts()
        engine = self._engine
        retries = self._retries + (engine.summary.retries if engine is not None else 0)
        oldest = counts.oldest_created
        return EmitterStats(
            pending=counts.pending,
            in_flight=self._held,
            delivered=self._delivered,
            rejected=self._rejected,
            dropped=self.dropped,
            retries=retries,
            oldest_pending_age=None if oldest is None else max(0.0, time.time() - oldest),
            dead_letters=counts.dead,
        )

    async def flush(self, timeout: float | None = None) -> bool:  # noqa: ASYNC109 - a bound, as issue 16 names it
        """Wait until every stored event is settled, at most ``timeout`` seconds (None: no bound).

        True if nothing is left; False if the bound came first (the rest stays stored).
        """
        bound = math.inf if timeout is None else _number(timeout, "timeout", positive=False)
        deadline = anyio.current_time() + bound
        interval = 0.01 if self.outbox is None else 0.05
        while True:
            if self._held == 0 and self._store.outstanding() == 0:
                self._store.commit()
                return True
            remaining = deadline - anyio.current_time()
            if remaining <= 0:
                return False
            await anyio.sleep(min(interval, remaining))

    async def aclose(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 - as flush
        """Deliver what is stored for at most ``timeout`` seconds (``drain_timeout`` by default),
        then stop; what is left stays in the outbox file (lost, and logged, in memory)."""
        bound = (
            self.drain_timeout if timeout is None else _number(timeout, "timeout", positive=False)
        )
        if self._closed:
            return
        self._closing = True
        with anyio.CancelScope(shield=True):
            if self._tg is not None and self._finished is not None:
                if self._closing_event is not None:
                    self._closing_event.set()
                self._wake_local()
                with anyio.move_on_after(bound):
                    await self._finished.wait()
                if not self._finished.is_set():
                    self._stop_pulling = True
                    if self._engine is not None:
                        self._engine.interrupt(_CLOSE_GRACE)
                    self._wake_local()
                    await self._finished.wait()
                self._tg.cancel_scope.cancel()
            if self._through is not None:
                await self._through.shim.aclose()
            self._closed = True
            left = self._store.outstanding() + self._held
            if left and self.outbox is None:
                logger.warning(
                    "ventryx emitter: closed with %d event(s) undelivered in memory (lost)", left
                )
            self._store.close()

    async def __aenter__(self) -> AsyncEmitter:
        if self._entered:
            raise VentryxError("an emitter is started once; make a new one")
        self._through = separate_pipeline(self._pipeline, self._bulk.transport)
        self._entered = True
        self._loop_thread = threading.get_ident()
        self._wake_threadsafe = _threadsafe_caller()
        self._finished = anyio.Event()
        self._closing_event = anyio.Event()
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        tg.start_soon(self._deliver)
        tg.start_soon(self._housekeep)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
        tg, self._tg = self._tg, None
        if tg is not None:
            # The body's own exception propagates as it is, not wrapped in a group: the
            # delivery tasks are finished or cancelled by now.
            await tg.__aexit__(None, None, None)

    # -- delivery --------------------------------------------------------------------------------

    def _wake_local(self) -> None:
        idle, self._idle = self._idle, None
        if idle is not None:
            idle.set()

    async def _idle_wait(self, retake: Callable[[], bool]) -> None:
        idle = anyio.Event()
        self._idle = idle
        if retake():  # a row stored between the last look and announcing the wait
            self._idle = None
            return
        wait = 0.02 if self._closing else POLL_INTERVAL
        ready_in = self._store.next_ready_in()
        if ready_in is not None:
            wait = min(wait, ready_in)
        with anyio.move_on_after(wait):
            await idle.wait()
        self._idle = None

    async def _pull(self, source: _Source) -> dict[str, Any]:
        while True:
            if self._stop_pulling:
                raise StopAsyncIteration
            if source.buffer:
                return self._hand_over(source.buffer.popleft())
            if self._take(source):
                continue
            if self._closing and self._held == 0 and self._store.outstanding() == 0:
                source.exhausted = True
                raise StopAsyncIteration
            await self._idle_wait(lambda: self._take(source))

    def _take(self, source: _Source) -> bool:
        rows = self._store.lease(max(_LEASE_BATCH, 2 * self._bulk.concurrency), self._lease_seconds)
        self._held += len(rows)
        source.buffer.extend(rows)
        return bool(rows)

    def _hand_over(self, row: Row) -> dict[str, Any]:
        body = json.loads(row.body)
        index = self._next_index
        self._next_index += 1
        self._in_engine[index] = row
        return {"type": body["type"], "data": body.get("data"), "key": row.ukey}

    async def _deliver(self) -> None:
        assert self._finished is not None
        assert self._closing_event is not None
        pause = 0.0
        try:
            while not self._stop_pulling:
                if pause:
                    with anyio.move_on_after(pause):
                        await self._closing_event.wait()
                    if self._closing:
                        self._stop_pulling = True
                        break
                engine = Engine(
                    self._pipeline if self._through is None else self._through,
                    client_gate(self._pipeline),
                    BulkSummary(max_problems=0),
                    # Outcomes go to _settled, which passes the final ones on to on_result.
                    attrs.evolve(self._bulk, on_result=self._settled, cancel_grace=_CLOSE_GRACE),
                )
                source = _Source(self._pull)
                self._engine, self._source = engine, source
                try:
                    await engine.run(source)
                finally:
                    self._engine = self._source = None
                    self._retries += engine.summary.retries
                    for row in source.buffer:
                        self._held -= 1
                        self._store.release(row, 0.0)
                    source.buffer.clear()
                if source.exhausted:
                    break
                # The run ended early: a 401/403, or our own bookkeeping failed.
                self.last_error = engine.summary.stopped_by or engine.error
                if self.last_error is not None:
                    logger.error("ventryx emitter: delivery paused: %s", _describe(self.last_error))
                pause = min(30.0, max(1.0, 2 * pause))
        finally:
            self._store.commit()
            self._finished.set()

    def _settled(self, outcome: EventOutcome) -> None:
        row = self._in_engine.pop(outcome.index, None)
        if row is None:
            return
        self._held -= 1
        status, error = outcome.status, outcome.error
        final = True
        if status == "delivered":
            self._store.done(row)
            self._delivered += 1
            self._failure_streak = 0
        elif status == "rejected" and not isinstance(
            error, (AuthenticationError, PermissionDeniedError)
        ):
            code = error.status_code if isinstance(error, APIStatusError) else None
            self._store.dead(row, code, _describe(error))
            self._rejected += 1
        else:  # failed, 401/403, not sent or unanswered as the run stopped: later, same key
            final = False
            delay = 0.0
            if status in ("failed", "rejected"):
                self._failure_streak += 1
                self._retries += 1
                delay = self._pipeline.options.retry_policy.backoff(self._failure_streak)
                self.last_error = error
            self._store.release(row, delay)
        if self._closing:
            self._wake_local()
        if final and self._bulk.on_result is not None:
            try:
                self._bulk.on_result(attrs.evolve(outcome, index=row.id))
            except Exception:  # noqa: BLE001 - the caller's callback must not stop delivery
                logger.exception("ventryx emitter: on_result raised")

    async def _housekeep(self) -> None:
        renew_every = self._lease_seconds / 3
        renewed = checkpointed = anyio.current_time()
        checkpoint = getattr(self._store, "checkpoint", None)
        while True:
            await anyio.sleep(0.05)
            self._store.commit()
            if checkpoint is not None and anyio.current_time() - checkpointed >= _CHECKPOINT_EVERY:
                await anyio.to_thread.run_sync(checkpoint)
                checkpointed = anyio.current_time()
            if anyio.current_time() - renewed >= renew_every:
                renewed = anyio.current_time()
                source = self._source
                held = [*self._in_engine.values(), *(source.buffer if source else ())]
                self._store.renew(held, self._lease_seconds)


def _threadsafe_caller() -> Callable[[Callable[[], object]], object]:
    """How another thread makes the running loop call a function soon (without waiting)."""
    import sniffio  # noqa: PLC0415

    if sniffio.current_async_library() == "trio":
        import trio  # noqa: PLC0415

        return trio.lowlevel.current_trio_token().run_sync_soon
    import asyncio  # noqa: PLC0415

    return asyncio.get_running_loop().call_soon_threadsafe

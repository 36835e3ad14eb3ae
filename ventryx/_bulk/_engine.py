"""The bulk engine: a producer pulling the input lazily, a fixed pool of workers, one gate.

Memory is flat in the input size: at most ``concurrency`` events wait in the queue and
``concurrency`` are in the workers' hands. The engine runs shielded from the caller's
cancellation; the caller's wrapper turns a cancel into ``interrupt()``, which stops the
pulling, cancels waits at once and gives requests on the wire ``cancel_grace`` seconds to be
answered, so that every event pulled is reported exactly once before the cancel propagates.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterable, Iterable
from typing import Any, Protocol

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ventryx._bulk._gate import Gate, RateHeaders, Refusal, Ticket, parse_rate_headers
from ventryx._bulk._input import fresh_key, prepare
from ventryx._bulk._options import BulkOptions
from ventryx._bulk._results import BulkProgress, BulkSummary, EventOutcome, OutcomeStatus
from ventryx._errors import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    AuthenticationError,
    InvalidInputError,
    PermissionDeniedError,
    RateLimitError,
)
from ventryx._pipeline import Pipeline
from ventryx._retry import is_retryable, is_transient, retry_after_is_date
from ventryx.models import Event

__all__ = ["Engine", "HttpxSender", "Sender"]


class HttpxSender:
    """How events go out by default: requests built and sent by the pipeline's httpx client.

    A sender (this one; the rate simulations pass their own) has ``prepare``, which turns an
    event's body and key into what all its attempts send (``InvalidInputError`` if it cannot
    be), and ``send``, one attempt of that: the id of the event created, or an ``APIError``.
    A sender may also have ``rate_headers``: the X-RateLimit headers of the answer ``send``
    has just returned (the engine reads it at once, before anything else runs).
    """

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.rate_headers: RateHeaders | None = None

    def prepare(self, body: dict[str, Any], key: str) -> Any:
        return self.pipeline.build_request("POST", "/events", body=body, idempotency_key=key)

    async def send(self, prepared: Any, attempt: int) -> str:
        response = await self.pipeline.send_once(prepared, attempt)
        event_id = self.pipeline.decode(Event, response).id
        self.rate_headers = parse_rate_headers(response.raw.http_response.headers)
        return event_id


class Sender(Protocol):
    def prepare(self, body: dict[str, Any], key: str) -> Any: ...

    async def send(self, prepared: Any, attempt: int) -> str: ...


class _CircuitBreaker:
    """A sender that stops the run after ``limit`` attempts in a row got no answer at all.

    Any answer from the server (a 2xx, a 4xx, a 5xx) closes the count again: only a run of
    connection failures and timeouts, across all workers, trips it. Tripping records one
    ``APIConnectionError`` naming the count as the run's ``stopped_by`` and stops the run, as
    a 401 does; the event whose attempt tripped it is settled like any interrupted one.
    """

    def __init__(self, sender: Sender, limit: int, engine: Engine) -> None:
        self.inner = sender
        self.limit = limit
        self.engine = engine
        self.failures = 0

    def prepare(self, body: dict[str, Any], key: str) -> Any:
        return self.inner.prepare(body, key)

    @property
    def rate_headers(self) -> RateHeaders | None:
        return getattr(self.inner, "rate_headers", None)

    async def send(self, prepared: Any, attempt: int) -> str:
        try:
            event_id = await self.inner.send(prepared, attempt)
        except APIConnectionError as exc:
            self.failures += 1
            if self.failures >= self.limit and self.engine.summary.stopped_by is None:
                self.engine.summary.stopped_by = APIConnectionError(
                    f"stopped after {self.failures} connection failures in a row "
                    f"(no answer from the server); the last: {exc.message}",
                    request=exc.request,
                )
                self.engine.interrupt(self.engine.options.cancel_grace)
            raise
        except APIError:
            self.failures = 0
            raise
        self.failures = 0
        return event_id


class _Job:
    """One pulled event on its way: what all its attempts send, and their count."""

    __slots__ = ("attempts", "index", "key", "last_429", "prepared", "rate_limit_wait", "taken")

    def __init__(self, index: int, key: str, prepared: Any) -> None:
        self.index = index
        self.key = key
        self.prepared = prepared
        self.attempts = 0
        self.rate_limit_wait = 0.0  # every wait in the gate or on its own 429s, in seconds
        self.last_429: RateLimitError | None = None
        self.taken = False


class Engine:
    """One ``emit_many`` run; ``summary`` is filled in place as outcomes settle."""

    def __init__(
        self,
        pipeline: Pipeline,
        gate: Gate,
        summary: BulkSummary,
        options: BulkOptions,
        sender: Sender | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.sender: Sender = HttpxSender(pipeline) if sender is None else sender
        breaker = options.stop_after_connection_failures
        if breaker is not None:
            self.sender = _CircuitBreaker(self.sender, breaker, self)
        self.gate = gate
        self.summary = summary
        self.options = options
        self.policy = pipeline.options.retry_policy
        self.error: BaseException | None = None  # from the input or a callback: re-raised
        self.in_flight = 0
        self.stopping = False
        self._stop_deadline = math.inf
        self._producer = anyio.CancelScope()
        self._waiting: set[anyio.CancelScope] = set()
        self._sending: set[anyio.CancelScope] = set()
        self._started = time.monotonic()
        self._last_429: RateLimitError | None = None  # what a wait beyond the budget reports

    # -- control ---------------------------------------------------------------------------

    def interrupt(self, grace: float) -> None:
        """Stop pulling and retrying now; requests on the wire get ``grace`` seconds."""
        deadline = anyio.current_time() + grace
        self.stopping = True
        self._producer.cancel()
        for scope in list(self._waiting):
            scope.cancel()
        self._stop_deadline = min(self._stop_deadline, deadline)
        for scope in list(self._sending):
            scope.deadline = min(scope.deadline, deadline)

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.interrupt(self.options.cancel_grace)

    # -- the run ---------------------------------------------------------------------------

    async def run(self, events: Iterable[Any] | AsyncIterable[Any]) -> None:
        """Pull, send and report everything; never cancelled from outside (shielded)."""
        with anyio.CancelScope(shield=True):
            send, receive = anyio.create_memory_object_stream[_Job](self.options.concurrency)
            async with anyio.create_task_group() as outer:
                if self.options.on_progress is not None:
                    outer.start_soon(self._tick)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._produce, events, send)
                    for _ in range(self.options.concurrency):
                        tg.start_soon(self._work, receive.clone())
                    receive.close()
                outer.cancel_scope.cancel()
            self.summary.elapsed = time.monotonic() - self._started
            self._progress(final=True)

    async def _produce(
        self, events: Iterable[Any] | AsyncIterable[Any], send: MemoryObjectSendStream[_Job]
    ) -> None:
        with self._producer, send:
            index = 0
            try:
                if isinstance(events, AsyncIterable):
                    async for item in events:
                        await self._pull(index, item, send)
                        index += 1
                else:
                    for item in events:
                        await self._pull(index, item, send)
                        index += 1
            except Exception as exc:  # noqa: BLE001 - the caller's iterator failed: stop, re-raise
                if self.error is None:
                    self.error = exc

    async def _pull(self, index: int, item: object, send: MemoryObjectSendStream[_Job]) -> None:
        self.summary.pulled += 1
        key: str | None = None
        try:
            body, key = prepare(item)
            key = key or fresh_key()
            prepared = self.sender.prepare(body, key)
        except InvalidInputError as exc:
            self._report(
                EventOutcome(index=index, status="rejected", idempotency_key=key, error=exc)
            )
            return
        job = _Job(index, key, prepared)
        try:  # a free slot or a waiting worker takes it without a trip through the loop
            send.send_nowait(job)
        except anyio.WouldBlock:
            pass
        else:
            return
        try:
            await send.send(job)
        except BaseException:
            # Cancelled while waiting for room; the item may still have reached the queue, so
            # mark it settled there and the worker that finds it skips it.
            if not job.taken:
                job.taken = True
                self._report(self._outcome(job, "not_sent"))
            raise

    async def _work(self, receive: MemoryObjectReceiveStream[_Job]) -> None:
        with receive:
            while True:
                try:  # a queued job is taken without a trip through the loop
                    job = receive.receive_nowait()
                except anyio.WouldBlock:
                    try:
                        job = await receive.receive()
                    except anyio.EndOfStream:
                        return
                except anyio.EndOfStream:
                    return
                if job.taken:  # settled by the producer as it was cancelled
                    continue
                job.taken = True
                if self.stopping:
                    self._report(self._outcome(job, "not_sent"))
                    continue
                self.in_flight += 1
                self.summary.max_in_flight = max(self.summary.max_in_flight, self.in_flight)
                try:
                    outcome = await self._deliver(job)
                finally:
                    self.in_flight -= 1
                self._report(outcome)

    # -- one event ---------------------------------------------------------------------------

    async def _deliver(self, job: _Job) -> EventOutcome:
        retries = 0
        gate = self.gate
        while True:
            ticket = await self._admit(job)
            if not isinstance(ticket, Ticket):
                return ticket
            job.attempts += 1
            self.summary.attempts += 1
            if job.attempts == 1:
                self.summary.sent += 1
            error: APIError | None = None
            scope = anyio.CancelScope(deadline=self._stop_deadline)
            self._sending.add(scope)
            try:
                with scope:
                    try:
                        event_id = await self.sender.send(job.prepared, job.attempts)
                    except APIError as exc:
                        error = exc
                    else:
                        gate.on_answer(ticket, getattr(self.sender, "rate_headers", None))
                        return self._outcome(job, "delivered", event_id=event_id)
            finally:
                self._sending.discard(scope)
            if error is None:  # cancelled on the wire: the server may have applied it
                gate.on_lost(ticket)
                return self._outcome(job, "indeterminate")
            if isinstance(error, RateLimitError):
                outcome = await self._rate_limited(job, ticket, error)
                if outcome is not None:
                    return outcome
                continue
            if isinstance(error, APIStatusError):
                gate.on_answer(ticket)
            else:
                gate.on_lost(ticket)
            if isinstance(error, (AuthenticationError, PermissionDeniedError)):
                if self.summary.stopped_by is None:
                    self.summary.stopped_by = error
                self.interrupt(self.options.cancel_grace)
                return self._outcome(job, "rejected", error=error)
            # A 2xx with a body we cannot read: the replay of its key returns the stored answer.
            unreadable = isinstance(error, APIResponseValidationError)
            if not (unreadable or is_transient(error)):
                status: OutcomeStatus = (
                    "rejected" if isinstance(error, APIStatusError) else "failed"
                )
                return self._outcome(job, status, error=error)
            retryable = unreadable or is_retryable(error, self.policy)
            if retries >= self.options.max_retries or not retryable:
                return self._outcome(job, "failed", error=error)
            retries += 1
            if not await self._sleep(self.policy.delay(retries, error)):
                return self._unfinished(job)

    async def _admit(self, job: _Job) -> Ticket | EventOutcome:
        """A ticket of the gate, or the outcome when the run stopped or the budget ran out.

        The part of the wait the gate spends waiting out 429s (pauses and probes, not pacing)
        counts against the event's ``max_rate_limit_wait`` once a 429 is known to this run.
        """
        if self.stopping:
            return self._unfinished(job)
        ticket = self.gate.admit_now()  # the common case needs no cancel scope
        if ticket is not None:
            return ticket
        known = job.last_429 or self._last_429
        budget = max(self.options.max_rate_limit_wait - job.rate_limit_wait, 0.0)
        scope = anyio.CancelScope()
        self._waiting.add(scope)
        started = anyio.current_time()
        try:
            with scope:
                ticket = await self.gate.admit(budget if known is not None else math.inf)
        finally:
            self._waiting.discard(scope)
        if ticket is not None:
            job.rate_limit_wait += ticket.waited
        elif known is not None:
            job.rate_limit_wait += anyio.current_time() - started
        if self._halted():
            if ticket is not None:
                self.gate.on_lost(ticket)
            return self._unfinished(job)
        if ticket is None:  # waited its whole budget
            return self._outcome(job, "failed", error=known)
        return ticket

    async def _rate_limited(
        self, job: _Job, ticket: Ticket, error: RateLimitError
    ) -> EventOutcome | None:
        """Tell the gate, wait this event's own share; the outcome when its budget is spent."""
        self.summary.rate_limited += 1
        job.last_429 = self._last_429 = error
        retry_after = error.retry_after
        cap = self.policy.max_retry_after
        headers = parse_rate_headers(error.response.headers)
        coarse = retry_after_is_date(error.response.headers)
        refusal = Refusal(retry_after, headers, cap, coarse=coarse)
        own = self.gate.on_rate_limited(ticket, refusal)
        if retry_after is not None and retry_after > cap:
            return self._outcome(job, "failed", error=error)
        if job.rate_limit_wait + own > self.options.max_rate_limit_wait:
            return self._outcome(job, "failed", error=error)
        if own > 0:
            started = anyio.current_time()
            done = await self._sleep(own)
            job.rate_limit_wait += anyio.current_time() - started
            if not done:
                return self._unfinished(job)
        if job.rate_limit_wait >= self.options.max_rate_limit_wait:
            return self._outcome(job, "failed", error=error)
        return None

    async def _sleep(self, delay: float) -> bool:
        """Sleep ``delay`` seconds; False if the run stopped."""
        if self.stopping:
            return False
        scope = anyio.CancelScope()
        self._waiting.add(scope)
        try:
            with scope:
                await self.pipeline.shim.sleep(delay)
        finally:
            self._waiting.discard(scope)
        return not self._halted()

    def _halted(self) -> bool:
        return self.stopping

    def _unfinished(self, job: _Job) -> EventOutcome:
        return self._outcome(job, "indeterminate" if job.attempts else "not_sent")

    @staticmethod
    def _outcome(
        job: _Job,
        status: OutcomeStatus,
        *,
        event_id: str | None = None,
        error: BaseException | None = None,
    ) -> EventOutcome:
        return EventOutcome(
            index=job.index,
            status=status,
            idempotency_key=job.key,
            event_id=event_id,
            error=error,
            attempts=job.attempts,
        )

    # -- reporting -----------------------------------------------------------------------------

    def _report(self, outcome: EventOutcome) -> None:
        self.summary.record(outcome)
        if self.options.on_result is not None:
            try:
                self.options.on_result(outcome)
            except Exception as exc:  # noqa: BLE001 - the caller's callback: stop, re-raise later
                self._fail(exc)

    async def _tick(self) -> None:
        while True:
            await anyio.sleep(self.options.progress_interval)
            self._progress(final=False)

    def _progress(self, *, final: bool) -> None:
        if self.options.on_progress is None:
            return
        s = self.summary
        snapshot = BulkProgress(
            pulled=s.pulled,
            sent=s.sent,
            delivered=s.delivered,
            rejected=s.rejected,
            failed=s.failed,
            not_sent=s.not_sent,
            indeterminate=s.indeterminate,
            in_flight=self.in_flight,
            attempts=s.attempts,
            retries=s.retries,
            rate_limited=s.rate_limited,
            rate=self.gate.rate,
            elapsed=time.monotonic() - self._started,
            final=final,
        )
        try:
            self.options.on_progress(snapshot)
        except Exception as exc:  # noqa: BLE001 - the caller's callback: stop, re-raise later
            self._fail(exc)

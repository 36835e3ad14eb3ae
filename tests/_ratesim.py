"""A deterministic simulation of bulk rate control: the real ``Engine`` and ``RateGate``
against the server's own limiters, on trio's virtual clock (no sockets, no wall time).

Each request reaches the limiter ``latency / 2`` after it is sent, is held there for the
limiter's service time when admitted, and its answer takes another ``latency / 2``. A 429
is built as a real ``httpx.Response`` and mapped by the SDK's own code, so every Retry-After
form and the X-RateLimit headers go through the parsing the SDK uses.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Any

import anyio
import httpx
import trio
import trio.testing

from ventryx import AsyncVentryx, RetryPolicy
from ventryx._bulk._engine import Engine
from ventryx._bulk._gate import RateGate, RateHeaders, Refusal, Ticket, parse_rate_headers
from ventryx._bulk._options import BulkOptions
from ventryx._bulk._results import BulkSummary
from ventryx._pipeline import error_from_response
from ventryx.testing._ratelimit import Limiter, RateLimit, make_limiter

_REQUEST = httpx.Request("POST", "http://sim.invalid/v1/events")
_BODY = {"error": {"code": "rate_limit_exceeded", "message": "slow down"}}


class Result:
    def __init__(self) -> None:
        self.summary = BulkSummary()
        self.delivered_at: list[float] = []
        self.sent_at: list[float] = []
        self.applied: dict[str, int] = {}
        self.elapsed = 0.0
        self.rate_limited = 0

    @property
    def attempts(self) -> int:
        return self.summary.attempts

    @property
    def share_429(self) -> float:
        return self.rate_limited / max(self.attempts, 1)

    def steady_rate(self) -> float:
        """Delivered per second over the second half of the deliveries (after learning)."""
        times = sorted(self.delivered_at)
        if len(times) < 4:
            return math.inf
        half = len(times) // 2
        span = times[-1] - times[half]
        return (len(times) - 1 - half) / span if span > 0 else math.inf


class SimSender:
    def __init__(
        self,
        limit: RateLimit,
        latency: float,
        result: Result,
        seed: int,
        limiter: Limiter | None = None,
        cold: tuple[int, float] = (0, 0.0),
    ) -> None:
        self.limiter = make_limiter(limit, trio.current_time()) if limiter is None else limiter
        self.rate_headers: RateHeaders | None = None  # the last answer's, as HttpxSender
        self.latency = latency
        self.result = result
        # (n, seconds): the first n requests take that much longer on their way out, as the
        # first request of each new connection of a cold process does over real HTTP.
        self._cold_left, self._cold = cold
        # Timers due at the same instant fire in an order trio does not fix (it follows
        # memory addresses): a seeded microsecond of jitter orders them reproducibly.
        self._random = random.Random(seed)

    def _half_trip(self) -> float:
        return self.latency / 2 + self._random.random() * 1e-6

    def prepare(self, body: dict[str, Any], key: str) -> Any:
        return key

    async def send(self, prepared: Any, attempt: int) -> str:
        result = self.result
        result.sent_at.append(trio.current_time())
        if self._cold_left > 0:
            self._cold_left -= 1
            await trio.sleep(self._cold)
        await trio.sleep(self._half_trip())
        decision = self.limiter.admit(trio.current_time())
        if decision.allowed:
            try:
                await trio.sleep(decision.hold)
            finally:
                self.limiter.release(trio.current_time())
            result.applied[prepared] = result.applied.get(prepared, 0) + 1
        await trio.sleep(self._half_trip())
        if not decision.allowed:
            result.rate_limited += 1
            raise error_from_response(
                httpx.Response(429, headers=decision.headers, json=_BODY, request=_REQUEST)
            )
        result.delivered_at.append(trio.current_time())
        self.rate_headers = parse_rate_headers(httpx.Headers(decision.headers))
        return f"evt_{prepared}"


class OldGateAdapter:
    """The gate before issue 13 (``tests/_old_gate.py``, git's original) behind the ``Gate``
    protocol, so the sweep can show a point it fails."""

    def __init__(self, *, clock: Callable[[], float], sleep: Callable[[float], Any]) -> None:
        from _old_gate import RateGate as OldGate

        self._gate = OldGate(clock=clock, sleep=sleep)
        self._policy = RetryPolicy(initial_delay=0.05, max_delay=1.0, jitter=0.0)

    @property
    def rate(self) -> float | None:
        return self._gate.rate  # type: ignore[no-any-return]

    def admit_now(self) -> Ticket | None:
        epoch = self._gate.admit_now()
        return None if epoch is None else Ticket(epoch, 0.0, 0)

    async def admit(self, budget: float = math.inf) -> Ticket | None:
        return Ticket(await self._gate.admit(), 0.0, 0)

    def on_answer(self, ticket: Ticket, headers: Any = None) -> None:
        self._gate.passed()

    def on_rate_limited(self, ticket: Ticket, refusal: Refusal) -> float:
        backoff = self._policy.backoff(self._gate.streak + 1)
        self._gate.rate_limited(ticket.epoch, refusal.retry_after, backoff)
        return 0.0

    def on_lost(self, ticket: Ticket) -> None:
        pass


def simulate(
    limit: RateLimit,
    *,
    events: int,
    concurrency: int,
    latency: float,
    gate_factory: Callable[..., Any] = RateGate,
    max_rate_limit_wait: float = 300.0,
    max_retry_after: float = 60.0,
    seed: int = 0,
    cold: float = 0.0,
) -> Result:
    """Run ``events`` through the engine against ``limit``; all in virtual time."""
    return simulate_fleet(
        limit,
        clients=1,
        events=events,
        concurrency=concurrency,
        latency=latency,
        gate_factory=gate_factory,
        max_rate_limit_wait=max_rate_limit_wait,
        max_retry_after=max_retry_after,
        seed=seed,
        cold=cold,
    )[0]


def simulate_fleet(
    limit: RateLimit,
    *,
    clients: int,
    events: int,
    concurrency: int,
    latency: float,
    gate_factory: Callable[..., Any] = RateGate,
    max_rate_limit_wait: float = 300.0,
    max_retry_after: float = 60.0,
    seed: int = 0,
    cold: float = 0.0,
) -> list[Result]:
    """``clients`` independent clients (each its own gate, as K processes have) running
    ``events`` each at once against one limiter; one ``Result`` per client. ``cold`` adds
    that many seconds to each client's first ``concurrency`` requests (new connections)."""
    results = [Result() for _ in range(clients)]

    async def one(result: Result, limiter: Limiter, index: int) -> None:
        gate = gate_factory(clock=trio.current_time, sleep=trio.sleep)
        policy = RetryPolicy(
            initial_delay=0.05, max_delay=1.0, jitter=0.0, max_retry_after=max_retry_after
        )
        client = AsyncVentryx(
            api_key="vx_sim", base_url="http://sim.invalid/v1", retry_policy=policy
        )
        sender = SimSender(limit, latency, result, seed + index, limiter, (concurrency, cold))
        options = BulkOptions.of(
            {
                "concurrency": concurrency,
                "max_retries": 3,
                "max_rate_limit_wait": max_rate_limit_wait,
                "cancel_grace": 1.0,
            },
            client._pipeline.options,
        )
        engine = Engine(client._pipeline, gate, result.summary, options, sender=sender)
        start = trio.current_time()
        await engine.run({"type": "sim", "data": {}, "key": f"c{index}k{i}"} for i in range(events))
        result.elapsed = trio.current_time() - start

    async def main() -> None:
        limiter = make_limiter(limit, trio.current_time())
        async with anyio.create_task_group() as tg:
            for index, result in enumerate(results):
                tg.start_soon(one, result, limiter, index)

    trio._core._run._r.seed(seed)
    clock = trio.testing.MockClock(autojump_threshold=0)
    anyio.run(main, backend="trio", backend_options={"clock": clock})
    return results


def jain(rates: list[float]) -> float:
    """Jain's fairness index of per-client rates (1: all equal)."""
    total = sum(rates)
    squares = sum(r * r for r in rates)
    return total * total / (len(rates) * squares) if squares > 0 else 1.0


def effective_capacity(limit: RateLimit, concurrency: int, latency: float) -> float:
    """What a perfect client could get: the limiter's capacity, or its own concurrency."""
    trip = latency + limit.latency
    own = concurrency / trip if trip > 0 else math.inf
    return min(limit.capacity, own)


def events_for(limit: RateLimit, concurrency: int, latency: float) -> int:
    """Events enough for the controller to settle (a few windows, some 20 s), yet few."""
    capacity = effective_capacity(limit, concurrency, latency)
    if limit.shape in ("fixed_window", "sliding_window"):
        return max(6 * limit.per_window, 600)
    return int(min(max(capacity * 20.0, 600), 6000)) if math.isfinite(capacity) else 3000


def misses(limit: RateLimit, concurrency: int, latency: float, result: Result) -> list[str]:
    """The issue 13 targets this run misses (empty: all met).

    Throughput is the delivered rate over the second half of the run (after learning); the
    429 share leaves out one round trip's worth (``concurrency``) at the cold start, which no
    client that starts unpaced can avoid.
    """
    problems: list[str] = []
    s = result.summary
    if s.delivered != s.pulled or any(n != 1 for n in result.applied.values()):
        problems.append(f"lost or duplicated: {s}")
    share = max(result.rate_limited - concurrency, 0) / max(result.attempts, 1)
    capacity = effective_capacity(limit, concurrency, latency)
    steady = result.steady_rate()
    if limit.shape == "sporadic":
        return problems
    floor = 0.9 if limit.shape == "concurrency" else 0.95
    if steady < floor * capacity:
        problems.append(f"delivered {steady:.1f}/s < {floor} x {capacity:.1f}/s")
    if share > 0.05:
        problems.append(f"429 share {share:.3f} > 0.05")
    return problems


def fleet_events(limit: RateLimit, clients: int) -> int:
    """Events per client for a fleet run: some 20 s at the limit in all, at least 100 each."""
    return int(max(limit.capacity * 20.0 / clients, 100))


def fleet_misses(limit: RateLimit, results: list[Result], events: int) -> list[str]:
    """The issue 13 targets for K processes on one limit that this run misses (empty: all met).

    Measured as the benchmark measures its K rows: the total is every client's events over
    the time the last client took, each client's rate its events over its own time (Jain's
    index of those), the 429 share of all attempts.
    """
    problems: list[str] = []
    for result in results:
        s = result.summary
        if s.delivered != events or any(n != 1 for n in result.applied.values()):
            problems.append(f"lost or duplicated: {s}")
    slowest = max(result.elapsed for result in results)
    total = len(results) * events / slowest / limit.capacity if slowest > 0 else math.inf
    attempts = sum(result.attempts for result in results)
    share = sum(result.rate_limited for result in results) / max(attempts, 1)
    fairness = jain([events / max(result.elapsed, 1e-9) for result in results])
    if total < 0.9:
        problems.append(f"total {total:.2f} R < 0.9 R")
    if share > 0.10:
        problems.append(f"429 share {share:.3f} > 0.10")
    if fairness < 0.9:
        problems.append(f"fairness {fairness:.2f} < 0.9")
    return problems

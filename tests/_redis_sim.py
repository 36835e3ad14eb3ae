"""K clients sharing one ``RedisRateGate`` key against one server limiter, in virtual time.

Each client is a real ``Engine`` with its own ``RedisRateGate`` (its own Redis connection,
nothing in common but the key); all of them send to one limiter of
``ventryx.testing._ratelimit`` through ``_ratesim.SimSender``, on trio's ``MockClock``. The
gate's Lua script runs in a real ``redis-server``, given the virtual clock in place of Redis's
``TIME`` (the gate's simulation hook), and its Redis calls run inline, so no time passes in
them: the run is the controller's, not this machine's. ``first_trip``: requests sent before
then arrive only then (connections set up while every process starts at once).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import trio
import trio.testing
from _ratesim import Result, SimSender

from ventryx import AsyncVentryx, RedisRateGate, RetryPolicy
from ventryx._bulk._engine import Engine
from ventryx._bulk._gate import RateGate
from ventryx._bulk._options import BulkOptions
from ventryx.testing._ratelimit import RateLimit, make_limiter


class _Sender(SimSender):
    def __init__(self, limiter: Any, latency: float, result: Result, seed: int, first: float):
        super().__init__(RateLimit(), latency, result, seed)
        self.limiter = limiter
        self._until = trio.current_time() + first  # until then, no request gets through

    async def send(self, prepared: Any, attempt: int) -> str:
        await trio.sleep_until(self._until)
        return await super().send(prepared, attempt)


class Fleet:
    """What each client delivered, attempted and had refused, over ``seconds``."""

    def __init__(self, clients: int) -> None:
        self.results = [Result() for _ in range(clients)]
        self.gates: list[RedisRateGate] = []

    @property
    def delivered(self) -> list[int]:
        return [r.summary.delivered for r in self.results]

    @property
    def share_429(self) -> float:
        attempts = sum(r.summary.attempts for r in self.results)
        return sum(r.rate_limited for r in self.results) / max(attempts, 1)

    @property
    def fairness(self) -> float:
        got = self.delivered
        squares = sum(d * d for d in got)
        return sum(got) ** 2 / (len(got) * squares) if squares else 0.0


def simulate_fleet(
    redis_url: str,
    limit: RateLimit,
    *,
    clients: int,
    seconds: float,
    concurrency: int = 16,
    latency: float = 0.005,
    first_trip: float = 0.0,
    skews: list[float] | None = None,
    seed: int = 0,
    shared: bool = True,
) -> Fleet:
    """Run ``clients`` engines for ``seconds`` of virtual time against one limiter
    (``shared=False``: each with its own ``RateGate`` instead, for comparison)."""
    fleet = Fleet(clients)
    key = f"ventryx:sim:{uuid.uuid4().hex}"
    offsets = skews or [0.0] * clients

    def events(tag: int) -> Iterator[dict[str, Any]]:
        i = 0
        while True:
            yield {"type": "sim", "data": {}, "key": f"c{tag}-{i}"}
            i += 1

    async def main() -> None:
        limiter = make_limiter(limit, trio.current_time())
        policy = RetryPolicy(initial_delay=0.05, max_delay=1.0, jitter=0.0, max_retry_after=60)
        engines: list[Engine] = []
        async with anyio.create_task_group() as tg:
            for i in range(clients):
                gate = RedisRateGate(redis_url, key=key)
                offset = offsets[i]
                gate._clock = lambda offset=offset: trio.current_time() + offset  # type: ignore[misc]
                gate._virtual = trio.current_time  # Redis's clock: one for all hosts
                fleet.gates.append(gate)
                client = AsyncVentryx(
                    api_key="vx_sim", base_url="https://sim.invalid/v1", retry_policy=policy
                )
                sender = _Sender(limiter, latency, fleet.results[i], seed + i, first_trip)
                options = BulkOptions.of(
                    {
                        "concurrency": concurrency,
                        "max_retries": 3,
                        "max_rate_limit_wait": 600.0,
                        "cancel_grace": 0.0,
                    },
                    client._pipeline.options,
                )
                engine = Engine(
                    client._pipeline,
                    gate if shared else RateGate(clock=trio.current_time, sleep=trio.sleep),
                    fleet.results[i].summary,
                    options,
                    sender=sender,
                )

                engines.append(engine)
                tg.start_soon(engine.run, events(i))
            await anyio.sleep(seconds)
            for engine in engines:  # as a cancelled emit_many: stop, settle what is out
                engine.interrupt(0.0)

    trio._core._run._r.seed(seed)
    clock = trio.testing.MockClock(autojump_threshold=0)
    try:
        anyio.run(main, backend="trio", backend_options={"clock": clock})
    finally:
        for gate in fleet.gates:
            gate.close()
    return fleet


def expected(limit: RateLimit, seconds: float) -> float:
    """What the limiter can admit in ``seconds`` (its capacity, and a bucket's burst)."""
    extra = limit.burst if limit.shape == "token_bucket" else 0
    return limit.capacity * seconds + extra if math.isfinite(limit.capacity) else math.inf

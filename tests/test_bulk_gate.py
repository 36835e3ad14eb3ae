"""The rate gate on a fake clock: pause-all, paced restart, adaptive rate."""

from __future__ import annotations

import itertools

import anyio
import pytest

from ventryx._bulk._gate import BETA, HOLDOFF, RateGate


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()


def make() -> tuple[RateGate, FakeClock]:
    clock = FakeClock()
    return RateGate(clock=clock, sleep=clock.sleep), clock


@pytest.mark.anyio
async def test_unpaced_until_the_first_429() -> None:
    gate, clock = make()
    for _ in range(100):
        await gate.admit()
    assert gate.rate is None
    assert clock.sleeps == []


@pytest.mark.anyio
async def test_429_pauses_until_retry_after_then_paces() -> None:
    gate, clock = make()
    for _ in range(200):  # 200 answers in one second: the server took 200/s
        gate.passed()
        clock.now += 0.005
    epoch = await gate.admit()
    wait = gate.rate_limited(epoch, 0.5, backoff=0.1)
    assert wait == pytest.approx(0.5)
    rate = gate.rate
    assert rate is not None
    assert rate == pytest.approx(200 * BETA, rel=0.05)
    start = clock.now
    times = []
    for _ in range(10):
        await gate.admit()
        times.append(clock.now)
    assert times[0] == pytest.approx(start + 0.5)  # nobody before Retry-After
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(g == pytest.approx(1 / rate, rel=0.1) for g in gaps)  # paced, no burst


@pytest.mark.anyio
async def test_backoff_when_no_retry_after_and_one_decrease_per_episode() -> None:
    gate, clock = make()
    for _ in range(100):
        gate.passed()
        clock.now += 0.01
    epoch = await gate.admit()
    assert gate.rate_limited(epoch, None, backoff=0.25) == pytest.approx(0.25)
    first = gate.rate
    # Other requests of the same episode answer 429 too: no further decrease.
    for _ in range(5):
        gate.rate_limited(epoch, None, backoff=0.25)
    assert gate.episodes == 1
    assert gate.rate == first


@pytest.mark.anyio
async def test_rate_recovers_then_probes_above_the_estimate() -> None:
    gate, clock = make()
    for _ in range(100):
        gate.passed()
        clock.now += 0.01
    epoch = await gate.admit()
    gate.rate_limited(epoch, 0.0, backoff=0.0)
    low = gate.rate
    assert low is not None
    clock.now += 0.5
    mid = gate.rate
    assert mid is not None
    assert mid > low
    clock.now += 2.0
    high = gate.rate
    assert high is not None
    assert high > mid * 1.5


@pytest.mark.anyio
async def test_a_429_while_waiting_requeues_behind_the_pause() -> None:
    gate, clock = make()
    for _ in range(100):
        gate.passed()
        clock.now += 0.01
    epoch = await gate.admit()
    gate.rate_limited(epoch, 0.1, backoff=0.0)
    clock.now += HOLDOFF + 1
    epoch = await gate.admit()
    gate.rate_limited(epoch, 2.0, backoff=0.0)
    before = clock.now
    await gate.admit()
    assert clock.now >= before + 2.0

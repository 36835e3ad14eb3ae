"""The simulated sweep of limiter shapes (virtual clock, the real engine and gate).

Asserted at every point: nothing lost or duplicated, every event settled, no run stalled
past its wait budget. The throughput targets of issue 13 (>= 0.95 R, <= 5% 429s, ...) are
measured by the same harness (``python tests/_ratesim.py``) and not yet met at every point:
see the rate-control notes in ``docs/RATE_CONTROL.md``.
"""

from __future__ import annotations

import warnings

import pytest
from _ratesim import (
    OldGateAdapter,
    Result,
    effective_capacity,
    events_for,
    fleet_events,
    fleet_misses,
    misses,
    simulate,
    simulate_fleet,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ventryx.testing._ratelimit import RETRY_AFTER_FORMS, RateLimit

# Virtual time, pure logic, seconds of CPU: run once, on 3.11 (the same on every Python).
pytestmark = [
    pytest.mark.filterwarnings("ignore::ventryx.InsecureBaseURLWarning"),
    pytest.mark.slow,
]

FORMS = st.sampled_from(RETRY_AFTER_FORMS)


@st.composite
def limits(draw: st.DrawFn) -> tuple[RateLimit, int, float]:
    shape = draw(
        st.sampled_from(
            ["token_bucket", "fixed_window", "sliding_window", "concurrency", "sporadic"]
        )
    )
    latency = draw(st.sampled_from([0.0, 0.005, 0.05, 0.2]))
    concurrency = draw(st.sampled_from([1, 8, 64, 256]))
    form = draw(FORMS)
    headers = draw(st.booleans())
    rate = draw(st.sampled_from([5.0, 50.0, 500.0, 5000.0]))
    if shape == "token_bucket":
        burst = draw(st.integers(1, max(1, int(2 * rate))))
        limit = RateLimit(rate, burst=burst, retry_after=form, rate_headers=headers)
    elif shape in ("fixed_window", "sliding_window"):
        window = draw(st.sampled_from([0.1, 1.0, 10.0, 60.0]))
        rate = min(rate, 2000.0 / window)  # at most 2,000 a window: the run stays small
        limit = RateLimit(rate, shape=shape, window=window, retry_after=form, rate_headers=headers)
    elif shape == "concurrency":
        limit = RateLimit(
            shape="concurrency",
            max_in_service=draw(st.sampled_from([1, 4, 32, 256])),
            latency=max(latency, 0.01),
            retry_after=form,
            rate_headers=headers,
        )
    else:
        limit = RateLimit(
            shape="sporadic", probability=draw(st.sampled_from([0.0, 0.05, 0.2, 0.3])),
            retry_after=form, latency=latency, sporadic_wait=0.01,
        )  # fmt: skip
    return limit, concurrency, latency


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=limits())
def test_sweep_every_event_settles_exactly_once(case: tuple[RateLimit, int, float]) -> None:
    limit, concurrency, latency = case
    events = 300
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = simulate(
            limit,
            events=events,
            concurrency=concurrency,
            latency=latency,
            max_rate_limit_wait=120.0,
        )
    s = result.summary
    assert s.pulled == events
    assert s.delivered + s.failed == events, s
    assert all(n == 1 for n in result.applied.values())  # nothing applied twice
    assert len(result.applied) == s.delivered  # every delivered one applied


# Points where the issue 13 targets are asserted (virtual time: deterministic, no wall time).
# Every Retry-After form on the bucket that failed most (R=200, burst 1), a large and a small
# burst, latency, a concurrency limit, windows. The sweep above asserts the invariants on the
# whole space; the points of the space where targets are still missed are listed in
# docs/RATE_CONTROL.md.
TARGET_POINTS = [
    pytest.param(RateLimit(200, burst=1, retry_after=form), 64, 0.01, id=f"bucket-200-b1-{form}")
    for form in RETRY_AFTER_FORMS
] + [
    pytest.param(
        RateLimit(200, burst=1, retry_after="absent", rate_headers=False), 64, 0.01,
        id="bucket-200-b1-no-headers-at-all",
    ),
    pytest.param(RateLimit(50, burst=1), 16, 0.01, id="bucket-50-b1"),
    pytest.param(RateLimit(500, burst=400), 64, 0.01, id="bucket-500-b400"),
    # The benchmark's bucket: refusals saying nothing remains were taken for background
    # (44.6% 429s at 3 ms before the gate read Remaining: 0 as the limit).
    pytest.param(RateLimit(50, burst=25), 64, 0.003, id="bucket-50-b25-3ms"),
    # Whole-second Retry-After: the first window measure is a lower bound (0.94 R steady and
    # 6.7% 429s when it was probed above as slowly as a measure on exact waits).
    pytest.param(
        RateLimit(50, burst=25, retry_after="seconds"), 64, 0.003, id="bucket-50-b25-seconds-3ms"
    ),
    pytest.param(RateLimit(1000, burst=10), 64, 0.02, id="bucket-1000-b10-latency-20ms"),
    pytest.param(
        RateLimit(shape="concurrency", max_in_service=4, latency=0.02), 64, 0.01,
        id="concurrency-4x20ms",
    ),
    # A fixed window: the wait for the spent window to end once counted in the span its
    # admissions were measured over (a second of pause in two: 0.90 R steady, 33/s measured).
    pytest.param(
        RateLimit(50, shape="fixed_window", window=1.0), 64, 0.003, id="fixed-window-50-per-1s"
    ),
    pytest.param(
        RateLimit(50, shape="fixed_window", window=1.0, retry_after="absent", rate_headers=True),
        256, 0.05, id="fixed-window-50-per-1s-reset-header-only-c256-50ms",
    ),
    # Whole-second Retry-After on a window of 2 s: waited out in full, each refusal lost up
    # to a second and measured the window short (0.86 R steady at c=16, 0.82 R at c=256);
    # now probed early inside the last second of the wait.
    pytest.param(
        RateLimit(100, shape="fixed_window", window=2.0, retry_after="seconds"), 16, 0.01,
        id="fixed-window-200-per-2s-seconds-c16-10ms",
    ),
    pytest.param(
        RateLimit(100, shape="fixed_window", window=2.0, retry_after="seconds"), 256, 0.05,
        id="fixed-window-200-per-2s-seconds-c256-50ms",
    ),
]  # fmt: skip


def run(limit: RateLimit, concurrency: int, latency: float, **kwargs: object) -> Result:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return simulate(
            limit,
            events=events_for(limit, concurrency, latency),
            concurrency=concurrency,
            latency=latency,
            **kwargs,  # type: ignore[arg-type]
        )


@pytest.mark.parametrize(("limit", "concurrency", "latency"), TARGET_POINTS)
def test_targets(limit: RateLimit, concurrency: int, latency: float) -> None:
    result = run(limit, concurrency, latency)
    assert misses(limit, concurrency, latency, result) == []


@pytest.mark.parametrize("p", [0.05, 0.2])
def test_sporadic_429s_cost_little_throughput(p: float) -> None:
    def answers_per_second(probability: float) -> float:
        limit = RateLimit(shape="sporadic", probability=probability, sporadic_wait=0.001)
        result = simulate(limit, events=8000, concurrency=64, latency=0.02)
        assert result.summary.delivered == 8000
        return result.attempts / result.elapsed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert answers_per_second(p) >= 0.9 * answers_per_second(0.0)


def test_the_old_gate_misses_targets_the_new_one_meets() -> None:
    """The sweep can fail: git's original gate misses at points the new gate passes."""
    for limit in (
        RateLimit(200, burst=1, retry_after="seconds"),
        RateLimit(200, burst=1, retry_after="fractional"),
    ):
        old = run(limit, 64, 0.01, gate_factory=OldGateAdapter)
        assert misses(limit, 64, 0.01, old) != []
    sporadic = RateLimit(shape="sporadic", probability=0.05, sporadic_wait=0.001)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old = simulate(
            sporadic, events=1000, concurrency=64, latency=0.02, gate_factory=OldGateAdapter
        )
        new = simulate(sporadic, events=1000, concurrency=64, latency=0.02)
    assert old.elapsed > 1.5 * new.elapsed  # the old gate ratchets down on sporadic 429s


COLD_POINTS = [
    pytest.param(RateLimit(50, burst=1), 0.4, id="bucket-50-b1-cold-400ms"),
    pytest.param(RateLimit(200, burst=1), 1.0, id="bucket-200-b1-cold-1s"),
    pytest.param(RateLimit(5, burst=1), 1.0, id="bucket-5-b1-cold-1s"),
    pytest.param(
        RateLimit(shape="concurrency", max_in_service=4, latency=0.02), 1.0,
        id="concurrency-4x20ms-cold-1s",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("limit", "cold"), COLD_POINTS)
def test_a_cold_first_round_trip_is_not_taken_for_the_limit(limit: RateLimit, cold: float) -> None:
    """A new process's first requests each open a connection: their round trip can be a
    second where the next ones take milliseconds. Measured on that round trip, slow start
    began at one request a second, its first refusal ended it at what its climb had averaged
    and its flood-floor pauses measured the same climb again: a bucket of R=50, burst 1,
    delivered 0.28 R over the run (0.4 s cold), R=200 0.16 R (1 s cold)."""
    result = run(limit, 64, 0.003, cold=cold)
    assert misses(limit, 64, 0.003, result) == []
    delivered = result.summary.delivered / result.elapsed
    assert delivered >= 0.8 * effective_capacity(limit, 64, 0.003)


def test_a_cold_start_refused_before_any_answer_measures_the_admissions_in_service() -> None:
    """A limit of 32 requests in service (20 ms each), 64 sent at once: the 32 refused answer
    at once, the 32 admitted a service time later. The refused half once stopped the measure,
    so the gate climbed from one request per round trip: 0.48 of the capacity after learning
    (0.90 now)."""
    limit = RateLimit(shape="concurrency", max_in_service=32, latency=0.02)
    result = run(limit, 64, 0.003)
    assert result.steady_rate() >= 0.85 * effective_capacity(limit, 64, 0.003)
    assert result.share_429 <= 0.01


def test_a_short_run_on_a_bucket_of_one_is_not_measured_at_the_flood_floor() -> None:
    """300 events, c=64, 3 ms round trips, R=50 burst 1: the cold start's repeated refusals
    once measured one admission per 50 ms flood-floor pause (0.38 R over the run)."""
    limit = RateLimit(50, burst=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = simulate(limit, events=300, concurrency=64, latency=0.003)
    assert result.summary.delivered == 300
    assert 300 / result.elapsed >= 0.8 * limit.rate


@pytest.mark.parametrize("clients", [2, 4])
def test_clients_sharing_one_limit_each_settle_every_event_once(clients: int) -> None:
    """K clients, each its own gate, on one bucket (the benchmark's K processes): nothing
    lost or duplicated. Their total and fairness miss the issue's targets (see the note)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = simulate_fleet(
            RateLimit(50, burst=1), clients=clients, events=100, concurrency=16, latency=0.003
        )
    for result in results:
        assert result.summary.delivered == 100, result.summary
        assert len(result.applied) == 100
        assert all(n == 1 for n in result.applied.values())


# K independent clients (each its own gate, as K processes have) on one token bucket: the
# issue's targets (total >= 0.9 R, <= 10% 429s, Jain fairness >= 0.9) over rates 20-500,
# bursts 1 to R, K = 2, 4, 8; c=16 each, 3 ms round trips. The points this gate still misses
# are strict xfails, each with what it measured: one that starts to pass fails the run, so the
# list stays true. The gate before this sweep (git 64c74b3) met 3 of these 21 points (R=50 b10
# K=2, R=200 b20 K=2, R=500 b50 K=2); this one meets R=50 b50 K=2, R=200 b20 K=2, R=500 b50
# K=2 and R=500 b50 K=4; since a few-sample cycle refused within half a second cuts deeper,
# R=50 b10 K=2, R=50 b50 K=2, R=200 b20 K=2 and R=500 b50 K=2 (R=500 b50 K=4: 0.899 R);
# since a window measure on few admissions cuts no deeper than a few-sample episode, R=50 b10
# K=2, R=50 b50 K=2, R=200 b20 K=2 and K=4, R=500 b50 K=4 and K=8 (R=500 b50 K=2: 0.899 R;
# it passes on seeds 1-3).
# Uncoordinated gates on one limit are chaotic (a small change to one client's measure moves
# points both ways: at the change that let a cold start's later answers finish its measure,
# R=50 b10 K=2 went from 0.74 R to 0.49 R and R=500 b50 K=8 from 0.56 R to 0.44 R, R=50 b50
# K=8 from 0.57 R to 0.66 R): read the mean, not a single point.
# Over seeds 0-3 the mean of the 21 points is 0.86 / 0.85 / 0.84 / 0.85 R (12% 429s, 11%
# before) since a window measure on few admissions cuts no deeper than a few-sample episode;
# 0.75 / 0.76 / 0.75 / 0.73 R since a few-sample
# cycle refused within half a second cuts deeper (0.71 / 0.70 / 0.70 / 0.71 R before, since a probe
# unrefused for three periods goes on at one period a second; 0.67 / 0.69 / 0.65 / 0.68 R
# before that; 0.70 / 0.67 / 0.65 / 0.63 R at git a9cec00; 0.64 R on seed 0 at git 06abd3f).
# (Importing hypothesis changes the simulated schedule: measure these with it imported, as
# this module does.)
FLEET_MISSED: dict[tuple[int, int, int], str] = {
    (20, 1, 2): "0.77 R, 14% 429s, fairness 0.87",
    (20, 1, 4): "0.82 R, 22% 429s, fairness 0.77",
    (20, 1, 8): "0.82 R, 25% 429s, fairness 0.56",
    (50, 1, 2): "0.87 R, 7% 429s, fairness 0.89",
    (50, 1, 4): "0.80 R, 11% 429s, fairness 0.75",
    (50, 1, 8): "0.66 R, 19% 429s, fairness 0.54",
    (50, 10, 4): "0.83 R, 16% 429s, fairness 0.92",
    (50, 10, 8): "0.86 R, 33% 429s, fairness 0.99",
    (50, 50, 4): "0.84 R, 18% 429s, fairness 0.96",
    (50, 50, 8): "0.91 R, 33% 429s, fairness 0.91",
    (200, 1, 2): "0.93 R, 2% 429s, fairness 0.89",
    (200, 1, 4): "0.84 R, 3% 429s, fairness 0.70",
    (200, 1, 8): "0.56 R, 7% 429s, fairness 0.64",
    (200, 20, 8): "0.86 R, 9% 429s, fairness 0.94",
    (500, 50, 2): "0.899 R, 1% 429s, fairness 0.96",
}
FLEET_POINTS = [
    pytest.param(
        rate,
        burst,
        clients,
        id=f"R{rate}-b{burst}-K{clients}",
        marks=(
            [pytest.mark.xfail(strict=True, reason=FLEET_MISSED[rate, burst, clients])]
            if (rate, burst, clients) in FLEET_MISSED
            else []
        ),
    )
    for rate, burst in [(20, 1), (50, 1), (50, 10), (50, 50), (200, 1), (200, 20), (500, 50)]
    for clients in (2, 4, 8)
]


@pytest.mark.slow  # (seconds of CPU, the same on every Python: run once, on 3.11)
@pytest.mark.parametrize(("rate", "burst", "clients"), FLEET_POINTS)
def test_clients_sharing_one_limit_meet_the_targets(rate: int, burst: int, clients: int) -> None:
    limit = RateLimit(rate, burst=burst)
    events = fleet_events(limit, clients)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = simulate_fleet(
            limit, clients=clients, events=events, concurrency=16, latency=0.003
        )
    assert fleet_misses(limit, results, events) == []

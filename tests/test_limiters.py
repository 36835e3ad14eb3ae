"""The local server's limiter shapes, on a fake clock: exact counts, no wall time.

The server (and the rate-control simulation) ask a limiter ``admit(now)`` per request and
``release(now)`` when an admitted one leaves service. Dense arrivals saturate every shape, so
what it admits over a span is exactly its capacity; the Retry-After it states parses back, in
every form, to the wait it meant.
"""

from __future__ import annotations

import itertools
import math

import httpx
import pytest

from ventryx._retry import parse_retry_after
from ventryx.testing._ratelimit import RETRY_AFTER_FORMS, RateLimit, make_limiter

STEP = 0.001  # one arrival a millisecond: more than any limit below admits


def arrivals(span: float, step: float = STEP) -> list[float]:
    return [i * step for i in range(round(span / step))]


def admitted_times(limit: RateLimit, span: float) -> list[float]:
    limiter = make_limiter(limit, 0.0)
    return [t for t in arrivals(span) if limiter.admit(t).allowed]


def test_token_bucket_admits_its_burst_then_its_rate() -> None:
    times = admitted_times(RateLimit(50, burst=10), 10.0)
    assert len(times) == 10 + 50 * 10 - 1  # the burst, then one token every 20 ms
    assert times[9] == pytest.approx(0.009)  # the burst went at once
    gaps = {round(b - a, 3) for a, b in itertools.pairwise(times[10:])}
    assert gaps <= {0.019, 0.02, 0.021}  # one token every 20 ms, on a 1 ms grid of arrivals


def test_token_bucket_headers_say_what_is_left() -> None:
    limiter = make_limiter(RateLimit(10, burst=3, retry_after="fractional"), 0.0)
    remaining = [dict(limiter.admit(0.0).headers)["X-RateLimit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    refused = limiter.admit(0.05)
    assert not refused.allowed
    assert parse_retry_after(httpx.Headers(refused.headers)) == pytest.approx(0.05, abs=0.001)


@pytest.mark.parametrize("window", [0.1, 1.0, 10.0])
def test_fixed_window_admits_its_count_in_every_window(window: float) -> None:
    limit = RateLimit(40, shape="fixed_window", window=window)
    times = admitted_times(limit, 5 * window)
    per = [sum(1 for t in times if k * window <= t < (k + 1) * window) for k in range(5)]
    assert per == [limit.per_window] * 5
    limiter = make_limiter(limit, 0.0)
    for _ in range(limit.per_window):
        limiter.admit(0.0)
    refused = limiter.admit(0.25 * window)  # Retry-After: until the window ends
    assert not refused.allowed
    assert parse_retry_after(httpx.Headers(refused.headers)) == pytest.approx(
        0.75 * window, abs=0.001
    )


def test_sliding_window_never_admits_more_than_its_count_in_any_window() -> None:
    limit = RateLimit(20, shape="sliding_window", window=0.5)
    times = admitted_times(limit, 5.0)
    assert len(times) == limit.per_window * 10  # saturated: its count every window
    for i in range(len(times) - limit.per_window):  # any window holds at most per_window
        assert times[i + limit.per_window] - times[i] >= limit.window - 1e-9


def test_concurrency_limit_counts_requests_in_service() -> None:
    limit = RateLimit(shape="concurrency", max_in_service=3, latency=0.1)
    limiter = make_limiter(limit, 0.0)
    decisions = [limiter.admit(0.0) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert decisions[0].hold == 0.1
    limiter.release(0.1)  # one left service: one more may enter
    assert limiter.admit(0.1).allowed
    assert not limiter.admit(0.1).allowed
    assert limit.capacity == 30.0


def test_sporadic_refuses_its_share_whatever_the_rate() -> None:
    limit = RateLimit(shape="sporadic", probability=0.2, seed=3)
    limiter = make_limiter(limit, 0.0)
    refused = sum(not limiter.admit(t).allowed for t in arrivals(10.0))
    assert 0.18 * 10_000 < refused < 0.22 * 10_000
    assert limit.capacity == math.inf


@pytest.mark.parametrize("form", RETRY_AFTER_FORMS)
def test_every_retry_after_form_states_the_wait(form: str) -> None:
    limiter = make_limiter(RateLimit(2, burst=1, retry_after=form), 0.0)  # type: ignore[arg-type]
    assert limiter.admit(0.0).allowed
    refused = limiter.admit(0.1)  # the next token comes in 0.4 s
    assert not refused.allowed
    wait = parse_retry_after(httpx.Headers(refused.headers))
    expected = {
        "seconds": 1.0,  # whole seconds, rounded up
        "fractional": 0.4,
        "milliseconds": 0.4,
        "absent": None,
    }
    if form == "http-date":  # a whole second of the wall clock, up to a second later
        assert wait is not None
        assert 0.0 <= wait <= 1.5
    else:
        assert wait == (None if expected[form] is None else pytest.approx(expected[form]))

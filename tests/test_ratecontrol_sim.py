"""The simulated sweep of limiter shapes (virtual clock, the real engine and gate).

Asserted at every point: nothing lost or duplicated, every event settled, no run stalled
past its wait budget. The throughput targets of issue 13 (>= 0.95 R, <= 5% 429s, ...) are
measured by the same harness (``python tests/_ratesim.py``) and not yet met at every point:
see the rate-control notes in ``docs/RATE_CONTROL.md``.
"""

from __future__ import annotations

import warnings

import pytest
from _ratesim import simulate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ventryx.testing._ratelimit import RETRY_AFTER_FORMS, RateLimit

pytestmark = pytest.mark.filterwarnings("ignore::ventryx.InsecureBaseURLWarning")

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

"""The retry policy in isolation: Retry-After parsing, backoff and what is retryable."""

from __future__ import annotations

import copy
import pickle
from datetime import datetime, timezone
from email.utils import format_datetime
from fractions import Fraction

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ventryx
from ventryx._retry import RetryPolicy, is_retryable, parse_retry_after, retry_after_is_date

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=timezone.utc).timestamp()


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "3"}, 3.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"retry-after": " 2 "}, 2.0),
        ({"retry-after": "-5"}, 0.0),
        ({"retry-after": "Sat, 28 Nov 2026 12:00:07 GMT"}, 7.0),
        ({"retry-after": "Sat, 28 Nov 2026 11:00:00 GMT"}, 0.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "soon", "retry-after": "9"}, 9.0),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "whenever"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(httpx.Headers(headers), now=NOW) == expected


@pytest.mark.parametrize(
    ("headers", "is_date"),
    [
        ({"retry-after": "Sat, 28 Nov 2026 12:00:07 GMT"}, True),
        ({"retry-after": "3"}, False),
        ({"retry-after": "0.25"}, False),
        ({"retry-after": "whenever"}, False),
        ({"retry-after-ms": "250", "retry-after": "Sat, 28 Nov 2026 12:00:07 GMT"}, False),
        ({"retry-after-ms": "soon", "retry-after": "Sat, 28 Nov 2026 12:00:07 GMT"}, True),
        ({}, False),
    ],
)
def test_retry_after_is_date_says_which_wait_parse_retry_after_read(
    headers: dict[str, str], is_date: bool
) -> None:
    assert retry_after_is_date(httpx.Headers(headers)) is is_date


@given(st.text(max_size=40))
def test_parse_retry_after_never_raises_or_goes_negative(text: str) -> None:
    for name in ("retry-after", "retry-after-ms"):
        value = parse_retry_after({name: text}, now=NOW)
        assert value is None or value >= 0.0


@given(st.integers(min_value=0, max_value=10**9))
def test_http_dates_parse_to_the_seconds_until_then(delta: int) -> None:
    stamp = format_datetime(datetime.fromtimestamp(NOW + delta, timezone.utc), usegmt=True)
    assert parse_retry_after({"retry-after": stamp}, now=NOW) == pytest.approx(delta)


def test_backoff_grows_is_capped_and_jittered_down() -> None:
    policy = RetryPolicy(initial_delay=0.5, max_delay=4.0, jitter=0.25)
    for attempt, full in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (10, 4.0)]:
        waits = [policy.backoff(attempt) for _ in range(50)]
        assert all(full * 0.75 <= w <= full for w in waits)
        assert len(set(waits)) > 1


def _status_error(
    status: int, retry_after: float | None = None, code: str | None = None
) -> ventryx.APIStatusError:
    request = httpx.Request("POST", "https://api.ventryx.io/v1/events")
    response = httpx.Response(status, request=request)
    return ventryx.APIStatusError(
        response=response, code=code, message="m", body=None, retry_after=retry_after
    )


def test_the_delay_is_never_sooner_than_the_server_asked() -> None:
    policy = RetryPolicy(initial_delay=0.5, max_delay=4.0, jitter=0.0)
    assert policy.delay(2, None) == 1.0
    assert policy.delay(2, ventryx.APIConnectionError(request=None)) == 1.0
    assert policy.delay(2, _status_error(503)) == 1.0
    assert policy.delay(2, _status_error(503, retry_after=0.25)) == 1.0
    assert policy.delay(2, _status_error(429, retry_after=7.5)) == 7.5


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ventryx.APIConnectionError(request=None), True),
        (ventryx.APITimeoutError(request=None), True),
        (_status_error(408), True),
        (_status_error(409), True),
        (_status_error(429), True),
        (_status_error(429, retry_after=30.0), True),
        (_status_error(429, retry_after=61.0), False),
        (_status_error(500), True),
        (_status_error(502), True),
        (_status_error(503), True),
        (_status_error(504), True),
        (_status_error(501), False),
        (_status_error(400), False),
        (_status_error(400, code="rate_limit_exceeded"), True),
        (_status_error(401), False),
        (_status_error(403), False),
        (_status_error(404), False),
        (_status_error(413), False),
        (_status_error(422), False),
        (ValueError("not an API error"), False),
        (KeyboardInterrupt(), False),
    ],
)
def test_what_is_retried(exc: BaseException, expected: bool) -> None:
    assert is_retryable(exc, RetryPolicy()) is expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"initial_delay": -1}, "initial_delay must be a finite number >= 0"),
        ({"max_delay": float("nan")}, "max_delay must be a finite number >= 0"),
        ({"max_retry_after": float("inf")}, "max_retry_after must be a finite number >= 0"),
        ({"jitter": 1.5}, "jitter must be between 0 and 1"),
        ({"jitter": "0.1"}, "jitter must be a number, got str"),
        ({"initial_delay": True}, "initial_delay must be a number, got bool"),
    ],
)
def test_a_bad_retry_policy_is_a_configuration_error(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ventryx.ConfigurationError, match=message):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_a_retry_policy_is_an_immutable_value() -> None:
    policy = RetryPolicy(initial_delay=1, max_delay=4.0)
    assert policy == RetryPolicy(initial_delay=1.0, max_delay=4)
    assert hash(policy) == hash(RetryPolicy(initial_delay=1.0, max_delay=4.0))
    assert policy != RetryPolicy(initial_delay=2.0, max_delay=4.0)
    assert isinstance(policy.initial_delay, float)
    assert repr(policy) == (
        "RetryPolicy(initial_delay=1.0, max_delay=4.0, jitter=0.25, max_retry_after=60.0)"
    )
    with pytest.raises(AttributeError, match="immutable"):
        policy.max_delay = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        RetryPolicy(0.5)  # type: ignore[misc]  # keyword-only


@pytest.mark.parametrize("value", [10**400, -(10**400)])
def test_a_number_too_large_for_a_float_is_a_configuration_error(value: int) -> None:
    with pytest.raises(ventryx.ConfigurationError, match="max_delay must be a finite number"):
        RetryPolicy(max_delay=value)


def test_any_real_number_is_a_delay() -> None:
    policy = RetryPolicy(initial_delay=Fraction(1, 4), max_delay=Fraction(3))  # type: ignore[arg-type]
    assert (policy.initial_delay, policy.max_delay) == (0.25, 3.0)
    assert type(policy.initial_delay) is float


def test_a_retry_policy_copies_and_pickles_as_an_equal_value() -> None:
    policy = RetryPolicy(initial_delay=0.1, max_delay=2.0, jitter=0.5, max_retry_after=9.0)
    pickled = pickle.loads(pickle.dumps(policy))  # noqa: S301  # bytes this test just made
    for twin in (copy.copy(policy), copy.deepcopy(policy), pickled):
        assert twin == policy
        assert repr(twin) == repr(policy)
        with pytest.raises(AttributeError, match="immutable"):
            twin.jitter = 0.0  # type: ignore[misc]

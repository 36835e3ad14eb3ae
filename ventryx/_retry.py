"""The retry policy: what is retried, how long to wait, and the tenacity wiring.

Retried: connection errors, timeouts and the statuses in ``RETRYABLE_STATUSES``. Waits grow
exponentially with jitter; a server's ``Retry-After``/``retry-after-ms`` raises the wait to
what it asks, and one beyond ``max_retry_after`` is not waited out: the ``RateLimitError`` (with
its ``retry_after``) goes to the caller. POSTs are safe to retry because each logical call
sends one ``Idempotency-Key`` on every attempt.
"""

from __future__ import annotations

import email.utils
import math
import random
from collections.abc import Mapping
from datetime import datetime, timezone

import attrs

from ventryx import _constants as C
from ventryx._errors import APIConnectionError, APIStatusError

__all__ = ["RetryPolicy", "is_retryable", "parse_retry_after"]


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How retries wait; ``max_retries`` (how many) is a client and per-call option."""

    initial_delay: float = C.INITIAL_RETRY_DELAY
    max_delay: float = C.MAX_RETRY_DELAY
    jitter: float = C.RETRY_JITTER
    max_retry_after: float = C.MAX_RETRY_AFTER

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1-based) when the server named none."""
        delay = min(self.initial_delay * 2.0 ** (attempt - 1), self.max_delay)
        return delay * (1.0 - self.jitter * random.random())


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date).

    Returns ``None`` when neither header is present or parseable; never negative.
    """
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms) / 1000.0
        except ValueError:
            value = None
        if value is not None and math.isfinite(value):
            return max(value, 0.0)
    text = headers.get("retry-after")
    if text is None:
        return None
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        # float() also accepts "nan" and "inf"; neither is a wait.
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = datetime.now(timezone.utc).timestamp() if now is None else now
    return max(when.timestamp() - current, 0.0)


def is_retryable(exc: BaseException, policy: RetryPolicy) -> bool:
    """Whether a failed attempt should be tried again."""
    if isinstance(exc, APIConnectionError):
        return True
    if isinstance(exc, APIStatusError):
        if exc.status_code not in C.RETRYABLE_STATUSES and exc.code != C.RATE_LIMIT_CODE:
            return False
        return exc.retry_after is None or exc.retry_after <= policy.max_retry_after
    return False

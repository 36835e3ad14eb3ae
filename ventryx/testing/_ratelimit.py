"""Token-bucket rate limiting with the ``Retry-After`` forms real APIs send."""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Callable
from typing import Literal

import attrs

RetryAfterForm = Literal["seconds", "fractional", "http-date", "milliseconds", "absent"]
RETRY_AFTER_FORMS: tuple[RetryAfterForm, ...] = (
    "seconds",
    "fractional",
    "http-date",
    "milliseconds",
    "absent",
)


def _positive(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attr.name} must be positive, got {value!r}")


@attrs.frozen
class RateLimit:
    """``rate`` requests per second with a bucket of ``burst``; how a refusal states its wait."""

    rate: float = attrs.field(validator=_positive)
    burst: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    retry_after: RetryAfterForm = attrs.field(
        default="fractional", validator=attrs.validators.in_(RETRY_AFTER_FORMS)
    )


def retry_after_headers(form: RetryAfterForm, wait: float) -> list[tuple[str, str]]:
    """The header stating ``wait`` seconds in ``form`` (none for ``absent``)."""
    if form == "seconds":
        return [("Retry-After", str(max(1, math.ceil(wait))))]
    if form == "fractional":
        return [("Retry-After", f"{math.ceil(wait * 1000) / 1000:.3f}")]
    if form == "http-date":
        when = math.ceil(time.time() + wait)
        return [("Retry-After", email.utils.formatdate(when, usegmt=True))]
    if form == "milliseconds":
        return [("retry-after-ms", str(max(1, math.ceil(wait * 1000))))]
    return []


@attrs.frozen
class Decision:
    """The outcome of one request against the bucket."""

    allowed: bool
    headers: list[tuple[str, str]]


class TokenBucket:
    """A token bucket; not thread-safe on its own (the app calls it under its lock)."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._tokens = float(limit.burst)
        self._stamp = clock()

    def take(self) -> Decision:
        """Spend one token if there is one; the headers describe the bucket either way."""
        limit = self.limit
        now = self._clock()
        tokens = min(float(limit.burst), self._tokens + (now - self._stamp) * limit.rate)
        self._stamp = now
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._tokens = tokens
        full_in = (limit.burst - tokens) / limit.rate
        headers = [
            ("X-RateLimit-Limit", str(limit.burst)),
            ("X-RateLimit-Remaining", str(int(tokens))),
            ("X-RateLimit-Reset", str(math.ceil(full_in))),
        ]
        if not allowed:
            headers += retry_after_headers(limit.retry_after, (1.0 - tokens) / limit.rate)
        return Decision(allowed, headers)

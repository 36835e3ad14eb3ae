"""Rate limiting of the local server: every limiter shape, with the Retry-After forms real
APIs send and optional ``X-RateLimit-*`` headers.

A limiter has one small interface, used by the server and by the virtual-clock simulation of
the SDK's rate control alike: ``admit(now) -> Decision`` for each request, and, for a request
admitted (``decision.allowed``), ``release(now)`` once it has spent ``decision.hold`` seconds
in service. Limiters are not thread-safe on their own (the app calls them under its lock).

Shapes (``RateLimit.shape``):

- ``token_bucket``: ``rate`` per second, a bucket of ``burst``;
- ``fixed_window``: ``max(1, round(rate * window))`` requests per window of ``window`` s;
- ``sliding_window``: the same count in any ``window`` seconds (a sliding log);
- ``concurrency``: at most ``max_in_service`` requests in service at once, each for
  ``latency`` seconds;
- ``sporadic``: a 429 with probability ``probability``, whatever the rate (seeded).

Every admitted request is held ``latency`` seconds before it is processed.
"""

from __future__ import annotations

import collections
import email.utils
import heapq
import math
import random
import time
from typing import Literal, Protocol, get_args

import attrs

RetryAfterForm = Literal["seconds", "fractional", "http-date", "milliseconds", "absent"]
RETRY_AFTER_FORMS: tuple[RetryAfterForm, ...] = get_args(RetryAfterForm)
Shape = Literal["token_bucket", "fixed_window", "sliding_window", "concurrency", "sporadic"]
SHAPES: tuple[Shape, ...] = get_args(Shape)


def _positive(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    if not value > 0 or not math.isfinite(value):
        raise ValueError(f"{attr.name} must be positive, got {value!r}")


def _non_negative(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    if not value >= 0 or not math.isfinite(value):
        raise ValueError(f"{attr.name} must be >= 0, got {value!r}")


def _probability(_inst: object, attr: attrs.Attribute[float], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attr.name} must be between 0 and 1, got {value!r}")


@attrs.frozen
class RateLimit:
    """A limiter (see the module docstring) and how its refusals state their wait.

    ``rate_headers`` adds ``X-RateLimit-Limit/Remaining/Reset`` to every answer of the
    rate-based shapes (with ``retry_after="absent"`` they are the only hint).
    """

    rate: float = attrs.field(default=1.0, validator=_positive)
    burst: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    retry_after: RetryAfterForm = attrs.field(
        default="fractional", validator=attrs.validators.in_(RETRY_AFTER_FORMS)
    )
    shape: Shape = attrs.field(default="token_bucket", validator=attrs.validators.in_(SHAPES))
    window: float = attrs.field(default=1.0, validator=_positive)
    max_in_service: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    probability: float = attrs.field(default=0.0, validator=_probability)
    sporadic_wait: float = attrs.field(default=0.05, validator=_non_negative)
    latency: float = attrs.field(default=0.0, validator=_non_negative)
    rate_headers: bool = True
    seed: int = 0

    def __attrs_post_init__(self) -> None:
        if self.shape == "concurrency" and self.latency <= 0:
            raise ValueError("a concurrency limit needs a latency (the service time) > 0")

    @property
    def per_window(self) -> int:
        """Requests per window of the window shapes."""
        return max(1, round(self.rate * self.window))

    @property
    def capacity(self) -> float:
        """Requests per second the limiter admits when saturated (``inf``: sporadic)."""
        if self.shape == "token_bucket":
            return self.rate
        if self.shape in ("fixed_window", "sliding_window"):
            return self.per_window / self.window
        if self.shape == "concurrency":
            return self.max_in_service / self.latency
        return math.inf


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
    """The outcome of one request: admitted or not, the headers, seconds held in service."""

    allowed: bool
    headers: list[tuple[str, str]]
    hold: float = 0.0


class Limiter(Protocol):
    """What the server (and the simulation) asks of a limiter."""

    def admit(self, now: float) -> Decision: ...

    def release(self, now: float) -> None: ...


def _seconds(value: float) -> str:
    return f"{math.ceil(max(value, 0.0) * 1000) / 1000:g}"


class _Base:
    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit

    def _answer(self, allowed: bool, wait: float, remaining: int, reset: float) -> Decision:
        limit = self.limit
        headers: list[tuple[str, str]] = []
        if limit.rate_headers:
            headers += [
                ("X-RateLimit-Limit", str(self._limit_value())),
                ("X-RateLimit-Remaining", str(max(remaining, 0))),
                ("X-RateLimit-Reset", _seconds(reset)),
            ]
        if not allowed:
            headers += retry_after_headers(limit.retry_after, wait)
        return Decision(allowed, headers, limit.latency if allowed else 0.0)

    def _limit_value(self) -> int:
        return self.limit.per_window

    def release(self, now: float) -> None:
        """A request admitted earlier left service (only a concurrency limit cares)."""


class TokenBucket(_Base):
    """``rate`` tokens a second into a bucket of ``burst``; Reset: seconds until it is full
    (whole seconds)."""

    def __init__(self, limit: RateLimit, now: float) -> None:
        super().__init__(limit)
        self._tokens = float(limit.burst)
        self._stamp = now

    def admit(self, now: float) -> Decision:
        limit = self.limit
        tokens = min(float(limit.burst), self._tokens + (now - self._stamp) * limit.rate)
        self._stamp = max(now, self._stamp)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._tokens = tokens
        decision = self._answer(allowed, (1.0 - tokens) / limit.rate, int(tokens), 0.0)
        if limit.rate_headers:  # this shape's Reset: whole seconds until the bucket is full
            full_in = str(math.ceil((limit.burst - tokens) / limit.rate))
            headers = [(k, full_in if k == "X-RateLimit-Reset" else v) for k, v in decision.headers]
            decision = attrs.evolve(decision, headers=headers)
        return decision

    def _limit_value(self) -> int:
        return self.limit.burst

    def take(self) -> Decision:  # the former interface, on the wall clock
        return self.admit(time.monotonic())


class FixedWindow(_Base):
    """``per_window`` requests per window; windows start at the limiter's creation."""

    def __init__(self, limit: RateLimit, now: float) -> None:
        super().__init__(limit)
        self._start = now
        self._index = 0
        self._count = 0

    def admit(self, now: float) -> Decision:
        limit = self.limit
        index = max(int((now - self._start) // limit.window), self._index)
        if index != self._index:
            self._index, self._count = index, 0
        end = self._start + (index + 1) * limit.window
        allowed = self._count < limit.per_window
        if allowed:
            self._count += 1
        return self._answer(allowed, end - now, limit.per_window - self._count, end - now)


class SlidingWindow(_Base):
    """At most ``per_window`` admissions in any ``window`` seconds (a log of admissions)."""

    def __init__(self, limit: RateLimit, now: float) -> None:
        super().__init__(limit)
        self._log: collections.deque[float] = collections.deque()

    def admit(self, now: float) -> Decision:
        limit = self.limit
        log = self._log
        while log and log[0] <= now - limit.window:
            log.popleft()
        allowed = len(log) < limit.per_window
        if allowed:
            log.append(now)
        wait = log[0] + limit.window - now if log else 0.0
        return self._answer(allowed, wait, limit.per_window - len(log), wait)


class ConcurrencyLimit(_Base):
    """At most ``max_in_service`` requests in service; Retry-After: until the first leaves."""

    def __init__(self, limit: RateLimit, now: float) -> None:
        super().__init__(limit)
        self._ends: list[float] = []
        self._in_service = 0

    def admit(self, now: float) -> Decision:
        limit = self.limit
        ends = self._ends
        while ends and ends[0] <= now - limit.latency:  # stale: released late or never
            heapq.heappop(ends)
        allowed = self._in_service < limit.max_in_service
        if allowed:
            self._in_service += 1
            heapq.heappush(ends, now + limit.latency)
        wait = max(ends[0] - now, 0.0) if ends else limit.latency
        return self._answer(allowed, wait, limit.max_in_service - self._in_service, wait)

    def release(self, now: float) -> None:
        if self._in_service:
            self._in_service -= 1
        if self._ends:
            heapq.heappop(self._ends)

    def _limit_value(self) -> int:
        return self.limit.max_in_service


class Sporadic(_Base):
    """A 429 with probability ``probability`` whatever the rate; no X-RateLimit headers."""

    def __init__(self, limit: RateLimit, now: float) -> None:
        super().__init__(limit)
        self._random = random.Random(limit.seed)

    def admit(self, now: float) -> Decision:
        limit = self.limit
        allowed = self._random.random() >= limit.probability
        headers = [] if allowed else retry_after_headers(limit.retry_after, limit.sporadic_wait)
        return Decision(allowed, headers, limit.latency if allowed else 0.0)


_SHAPES: dict[
    str, type[TokenBucket | FixedWindow | SlidingWindow | ConcurrencyLimit | Sporadic]
] = {
    "token_bucket": TokenBucket,
    "fixed_window": FixedWindow,
    "sliding_window": SlidingWindow,
    "concurrency": ConcurrencyLimit,
    "sporadic": Sporadic,
}


def make_limiter(limit: RateLimit, now: float) -> Limiter:
    """A fresh limiter of ``limit.shape`` starting at ``now``."""
    return _SHAPES[limit.shape](limit, now)

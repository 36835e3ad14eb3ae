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
from typing import SupportsFloat, TypeGuard

from ventryx import _constants as C
from ventryx._errors import APIConnectionError, APIStatusError, ConfigurationError
from ventryx._types import Immutable

__all__ = ["RetryPolicy", "is_retryable", "is_transient", "parse_retry_after"]


class RetryPolicy(Immutable):
    """How retries wait; ``max_retries`` (how many) is a client and per-call option.

    Immutable and hashable. A plain slotted class rather than an attrs one, so that
    ``import ventryx`` does not have to load attrs (the models load it on first use).
    """

    __slots__ = ("initial_delay", "jitter", "max_delay", "max_retry_after")

    initial_delay: float
    max_delay: float
    jitter: float
    max_retry_after: float

    def __init__(
        self,
        *,
        initial_delay: float = C.INITIAL_RETRY_DELAY,
        max_delay: float = C.MAX_RETRY_DELAY,
        jitter: float = C.RETRY_JITTER,
        max_retry_after: float = C.MAX_RETRY_AFTER,
    ) -> None:
        values = {
            "initial_delay": _seconds("initial_delay", initial_delay),
            "max_delay": _seconds("max_delay", max_delay),
            "jitter": _seconds("jitter", jitter),
            "max_retry_after": _seconds("max_retry_after", max_retry_after),
        }
        if values["jitter"] > 1.0:
            raise ConfigurationError("RetryPolicy jitter must be between 0 and 1")
        self._freeze(values)

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return (
            f"RetryPolicy(initial_delay={self.initial_delay!r}, max_delay={self.max_delay!r}, "
            f"jitter={self.jitter!r}, max_retry_after={self.max_retry_after!r})"
        )

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1-based) when the server named none."""
        delay = min(self.initial_delay * 2.0 ** (attempt - 1), self.max_delay)
        return delay * (1.0 - self.jitter * random.random())

    def delay(self, attempt: int, error: BaseException | None) -> float:
        """The wait before retrying after failed attempt ``attempt``: max(backoff, Retry-After).

        Never sooner than the server asked; single calls (tenacity) and bulk runs both ask here.
        """
        delay = self.backoff(attempt)
        if isinstance(error, APIStatusError) and error.retry_after is not None:
            delay = max(delay, error.retry_after)
        return delay


def _is_real(value: object) -> TypeGuard[SupportsFloat]:
    if isinstance(value, (int, float)):
        return True
    import numbers  # noqa: PLC0415  # only for the rare other kinds, kept off `import ventryx`

    return isinstance(value, numbers.Real)


def _seconds(name: str, value: object) -> float:
    # Any real number (int, float, Fraction, numpy's scalars); a bool is refused.
    if isinstance(value, bool) or not _is_real(value):
        raise ConfigurationError(f"RetryPolicy {name} must be a number, got {type(value).__name__}")
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds) or seconds < 0:
        raise ConfigurationError(f"RetryPolicy {name} must be a finite number >= 0, got {value!r}")
    return seconds


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date).

    Returns ``None`` when neither header is present or parseable; never negative, and never
    more than ``RETRY_AFTER_CEILING`` (1e10 s): thousands of digits, or a year past 9999,
    mean "not for a very long time", which is that ceiling.
    """
    source = _stating(headers)
    if source is None:
        return None
    name, text = source
    seconds = _number(text)
    if seconds is not None:
        return _bounded(seconds / 1000.0 if name == "retry-after-ms" else seconds)
    parts = email.utils.parsedate_tz(text)
    if parts is None:
        return None
    if parts[0] > 9999:  # beyond what datetime holds: as far as a wait goes
        return C.RETRY_AFTER_CEILING
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    current = datetime.now(timezone.utc).timestamp() if now is None else now
    return _bounded(when.timestamp() - current)


def retry_after_is_date(headers: Mapping[str, str]) -> bool:
    """Whether the wait ``parse_retry_after`` reads from ``headers`` is an HTTP date (stated to
    the second: the server has room within the second before it)."""
    source = _stating(headers)
    if source is None:
        return False
    text = source[1]
    return _number(text) is None and email.utils.parsedate_tz(text) is not None


def _stating(headers: Mapping[str, str]) -> tuple[str, str] | None:
    """The header that states the wait, and its text: ``retry-after-ms`` where it holds a
    number, else ``Retry-After``; ``None`` when neither does."""
    ms = headers.get("retry-after-ms")
    if ms is not None and _number(ms) is not None:
        return "retry-after-ms", ms
    text = headers.get("retry-after")
    return None if text is None else ("retry-after", text.strip())


def _number(text: str) -> float | None:
    """Seconds written as a decimal number; "inf", "nan" and other words are not."""
    text = text.strip()
    digits = text.lstrip("+-").replace(".", "", 1)
    if not digits.isdigit() or not digits.isascii():
        return None
    if len(text) > 30:  # thousands of digits: float() gives inf or int() refuses; a long wait
        return -1.0 if text.startswith("-") else C.RETRY_AFTER_CEILING
    return float(text)


def _bounded(seconds: float) -> float:
    return min(max(seconds, 0.0), C.RETRY_AFTER_CEILING)


def is_transient(exc: BaseException) -> bool:
    """A failure another attempt may not meet: no answer at all, or a retryable status."""
    return isinstance(exc, APIConnectionError) or (
        isinstance(exc, APIStatusError) and exc.status_code in C.RETRYABLE_STATUSES
    )


def is_retryable(exc: BaseException, policy: RetryPolicy) -> bool:
    """Whether a failed attempt should be tried again: transient (or rate limited), and not
    asked to wait beyond ``policy.max_retry_after``."""
    if is_transient(exc) or (isinstance(exc, APIStatusError) and exc.code == C.RATE_LIMIT_CODE):
        retry_after = exc.retry_after if isinstance(exc, APIStatusError) else None
        return retry_after is None or retry_after <= policy.max_retry_after
    return False

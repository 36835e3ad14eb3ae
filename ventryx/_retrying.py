"""The tenacity wiring of the retry policy in ``_retry``, loaded on the first retryable failure.

Kept apart so that importing the SDK does not import tenacity: most calls never retry.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import tenacity

from ventryx._retry import RetryPolicy, is_retryable

__all__ = ["make_retrying"]


class _Wait(tenacity.wait.wait_base):
    """max(backoff, Retry-After): never sooner than the server asked."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        return self.policy.delay(retry_state.attempt_number, exc)


class _StopAtDeadline(tenacity.stop.stop_base):
    """Stop when the wait before the next attempt would reach the call's deadline."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        # tenacity computes the wait before asking whether to stop.
        return time.monotonic() + (retry_state.upcoming_sleep or 0.0) >= self.deadline


def make_retrying(
    *,
    max_retries: int,
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]],
    before_sleep: Callable[[tenacity.RetryCallState], None] | None = None,
    deadline: float | None = None,
) -> tenacity.AsyncRetrying:
    """A fresh ``AsyncRetrying`` for one logical call (tenacity's state is per call).

    With a ``deadline`` (``time.monotonic()``), no wait is started that would end past it:
    the last failure is raised instead.
    """
    stop: tenacity.stop.stop_base = tenacity.stop_after_attempt(max_retries + 1)
    if deadline is not None:
        stop = stop | _StopAtDeadline(deadline)
    return tenacity.AsyncRetrying(
        stop=stop,
        wait=_Wait(policy),
        retry=tenacity.retry_if_exception(lambda exc: is_retryable(exc, policy)),
        sleep=sleep,
        reraise=True,
        before_sleep=before_sleep,
    )

"""The rate gate: one per client, shared by every bulk worker (and every concurrent run).

Unpaced until the first 429. A 429 starts an *episode* (once: answers to requests admitted
before it belong to it): every worker waits until ``resume_at`` (the server's Retry-After, or
backoff), and the rate drops to ``BETA`` times the rate the server was accepting. Admission
then restarts one slot every ``1/rate`` seconds (no burst), the rate climbs back to that
estimate over ``RECOVER_SECONDS``, then probes above it, slowly at first and faster the longer
no 429 comes (the shape of TCP CUBIC, which botocore's adaptive mode also uses).
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Awaitable, Callable

import anyio

__all__ = ["RateGate", "gate_for"]

BETA = 0.93
RECOVER_SECONDS = 0.5
PROBE_GAIN = 1.0  # above the estimate: rate * (1 + gain * t**2), t seconds into probing
HOLDOFF = 1.0  # seconds after an episode's start during which 429s only extend its pause
MIN_RATE = 1.0
MIN_SAMPLES = 10  # fewer answers than this in the window: the estimate is a guess
GUESS_RATE = 20.0  # what a guess is floored at
_WINDOW = 1.0  # seconds of answers behind the capacity estimate
_BUCKETS = 10


class RateGate:
    """Paces admissions and pauses them all after a 429; ``clock``/``sleep`` are injectable."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self.epoch = 0
        self.episodes = 0
        self.resume_at = 0.0
        self._streak = 0  # episodes since the last 2xx: backoff grows with it
        self._next_slot = 0.0
        self._floor: float | None = None  # rate right after the last episode
        self._target = 0.0  # the capacity estimated at the last episode
        self._born: float | None = None
        self._episode_at = -math.inf
        self._recover_from = 0.0  # when the last episode's pause ended
        self._ok = [0] * _BUCKETS
        self._ok_slot = [0] * _BUCKETS

    @property
    def rate(self) -> float | None:
        """Admissions per second now; ``None`` before any 429 (unpaced)."""
        if self._floor is None:
            return None
        t = self._clock() - self._recover_from
        if t <= 0:
            return self._floor
        if t < RECOVER_SECONDS:
            return self._floor + (self._target - self._floor) * t / RECOVER_SECONDS
        probe = t - RECOVER_SECONDS
        return self._target * (1.0 + PROBE_GAIN * probe * probe)

    def admit_now(self) -> int | None:
        """``admit`` without waiting: the epoch if a slot is free now, else None (nothing taken)."""
        now = self._clock()
        if self.resume_at > now:
            return None
        rate = self.rate
        if rate is not None:
            if self._next_slot > now:
                return None
            self._next_slot = now + 1.0 / rate
        return self.epoch

    async def admit(self) -> int:
        """Wait for this worker's turn; returns the epoch to pass to ``rate_limited``."""
        while True:
            now = self._clock()
            epoch = self.epoch
            start = max(now, self.resume_at)
            rate = self.rate
            if rate is not None:
                start = max(start, self._next_slot)
                self._next_slot = start + 1.0 / rate
            if start > now:
                await self._sleep(start - now)
                if epoch != self.epoch:  # a 429 came while waiting: queue again behind it
                    continue
            return epoch

    def passed(self) -> None:
        """Count an answer other than 429 (the limiter let it through) and end a 429 streak."""
        self._streak = 0
        if self._born is None:  # measure from the first answer, not from connection setup
            self._born = self._clock()
        tick = int(self._clock() * _BUCKETS / _WINDOW)
        i = tick % _BUCKETS
        if self._ok_slot[i] != tick:
            self._ok_slot[i] = tick
            self._ok[i] = 0
        self._ok[i] += 1

    def accepted(self) -> tuple[int, float]:
        """Answers that passed over the last window, and its length (shorter while young)."""
        now = self._clock()
        tick = int(now * _BUCKETS / _WINDOW)
        count = sum(n for n, s in zip(self._ok, self._ok_slot, strict=True) if tick - s < _BUCKETS)
        born = now if self._born is None else self._born
        return count, min(_WINDOW, max(now - born, 0.01))

    def _estimate(self, current: float | None) -> float:
        count, span = self.accepted()
        accepted = count / span
        if count < MIN_SAMPLES:  # too few to measure: guess low, probing finds the rest
            return max(count / _WINDOW, GUESS_RATE) if current is None else current
        if current is None:
            return accepted
        # Far fewer passed than were sent: a real limit, and ``accepted`` is its measure.
        # Otherwise (a stray 429) keep the rate; the decrease is then BETA alone.
        return max(accepted, current / 2) if accepted < current * BETA else current

    def rate_limited(self, epoch: int, retry_after: float | None, backoff: float) -> float:
        """Record a 429 for a request admitted at ``epoch``; returns the seconds until resume.

        Only the first 429 of an episode lowers the rate; later ones may push ``resume_at``
        further out if the server asks for more.
        """
        now = self._clock()
        current = self.rate
        estimate = self._estimate(current) if epoch == self.epoch else 0.0
        # Within HOLDOFF of the last decrease only clear evidence of a limit decreases again:
        # a stray 429 must not ratchet the rate down.
        limited = current is None or estimate < current
        if epoch == self.epoch and (now - self._episode_at >= HOLDOFF or limited):
            self.epoch += 1
            self.episodes += 1
            self._streak += 1
            self._target = max(estimate, MIN_RATE)
            self._floor = max(self._target * BETA, MIN_RATE)
            self._episode_at = now
            wait = backoff if retry_after is None else retry_after
            self.resume_at = max(self.resume_at, now + wait)
            self._next_slot = self._recover_from = self.resume_at
        else:
            wait = backoff if retry_after is None else retry_after
            if now + wait > self.resume_at:
                self.epoch += 1  # workers already waiting for a slot queue again behind it
                self.resume_at = now + wait
                self._next_slot = self.resume_at
        return max(self.resume_at - now, 0.0)

    @property
    def streak(self) -> int:
        """Consecutive episodes without a 2xx between them (1 during the first)."""
        return self._streak


_GATES: weakref.WeakKeyDictionary[object, RateGate] = weakref.WeakKeyDictionary()


def gate_for(owner: object) -> RateGate:
    """The gate of a client, keyed by its connection pool (``with_options`` copies share it)."""
    gate = _GATES.get(owner)
    if gate is None:
        gate = _GATES[owner] = RateGate()
    return gate

"""Rate control of bulk emission: the ``Gate`` interface the engine uses, and ``RateGate``.

The interface
-------------
The engine asks a gate for a ``Ticket`` before every attempt (``admit_now``, else ``admit``)
and gives every ticket back exactly once: ``on_answer`` (the server answered, not 429),
``on_rate_limited`` (a 429) or ``on_lost`` (no answer: connection error, timeout, cancel).
One gate serves one client and every run on it at once; any object with these members can be
the gate (the in-process ``RateGate`` here, or one shared between processes).

The controller (``RateGate``)
-----------------------------
Designed from what a client can measure; nothing is assumed about the server's capacity.

- **Unpaced until the first 429**: until the server refuses, only the run's concurrency
  limits it. While paced, admission is FIFO and only the head of the queue watches the
  clock, so each slot is taken at the rate of the moment it is used. Once the gate is open
  again (unpaced, not paused, no cap in flight) the queue is let go together and new requests
  start without joining it: handing the turn on one per event-loop iteration would hold a
  run at a handful in flight.
- **Capacity from admissions.** A limit *episode* starts at a 429 of a request admitted
  since the last one. Its capacity estimate is what the server admitted over the *cycle*
  since the previous episode (at two successive refusals a bucket is empty and a window
  spent, so what got through in between is what the limiter makes available), or, when the
  client was pacing, the rate of the last admissions before the refusal if higher (a small
  bucket does not keep what the client did not use). The cycle's span leaves out the waits
  of refusals in a row (a window spent until its end admits nobody, and counted, a second's
  wait in two measured 50 a second as 33). A cold start refused before anything was measured
  starts at one request per round trip, finishes the measure from the answers still in
  flight (every admission among them once there are ``SLOW_START_SAMPLES``, however many
  were refused: a limit on requests in service refuses at once and answers those it
  admitted a service time later) and doubles every round trip until the next episode
  measures properly. One refused
  after some admissions goes on measuring from the answers to requests sent after the
  refused one, while four in five of them or more are admitted (a sporadic 429 ten answers
  into a slow first round trip is no limit; those sent before it were admitted under a limit
  not yet spent, and say nothing). The round trip is the shortest seen (a cold process's
  first one opens connections and can take a second), each slow-start slot is one interval
  at the rate of the moment after the last (not a grid set at the starting rate), and the
  refusal that ends slow start halves the rate at most and sets the probe's ceiling just
  below where it was refused; a window measure over a span in which slow start ran is not
  taken (it measures the climb). A later episode measured on fewer than
  ``SLOW_START_SAMPLES`` admissions (a limit shared with other clients refuses this one now
  and then, whatever its own rate) cuts the rate at most to ``MAX_CUT`` (``BETA``) of what
  it was, as a measured episode would: halving there let the client that lost a shared
  limit's cold start halve its way down to ``MIN_RATE``. One whose cycle lasted no more than
  ``SHORT_CYCLE`` round trips still halves at most (``SHORT_CUT``): the gate is then falling
  from a cold start's measure of one burst. One whose cycle was also shorter than ``SOON``
  (half a probe period at most: one is a second or more) cuts to ``BETA ** (SOON / span)``
  at most, down to ``BETA ** SOON_CUTS`` (0.885): a limit shared with other clients refuses each in
  proportion to what it sends, so the client sending most is refused soonest and gives way
  most. A flat 3% kept each client's share where the cold start left it: refused in
  proportion to its rate and cut in proportion to it, a client lost as the square of its
  rate, and its probe (relative to its own measure, over a period of ``PROBE_ANSWERS``)
  regained as the square too, so every split of the limit held (``docs/RATE_CONTROL.md``).
- **Pacing and probing.** After an episode the gate paces at ``BETA`` (0.97) of the
  estimate, one admission every ``1/rate`` (no burst), rises back to the estimate over one
  probe period (at least 1 s, ``PROBE_ANSWERS`` admissions and 10 round trips, at most
  ``MAX_PROBE_PERIOD``), then probes above it slowly at first and faster later (cubic):
  a limit measured right is found just above, one measured short within a few periods.
  A probe that goes ``QUIET_PERIODS`` (30% above the measure) without a refusal rose from
  a measure far too short; its long period (``PROBE_ANSWERS`` at that measure) no longer
  pays for anything, so it goes on along its curve at one period a second (or ten round
  trips): a client kept out of a shared limit by others, at 1.4 requests a second and
  alone since, took 100 s to climb back on periods of 10 s, now some 35 s.
- **Pauses.** An episode pauses everyone for one interval at the new rate, whatever the 429
  says (whole-second Retry-Afters and X-RateLimit-Resets round a bucket's milliseconds up to
  a second); the one request then let through tells: refused again (the limit stayed spent,
  as a window does), the gate waits the server's Retry-After (or Reset) in full, and
  measures the window's capacity as what got through over it, from when this client could
  send again to when the server says it has room (the flood floor's pauses beyond the
  server's wait are the client's own silence, not the window's: counted, they measured a
  client kept out by others on a shared limit at a fraction of a request a second). A
  measure on fewer than ``SLOW_START_SAMPLES`` admissions cannot tell a window spent from
  other clients taking a shared limit meanwhile, so it cuts at most as a few-sample episode
  does, unless it is below ``FAR_BELOW`` (a quarter) of the rate: that is the fall from a
  cold start's measure of one burst (one admission per 0.2 s on a bucket of five a second,
  paced at hundreds), and is taken. A wait
  in whole seconds is rounded up by as much as a second, so where that is a third of the
  span or more the measure is a lower bound: the first time, the probe period after it is at
  most ``COARSE_PERIOD``. A whole-second wait (or an HTTP date, ``Refusal.coarse``, or
  without a Retry-After a Unix-time Reset in whole seconds, ``RateHeaders.coarse``) says the
  room comes within its last second, not when (waited out in full, a window of 0.1 s passed
  0.14 of its capacity, one of 1 s 0.75): where the admissions since the limit last had room
  pay for it (one early probe per 100 admissions, ``EARLY_PROBES``, and the limit had room
  less than ``EARLY_SPAN`` ago), the gate asks again inside that second at the flood floor's
  doubling pace, and the request let through measures the window up to midway between the
  last refusal and itself. A Retry-After beyond ``max_pause`` (the policy's
  ``max_retry_after``) is never applied to the gate: that event fails (the engine's call)
  and the client goes on. Refusals in a row without an admission back off from ``MIN_PAUSE``
  doubling to ``MAX_PAUSE`` with one request out at a time, so a server that only answers
  429, even with ``Retry-After: 0``, sees a few requests a second.
- **Rate limits versus sporadic 429s.** A rate limit refuses (almost) nothing while the
  client paces at or below the capacity it measured; rate-independent 429s (an overloaded
  shard, a flaky proxy) come there as often as anywhere. So the 429 share among requests
  sent at or below the measured capacity is the *background* (once ``BACKGROUND_EVIDENCE``
  such 429s were seen, and not counting a refusal after which the limit stayed spent). When
  it is first established the cuts that led there are undone; from then on a 429 starts an
  episode only when the cycle's 429 count is well above the background's share (twice it,
  and above the most that share's evidence allows: three 429s in 32 answers may be one in
  five), and the others only make their own event wait (its Retry-After, capped). A 429
  saying ``X-RateLimit-Remaining`` > 0 is never a limit, and one saying 0 is never background.
- **Concurrency.** Where the server limits requests in service rather than per second, the
  measured capacity is its throughput and pacing below it keeps the count in service below
  the limit (Little's law); a refusal with more in flight than any admitted request of the
  cycle also caps requests in flight (at what worked, or what the new rate needs), growing
  with the rate and by one per probe period.
- **Budgets.** Time a request waits while the gate is paused counts against the event's
  ``max_rate_limit_wait`` (the ticket's ``waited``); pacing does not.
- **Several processes on one limit** (each its own gate) are not coordinated: each sees the
  others only as refusals. Most points of ``tests/test_ratecontrol_sim.py``'s K-client
  sweep still miss the issue's targets (a client that saturates a bucket of one keeps the
  others out; 8 cold starts at once pass 16-25% 429s); a gate shared through Redis
  (``_redis_gate.py``) is the answer where it matters.
"""

from __future__ import annotations

import collections
import math
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

import anyio

__all__ = [
    "Gate",
    "RateGate",
    "RateHeaders",
    "Refusal",
    "Ticket",
    "gate_for",
    "parse_rate_headers",
]

BETA = 0.97  # rate after an episode, as a share of the measured capacity
PROBE_ANSWERS = 50.0  # admissions per probe period at least: one 429 per ~this many answers
RECENT = 32  # admissions behind the rate measured just before a refusal
MAX_PROBE_PERIOD = 10.0  # seconds: a probe period is never longer
MIN_PAUSE = 0.05  # the pause floor of a second episode without an admission in between
MAX_PAUSE = 2.0  # where that floor stops doubling
MIN_RATE = 0.5  # admissions per second never paced below
MAX_DOUBLINGS = 40.0  # a probe that long unanswered stops growing (no float overflow)
SLOW_START_SAMPLES = 16  # admissions a capacity measure needs; fewer: slow start
COARSE_PERIOD = 1.0  # seconds: the probe period after a measure on a whole-second wait
MAX_CUT = BETA  # an episode measured on too few admissions cuts the rate at most to this share
SHORT_CUT = 0.5  # ... and one of those whose cycle lasted at most SHORT_CYCLE round trips
SHORT_CYCLE = 2.0
MIN_LATENCY = 1e-3  # seconds: a round trip is taken as at least this long for SHORT_CYCLE
FIRST_CUT = 0.85  # the first episode paces at most this share of what was offered
BACKGROUND_EVIDENCE = 3  # 429s below the measured capacity before any is called background
BACKGROUND_MAX = 0.35  # a larger share below capacity is taken for a limit
BACKGROUND_MEMORY = 2000  # answers behind the background share (halved past it)
EARLY_PROBES = 0.01  # early probes inside a whole-second wait, per admission before it
EARLY_SPAN = 10.0  # seconds: ... where the limit last had room less than this long before
QUIET_PERIODS = 3.0  # probe periods without a refusal (past +30%): then a period of a second
SOON = 0.5  # seconds: a few-sample cycle shorter than this cuts to BETA ** (SOON / span)
SOON_CUTS = 4.0  # ... at most to BETA ** this (0.885)
FAR_BELOW = 0.25  # a window measure on few admissions below this share of the rate is taken
# (above it, such a measure cuts at most as a few-sample episode does)


class Ticket:
    """One admission. ``epoch`` is the gate's episode count when it was issued, ``issued_at``
    its time on the gate's clock, ``in_flight`` the count in flight with it, ``serial`` its
    place in the order of issue (0 where a gate does not count); ``waited`` the seconds of
    its wait that count against the event's ``max_rate_limit_wait`` (pauses after 429s, not
    pacing); ``data`` is free for a gate's own use. The engine passes a ticket back
    unchanged, exactly once."""

    __slots__ = ("data", "epoch", "in_flight", "issued_at", "serial", "waited")

    def __init__(
        self, epoch: int, issued_at: float, in_flight: int, data: object = None, *, serial: int = 0
    ) -> None:
        self.epoch = epoch
        self.issued_at = issued_at
        self.in_flight = in_flight
        self.data = data
        self.serial = serial
        self.waited = 0.0


class RateHeaders:
    """``X-RateLimit-Limit/Remaining/Reset`` of one answer (``None`` where absent); ``coarse``,
    whether the reset was stated to the second only (a Unix time in whole seconds: the room
    comes within the second before it, and, subtracted from the clock, it is no whole number)."""

    __slots__ = ("coarse", "limit", "remaining", "reset")

    def __init__(
        self,
        limit: float | None = None,
        remaining: float | None = None,
        reset: float | None = None,
        *,
        coarse: bool = False,
    ) -> None:
        self.limit = limit
        self.remaining = remaining
        self.reset = reset
        self.coarse = coarse

    def __repr__(self) -> str:
        return (
            f"RateHeaders(limit={self.limit}, remaining={self.remaining}, reset={self.reset}, "
            f"coarse={self.coarse})"
        )


class Refusal:
    """One 429 as a gate reads it: ``retry_after``, the server's wait (``None`` when it named
    none); ``headers``, its X-RateLimit headers; ``max_pause``, the longest wait the client
    accepts (its ``max_retry_after``); ``coarse``, whether that wait was stated to the second
    only (an HTTP date; a whole number of seconds is seen as such without it)."""

    __slots__ = ("coarse", "headers", "max_pause", "retry_after")

    def __init__(
        self,
        retry_after: float | None,
        headers: RateHeaders | None = None,
        max_pause: float = math.inf,
        *,
        coarse: bool = False,
    ) -> None:
        self.retry_after = retry_after
        self.headers = headers
        self.max_pause = max_pause
        self.coarse = coarse


_EPOCH_SECONDS = 1e9  # a Reset above this is a Unix time, not a delta


def whole_seconds(wait: float) -> bool:
    """Whether a wait is a whole number of seconds (one or more): stated to the second, it
    says the room comes within its last second, not when."""
    return wait >= 1.0 and wait == math.floor(wait)


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def parse_rate_headers(headers: Mapping[str, str], now: float | None = None) -> RateHeaders | None:
    """The X-RateLimit headers of an answer, or ``None`` when it has none.

    ``Reset`` is read as seconds from now, or as a Unix time when it is that large (then
    ``coarse`` where it is a whole number of seconds).
    """
    limit = _number(headers.get("x-ratelimit-limit"))
    remaining = _number(headers.get("x-ratelimit-remaining"))
    reset = _number(headers.get("x-ratelimit-reset"))
    if limit is None and remaining is None and reset is None:
        return None
    coarse = False
    if reset is not None and reset > _EPOCH_SECONDS:
        coarse = reset == math.floor(reset)
        reset = max(reset - (time.time() if now is None else now), 0.0)
    return RateHeaders(limit, remaining, reset, coarse=coarse)


class Gate(Protocol):
    """What the bulk engine needs of a rate gate. All times are seconds.

    Every ticket handed out comes back exactly once, through ``on_answer``,
    ``on_rate_limited`` or ``on_lost``; ``admit`` is called from many tasks of one event loop
    at once (a gate shared by threads must lock on its own).
    """

    @property
    def rate(self) -> float | None:
        """Admissions per second the gate paces at now; ``None`` while unpaced."""
        ...

    def admit_now(self) -> Ticket | None:
        """A ticket if a request may start now, without waiting; else ``None``, nothing taken."""
        ...

    async def admit(self, budget: float = math.inf) -> Ticket | None:
        """Wait for this request's turn; ``None`` when the part of the wait spent waiting out
        429s (not pacing) exceeds ``budget`` seconds. The ticket's ``waited`` says how long
        that part was."""
        ...

    def on_answer(self, ticket: Ticket, headers: RateHeaders | None = None) -> None:
        """The request of ``ticket`` got an answer other than 429: the limiter let it through."""
        ...

    def on_rate_limited(self, ticket: Ticket, refusal: Refusal) -> float:
        """The request of ``ticket`` got a 429 (``refusal``); returns how long *this* event
        waits on its own before asking ``admit`` again (everyone's pause is inside ``admit``).

        A ``refusal.retry_after`` longer than ``refusal.max_pause`` is not applied to anyone
        but this event, which the engine fails.
        """
        ...

    def on_lost(self, ticket: Ticket) -> None:
        """The request of ``ticket`` got no answer (connection error, timeout, cancelled)."""
        ...


class RateGate:
    """The in-process gate (see the module docstring); ``clock``/``sleep`` are injectable."""

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
        self.resume_at = -math.inf
        self.in_flight = 0
        self._window: float | None = None  # in-flight cap at the last episode; None: none
        self._streak = 0  # episodes since the last admission
        self._next_slot = -math.inf
        self._last_slot = -math.inf  # when the last slot was taken
        self._base: float | None = None  # the rate set at the last episode; None: unpaced
        self._capacity = 0.0  # the capacity measured at the last episode
        self._probe_from = 0.0  # when pacing at ``_base`` resumed
        self._probe_period = 1.0
        self._probing = 0  # a lone request let through after a pause without admissions
        # Answers, all and per cycle (answers to tickets of the current epoch).
        self._ok = 0
        self._born: float | None = None
        self._cycle_at = 0.0
        self._cycle_paused = 0.0  # ``_paused`` at the cycle's start
        self._cycle_ok0 = 0
        self._cycle_ok = 0
        self._cycle_429 = 0
        self._cycle_top = 0  # the most in flight at the issue of a request admitted this cycle
        self._latency = 0.0  # mean seconds from admission to answer
        self._min_trip = math.inf  # the shortest of them
        self._answers = 0
        self._unmeasured: tuple[float, int] | None = None  # (cycle start, admitted before)
        self._unmeasured_epoch = -1  # the epoch of the tickets that finish that measure
        self._issued = 0  # tickets issued, in all: the last one's serial
        self._cold_mark = 0  # the serial of the refusal that ended the unpaced start
        self._past_ok = 0  # answers to cold tickets issued after it, admitted ...
        self._past_429 = 0  # ... and refused
        self._pause_start = 0.0
        self._pause_total = 0.0
        self._queue: collections.deque[anyio.Event] = collections.deque()  # waiting admits
        self._head: anyio.Event | None = None  # set when a ticket comes back
        self._recent: collections.deque[float] = collections.deque(maxlen=RECENT)
        self._spent = False  # the last episode needed a second, longer pause
        # Answers to requests sent while pacing at or below the measured capacity.
        self._ramp_ok = 0
        self._ramp_429 = 0
        self._slow = False  # the last measure rests on too few admissions: slow start
        self._spell = (math.inf, 0)  # when the limit last had room again, admissions then
        self._spell_ramp = False  # slow start ran during the spell: it measures the ramp
        self._ramp_trigger = False  # the last episode began with a refusal below capacity
        self._coarse = False  # a measure on a whole-second wait was probed above early
        self._room_by = -math.inf  # when the server said it has room, at the streak's start
        self._early = 0  # early probes this streak may still send inside a whole-second wait
        self._room_cap = math.inf  # after early probes, the wait ends by the first refusal's
        # A window measure waiting for the early probe admitted: (spell start, admissions then,
        # last refusal)
        self._pending: tuple[float, int, float] | None = None

    # -- pacing ------------------------------------------------------------------------------

    @property
    def rate(self) -> float | None:
        """Admissions per second now; ``None`` before any episode (unpaced)."""
        base = self._base
        if base is None:
            return None
        t = self._clock() - self._probe_from
        if t <= 0:
            return base
        if self._slow:  # measured on a handful of answers: double every round trip
            # (per the shortest round trip: the mean still holds a cold process's first one,
            # connections opened and all)
            trip = max(min(self._latency, self._min_trip), MIN_PAUSE)
            return base * math.pow(2.0, min(t / trip, MAX_DOUBLINGS))
        period = self._probe_period
        if t <= period:  # back up to the measured capacity, linearly
            return base + (self._capacity - base) * t / period
        # Past it: probe for more, slowly at first (a limit measured right is just above),
        # then faster (one measured short is found in a few periods): +6% after one period,
        # +30% after two, x2 after three.
        x = (t - period) / period
        x = min(x, MAX_DOUBLINGS)
        return self._capacity * (1.0 + (1.0 - BETA) * (x + x * x * x))

    @property
    def window(self) -> float | None:
        """Requests in flight allowed now; ``None`` when only the rate limits.

        Set just below the count in flight at an episode's 429, it grows by one per probe
        period.
        """
        if self._window is None or self._base is None:
            return None
        t = max(self._clock() - self._probe_from, 0.0)
        rate = self.rate or self._base
        return self._window * rate / self._base + t / self._probe_period

    def _free(self) -> bool:
        if self._streak and self._probing:
            return False
        window = self.window
        return window is None or self.in_flight < window

    def _issue(self, now: float) -> Ticket:
        if self._spell[0] == math.inf:
            self._spell = (now, 0)
        self.in_flight += 1
        self._issued += 1
        probe = bool(self._streak)
        if probe:
            self._probing += 1
        return Ticket(self.epoch, now, self.in_flight, probe, serial=self._issued)

    def _take_slot(self, now: float) -> bool:
        """Whether a request may start at ``now``; if so its slot is taken."""
        if self.resume_at > now or not self._free():
            return False
        self._wake(now)
        rate = self.rate
        if rate is not None:
            due = self._due(rate)
            if due > now:
                return False
            # A late wake-up keeps to the grid, but the next slot is never closer than half
            # an interval: no bursts.
            self._next_slot = max(due + 1.0 / rate, now + 0.5 / rate)
        self._last_slot = now
        return True

    def _wake(self, now: float) -> None:
        """Probe on a short period once the probe has gone ``QUIET_PERIODS`` without a
        refusal: the measure it rose from was short, so the ``PROBE_ANSWERS`` that set a
        long period (a 429 per so many answers) are no longer the cost of a probe. (A client
        kept out of a shared limit by others measured it at a fraction of a request a second,
        and then climbed for a minute and a half, alone, on periods of ten seconds.) The
        probe goes on where it was on its curve, one period a second or ten round trips."""
        if self._base is None or self._slow or self._streak:
            return
        period = self._probe_period
        quick = self._period_for(math.inf)
        t = now - self._probe_from
        if period <= quick or t < QUIET_PERIODS * period:
            return
        self._probe_period = quick
        self._probe_at(now - quick * t / period)

    def _due(self, rate: float) -> float:
        """When the next slot is due at ``rate``. In slow start the rate doubles every round
        trip, so the slot is one interval at the rate of now after the last one: the grid
        set at one request per cold round trip (seconds, at times) would hold the doubling
        back until it had reached many times the limit."""
        if self._slow:
            return min(self._next_slot, max(self._last_slot + 1.0 / rate, self.resume_at))
        return self._next_slot

    def _open(self, now: float) -> bool:
        """Unpaced, not paused, no cap in flight: nothing to keep in order, anyone may start.

        Handing the turn from head to head takes an event-loop iteration per admission;
        with a queue left over from a pause that held a run at a handful in flight, every
        answer joining the queue's tail (sporadic 429s over HTTP: 7 of 64 in flight, 0.75x).
        """
        return self._base is None and self.resume_at <= now and self._free()

    def admit_now(self) -> Ticket | None:
        now = self._clock()
        if (self._queue and not self._open(now)) or not self._take_slot(now):
            return None
        return self._issue(now)

    async def admit(self, budget: float = math.inf) -> Ticket | None:
        # Waiters queue (FIFO); only the head watches the clock, so a slot is taken at the
        # rate of the moment it is used, not of the moment it was asked for. Time the gate
        # spends paused while a request waits counts against its ``budget``; pacing does not.
        turn = anyio.Event()
        self._queue.append(turn)
        paused0 = self._paused(self._clock())
        try:
            while self._queue[0] is not turn:
                now = self._clock()
                if self._open(now):
                    break  # (so the first look below takes a slot)
                if turn.is_set():  # let go by an open gate, closed again since
                    turn = self._requeue(turn)
                left = budget - (self._paused(now) - paused0)
                if left <= 0:
                    return None
                timeout = min(left, self.resume_at - now) if self.resume_at > now else 1.0
                with anyio.move_on_after(timeout):
                    await turn.wait()
            while True:
                now = self._clock()
                waited = self._paused(now) - paused0
                if self._take_slot(now):
                    ticket = self._issue(now)
                    ticket.waited = waited
                    return ticket
                if waited >= budget:
                    return None
                start = max(now, self.resume_at)
                rate = self.rate
                if rate is not None:
                    start = max(start, self._due(rate))
                    if self._slow:  # the rate doubles meanwhile: look again soon
                        start = min(start, max(now, self.resume_at) + MIN_PAUSE)
                if self.resume_at > now:
                    start = min(start, now + budget - waited)
                if not self._free():  # wait for a ticket back, or the window to grow
                    self._head = anyio.Event()
                    with anyio.move_on_after(max(start - now, MIN_PAUSE)):
                        await self._head.wait()
                    self._head = None
                else:
                    await self._sleep(max(start - now, 0.0))
        finally:
            head = self._queue[0] is turn
            self._queue.remove(turn)
            if not self._release_queue(self._clock()) and head and self._queue:
                self._queue[0].set()

    def _requeue(self, turn: anyio.Event) -> anyio.Event:
        """Back to its place in line, with a turn not yet given."""
        fresh = anyio.Event()
        self._queue[self._queue.index(turn)] = fresh
        return fresh

    def _release_queue(self, now: float) -> bool:
        """Once the gate is open, wake every queued waiter: each starts on its own."""
        if not (self._queue and self._open(now)):
            return False
        for waiting in self._queue:
            waiting.set()
        if self._head is not None:
            self._head.set()
        return True

    def _paused(self, now: float) -> float:
        """Seconds the gate has spent paused, in all, up to ``now``."""
        start = self._pause_start
        return self._pause_total + min(max(now - start, 0.0), max(self.resume_at - start, 0.0))

    def _pause_until(self, now: float, until: float) -> None:
        """Pause every admission until ``until`` (never shortens a pause)."""
        if now >= self.resume_at:  # the last pause is over: book it, start another
            self._pause_total += max(self.resume_at - self._pause_start, 0.0)
            self._pause_start = now
        self.resume_at = max(self.resume_at, until)

    # -- answers -----------------------------------------------------------------------------

    def _returned(self, ticket: Ticket) -> None:
        self.in_flight = max(self.in_flight - 1, 0)
        if ticket.data is True and self._probing:
            self._probing -= 1
        if self._head is not None:
            self._head.set()

    def on_answer(self, ticket: Ticket, headers: RateHeaders | None = None) -> None:
        self._returned(ticket)
        now = self._clock()
        if self._born is None:
            self._born = self._cycle_at = now
        self._ok += 1
        if self._pending is not None:
            self._finish_window_measure(ticket.issued_at)
        self._streak = 0
        self._probing = 0
        if ticket.epoch == self.epoch:
            self._cycle_ok += 1
            self._recent.append(now)
        if self._in_ramp(ticket):
            self._ramp_ok += 1
            if self._ramp_ok + self._ramp_429 > BACKGROUND_MEMORY:  # forget slowly
                self._ramp_ok //= 2
                self._ramp_429 //= 2
            self._unmeasured = None
        elif self._measures_on(ticket, admitted=True):
            self._remeasure(now, now - ticket.issued_at, settled=self._past_admitted)
        self._cycle_top = max(self._cycle_top, ticket.in_flight)
        self._answers += 1
        weight = max(1.0 / self._answers, 0.05)
        self._latency += (now - ticket.issued_at - self._latency) * weight
        self._min_trip = min(self._min_trip, now - ticket.issued_at)

    def on_lost(self, ticket: Ticket) -> None:
        self._returned(ticket)

    def on_rate_limited(self, ticket: Ticket, refusal: Refusal) -> float:
        retry_after, headers, max_pause = refusal.retry_after, refusal.headers, refusal.max_pause
        self._returned(ticket)
        now = self._clock()
        if self._born is None:
            self._born = self._cycle_at = now
        trusted = retry_after if retry_after is not None and retry_after <= max_pause else None
        own = 0.0 if trusted is None else trusted
        if headers is not None and headers.remaining is not None and headers.remaining >= 1:
            return own  # the server says there is room: not the rate limit
        self._measures_on(ticket, admitted=False)
        if ticket.epoch != self.epoch:  # part of the last episode: it paused everyone already
            return 0.0
        self._cycle_429 += 1
        answers = self._cycle_ok + self._cycle_429
        # A 429 saying the limit has nothing left is the limit, never background.
        ramp = self._in_ramp(ticket) and not (headers is not None and headers.remaining == 0)
        if ramp:
            self._ramp_429 += 1
            if self._ramp_429 == BACKGROUND_EVIDENCE and self._streak == 0:
                # The cuts that got here were for 429s that come whatever the rate: undo
                # them (a real limit beneath shows as an excess and measures again).
                self._base = None
                self._window = None
                self._release_queue(now)
                return own
        background = self.background
        if background > 0 and self._streak == 0:
            expected = background * answers
            allowed = max(2 * expected, self._background_bound() * answers)
            if self._cycle_429 <= allowed + 3 * math.sqrt(expected) + 1:
                return own  # within the background share: this event waits, nobody else
        if self._streak and self._ramp_trigger and self._ramp_429:
            self._ramp_429 -= 1  # the limit is still spent: that refusal was no background
        self._ramp_trigger = ramp
        # (a wait stated to the second: an HTTP date, or without one a Unix-time Reset)
        coarse = refusal.coarse if trusted is not None else bool(headers and headers.coarse)
        self._episode(
            now, ticket=ticket, trusted=trusted, headers=headers, answers=answers, coarse=coarse
        )
        return 0.0

    def _in_ramp(self, ticket: Ticket) -> bool:
        """Whether ``ticket`` was issued while pacing at or below the measured capacity."""
        start = self._probe_from
        return self._base is not None and start <= ticket.issued_at <= start + self._probe_period

    @property
    def background(self) -> float:
        """The share of 429s that come whatever the rate (0 until a few are seen).

        Measured on requests sent while pacing at or below the capacity last measured, where
        a rate limit refuses (almost) nothing.
        """
        if self._ramp_429 < BACKGROUND_EVIDENCE:
            return 0.0
        share = self._ramp_429 / (self._ramp_429 + self._ramp_ok)
        # More than that refused below capacity is no background but a limit measured high.
        return share if share <= BACKGROUND_MAX else 0.0

    def _measures_on(self, ticket: Ticket, *, admitted: bool) -> bool:
        """Whether the answer to ``ticket`` goes on measuring the unpaced start's capacity.

        The requests still in flight at the first refusal, and sent after it, tell what
        the refusal was worth: where the server goes on admitting four in five of them or
        more it was no limit reached (a sporadic 429, or one that came early in a slow first
        round trip), and what gets through measures the start; where more are refused, they
        stop the measure. (A fixed window of 50 refuses 14 of 64 sent at once; arriving in
        another order than they were sent, more than half of those sent after the first
        refusal answered were admitted: measured on while that many were, a cold start
        passed some 30 429s more.) Those sent before the refusal were admitted under a limit
        not yet spent and measure nothing (counted, a bucket's burst read as its rate).

        Refused before any answer came, the gate measures from every admission still in
        flight once ``SLOW_START_SAMPLES`` came, however many were refused: a limit on
        requests in service refuses at once and answers the admitted ones a service time
        later, so the refusals all come first (32 in service of 64 sent, 20 ms each: the
        refused half stopped the measure, and the gate climbed from one request per round
        trip, 0.48 of the capacity after learning). That measure spans the cold round trip
        (connections opened and all), so it raises slow start's rate without ending it.
        These answers may come after a second refusal in a row has begun another epoch:
        they are the first episode's.
        """
        if self._unmeasured is None or ticket.epoch != self._unmeasured_epoch:
            return False
        if ticket.serial <= self._cold_mark:
            return False
        if admitted:
            self._past_ok += 1
        else:
            self._past_429 += 1
        if self._cold_mark == 0 and admitted and self._past_ok >= SLOW_START_SAMPLES:
            return True  # refused before any answer: those held in service measure it
        return self._past_admitted

    @property
    def _past_admitted(self) -> bool:
        """The server admits four in five or more of those still in flight: no limit."""
        return self._past_ok > 4 * self._past_429

    def _finish_window_measure(self, admitted_at: float) -> None:
        """An early probe inside a whole-second wait got through: the window had room again
        between the last refusal and its issue. Measure its capacity over that."""
        assert self._pending is not None
        spell_at, admitted, refused_at = self._pending
        self._pending = None
        room_at = (refused_at + admitted_at) / 2
        if self._base is None or room_at <= spell_at or admitted <= 0:
            return
        self._pace_for_window(admitted / (room_at - spell_at), self._clock())

    def _pace_for_window(self, capacity: float, now: float) -> None:
        """Pace just below a window's measured ``capacity`` (never faster than now)."""
        assert self._base is not None
        self._set_rate(max(min(self._base, BETA * capacity), MIN_RATE), capacity, now)

    def _background_bound(self) -> float:
        """The background share at most, as far as its evidence tells (0 while none).

        Three 429s in 32 answers say little: a cycle's share was once held to twice that
        measure alone, and sporadic 429s on one request in five (measured 3 in 32) started
        an episode a thousand answers on; the gate paced at three quarters of what the
        server answered for the rest of the run.
        """
        if self.background <= 0:
            return 0.0
        refused = self._ramp_429
        high = (refused + 2.0 * math.sqrt(refused) + 1.0) / (refused + self._ramp_ok)
        return min(high, BACKGROUND_MAX)

    def _remeasure(self, now: float, trip: float, *, settled: bool) -> None:
        """The first episode came before the unpaced start was measured (all of a round
        trip's answers arrive at once, or the first 429 came early in it): the requests
        still in flight then finish the measurement, which ends slow start once it rests
        on enough answers where it is ``settled`` (most of them admitted)."""
        assert self._unmeasured is not None
        start, ok0 = self._unmeasured
        span = max(now - start, trip)
        if span <= 0:
            return
        capacity = (self._ok - ok0) / span
        if settled and self._ok - ok0 >= SLOW_START_SAMPLES:
            self._slow = False
        if capacity > self._capacity:
            self._capacity = capacity
            self._base = max(BETA * capacity, MIN_RATE)
            self._probe_period = self._period_for(capacity)
            self._probe_at(self._probe_from)

    def _set_rate(self, rate: float | None, capacity: float, now: float) -> None:
        self._base = rate
        self._capacity = capacity
        if rate is not None:
            self._probe_period = self._period_for(capacity)
        self._probe_at(max(now, self.resume_at))

    def _period_for(self, capacity: float) -> float:
        """A probe period at ``capacity``: ``PROBE_ANSWERS`` admissions, 1 s and 10 round
        trips at least, ``MAX_PROBE_PERIOD`` at most (``inf``: the shortest)."""
        answers = min(PROBE_ANSWERS / max(capacity, MIN_RATE), MAX_PROBE_PERIOD)
        return min(max(1.0, answers, 10 * self._latency), MAX_PROBE_PERIOD)

    def _probe_at(self, when: float) -> None:
        self._probe_from = when

    def _new_cycle(self, now: float) -> None:
        self._cycle_at = now
        self._cycle_paused = self._paused(self.resume_at)
        self._cycle_ok0 = self._ok
        self._cycle_ok = 0
        self._cycle_429 = 0
        self._cycle_top = 0

    def _episode(
        self,
        now: float,
        *,
        ticket: Ticket,
        trusted: float | None,
        headers: RateHeaders | None,
        answers: int,
        coarse: bool = False,
    ) -> None:
        if self._streak:
            # No admission since the last episode: the limit is still spent. Keep the rate
            # and the cycle (it measures from the streak's first episode); back off.
            self.epoch += 1
            self.episodes += 1
            self._streak += 1
            self._probing = 0
            self._spent = True
            self._slow = False  # refused again at once: slow start is over
            if trusted is not None:
                pause = trusted
            elif headers is not None and headers.reset is not None and headers.remaining == 0:
                pause = headers.reset
            else:
                pause = 0.0
            floor = min(MIN_PAUSE * math.pow(2.0, self._streak - 2), MAX_PAUSE)
            spell_at, spell_ok = self._spell
            room_at = now + pause  # when the server says it has room (not the flood floor)
            ramp = self._spell_ramp
            if self._streak == 2:
                self._room_by = room_at
                self._room_cap = math.inf
                # (not where the second a whole-second wait may round up is a small part of
                # the span since the limit last had room: a window of 10 s lost little)
                short = room_at - spell_at < EARLY_SPAN
                self._early = int(EARLY_PROBES * (self._ok - spell_ok)) if short else 0
            # A whole-second wait says the server has room within the last second of it,
            # not when: a window of a tenth of a second waited out in full passes a tenth of
            # its capacity. Where the admissions since the limit last had room pay for it,
            # ask again early inside that second, at the flood floor's doubling pace; the
            # window is measured once a request gets through.
            least = max(now, self._room_by - 1.0)  # the room is later than this
            whole = whole_seconds(pause)
            early = (coarse or whole) and self._early > 0 and least + floor < self._room_by
            admitted = self._ok - spell_ok
            if early:
                self._early -= 1
                self._room_cap = self._room_by
                if self._pending is None and self._base is not None and not ramp:
                    self._pending = (spell_at, admitted, least)
                elif self._pending is not None:
                    self._pending = (*self._pending[:2], least)
                until = least + floor
            else:
                if self._pending is not None:  # early probes spent: measure from its start
                    spell_at, admitted, _ = self._pending
                    self._pending = None
                # (after early probes, no later than the first refusal said: each refusal
                # since restated its own second)
                until = max(min(now + max(pause, floor), self._room_cap), now + floor)
                self._room_cap = math.inf
            self._pause_until(now, until)
            self._next_slot = self.resume_at
            if not early and pause > 0 and self._base is not None and room_at > spell_at:
                # What got through since the limit last had room, to when the server says it
                # has room again: a window's count over its length. Not where slow start ran
                # meanwhile (``ramp``): that span measures its climb, far below the limit.
                span = room_at - spell_at
                capacity = admitted / span
                if admitted < SLOW_START_SAMPLES and capacity > FAR_BELOW * self._base:
                    # Too few admissions to tell a window from other clients' requests
                    # taking the limit meanwhile: cut as a few-sample episode would at
                    # most. (Taken as measured, each such pair cut a client kept out by
                    # others by a third or so: 47 -> 4 a second within 1.4 s, alone from
                    # 12 s on and still there at 28.) Far below the rate, the measure is the
                    # fall from a cold start's measure of one burst, and is taken.
                    capacity = max(capacity, self._base * _few_sample_cut(span) / BETA)
                if not ramp and 0 < capacity < self._capacity:
                    self._pace_for_window(capacity, now)
                    if whole and span < 3.0 and not self._coarse:
                        # A wait in whole seconds rounds up by as much as a second, a third
                        # or more of the span measured here: the measure is a lower bound,
                        # so the first such probes above it soon.
                        self._coarse = True
                        self._probe_period = min(self._probe_period, COARSE_PERIOD)
            # The next measure starts when this client can send again: past the flood floor,
            # not at the server's earlier "room" (it was silent in between).
            self._spell = (self.resume_at, self._ok)
            self._spell_ramp = False
            self._probe_at(self.resume_at)
            return
        # Answers of one round trip can all come at once: a cycle is at least one. The waits
        # of refusals in a row are no part of it (a spent window admits nobody then); the
        # episode's first pause, one interval at the new rate, is.
        active = now - self._cycle_at - (self._paused(now) - self._cycle_paused)
        span = max(active, self._latency, now - ticket.issued_at)
        admitted = self._ok - self._cycle_ok0
        before = self.rate
        capacity = admitted / span if span > 0 and admitted > 0 else 0.0
        # The cycle's average misses what a limiter that refills at once (a small bucket)
        # offered while the client paced below it; the admissions just before the refusal,
        # paced and refused only now, measure it directly. Not after a limit that stayed
        # spent past the first short pause (a window): the client's pace then says nothing.
        recent = [t for t in self._recent if t >= self._cycle_at]
        paced = before is not None and not self._spent
        samples = admitted
        if paced and len(recent) >= RECENT // 2 and recent[-1] > recent[0]:
            capacity = max(capacity, (len(recent) - 1) / (recent[-1] - recent[0]))
            samples = max(samples, len(recent))
        # Slow start only from the cold start's measure; later ones build on earlier ones.
        was_slow = self._slow
        self._slow = before is None and samples < SLOW_START_SAMPLES
        self._spell_ramp = self._spell_ramp or self._slow
        self._spent = False
        if before is None and admitted == 0:
            # Refused before anything was measured: one request per round trip to start
            # with; the answers still in flight measure the rest (``_remeasure``).
            rate = 1.0 / span if span > 0 else MIN_RATE
        elif before is None:
            offered = answers / span if span > 0 else capacity
            rate = min(BETA * capacity, FIRST_CUT * offered) if offered > 0 else MIN_RATE
        else:
            rate = min(BETA * capacity, before * BETA) if capacity > 0 else before / 2
            if samples < SLOW_START_SAMPLES and not was_slow:
                # Too few admissions to measure anything (a limit shared with other clients
                # refuses this one now and then whatever its own rate): cut as a measure
                # would at most. Over a round trip or two, though, the gate is still falling
                # from a cold start's measure of one burst: halve at most.
                short = span <= SHORT_CYCLE * max(self._latency, MIN_LATENCY)
                rate = max(rate, before * (SHORT_CUT if short else MAX_CUT))
                # Refused again soon (under ``SOON``), before the probe got back to its
                # measure: the cut grows with how soon. A limit shared with other clients
                # refuses each in proportion to what it sends, so the one sending most is
                # refused soonest and gives way most; a cut of 3% whenever refused kept each
                # client's share where the cold start left it (the probe rises relative to
                # each client's own measure). (Later, the cut is ``MAX_CUT``: as above.)
                rate = min(rate, before * _few_sample_cut(span))
            elif was_slow:
                # Slow start refused at ``before``: the cycle's average mostly measured its
                # own climb (from one request per round trip, which a cold first round trip
                # makes a fraction of a request a second). Halve at most, as TCP does, and
                # climb back to just below ``before`` over the first probe period.
                rate = max(rate, before * SHORT_CUT)
                capacity = max(capacity, BETA * before)
        rate = max(rate, MIN_RATE)
        # The first episode: the requests still in flight finish its measure. Refused after
        # some admissions, only those sent after the refused one count (``_measures_on``).
        first = before is None
        self._unmeasured = (self._cycle_at, self._cycle_ok0) if first else None
        self._unmeasured_epoch = self.epoch
        self._cold_mark = ticket.serial if first and admitted > 0 else 0
        self._past_ok = self._past_429 = 0
        self.epoch += 1
        self.episodes += 1
        self._streak = 1
        self._probing = 0
        if ticket.in_flight > self._cycle_top > 0:
            # Refused with more in flight than any admitted: maybe a limit on requests in
            # service. Hold in flight at what worked, or what the new rate needs if more.
            self._window = float(max(self._cycle_top, math.ceil(rate * self._latency) + 1))
        else:
            self._window = None
        # The first pause of an episode is one interval at the new rate, whatever the 429
        # says: whole-second Retry-Afters and Resets round a bucket's milliseconds up to a
        # second. The one request let through then tells: a second refusal in a row waits
        # the server's time in full.
        pause = 1.0 / rate
        self._pause_until(now, now + pause)
        self._next_slot = self.resume_at
        self._set_rate(rate, max(capacity, rate), now)
        self._new_cycle(now)

    @property
    def streak(self) -> int:
        """Consecutive episodes without an admission between them."""
        return self._streak


def _few_sample_cut(span: float) -> float:
    """The deepest cut of a measure on too few admissions over ``span`` seconds: ``MAX_CUT``,
    or, sooner than ``SOON``, ``BETA ** (SOON / span)`` down to ``BETA ** SOON_CUTS``."""
    if span >= SOON:
        return MAX_CUT
    return math.pow(BETA, SOON / max(span, SOON / SOON_CUTS))


_GATES: weakref.WeakKeyDictionary[object, RateGate] = weakref.WeakKeyDictionary()


def gate_for(owner: object) -> RateGate:
    """The gate of a client, keyed by its connection pool (``with_options`` copies share it)."""
    gate = _GATES.get(owner)
    if gate is None:
        gate = _GATES[owner] = RateGate()
    return gate

"""``RedisRateGate``: one rate gate shared by every client, process and host naming its key.

The gate's whole state lives in one Redis hash (``key``) and changes only inside Lua scripts,
so every change is atomic and every client sees the same thing: the pause-until after a 429
(Retry-After, or backoff), the admission pacing (the next free slot), the rate, and the
capacity estimate behind it (the answers that passed over the last second, counted by every
client). The one clock is Redis's ``TIME``: no local timestamp is ever written, and a reply
states waits as durations, which the local monotonic clock then sleeps. Two hosts whose clocks
disagree by an hour therefore pace each other exactly as two processes on one host do.

One round trip per admission: the answers that passed since the client's last call and the
429s it saw ride along with its next admission (``passed`` and ``rate_limited`` stay
synchronous and cost no I/O, as the engine needs). A worker whose slot is far out (a paced
gate) confirms it on waking and queues again if a 429 came from anywhere meanwhile.

The controller in the script is the shape of the local gate's (``_gate``): unpaced until the
first 429; an episode sets the rate to ``BETA`` times the capacity measured from what passed,
recovers to it, then probes above it. The hash expires ``ttl`` seconds after its last use.

A Redis outage (refused, timed out, any Redis error) degrades to the client's local gate with
one warning; Redis is tried again every ``retry_interval`` seconds by one caller at a time, and
an ``info`` line says when it is back. Socket timeouts are short, so an outage costs at most
one timeout per retry interval, never a blocked or failed emission. redis is imported when the
first gate is built, never by ``import ventryx``.
"""

from __future__ import annotations

import hashlib
import importlib
import math
import threading
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any

import anyio

from ventryx._bulk._gate import RateGate
from ventryx._errors import ConfigurationError, InvalidInputError
from ventryx._logging import logger

__all__ = ["RedisRateGate"]

_BETA = 0.93
_RECOVER = 0.5
_PROBE_GAIN = 1.0
_HOLDOFF = 1.0
_MIN_RATE = 1.0
_START_RATE = 20.0  # slow start: admissions/s at the key's first use, doubling every ...
_DOUBLING = 0.1  # ... this many seconds until the first 429
_MIN_SPAN = 0.25  # seconds of answers since the last pause below which nothing is measured
_WINDOW = 1.0
_BUCKETS = 10
_CONFIRM_AFTER = 0.02  # a worker that slept longer than this confirms its slot on waking
_MAX_REPORTS = 32  # 429s carried by one call (more in one round trip add nothing)

# ARGV: passed, ttl_ms, max_pause, take, held, held_epoch, then (epoch, retry_after or -1,
# backoff) per 429. take: how many slots to hand out (0: only report); held (-1: none): a slot,
# in Redis's time, taken at held_epoch, to confirm: it stands unless an episode began since or
# a pause now covers it, else one slot is taken anew.
# Returns {epoch, rate ('' when unpaced), streak, pause_left, then wait, slot per slot};
# times as strings, slots in Redis's time (what the tests check pacing on).
_SCRIPT = f"""
if redis.replicate_commands then redis.replicate_commands() end
local k = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local f = {{'ep','ra','ns','flr','tgt','rec','eat','str','born','ss'}}
for i = 0, {_BUCKETS - 1} do f[#f + 1] = 'b' .. i; f[#f + 1] = 's' .. i end
local v = redis.call('HMGET', k, unpack(f))
local ep = tonumber(v[1]) or 0
local ra = tonumber(v[2]) or 0
local ns = tonumber(v[3]) or 0
local flr = tonumber(v[4])
local tgt = tonumber(v[5]) or 0
local rec = tonumber(v[6]) or 0
local eat = tonumber(v[7]) or -1e18
local str = tonumber(v[8]) or 0
local born = tonumber(v[9])
local ss = tonumber(v[10])
local b, s = {{}}, {{}}
for i = 0, {_BUCKETS - 1} do
  b[i] = tonumber(v[11 + 2 * i]) or 0
  s[i] = tonumber(v[12 + 2 * i]) or -1
end
local out = {{}}
local function fmt(x) return string.format('%.6f', x) end

local function rate_at(at)
  if flr == nil then
    if ss == nil then return nil end
    return math.min({_START_RATE} * 2 ^ ((at - ss) / {_DOUBLING}), 1e9)
  end
  local dt = at - rec
  if dt <= 0 then return flr end
  if dt < {_RECOVER} then return flr + (tgt - flr) * dt / {_RECOVER} end
  local p = dt - {_RECOVER}
  return tgt * (1 + {_PROBE_GAIN} * p * p)
end

local tick = math.floor(now * {_BUCKETS} / {_WINDOW})
local passed = tonumber(ARGV[1])
if passed > 0 then
  str = 0
  if born == nil then born = now; out.born = now end
  local i = tick % {_BUCKETS}
  if s[i] ~= tick then s[i] = tick; b[i] = 0 end
  b[i] = b[i] + passed
  out['b' .. i] = b[i]; out['s' .. i] = tick
end

-- The rate the limiter let through since the last pause ended (at most a window back); nil
-- when that is too short to tell.
local function accepted()
  if born == nil then return nil end
  local from = math.max(now - {_WINDOW}, rec, born)
  local span = now - from
  if span < {_MIN_SPAN} then return nil end
  local count = 0
  for i = 0, {_BUCKETS - 1} do
    if tick - s[i] < {_BUCKETS} and (s[i] + 1) * {_WINDOW / _BUCKETS} > from then
      count = count + b[i]
    end
  end
  return math.max(count / span, {_MIN_RATE})
end

local max_pause = tonumber(ARGV[3])
local n = 7
while ARGV[n] do
  local e = tonumber(ARGV[n])
  local wait = tonumber(ARGV[n + 1])
  if wait < 0 then wait = tonumber(ARGV[n + 2]) end
  wait = math.min(wait, max_pause)
  local current = rate_at(now)
  local est = accepted()
  if est ~= nil and current ~= nil then
    -- Far fewer passed than were sent: a limit, and what passed is its measure (at most
    -- halving). Else (a stray 429, or the clients could not send faster) the rate stays.
    if est < current * {_BETA} then est = math.max(est, current / 2) else est = current end
  end
  if e == ep and (est ~= nil or current ~= nil) then
    -- A 429 for a request admitted since the last episode: a new episode if what passes is
    -- below the rate (a limit), or the hold-off since the last one is over.
    if est == nil then est = current / 2 end
    if current == nil or est < current or now - eat >= {_HOLDOFF} then
      ep = ep + 1
      str = str + 1
      tgt = est
      flr = math.max(tgt * {_BETA}, {_MIN_RATE})
      eat = now
      ra = math.max(ra, now + wait)
      ns = ra
      rec = ra
    elseif now + wait > ra then
      ra = now + wait
      ns = math.max(ns, ra)
    end
  elseif now + wait > ra then
    ra = now + wait
    ns = math.max(ns, ra)
  end
  n = n + 3
end

local take = tonumber(ARGV[4])
local held = tonumber(ARGV[5])
if ss == nil and take > 0 then ss = now; out.ss = now end
local rate = rate_at(now)
local slots = {{}}
if held >= 0 then
  if held >= ra and tonumber(ARGV[6]) == ep then slots[1] = held; take = 0 else take = 1 end
end
for _ = 1, take do  -- each slot at the rate of its own time (slow start ramps on)
  local start = math.max(now, ra)
  if rate ~= nil then
    start = math.max(start, ns)
    ns = start + 1 / rate_at(start)
  end
  slots[#slots + 1] = start
end

redis.call('HSET', k, 'ep', ep, 'ra', fmt(ra), 'ns', fmt(ns), 'tgt', fmt(tgt),
  'rec', fmt(rec), 'eat', fmt(eat), 'str', str)
if flr ~= nil then redis.call('HSET', k, 'flr', fmt(flr)) end
for name, value in pairs(out) do redis.call('HSET', k, name, fmt(value)) end
redis.call('PEXPIRE', k, ARGV[2])
local shown = ''
if rate ~= nil then shown = fmt(rate) end
local reply = {{ep, shown, str, fmt(math.max(ra - now, 0))}}
for _, at in ipairs(slots) do
  reply[#reply + 1] = fmt(math.max(at - now, 0))
  reply[#reply + 1] = fmt(at)
end
return reply
"""
_SHA = hashlib.sha1(_SCRIPT.encode(), usedforsecurity=False).hexdigest()


class _Reply:
    """One script answer: the shared state, and each slot as (local deadline, Redis time)."""

    __slots__ = ("epoch", "pause", "rate", "slots", "streak")

    def __init__(self, raw: Any, midpoint: float) -> None:
        self.epoch = int(raw[0])
        self.rate = float(raw[1]) if raw[1] not in (b"", "") else None
        self.streak = int(raw[2])
        self.pause = float(raw[3])
        # The script ran about halfway through the round trip: waits count from there.
        self.slots = [
            (midpoint + float(raw[i]), float(raw[i + 1])) for i in range(4, len(raw) - 1, 2)
        ]


class _Ticket:
    """A worker waiting for the call that takes its slot along with others'."""

    __slots__ = ("done", "result", "served")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.served = False  # False when woken unserved (the call's owner was cancelled)
        self.result: tuple[float, float, int] | None = None


def _positive(value: object, param: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidInputError(param, "must be a positive number of seconds")
    if not math.isfinite(value) or value <= 0:
        raise InvalidInputError(param, "must be a positive number of seconds")
    return float(value)


def _import_redis() -> Any:
    try:
        return importlib.import_module("redis")
    except ImportError:
        raise ConfigurationError(
            'RedisRateGate needs redis-py: pip install "ventryx[redis]"'
        ) from None


class RedisRateGate:
    """A rate gate in Redis, shared by every client that names the same ``key``.

    ``redis`` is a URL (``redis://host:6379/0``, ``rediss://`` for TLS), a ``redis.Redis`` or
    a ``redis.asyncio.Redis`` (which works on asyncio only). Pass the gate to
    ``AsyncVentryx(rate_gate=...)`` or ``ventryx_sync.Ventryx(rate_gate=...)``; every client
    on any host with a gate of the same ``key`` shares one pause, one pacing and one capacity
    estimate. ``ttl`` is how long the state outlives its last use; ``max_pause`` caps a pause
    one answer can impose on everyone; ``socket_timeout`` bounds each Redis call before the
    gate falls back to the local one, and ``retry_interval`` is how often Redis is tried again.
    """

    def __init__(
        self,
        redis: object,
        *,
        key: str = "ventryx:rate-gate",
        ttl: float = 600.0,
        max_pause: float = 60.0,
        socket_timeout: float = 0.25,
        retry_interval: float = 5.0,
    ) -> None:
        if not isinstance(key, str) or not key or len(key) > 512:
            raise InvalidInputError("key", "must be a non-empty string of at most 512 characters")
        self.key = key
        self._ttl_ms = math.ceil(_positive(ttl, "ttl") * 1000)
        self._max_pause = _positive(max_pause, "max_pause")
        timeout = _positive(socket_timeout, "socket_timeout")
        self._retry_interval = _positive(retry_interval, "retry_interval")
        self._sync: Any = None  # a redis.Redis: blocking calls, and async code through a thread
        self._async: Any = None  # a redis.asyncio.Redis given by the caller (asyncio only)
        self._owned = False
        self._url: str | None = None  # a URL gate opens one asyncio client per event loop
        self._loops: weakref.WeakKeyDictionary[object, tuple[Any, Any]] = (
            weakref.WeakKeyDictionary()
        )
        module = _import_redis()
        if isinstance(redis, str):
            retry = importlib.import_module("redis.retry")
            backoff = importlib.import_module("redis.backoff")
            self._options = {
                "socket_timeout": timeout,
                "socket_connect_timeout": timeout,
                "retry": retry.Retry(backoff.NoBackoff(), 0),
            }
            try:
                self._sync = module.Redis.from_url(redis, **self._options)
            except ValueError as exc:  # the message names the scheme, never the password
                raise InvalidInputError("redis", f"is not a Redis URL ({exc})") from None
            self._owned = True
            self._url = redis
        else:
            asyncio_redis = importlib.import_module("redis.asyncio")
            if isinstance(redis, asyncio_redis.Redis):
                self._async = redis
            elif isinstance(redis, module.Redis):
                self._sync = redis
            else:
                raise InvalidInputError(
                    "redis", "must be a Redis URL, a redis.Redis or a redis.asyncio.Redis"
                )
        self.local = RateGate()  # the fallback while Redis is unreachable
        self._lock = threading.Lock()
        self._passed = 0
        self._reports: list[tuple[int, float, float]] = []
        self._down_until = -math.inf  # monotonic: local gate only until then
        self._probing = False
        self._degraded = False
        self._epoch = 0
        self._streak = 0
        self._rate: float | None = None
        self._batching = threading.local()  # per thread (each has its own event loop, if any)
        self.errors = 0  # Redis calls that failed (each one fell back to the local gate)

    def __repr__(self) -> str:  # never the URL: it may carry a password
        state = "degraded" if self._degraded else "shared"
        return f"<RedisRateGate key={self.key!r} {state}>"

    # -- what the bulk engine calls -----------------------------------------------------------

    @property
    def rate(self) -> float | None:
        """The shared admission rate at the last reply; ``None`` while unpaced."""
        return self.local.rate if self._degraded else self._rate

    @property
    def streak(self) -> int:
        return self.local.streak if self._degraded else self._streak

    def admit_now(self) -> int | None:
        """Never without Redis's word while it is up (``admit`` asks it); the local gate's else."""
        if self._use_local():
            epoch = self.local.admit_now()
            return None if epoch is None else -1 - epoch
        return None

    async def admit(self) -> int:
        """Wait for a slot of the shared pacing; the epoch to hand back with a 429."""
        got = await self._take()
        while True:
            if got is None:
                return -1 - await self.local.admit()  # local epochs are negative
            deadline, slot, epoch = got
            wait = deadline - time.monotonic()
            if wait <= 0:
                return epoch
            await anyio.sleep(wait)
            if wait < _CONFIRM_AFTER:
                return epoch
            # A long wait: an episode may have begun elsewhere meanwhile; if so, a new slot.
            reply = await self._call_async(1, slot, epoch)
            got = None if reply is None else (*reply.slots[0], reply.epoch)

    async def _take(self) -> tuple[float, float, int] | None:
        """One slot; the workers of this thread that ask meanwhile share one Redis call."""
        local = self._batching
        queue: list[_Ticket] | None = getattr(local, "queue", None)
        if queue is not None:  # a call is under way: the next one takes this slot too
            ticket = _Ticket()
            queue.append(ticket)
            await ticket.done.wait()
            return ticket.result if ticket.served else await self._take()
        local.queue = queue = []
        batch: list[_Ticket] = []
        try:
            reply = await self._call_async(1)
            mine = None if reply is None else (*reply.slots[0], reply.epoch)
            while queue:
                batch = queue[:]
                del queue[:]
                reply = await self._call_async(len(batch))
                for i, ticket in enumerate(batch):
                    ticket.result = None if reply is None else (*reply.slots[i], reply.epoch)
                    ticket.served = True
                    ticket.done.set()
                batch = []
        finally:
            local.queue = None
            for ticket in (*batch, *queue):  # cancelled before serving them: they ask again
                ticket.done.set()
        return mine

    def passed(self) -> None:
        """An answer other than 429: counted towards the shared capacity estimate."""
        self.local.passed()
        with self._lock:
            self._passed += 1

    def rate_limited(self, epoch: int, retry_after: float | None, backoff: float) -> float:
        """Record a 429 (shared on the next call); returns the seconds to wait as known here."""
        if epoch < 0 or self._use_local():
            return self.local.rate_limited(max(-1 - epoch, 0), retry_after, backoff)
        wait = min(backoff if retry_after is None else retry_after, self._max_pause)
        with self._lock:
            if len(self._reports) < _MAX_REPORTS:
                self._reports.append((epoch, -1.0 if retry_after is None else retry_after, backoff))
        return max(wait, 0.0)

    # -- what a single call that got a 429 calls (the request pipeline) ---------------------

    async def call_limited(
        self, retry_after: float | None, backoff: float, *, blocking: bool
    ) -> float:
        """Share a single call's 429; the seconds until the shared pause ends (0 if unknown)."""
        self.rate_limited(self._epoch, retry_after, backoff)
        reply = self._call_blocking(0) if blocking else await self._call_async(0)
        return 0.0 if reply is None else reply.pause

    async def call_turn(self, *, blocking: bool) -> float:
        """The seconds a single call's retry waits for its slot of the shared pacing."""
        reply = self._call_blocking(1) if blocking else await self._call_async(1)
        return 0.0 if reply is None else max(reply.slots[0][0] - time.monotonic(), 0.0)

    # -- Redis ----------------------------------------------------------------------------------

    def _use_local(self) -> bool:
        return self._degraded and time.monotonic() < self._down_until

    def _args(self, take: int, held: float, held_epoch: int) -> list[object] | None:
        """The script's arguments (taking what is pending), or None to stay local for now."""
        with self._lock:
            if self._degraded:
                if time.monotonic() < self._down_until or self._probing:
                    return None
                self._probing = True  # one caller tries Redis again; the rest stay local
            passed, self._passed = self._passed, 0
            reports, self._reports = self._reports, []
        args: list[object] = [passed, self._ttl_ms, self._max_pause, take, held, held_epoch]
        for epoch, retry_after, backoff in reports:
            args += [epoch, retry_after, backoff]
        return args

    def _parse(self, raw: Any, sent: float) -> _Reply:
        reply = _Reply(raw, (sent + time.monotonic()) / 2)
        with self._lock:
            self._epoch, self._rate, self._streak = reply.epoch, reply.rate, reply.streak
            self._probing = False
            if self._degraded:
                self._degraded = False
                logger.info("rate gate %r: Redis is reachable again, sharing resumed", self.key)
        return reply

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self.errors += 1
            self._probing = False
            self._down_until = time.monotonic() + self._retry_interval
            if self._degraded:
                return
            self._degraded = True
        logger.warning(
            "rate gate %r: Redis unreachable (%s); using this client's own gate, retrying every "
            "%.1f s",
            self.key,
            type(exc).__name__,
            self._retry_interval,
        )

    def _run_sync(self, args: list[object]) -> Any:
        client = self._sync
        try:
            return client.evalsha(_SHA, 1, self.key, *args)
        except Exception as exc:
            if type(exc).__name__ != "NoScriptError":
                raise
            return client.eval(_SCRIPT, 1, self.key, *args)  # loads it for the next EVALSHA

    async def _run_async(self, client: Any, args: list[object]) -> Any:
        try:
            return await client.evalsha(_SHA, 1, self.key, *args)
        except Exception as exc:
            if type(exc).__name__ != "NoScriptError":
                raise
            return await client.eval(_SCRIPT, 1, self.key, *args)

    async def _loop_client(self) -> Any:
        """This event loop's asyncio client (a URL gate), closed when the loop shuts down."""
        import asyncio  # noqa: PLC0415 - only on asyncio

        loop = asyncio.get_running_loop()
        held = self._loops.get(loop)
        if held is not None:
            return held[0]
        for old in [other for other in self._loops if getattr(other, "is_closed", bool)()]:
            del self._loops[old]  # its client was closed with it
        client = importlib.import_module("redis.asyncio").Redis.from_url(self._url, **self._options)
        keeper = _close_at_loop_end(client)
        await keeper.__anext__()  # the loop's async-generator hooks now hold it
        self._loops[loop] = (client, keeper)
        return client

    def _call_blocking(self, take: int, held: float = -1.0, epoch: int = -1) -> _Reply | None:
        args = self._args(take, held, epoch)
        if args is None:
            return None
        if self._sync is None:  # only an asyncio client: a blocking caller cannot use it
            self._failed(ConfigurationError("a redis.asyncio client cannot serve blocking calls"))
            return None
        sent = time.monotonic()
        try:
            return self._parse(self._run_sync(args), sent)
        except Exception as exc:  # noqa: BLE001 - any Redis failure degrades, never fails a call
            self._failed(exc)
            return None

    async def _call_async(self, take: int, held: float = -1.0, epoch: int = -1) -> _Reply | None:
        args = self._args(take, held, epoch)
        if args is None:
            return None
        sent = time.monotonic()
        try:
            if self._async is not None:
                if _backend() != "asyncio":
                    raise ConfigurationError("a redis.asyncio client works on asyncio only")
                raw = await self._run_async(self._async, args)
            elif self._url is not None and _backend() == "asyncio":
                raw = await self._run_async(await self._loop_client(), args)
            else:
                raw = await anyio.to_thread.run_sync(self._run_sync, args)
            return self._parse(raw, sent)
        except Exception as exc:  # noqa: BLE001 - any Redis failure degrades, never fails a call
            self._failed(exc)
            return None

    # -- lifetime ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connections of a gate built from a URL (a given client is the caller's)."""
        if self._owned and self._sync is not None:
            self._sync.close()


async def _close_at_loop_end(client: Any) -> AsyncIterator[None]:
    """Suspended for the loop's life; ``loop.shutdown_asyncgens`` (asyncio.run) closes it."""
    try:
        yield
    finally:
        await client.aclose()


def _backend() -> str:
    import sniffio  # noqa: PLC0415 - anyio's dependency, needed only with an asyncio client

    return sniffio.current_async_library()

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
from typing import Any

import anyio

from ventryx._bulk._gate import RateGate
from ventryx._errors import ConfigurationError, InvalidInputError
from ventryx._logging import logger

__all__ = ["RedisRateGate"]

_BETA = 0.93
_RECOVER = 0.5
_PROBE_GAIN = 0.25
_HOLDOFF = 1.0
_MIN_RATE = 1.0
_MIN_SAMPLES = 10
_GUESS_RATE = 20.0
_WINDOW = 1.0
_BUCKETS = 10
_CONFIRM_AFTER = 0.02  # a worker that slept longer than this confirms its slot on waking
_MAX_REPORTS = 32  # 429s carried by one call (more in one round trip add nothing)

# ARGV: passed, ttl_ms, max_pause, mode, then (epoch, retry_after or -1, backoff) per 429.
# mode: -2 report only (no slot), -1 take a slot, >= 0 confirm the slot taken at that epoch.
# Returns {wait, epoch, rate ('' when unpaced), streak, pause_left}; times as strings.
_SCRIPT = f"""
if redis.replicate_commands then redis.replicate_commands() end
local k = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local f = {{'ep','ra','ns','flr','tgt','rec','eat','str','born'}}
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
local b, s = {{}}, {{}}
for i = 0, {_BUCKETS - 1} do
  b[i] = tonumber(v[10 + 2 * i]) or 0
  s[i] = tonumber(v[11 + 2 * i]) or -1
end
local out = {{}}
local function fmt(x) return string.format('%.6f', x) end

local function rate_at(at)
  if flr == nil then return nil end
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

local function estimate(current)
  local count = 0
  for i = 0, {_BUCKETS - 1} do
    if tick - s[i] < {_BUCKETS} then count = count + b[i] end
  end
  local span = {_WINDOW}
  if born == nil then span = 0.01 else span = math.min({_WINDOW}, math.max(now - born, 0.01)) end
  if count < {_MIN_SAMPLES} then
    if current == nil then return math.max(count / {_WINDOW}, {_GUESS_RATE}) end
    return current
  end
  local accepted = count / span
  if current == nil then return accepted end
  if accepted < current * {_BETA} then return math.max(accepted, current / 2) end
  return current
end

local max_pause = tonumber(ARGV[3])
local n = 5
while ARGV[n] do
  local e = tonumber(ARGV[n])
  local wait = tonumber(ARGV[n + 1])
  if wait < 0 then wait = tonumber(ARGV[n + 2]) end
  wait = math.min(wait, max_pause)
  local current = rate_at(now)
  if e == ep then
    local est = estimate(current)
    if current == nil or est < current or now - eat >= {_HOLDOFF} then
      ep = ep + 1
      str = str + 1
      tgt = math.max(est, {_MIN_RATE})
      flr = math.max(tgt * {_BETA}, {_MIN_RATE})
      eat = now
      ra = math.max(ra, now + wait)
      ns = ra
      rec = ra
    elseif now + wait > ra then
      ep = ep + 1
      ra = now + wait
      ns = ra
    end
  elseif now + wait > ra then
    ep = ep + 1
    ra = now + wait
    ns = ra
  end
  n = n + 3
end

local mode = tonumber(ARGV[4])
local start = now
local rate = rate_at(now)
if mode == -1 or (mode >= 0 and mode ~= ep) then
  start = math.max(now, ra)
  if rate ~= nil then
    start = math.max(start, ns)
    ns = start + 1 / rate
  end
end

redis.call('HSET', k, 'ep', ep, 'ra', fmt(ra), 'ns', fmt(ns), 'tgt', fmt(tgt),
  'rec', fmt(rec), 'eat', fmt(eat), 'str', str)
if flr ~= nil then redis.call('HSET', k, 'flr', fmt(flr)) end
for name, value in pairs(out) do redis.call('HSET', k, name, fmt(value)) end
redis.call('PEXPIRE', k, ARGV[2])
local shown = ''
if rate ~= nil then shown = fmt(rate) end
return {{fmt(start - now), ep, shown, str, fmt(math.max(ra - now, 0))}}
"""
_SHA = hashlib.sha1(_SCRIPT.encode(), usedforsecurity=False).hexdigest()

_TAKE = -1
_REPORT = -2

Reply = tuple[float, int, "float | None", int, float]


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
        if isinstance(redis, str):
            module = _import_redis()
            retry = importlib.import_module("redis.retry")
            backoff = importlib.import_module("redis.backoff")
            try:
                self._sync = module.Redis.from_url(
                    redis,
                    socket_timeout=timeout,
                    socket_connect_timeout=timeout,
                    retry=retry.Retry(backoff.NoBackoff(), 0),
                )
            except ValueError as exc:  # the message names the scheme, never the password
                raise InvalidInputError("redis", f"is not a Redis URL ({exc})") from None
            self._owned = True
        else:
            module = _import_redis()
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
        reply = await self._call_async(_TAKE)
        while True:
            if reply is None:
                return -1 - await self.local.admit()  # local epochs are negative
            wait, epoch = reply[0], reply[1]
            if wait <= 0:
                return epoch
            await anyio.sleep(wait)
            if wait < _CONFIRM_AFTER:
                return epoch
            reply = await self._call_async(epoch)  # a 429 anywhere meanwhile: a new slot

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
        reply = self._call_blocking(_REPORT) if blocking else await self._call_async(_REPORT)
        return 0.0 if reply is None else reply[4]

    async def call_turn(self, *, blocking: bool) -> float:
        """The seconds a single call's retry waits for its slot of the shared pacing."""
        reply = self._call_blocking(_TAKE) if blocking else await self._call_async(_TAKE)
        return 0.0 if reply is None else max(reply[0], 0.0)

    # -- Redis ----------------------------------------------------------------------------------

    def _use_local(self) -> bool:
        return self._degraded and time.monotonic() < self._down_until

    def _args(self, mode: int) -> list[object] | None:
        """The script's arguments (taking what is pending), or None to stay local for now."""
        with self._lock:
            if self._degraded:
                if time.monotonic() < self._down_until or self._probing:
                    return None
                self._probing = True  # one caller tries Redis again; the rest stay local
            passed, self._passed = self._passed, 0
            reports, self._reports = self._reports, []
        args: list[object] = [passed, self._ttl_ms, self._max_pause, mode]
        for epoch, retry_after, backoff in reports:
            args += [epoch, retry_after, backoff]
        return args

    def _parse(self, raw: Any) -> Reply:
        wait, epoch, rate, streak, pause = raw
        shown = rate.decode() if isinstance(rate, bytes) else str(rate)
        reply: Reply = (
            float(wait),
            int(epoch),
            float(shown) if shown else None,
            int(streak),
            float(pause),
        )
        with self._lock:
            self._epoch, self._rate, self._streak = reply[1], reply[2], reply[3]
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

    async def _run_async(self, args: list[object]) -> Any:
        client = self._async
        try:
            return await client.evalsha(_SHA, 1, self.key, *args)
        except Exception as exc:
            if type(exc).__name__ != "NoScriptError":
                raise
            return await client.eval(_SCRIPT, 1, self.key, *args)

    def _call_blocking(self, mode: int) -> Reply | None:
        args = self._args(mode)
        if args is None:
            return None
        if self._sync is None:  # only an asyncio client: a blocking caller cannot use it
            self._failed(ConfigurationError("a redis.asyncio client cannot serve blocking calls"))
            return None
        try:
            return self._parse(self._run_sync(args))
        except Exception as exc:  # noqa: BLE001 - any Redis failure degrades, never fails a call
            self._failed(exc)
            return None

    async def _call_async(self, mode: int) -> Reply | None:
        args = self._args(mode)
        if args is None:
            return None
        try:
            if self._async is not None:
                if _backend() != "asyncio":
                    raise ConfigurationError("a redis.asyncio client works on asyncio only")
                raw = await self._run_async(args)
            else:
                raw = await anyio.to_thread.run_sync(self._run_sync, args)
            return self._parse(raw)
        except Exception as exc:  # noqa: BLE001 - any Redis failure degrades, never fails a call
            self._failed(exc)
            return None

    # -- lifetime ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connections of a gate built from a URL (a given client is the caller's)."""
        if self._owned and self._sync is not None:
            self._sync.close()


def _backend() -> str:
    import sniffio  # noqa: PLC0415 - anyio's dependency, needed only with an asyncio client

    return sniffio.current_async_library()

"""``RedisRateGate``: one rate gate shared by every client, process and host naming its key.

The gate's whole state lives in one Redis hash (``key``) and changes only inside one Lua
script, so every change is atomic and every client sees the same thing: the pause-until after
a 429 (Retry-After, or the X-RateLimit-Reset), the admission pacing (the next free slot), the
rate, and the target behind it (measured on every client's answers). The one clock is Redis's
``TIME``: no local timestamp is ever written, and a reply states waits as durations, which the
local monotonic clock then sleeps. Two hosts whose clocks disagree by an hour pace each other
exactly as two processes on one host do.

One round trip per admission at most: the answers that passed and the 429s a client saw ride
along with its next call (``on_answer`` and ``on_rate_limited`` cost no I/O), and the workers
of one event loop that ask for a slot while a call is under way share the next call. At a high
rate a call also *leases* the slots of the next ``LEASE_HORIZON`` (2 ms) of the schedule, up to
``LEASE_MAX`` more than asked for (the count doubling while leases are used up, halved when
slots went unused): the next admissions of that thread take them without a round trip. A
leased slot not used within the horizon goes back unused (it counts as a request that never
came back), and a 429 seen meanwhile voids the lease (its report goes out with the next
admission's call). A worker whose slot is far out confirms it on waking and queues again if
an episode began anywhere meanwhile, or a pause now covers it. The script's arguments, its
reply and the key's state are packed doubles (no number is formatted or parsed as text, and
one ``SET ... PX`` writes the state with its expiry).

The controller in the script is the shared gate's own, not a copy of the local ``RateGate``
(``_gate``): a fleet sees every client's answers in one place, so it measures differently.

- **One schedule.** Every slot comes from one pacing sequence (``ns``: the next free slot, as
  in GCRA), handed out in the order clients ask: every process that keeps asking gets its
  share, whatever its clock. A slot is at the rate of its own time, so a ramp goes on ramping.
- **Slow start of a new key**: ``START_RATE`` admissions/s until the first answer comes
  back, doubling every ``DOUBLING`` seconds from then; and, until the first episode, at most
  ``START_WINDOW`` plus twice the answers back in flight across the fleet (a worker refused a
  slot asks again after ``_POLL``; a slot voided by an episode, or one that went unused,
  counts as come back). K processes starting together, or a first round trip of seconds (cold
  processes on a loaded machine), then never send K times their concurrency at once. Before
  ``MIN_SAMPLES`` answers, a 429 ends slow start only once ``START_REFUSED`` came and they are
  more than ``START_SHARE`` of the answers (a limit far below the start rate refuses most
  requests after its first 429; a 429 that comes whatever the rate, only some); an earlier
  one pauses everyone for its Retry-After, as a single call's does, and the ramp resumes
  where it was when the pause ends.
- **Episodes.** An episode starts at a 429 of a request admitted since the last one (as the
  local gate's). The limit lies below the rate paced at that moment: the new *target* is
  ``BETA`` of it, or, when the refusal came within half a probe period of the last episode
  (the fleet was above the limit all along) and at least ``MIN_SAMPLES`` answers came in
  between, what every client got through over that short cycle (no deeper cut than
  ``SHORT_CUT``); short cycles in a row with fewer answers than that cut deeper each time
  (``BETA``, then its square, its fourth power... down to ``SHORT_CUT``), so an overshoot, as
  at the end of slow start, ends in a few 429s rather than one per 3%. At the end of slow
  start the target is the geometric middle of what got through (the ramp spent a while
  below the limit) and what the ramp handed out, or half the ramp's rate when fewer than
  ``MIN_SAMPLES`` answers came (a limit far below ``START_RATE``: a measure of a burst's
  worth of answers over a few milliseconds says nothing). Pacing restarts at ``BETA`` times the
  target, climbs back to it over one probe period (1 s to ``MAX_PROBE_PERIOD``,
  ``PROBE_ANSWERS`` fleet admissions), holds there, then probes above it, slowly first and
  faster later (``PROBE_GAIN``: +6% after one period, +30% after two, x2 after three). Each
  probe costs a few 429s: the hold is 0 periods at first and, once probes in a row found
  the target within ``CONFIRM_BAND`` of the last one's, 1 and then 3 (``MAX_CONFIRMS``
  doublings of the cycle); a limit that moved resets it. After slow start's target, which
  rests on few answers and on a loaded machine often lies well short of the limit, the
  periods are ``QUICK_PERIOD`` and the probe doubles per period. The local gate measures
  the cycle's average and the pace of its last admissions instead, and has a slow-start
  mode of its own; both pause one interval at the new rate at an episode's first 429 and
  back off from ``MIN_PAUSE`` to ``MAX_PAUSE`` (or the server's full Retry-After) over 429s
  in a row with no answer between. A 429 of a request still out when the episode began
  pauses everyone for its Retry-After where it asks for more, but not for a wait stated to
  the second (whole seconds, an HTTP date): that says the room comes within its last second,
  not when, and the one request let through after the episode's pause finds out (held for
  it, a window of 0.1 s answering "1" passed 0.12-0.22 of what it admits).
- **Late requests.** A worker that woke more than two intervals (and ``_LATE_AFTER``)
  after its slot was starved of CPU with others of its process, which then send together: a
  burst the schedule never made. Its 429 pauses everyone for its Retry-After, as a single
  call's does, but starts no episode (on a loaded machine such refusals would otherwise
  ratchet the fleet's rate down far below the limit).
- **Sporadic 429s.** The reply marks *low* slots: those in the first half of a climb back
  to a target measured on many answers, where a rate limit refuses almost nothing. A worker's
  429 says whether its slot was low. A low 429 that begins an episode after a quiet cycle
  (``QUIET_ANSWERS`` answers since the last episode, no 429 in a row: a limit still spent, as
  a window that holds the overshoot, refuses in a row with few answers between) is evidence
  of 429s that come whatever the rate. The background is the share of 429s among the low
  slots that went out (every low 429 counted, and only slots that were used). Once
  ``BACKGROUND_EVIDENCE`` are seen and that share is at most ``BACKGROUND_MAX``, the cuts that
  got there are undone: the fleet goes unpaced (as at the end of slow start), and a 429 within
  the background (over about the last ``RECENT_ANSWERS`` answers, with a wide margin) waits
  its own Retry-After and starts no episode. An excess is a limit after all: pacing resumes
  below the target the cuts had reached and the evidence starts again (more of it after each
  false alarm). In ``tests/_redis_sim.py`` 2 clients of 16 against 5% and 20% random
  refusals get 0.91-0.94x and 0.53-0.95x the answers per second of a run without them over
  15 s, by the draw of the refusals (0.61x and 0.05x before the low slots were marked and the
  cuts undone); over HTTP, 0.95x and 0.89x (``benchmarks/bench_redis_gate.py``).
- **What stays local.** The local gate's in-flight cap for concurrency
  limits is not shared either: the fleet's pacing below the measured throughput keeps the
  count in service below such a limit (Little's law), and the start window bounds it while
  the key is new. A 429 saying ``X-RateLimit-Remaining`` > 0 is never the limit (that event
  waits its Retry-After on its own).

The state (one string of packed numbers) expires ``ttl`` seconds after its last use.

A Redis outage (refused, timed out, any Redis error) degrades to the client's local gate with
one warning; Redis is tried again every ``retry_interval`` seconds by one caller at a time, and
an ``info`` line says when it is back (only an answer to a call sent after the failure says
so). Socket timeouts (``socket_timeout``, 2 s) are long enough that a loaded machine's slow
answer is not taken for an outage, and short enough that an outage costs at most one timeout
per retry interval, never a blocked or failed emission. redis is imported when the
first gate is built, never by ``import ventryx``. On asyncio a URL gate uses one
``redis.asyncio`` client per event loop (closed with the loop); on trio, and for blocking
calls, a ``redis.Redis`` (through a worker thread in async code).
"""

from __future__ import annotations

import collections
import hashlib
import importlib
import math
import struct
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio

from ventryx._bulk._gate import RateGate, RateHeaders, Refusal, Ticket, whole_seconds
from ventryx._errors import ConfigurationError, InvalidInputError
from ventryx._logging import logger

__all__ = ["RedisRateGate"]

BETA = 0.97  # pacing after an episode, as a share of the capacity estimate
PROBE_ANSWERS = 100.0  # fleet admissions per probe period at least (1 s to 10 s)
MAX_PROBE_PERIOD = 10.0
CONFIRM_BAND = 0.05  # a probe's target this close to the last one's confirms the limit ...
MAX_CONFIRMS = 2  # ... doubling the cycle (climb and hold) up to this many times
PROBE_GAIN = 0.03  # past the target: +6% after one probe period, +30% after two, x2 after 3
QUICK_PERIOD = 0.5  # ... but after slow start's target (few answers): double per period
MAX_PROBE_X = 40.0  # periods of probing after which the rate stops growing (no overflow)
BACKGROUND_EVIDENCE = 4  # 429s early in climbs before any is called background (sporadic)
BACKGROUND_MAX = 0.2  # a larger share there is taken for a limit
START_REFUSED = 2  # a new key's 429s before too few answers to measure end slow start ...
START_SHARE = 0.4  # ... and only when they are more than this share of the answers
QUIET_ANSWERS = 3  # answers since the last episode before a low 429 is evidence
EVIDENCE_FALL = 0.8  # ... and the target must have fallen this far since the first
BACKGROUND_MEMORY = 2000  # admissions behind the background share (halved past it)
RECENT_ANSWERS = 100  # answers behind the test of a 429 against the background share
MIN_SAMPLES = 12  # fleet admissions a short cycle needs to measure the limit ...
SHORT_CUT = 0.9  # ... which cuts the rate at most this much (a starved fleet gets less through)
MIN_PAUSE = 0.05
MAX_PAUSE = 2.0
MIN_RATE = 0.5
START_RATE = 50.0  # a key's first use: admissions/s, doubling every ...
DOUBLING = 0.1  # ... this many seconds from the first answer, until the first 429
START_WINDOW = 4  # and before the first 429, in flight at most this plus the answers back
_POLL = 0.02  # a worker refused a slot by that window asks again after this long
_CONFIRM_AFTER = 0.005  # a worker that slept longer than this confirms its slot on waking
_MAX_REPORTS = 32  # 429s described by one call (more in one round trip add nothing)
LEASE_HORIZON = 0.002  # a call leases the slots of the next this many seconds (a high rate) ...
LEASE_MAX = 8  # ... at most this many more than it was asked for

# ARGV[1]: big-endian doubles: now (-1: Redis's TIME; else a simulation's virtual clock),
# passed, returned (429s and lost requests, for the count in flight), ttl_ms, max_pause,
# take, held, held_epoch, lease, unused_low (low slots handed out that went unused), then
# per 429 (epoch, retry_after, reset, age, low, coarse): retry_after and reset -1 when absent
# (or not to be trusted), age the seconds since its request was admitted, low 1 if its slot
# was a low one (within the reply's bounds), coarse 1 if its wait was stated to the second
# only (whole seconds, an HTTP date). take: slots to hand out
# (0: only report); held (-1: none): a slot, in Redis's time, taken at held_epoch, to
# confirm: it stands unless an episode began since or a pause now covers it, else one slot is
# taken anew; lease: at most this many slots more, as long as they fall within LEASE_HORIZON
# of now (a client at a high rate takes several per call).
# Returns doubles too: epoch, rate (-1: unpaced), streak, pause_left, now, background, the
# bounds of the low slots (early in a climb back to a well-measured target; low > high:
# none), then each slot in Redis's time (what the tests check pacing on); a slot of -1 is
# none (the start window is full): ask again after _POLL. The state is one string of
# doubles (``_FIELDS``), written with its expiry by one SET. (Packed numbers, not text:
# converting numbers to and from strings, and a hash's one command per field set, were most
# of the script's cost.)
_FIELDS = (
    *("ep", "ra", "ns", "base", "cap", "pf", "pp", "str", "ok", "cok0", "cat", "fa"),
    *("adm", "back", "ss", "pv", "d4", "dn", "r4", "rok", "rt", "bv", "cf", "sk", "ea"),
    "eh",
)
_NIL = -1e300  # a field of the state not set yet
_STATE = ">" + "d" * len(_FIELDS)  # the state's struct format, in Lua as in Python
_SCRIPT = f"""
if redis.replicate_commands then redis.replicate_commands() end
local k = KEYS[1]
local NIL = {_NIL}  -- (in the state: a field not set yet)
local argv = {{struct.unpack('>' .. string.rep('d', #ARGV[1] / 8), ARGV[1])}}
local count = #ARGV[1] / 8
local now = argv[1]
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local ep, ra, ns, base, cap, pf, pp, str, ok, cok0, cat, fa, adm, back, ss, pv, d4, dn, r4,
  rok, rt, bv, cf, sk, ea, eh = 0, 0, 0, NIL, 0, 0, 1, 0, 0, 0, NIL, NIL, 0, 0, NIL, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0
local stored = redis.pcall('GET', k)
if type(stored) == 'table' or (stored and #stored ~= {8 * len(_FIELDS)}) then
  -- not ours (another type, or another version's layout of the state): start afresh
  redis.call('DEL', k)
  stored = false
end
if stored then
  ep, ra, ns, base, cap, pf, pp, str, ok, cok0, cat, fa, adm, back, ss, pv, d4, dn, r4, rok,
    rt, bv, cf, sk, ea, eh = struct.unpack('{_STATE}', stored)
end
if base == NIL then base = nil end
if cat == NIL then cat = nil end
if fa == NIL then fa = nil end
if ss == NIL then ss = nil end

-- The share of 429s that come whatever the rate (0 until BACKGROUND_EVIDENCE are seen), on
-- requests admitted in the first half of a climb back to a well-measured target (low
-- slots), where a rate limit refuses (almost) nothing. The evidence (r4) is the low 429s that
-- each began an episode after a quiet climb (no streak of 429s: a limit still spent refuses
-- in a row); the share is of every low 429 (ea) among the low slots (rok).
local function background()
  if r4 < {BACKGROUND_EVIDENCE} * 2 ^ bv then return 0 end  -- (more after each false alarm)
  -- and the target fell well below where the evidence began (below a limit it refuses none)
  if cap > {EVIDENCE_FALL} * eh then return 0 end
  local share = ea / math.max(rok, ea)
  if share > {BACKGROUND_MAX} then return 0 end  -- that many: a limit measured high
  return share
end
local function low(at)  -- in the first half of a climb back to a well-measured target
  return base ~= nil and pv == 0 and at >= pf and at <= pf + pp / 2
end

local function rate_at(at)
  if base == nil then  -- slow start: doubling from the first answer on
    if fa == nil then return {START_RATE} end
    return math.min({START_RATE} * 2 ^ (math.max(at - fa, 0) / {DOUBLING}), 1e9)
  end
  local dt = at - pf
  if dt <= 0 then return base end
  if dt <= pp then return base + (cap - base) * dt / pp end
  -- at the target for a while (longer once probes confirmed it), then probing above it
  dt = dt - pp * 2 ^ cf
  if dt <= 0 then return cap end
  local x = math.min(dt / pp, {MAX_PROBE_X})
  if pv > 0 then return cap * 2 ^ x end  -- a target from few answers: find the limit soon
  return cap * (1 + {PROBE_GAIN} * (x + x * x * x))
end

local passed = argv[2]
back = back + passed + argv[3]
if passed > 0 then
  ok = ok + passed
  str = 0
end
-- the recent answers and 429s (about the last RECENT_ANSWERS), for the background's test
local function recent(answers, refused)
  dn = dn + answers
  d4 = d4 + refused
  if dn > 2 * {RECENT_ANSWERS} then
    dn = dn / 2
    d4 = d4 / 2
  end
end
recent(passed, 0)
if cat == nil and back > 0 then cat = now end
if fa == nil and back > 0 then fa = now end

local max_pause = argv[5]
-- Everyone pauses for a trusted Retry-After (-1: none) if it ends later than the pause now
-- (at most max_pause from now); the seconds that added.
local function hold(trusted)
  if trusted < 0 or now + trusted <= ra then return 0 end
  local till = math.min(now + trusted, now + max_pause)
  local added = till - math.max(ra, now)
  ra = till
  ns = math.max(ns, ra)
  return added
end
rok = math.max(rok - argv[10], 0)  -- low slots that went unused (never a 429 nor an answer)
local n = 11
while n + 5 <= count do
  local e = argv[n]
  local trusted = argv[n + 1]
  local reset = argv[n + 2]
  local age = argv[n + 3]
  local early = argv[n + 4] > 0  -- its slot was low (the reply said so)
  -- its wait was stated to the second: the room comes within its last second, not when
  local whole = argv[n + 5] > 0
  local bg0 = background()
  if early then ea = ea + 1 end  -- (every such 429, as every such slot counts in rok)
  local evidence = early and e == ep and str == 0 and ok - cok0 >= {QUIET_ANSWERS}
  if evidence then
    r4 = r4 + 1
    eh = math.max(eh, cap)
  end
  if cat == nil then cat = now end
  if e ~= ep then
    -- part of the last episode (e < 0: a single call's), pausing everyone already unless
    -- the server asks for more (not to the second: the episode's probes find the room)
    if e < 0 or (str > 0 and not whole) then hold(trusted) end
  elseif str > 0 then
    -- no answer since the last episode: the limit is still spent; keep the rate, back off
    if rt > 0 and r4 > 0 then r4 = r4 - 1 end  -- (and its first 429 was no background)
    rt = 0
    ep = ep + 1
    str = str + 1
    local pause = 0
    if trusted >= 0 then pause = trusted elseif reset >= 0 then pause = reset end
    local floor = math.min({MIN_PAUSE} * 2 ^ (str - 2), {MAX_PAUSE})
    ra = math.max(ra, now + math.max(pause, floor))
    ns = ra
    pf = ra
  else
    recent(1, 1)
    -- Where sporadic 429s are known, one within their share of the recent answers is one
    -- of them; an excess is a limit (which refuses more and more, the further above it).
    local episode = true
    local resumed = false  -- (an excess while the cuts were undone)
    local bg = background()
    if base == nil and ep == 0 and ok < {MIN_SAMPLES} and (d4 < {START_REFUSED} or
        d4 <= {START_SHARE} * dn) then
      -- A new key's first 429s, too few answers to measure: a limit far below the start
      -- rate refuses most requests after its first 429, a 429 that comes whatever the rate
      -- only some; slow start goes on until a few 429s make a large share of the answers.
      -- Meanwhile such a 429 pauses everyone for its Retry-After, as a single call's does,
      -- and the ramp resumes where it was when the pause ends.
      episode = false
      local added = hold(trusted)
      if fa ~= nil then fa = fa + added end
    elseif bg > 0 then
      local expect = bg * dn
      -- within the background share of the recent answers: that event waits its
      -- Retry-After, nobody else
      if d4 <= 3 * expect + 5 * math.sqrt(expect) + 3 then  -- (false alarms: 1e-6 or so)
        episode = false
      else  -- an excess: a limit after all, and what looked like background was its
        r4 = 0
        ea = 0
        eh = 0
        rok = 0
        bv = math.min(bv + 1, 10)
        if base == nil then  -- unpaced since the cuts were undone: back to their target
          base = cap
          pf = now
          resumed = true
        end
      end
    end
    if episode then
      rt = 0
      if evidence then rt = 1 end
      -- Refused at the rate paced now (before): the limit is below it. The new target is
      -- BETA of that; a refusal soon after the last episode (half a probe period) means the
      -- fleet was above the limit all along, and what every client got through over that (once
      -- it is a few), per second, is the limit. At the end of slow start the limit lies between
      -- what got through (the ramp was below it for a while) and the ramp's rate: the middle.
      local span = math.max(now - cat, age, 0.001)
      local admitted = ok - cok0
      local before = rate_at(now)
      if base == nil then  -- (the ramp's rate, or what it handed out if the window held it)
        before = math.min(before, adm / math.max(now - (ss or now), age, 0.001))
      end
      local got = admitted / span
      local target
      local gentle = base ~= nil and pv == 0  -- (probing gently above a well-measured target)
      local previous = cap
      pv = 1
      if admitted == 0 and not resumed then
        target = before / 2
      elseif base == nil then
        if admitted < {MIN_SAMPLES} then  -- too few to measure (a burst's worth): halve
          target = before / 2
        else
          target = math.sqrt(math.max(got, {MIN_RATE}) * math.max(before, got))
        end
      else
        target = {BETA} * before
        pv = 0
        if now - cat < pp / 2 then  -- a short cycle: the fleet was above the limit all along
          if admitted >= {MIN_SAMPLES} then
            if got < target then target = math.max(got, {SHORT_CUT} * before) end
          else  -- too few answers to measure: cut deeper at each in a row (BETA, BETA^2, ^4..)
            target = before * math.max({BETA} ^ (2 ^ sk), {SHORT_CUT})
            sk = math.min(sk + 1, 8)
          end
        else
          sk = 0
        end
      end
      target = math.max(target, {MIN_RATE})
      local rate = math.max({BETA} * target, {MIN_RATE})
      ep = ep + 1
      str = 1
      ra = math.max(ra, now + math.min(1 / rate, max_pause))
      ns = ra
      base = rate
      cap = target
      pf = math.max(now, ra)
      -- A gentle probe that found the limit where the last one did confirms it: the next
      -- probe comes later (each of them costs a few 429s); a moved limit probes again soon.
      if gentle and pv == 0 and math.abs(target - previous) <= {CONFIRM_BAND} * previous then
        cf = math.min(cf + 1, {MAX_CONFIRMS})
      else
        cf = 0
      end
      pp = math.max(1.0, math.min({PROBE_ANSWERS} / cap, {MAX_PROBE_PERIOD}))
      if pv > 0 then pp = {QUICK_PERIOD} end
      cat = now
      cok0 = ok
    end
  end
  if bg0 == 0 and background() > 0 then
    -- The cuts that got here were for 429s that come whatever the rate: undo them, unpaced
    -- as at the end of slow start (a real limit above shows as an excess, and measures again)
    base = nil
    cat = now
    cok0 = ok
    ss = now  -- (what it sends from now on is measured afresh)
    adm = 0
    d4 = 0
    dn = 0
    str = 0
  end
  n = n + 6
end

local take = argv[6]
local held = argv[7]
local lease = argv[9]
local rate = rate_at(now)
local slots = {{}}
if held >= 0 then
  if held >= ra and argv[8] == ep then
    slots[1] = held
    take = 0
  else  -- a new slot in its place: the held one never goes out
    take = 1
    back = back + 1
  end
end
local room = take
if base == nil and ep == 0 then  -- a new key: in flight at most the window plus answers back
  room = math.max(math.min(take, {START_WINDOW} + 2 * back - adm), 0)
end
for _ = 1, room do  -- each slot at the rate of its own time (a ramp goes on ramping)
  local start = math.max(now, ra, ns)
  ns = start + 1 / rate_at(start)
  slots[#slots + 1] = start
  if low(start) then rok = rok + 1 end
end
adm = adm + room
-- a lease: more slots, only as long as they fall within LEASE_HORIZON of now (and the window)
local spare = lease
if base == nil and ep == 0 then spare = math.min(lease, {START_WINDOW} + 2 * back - adm) end
local extra = 0
while extra < spare and room == take and math.max(now, ra, ns) <= now + {LEASE_HORIZON} do
  local start = math.max(now, ra, ns)
  ns = start + 1 / rate_at(start)
  slots[#slots + 1] = start
  extra = extra + 1
  if low(start) then rok = rok + 1 end
end
if ea + rok > {BACKGROUND_MEMORY} then  -- forget slowly
  r4 = math.floor(r4 / 2)
  ea = math.floor(ea / 2)
  rok = math.floor(rok / 2)
end
adm = adm + extra
if ss == nil and room > 0 then ss = now end

local function opt(x) if x == nil then return NIL end return x end
redis.call('SET', k, struct.pack('{_STATE}', ep, ra, ns, opt(base), cap, pf, pp, str,
  ok, cok0, opt(cat), opt(fa), adm, back, opt(ss), pv, d4, dn, r4, rok, rt, bv, cf, sk,
  ea, eh), 'PX', argv[4])
local shown = -1
if base ~= nil then shown = rate end
local lo, hi = 1, 0  -- the slots that are low (none unless a well-measured climb)
if base ~= nil and pv == 0 then lo, hi = pf, pf + pp / 2 end
local reply = {{ep, shown, str, math.max(ra - now, 0), now, background(), lo, hi}}
for _, at in ipairs(slots) do reply[#reply + 1] = at end
for _ = room + 1, take do reply[#reply + 1] = -1 end
return struct.pack('>' .. string.rep('d', #reply), unpack(reply))
"""
_SHA = hashlib.sha1(_SCRIPT.encode(), usedforsecurity=False).hexdigest()
_RAW = {"NEVER_DECODE": True}  # the reply is packed numbers, even for a decoding client


class _Reply:
    """One script answer: the shared state, and each slot as (local deadline, Redis time)."""

    __slots__ = (
        *("background", "epoch", "high", "low", "pause", "pause_end", "rate", "slots"),
        "streak",
    )

    def __init__(self, raw: bytes, midpoint: float) -> None:
        values = struct.unpack(f">{len(raw) // 8}d", raw)
        self.epoch = int(values[0])
        self.rate = None if values[1] < 0 else values[1]
        self.streak = int(values[2])
        self.pause = values[3]
        now = values[4]
        self.background = values[5]
        self.low, self.high = values[6], values[7]  # slots in between are low ones
        # The script ran about halfway through the round trip: waits count from there.
        self.slots = [
            (midpoint + _POLL, t) if t < 0 else (midpoint + t - now, t) for t in values[8:]
        ]
        self.pause_end = midpoint + self.pause

    def slot(self, i: int) -> _Slot:
        deadline, at = self.slots[i]
        return (deadline, at, self.epoch, self.pause_end, self.low <= at <= self.high)


_SHARED = object()  # ``Ticket.data`` of a slot of the shared gate (the local gate's: others)
_LOW = object()  # ... of a low one (early in a climb back to a well-measured target)
_LATE = object()  # ... of one sent well after its slot: its 429 may be a burst's, not the limit's
_OURS = (_SHARED, _LOW, _LATE)
_Report = tuple[int, float, float, float, float, float]  # one 429, as the script reads it
_LATE_AFTER = 0.02  # late: more than this, and more than two intervals of the shared rate


# A slot as a waiter sees it: (local deadline, Redis time, epoch, local time the pause ends,
# whether it is low: its 429 is evidence of sporadic ones).
_Slot = tuple[float, float, int, float, bool]


class _Ticket:
    """A worker waiting for the call that takes its slot along with others'."""

    __slots__ = ("done", "result", "served")

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.served = False  # False when woken unserved (the call's owner was cancelled)
        self.result: _Slot | None = None

    def serve(self, result: _Slot | None) -> None:
        self.result = result
        self.served = True
        self.done.set()


class _Lease:
    """One thread's leased slots (a high rate: the next ``LEASE_HORIZON`` of the schedule)
    and how many more slots its next call asks for: doubling (+1) while a lease is used up
    or calls come within the horizon of each other, halved when slots went unused."""

    __slots__ = ("drained", "last", "slots", "want")

    def __init__(self) -> None:
        self.slots: collections.deque[_Slot] = collections.deque()
        self.want = 1
        self.last = -math.inf
        self.drained = False

    def size(self, now: float) -> int:
        """The lease the next call asks for (a call is made now)."""
        if self.drained or now - self.last < LEASE_HORIZON:
            self.want = min(2 * self.want + 1, LEASE_MAX)
        self.last = now
        self.drained = False
        return self.want

    def keep(self, reply: _Reply, taken: int, now: float) -> _Slot:
        """Lease what a reply gave beyond the ``taken`` slots asked for; the first slot.
        (A leased slot is fresh from the reply's arrival, ``now``, if its deadline is earlier:
        a slow round trip spent none of its horizon.)"""
        for i in range(taken, len(reply.slots)):
            deadline, at, epoch, pause_end, low = reply.slot(i)
            self.slots.append((max(deadline, now), at, epoch, pause_end, low))
        return reply.slot(0)

    def take(self, now: float, void: bool) -> tuple[int, int]:
        """Drop the slots gone stale (all of them if ``void``); how many were dropped, and
        how many of those were low ones."""
        slots = self.slots
        wasted = low = 0
        while slots and (void or slots[0][0] < now - LEASE_HORIZON):
            low += slots.popleft()[4]
            wasted += 1
        if wasted:
            self.want //= 2
        elif len(slots) == 1:
            self.drained = True  # the last one is used now
        return wasted, low


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
        socket_timeout: float = 2.0,
        retry_interval: float = 1.0,
    ) -> None:
        if not isinstance(key, str) or not key or len(key) > 512:
            raise InvalidInputError("key", "must be a non-empty string of at most 512 characters")
        self.key = key
        self._key = key.encode()
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
            # No retries of its own (a failed call falls back at once), short timeouts.
            self._options = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
            never = importlib.import_module("redis.backoff").NoBackoff()
            retry = importlib.import_module("redis.retry").Retry(never, 0)
            try:
                self._sync = module.Redis.from_url(redis, retry=retry, **self._options)
            except ValueError as exc:  # the message names the scheme, never the password
                raise InvalidInputError("redis", f"is not a Redis URL ({exc})") from None
            self._owned = True
            self._url = redis
            # Loaded now, not in an event loop's first call.
            self._async_retry = importlib.import_module("redis.asyncio.retry").Retry(never, 0)
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
        self._returned = 0  # 429s and lost requests since the last call (the count in flight)
        self._unused_low = 0  # low slots handed out that went unused, since the last call
        # The clocks: local monotonic time, and (a simulation's) virtual Redis time.
        self._clock: Callable[[], float] = time.monotonic
        self._virtual: Callable[[], float] | None = None
        self._reports: list[_Report] = []
        self._down_until = -math.inf  # monotonic: local gate only until then
        self._down_at = -math.inf  # when it last failed while shared
        self._probing = False
        self._degraded = False
        self._streak = 0
        self._rate: float | None = None
        self._background = 0.0  # the key's share of sporadic 429s at the last reply
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

    def admit_now(self) -> Ticket | None:
        """Never without Redis's word while it is up (``admit`` asks it); the local gate's else."""
        return self.local.admit_now() if self._use_local() else None

    async def admit(self, budget: float = math.inf) -> Ticket | None:
        """Wait for a slot of the shared pacing; ``None`` when the part of the wait inside a
        pause after 429s (not pacing) would exceed ``budget`` (the ticket's ``waited``)."""
        waited = 0.0
        late = 0.0  # how late the worker woke for its slot (a starved process sends in bursts)
        got = await self._take()
        while True:
            if got is None:  # Redis unreachable: this client's own gate
                ticket = await self.local.admit(max(budget - waited, 0.0))
                if ticket is not None:
                    ticket.waited += waited
                return ticket
            deadline, slot, epoch, pause_end, low = got
            now = self._clock()
            if slot < 0:  # the start window is full: ask again shortly (pacing, not a pause)
                await anyio.sleep(max(deadline - now, 0.0))
                got = await self._take()
                continue
            paused = max(min(deadline, pause_end) - now, 0.0)
            if waited + paused > budget:
                self._unused(1, low)  # one interval of the shared rate
                return None
            wait = deadline - now
            if wait > 0:
                try:
                    await anyio.sleep(wait)
                except BaseException:  # cancelled: the slot goes unused
                    self._unused(1, low)
                    raise
            late = max(late, self._clock() - deadline)
            waited += paused
            if wait < _CONFIRM_AFTER:
                data = _LATE if late > self._late_after() else _LOW if low else _SHARED
                ticket = Ticket(epoch, self._clock(), 0, data)
                ticket.waited = waited
                return ticket
            # A long wait: an episode may have begun elsewhere meanwhile; if so, a new slot.
            reply = await self._call_async(1, slot, epoch)
            got = None if reply is None else reply.slot(0)
            if got is not None and got[1] != slot:
                late = 0.0  # a new slot: how late this one is used is what counts
                self._unused(0, low)  # (the script counted the old one back)

    async def _take(self) -> _Slot | None:
        """One slot: a leased one, else from a call that the workers of this thread that ask
        meanwhile share (their slots taken along, and a lease for the next ones)."""
        local = self._batching
        lease: _Lease | None = getattr(local, "lease", None)
        if lease is None:
            lease = local.lease = _Lease()
        got = self._leased(lease)
        if got is not None:
            return got
        queue: list[_Ticket] | None = getattr(local, "queue", None)
        if queue is not None:  # a call is under way: the next one takes this slot too
            ticket = _Ticket()
            queue.append(ticket)
            await ticket.done.wait()
            return ticket.result if ticket.served else await self._take()
        local.queue = queue = []
        batch: list[_Ticket] = []
        try:
            reply = await self._call_async(1, lease=lease.size(self._clock()))
            mine = None if reply is None else lease.keep(reply, 1, self._clock())
            while queue:
                batch = queue[:]
                del queue[:]
                while batch and (got := self._leased(lease)) is not None:
                    batch.pop(0).serve(got)
                if not batch:
                    continue
                reply = await self._call_async(len(batch), lease=lease.size(self._clock()))
                if reply is not None:
                    lease.keep(reply, len(batch), self._clock())
                for i, ticket in enumerate(batch):
                    ticket.serve(None if reply is None else reply.slot(i))
                batch = []
        finally:
            local.queue = None
            for ticket in (*batch, *queue):  # cancelled before serving them: they ask again
                ticket.done.set()
        return mine

    def _unused(self, count: int, low: int) -> None:
        """``count`` slots handed out that no request will use count as ones that came back;
        ``low`` of them were low ones (their share of 429s counts only the slots used)."""
        with self._lock:
            self._returned += count
            self._unused_low += low

    def _leased(self, lease: _Lease) -> _Slot | None:
        """The next slot of this thread's lease, if one is still fresh and no 429 is pending
        (its report goes with the next call); the others go back, as requests that never
        came back would."""
        if not lease.slots:
            return None
        # (a 429 voids it, unless sporadic ones are known: it can wait for the next call)
        wasted, low = lease.take(self._clock(), bool(self._reports) and not self._background)
        if wasted:
            self._unused(wasted, low)
        return lease.slots.popleft() if lease.slots else None

    def on_answer(self, ticket: Ticket, headers: RateHeaders | None = None) -> None:
        """An answer other than 429: counted towards the shared capacity estimate."""
        if ticket.data not in _OURS:
            self.local.on_answer(ticket, headers)
            return
        with self._lock:
            self._passed += 1

    def on_lost(self, ticket: Ticket) -> None:
        if ticket.data not in _OURS:
            self.local.on_lost(ticket)
            return
        with self._lock:
            self._returned += 1

    def on_rate_limited(self, ticket: Ticket, refusal: Refusal) -> float:
        """Record a 429, shared on this client's next call; everyone's pause is in ``admit``.

        Returns what this event waits on its own: nothing, but where the server says there is
        room (``X-RateLimit-Remaining`` > 0: not the limit), its Retry-After.
        """
        if ticket.data not in _OURS:
            return self.local.on_rate_limited(ticket, refusal)
        retry_after, headers, max_pause = refusal.retry_after, refusal.headers, refusal.max_pause
        with self._lock:
            self._returned += 1
        cap = min(max_pause, self._max_pause)
        trusted = retry_after if retry_after is not None and retry_after <= cap else None
        own = 0.0 if trusted is None else trusted
        if headers is not None and headers.remaining is not None and headers.remaining >= 1:
            return own
        reset = -1.0
        if headers is not None and headers.remaining == 0 and headers.reset is not None:
            reset = min(headers.reset, cap)
        age = max(self._clock() - ticket.issued_at, 0.0)
        # A request sent late was part of a burst the schedule never made (this process was
        # starved of CPU, its workers woke together): its 429 pauses everyone for its
        # Retry-After, as a single call's does, but measures nothing.
        epoch = -2 if ticket.data is _LATE else ticket.epoch
        low = 1.0 if ticket.data is _LOW else 0.0
        # (stated to the second: an HTTP date, or whole seconds)
        coarse = trusted is not None and (refusal.coarse or whole_seconds(trusted))
        report = (epoch, -1.0 if trusted is None else trusted, reset, age, low, float(coarse))
        self._report(report)
        # Where sporadic 429s are known, this one is likely one: the event waits its own
        # Retry-After (the script decides whether the fleet's rate is cut, and pauses it).
        return own if self._background > 0 else 0.0

    def _late_after(self) -> float:
        rate = self._rate
        return math.inf if rate is None else max(_LATE_AFTER, 2.0 / rate)

    def _report(self, report: _Report) -> None:
        """Queue one 429's (epoch, trusted, reset, age, low, coarse) for the next call."""
        with self._lock:
            if len(self._reports) < _MAX_REPORTS:
                self._reports.append(report)

    # -- what a single call that got a 429 calls (the request pipeline) ---------------------

    async def call_limited(self, retry_after: float | None, *, blocking: bool) -> float:
        """Share a single call's 429: its Retry-After pauses everyone (it measures no rate, so
        it starts no episode); the seconds until the shared pause ends (0 if unknown)."""
        trusted = (
            retry_after if retry_after is not None and retry_after <= self._max_pause else None
        )
        self._report((-1, -1.0 if trusted is None else trusted, -1.0, 0.0, 0.0, 0.0))
        reply = self._call_blocking(0) if blocking else await self._call_async(0)
        return 0.0 if reply is None else reply.pause

    async def call_turn(self, *, blocking: bool) -> float:
        """The seconds a single call's retry waits for its slot of the shared pacing."""
        reply = self._call_blocking(1) if blocking else await self._call_async(1)
        if reply is None:
            return 0.0
        if reply.slots[0][1] >= 0:  # no ticket comes back for it: not counted in flight
            with self._lock:
                self._returned += 1
        return max(reply.slots[0][0] - self._clock(), 0.0)

    # -- Redis ----------------------------------------------------------------------------------

    def _use_local(self) -> bool:
        return self._degraded and self._clock() < self._down_until

    def _args(self, take: int, held: float, held_epoch: int, lease: int) -> bytes | None:
        """The script's argument (taking what is pending), or None to stay local for now."""
        with self._lock:
            if self._degraded:
                if self._clock() < self._down_until or self._probing:
                    return None
                self._probing = True  # one caller tries Redis again; the rest stay local
            passed, self._passed = self._passed, 0
            returned, self._returned = self._returned, 0
            unused_low, self._unused_low = self._unused_low, 0
            reports, self._reports = self._reports, []
        now = -1.0 if self._virtual is None else self._virtual()
        values = [now, passed, returned, self._ttl_ms, self._max_pause, take, held, held_epoch]
        values += (lease, unused_low)
        for report in reports:
            values += report
        return struct.pack(f">{len(values)}d", *values)

    def _parse(self, raw: bytes, sent: float) -> _Reply:
        reply = _Reply(raw, (sent + self._clock()) / 2)
        with self._lock:
            self._rate, self._streak = reply.rate, reply.streak
            self._background = reply.background
            self._probing = False
            if self._degraded and sent >= self._down_at:  # not a call sent before it failed
                self._degraded = False
                logger.info("rate gate %r: Redis is reachable again, sharing resumed", self.key)
        return reply

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self.errors += 1
            self._probing = False
            self._down_until = self._clock() + self._retry_interval
            if self._degraded:
                return
            self._degraded = True
            self._down_at = self._clock()
        logger.warning(
            "rate gate %r: Redis unreachable (%s); using this client's own gate, retrying every "
            "%.1f s",
            self.key,
            type(exc).__name__,
            self._retry_interval,
        )

    def _run_sync(self, args: bytes) -> bytes:
        client = self._sync
        try:
            return bytes(client.execute_command("EVALSHA", _SHA, 1, self._key, args, **_RAW))
        except Exception as exc:
            if type(exc).__name__ != "NoScriptError":
                raise
            # loads it for the next EVALSHA
            return bytes(client.execute_command("EVAL", _SCRIPT, 1, self._key, args, **_RAW))

    async def _run_async(self, client: Any, args: bytes) -> bytes:
        try:
            return bytes(await client.execute_command("EVALSHA", _SHA, 1, self._key, args, **_RAW))
        except Exception as exc:
            if type(exc).__name__ != "NoScriptError":
                raise
            return bytes(await client.execute_command("EVAL", _SCRIPT, 1, self._key, args, **_RAW))

    async def _loop_client(self) -> Any:
        """This event loop's asyncio client (a URL gate), closed when the loop shuts down."""
        import asyncio  # noqa: PLC0415 - only on asyncio

        loop = asyncio.get_running_loop()
        held = self._loops.get(loop)
        if held is not None:
            return held[0]
        for old in [other for other in self._loops if getattr(other, "is_closed", bool)()]:
            del self._loops[old]  # its client was closed with it
        client = importlib.import_module("redis.asyncio").Redis.from_url(
            self._url, retry=self._async_retry, **self._options
        )
        keeper = _close_at_loop_end(client)
        await keeper.__anext__()  # the loop's async-generator hooks now hold it
        self._loops[loop] = (client, keeper)
        return client

    def _call_blocking(self, take: int, held: float = -1.0, epoch: int = -1) -> _Reply | None:
        args = self._args(take, held, epoch, 0)
        if args is None:
            return None
        if self._sync is None:  # only an asyncio client: a blocking caller cannot use it
            self._failed(ConfigurationError("a redis.asyncio client cannot serve blocking calls"))
            return None
        sent = self._clock()
        try:
            return self._parse(self._run_sync(args), sent)
        except Exception as exc:  # noqa: BLE001 - any Redis failure degrades, never fails a call
            self._failed(exc)
            return None

    async def _call_async(
        self, take: int, held: float = -1.0, epoch: int = -1, *, lease: int = 0
    ) -> _Reply | None:
        args = self._args(take, held, epoch, lease)
        if args is None:
            return None
        sent = self._clock()
        try:
            if self._async is not None:
                if _backend() != "asyncio":
                    raise ConfigurationError("a redis.asyncio client works on asyncio only")
                raw = await self._run_async(self._async, args)
            elif self._virtual is not None:  # a simulation: no thread, no time passes
                raw = self._run_sync(args)
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
        """Close the connections of a gate built from a URL (a given client is the caller's).

        Each event loop's asyncio client is closed on its loop: now if the loop is idle (or
        scheduled on it if it runs, which ``aclose`` awaits instead); a closed loop took its
        sockets with it. The gate keeps working after this: it opens new connections if used.
        """
        for loop, keeper in self._take_loops():
            _close_on(loop, keeper)
        if self._owned and self._sync is not None:
            self._sync.close()

    async def aclose(self) -> None:
        """``close``, awaiting the close of this event loop's asyncio client."""
        import asyncio  # noqa: PLC0415 - only an asyncio loop can hold asyncio clients

        current = asyncio.get_running_loop() if _backend() == "asyncio" else None
        for loop, keeper in self._take_loops():
            if loop is current:
                with anyio.CancelScope(shield=True):
                    await keeper.aclose()
            else:
                _close_on(loop, keeper)
        if self._owned and self._sync is not None:
            await anyio.to_thread.run_sync(self._sync.close)

    def _take_loops(self) -> list[tuple[Any, Any]]:
        with self._lock:
            held = [(loop, keeper) for loop, (_, keeper) in self._loops.items()]
            self._loops.clear()
        return held

    def __enter__(self) -> RedisRateGate:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    async def __aenter__(self) -> RedisRateGate:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


def _close_on(loop: Any, keeper: Any) -> None:
    """Close a loop's client on that loop, from outside it; a closed loop took its sockets."""
    if loop.is_closed():
        return
    if loop.is_running():  # in another thread, or this one's loop called close() synchronously
        loop.call_soon_threadsafe(_close_later, loop, keeper)
        return
    try:
        loop.run_until_complete(keeper.aclose())
    except RuntimeError:  # another loop runs in this thread: leave it to the loop's own end
        logger.debug("rate gate: an idle event loop's Redis client left to its loop's shutdown")


def _close_later(loop: Any, keeper: Any) -> None:
    """On ``loop`` (its own thread): close its client in a task of its own."""
    loop.create_task(keeper.aclose())


async def _close_at_loop_end(client: Any) -> AsyncIterator[None]:
    """Suspended for the loop's life; ``loop.shutdown_asyncgens`` (asyncio.run) closes it."""
    try:
        yield
    finally:
        await client.aclose()


def _backend() -> str:
    import sniffio  # noqa: PLC0415 - anyio's dependency, needed only with an asyncio client

    return sniffio.current_async_library()

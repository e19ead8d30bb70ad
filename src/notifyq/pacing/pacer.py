"""Pacing shared by every worker process: one Lua call per decision, state in Redis.

Two limits stand between a job and Twilio (ARCHITECTURE invariant 4):

* **Per sender**, segments per second (calls: calls per second per account). A job may send at time
  ``t`` only if the segments sent in every 1-second window stay within the rate.
* **Per account**, REST requests in flight, held as leases that expire, so a crashed worker's lease
  frees itself. The cap adapts: a 429/20429 halves it (once per round trip: answers to requests
  already in flight when it dropped do not drop it again), and every ``increase_after`` successes
  add one, back up to ``TwilioAccount.max_in_flight``.

The sender schedule
-------------------
Each sender has a *schedule*: an append-only list of slots, one per message, kept in a ZSET scored
by the running total of segments (so "the segments after slot X" is one subtraction, and "where must
the window start to leave room for ``c`` segments" is one ``ZRANGEBYSCORE ... LIMIT 0 1``). A new
slot goes at the end, at the earliest time that is

1. not before the last slot given (the schedule only grows at its end),
2. GCRA-smooth: the theoretical arrival time advances by ``cost * interval``, with a small burst
   tolerance, so a backlog is spread evenly instead of arriving in per-second clumps, and
3. such that no window of ``W = 1 s + early + late`` holds more than ``K = floor(rate)`` segments
   (a message larger than ``K`` gets a window to itself).

A job that may have a slot and finds one free now is granted at once; the slot may lie up to ``late``
in the past (never before the last slot), so a job that comes back a little late uses the time it
missed instead of pushing everything after it back. Otherwise a slot is *reserved* for it and it gets
``Wait(until, reserved=token)``; when it comes back with the token (or with the same ``job_id``: the
token is then kept in Redis) at any time in ``[slot - early, slot + late]`` it is granted without
looking at anything else on the sender side.

Exactness where the requests arrive: every grant happens at a time ``g`` with ``slot - early <= g <=
slot + late`` for a slot of the schedule that it uses up, and its request reaches Twilio at a time in
``[g + d, g + d + jitter]`` (``d`` any fixed delay; ``jitter`` is ``pacing.arrival_jitter_s``). So the
requests that arrive in any 1-second window ``[a, a + 1)`` use slots in ``[a - d - jitter - late, a -
d + 1 + early)``, a window of length ``W = 1 s + early + late + jitter``, and rule 3 allows at most ``K``
segments in it. Sends woken late, bunched together or delayed on the way therefore cannot overfill
any second; the price is that a full backlog runs at ``K / W`` (about 96 % of the rate with the
defaults, a little less for messages of several segments: only whole messages fit a second). Who
gets a slot (below) never changes where slots go, so the proof does not depend on the order.

Held reservations (what the worker does): ``reserve_many`` books slots at least ``lead`` ahead (the
time the worker's claims take) and takes no lease; the worker claims its deliveries, waits in process
until each slot and ``redeem_many`` turns the reservations due into grants with their leases, and the
request goes out at once. Nothing (no database write) stands between the grant and the request, and
the worker does not use a grant that reached it later than ``jitter`` (a stalled process: the slot
stays used, and the send takes another). ``reserve_many`` packs: booking in the order asked, a
three-segment message that does not fit the window yet leaves a gap that a one-segment message of the
same chunk could fill, and a backlog of 1- to 3-segment messages ran at 96 % of ``K / W``; so after
each booking it asks where a send of each cost still to book would go (the script's own ``earliest``)
and books next the send that goes first, which keeps about 99 %. The first ask may hold the chunk's
place in line; if another ask goes first, it takes that place. Jobs in line are asked back ``ahead_s`` before their
turn (and may book that far ahead), since they wait for their slot in process rather than through
arq's queue: a chunk holds its arq slot at most that long, plus the horizon for what it booked.

Reserved slots are interchangeable between jobs of the same cost. A job whose own slot passed unused
(it came back later than ``late``) takes any open slot that is current instead, if there is one, and
the job that held that slot does the same when it comes. So when a loaded worker wakes every job
equally late, no slot is wasted and nobody books twice. A late job that finds no current slot goes to
the head of its lane and books again. And lateness is learnt: each token carries the time its job was
asked back, and every return updates one estimate for the whole worker pool (EWMA of mean and
deviation). ``until`` is the slot minus ``mean - 3 * deviation``, and a slot is only reserved if its
job can reach it that way, so a pool that runs 300 ms late still sends every message on its first
return.

Who gets the next slot: lanes and fair shares
---------------------------------------------
Reservations reach only a short *horizon* ahead (``horizon_s``, or ``horizon_segments`` slots on a
slow sender), so whatever arrives late finds at most that much booked before it. Every other job
waits in the sender's *line*: a ZSET ordered by lane (every urgent job before every bulk job), then
by a start tag of start-time fair queueing over *flows* (the batch a job belongs to). A job seen for
the first time gets ``start = max(finish of its flow, virtual time of its lane)`` and its flow's
finish becomes ``start + cost``; the lane's virtual time is the start tag of the last job that got a
slot. So a batch that arrives behind a million queued jobs starts level with the head of the line
and the flows alternate, one segment each, from then on; a flow that stops and comes back later
gets no credit for the time it was away.

A job in line is told to come back when the jobs ahead of it should have had their slots:
``next free slot + jobs ahead * time per job`` (minus the learnt lateness), where a job takes
``mean cost * interval``, or ``W / floor(K / mean cost)`` when whole messages fill a window less
well (a window takes 13 three-segment messages at ``K = 40``, not 13.3). Jobs ahead are
one interval apart, so the line wakes one job at a time, never as a herd. A returning job (and a
new one) may take a slot only when fewer than ``near = 1 + (early + late) / interval`` jobs are ahead
of it, which absorbs jobs that come back slightly out of order; then it is granted if a slot is free
now, or books one within the horizon. A job further back is given a new estimate. When urgent jobs or
a new flow's jobs take places ahead, the estimates of those behind slip and they come back once more:
bounded extra calls, not spinning. Typical cost: two calls per message for a backlog of one-segment
messages (wait in line, send), three when the line is reshuffled or costs vary (estimates are then a
little early, and the last stretch is a reservation).

A job that never comes back (a crash, a canceled job) loses its place ``3 s + horizon`` after the time
it was given, so it cannot hold up the line; if it does come back later, its token still carries its
tag and it goes back in at its old place. The line holds one member per waiting job (as arq's queue
does); it and the flows' finish tags (one field per batch) expire after an hour idle. A lower rate
voids the reservations already given (they come back and book again, at the head of their lane).

An early comer (before ``slot - early``) is told to wait until its slot; ``acquire`` sleeps in process
when that is at most ``hold_s``, which also covers small waits right after an idle period.

Account in-flight cap: leases live in a ZSET scored by expiry, dropped inside the script once expired.
When the account is full, jobs are told to come back in turn, spaced by the mean request time
divided by the cap (a virtual queue, so they do not all retry at once). For held reservations
(``reserve_many``) the account is shared in the fair order instead: a send books only if the account
has room for it after the places ahead of it in the sender's line, counting the sends booked and not
yet redeemed (a ZSET by job key) and half a cap more; otherwise it takes a place in the line, asked
back by the request time over the cap, and a wait of a few milliseconds is held in process. A request
that sends nothing (a look-up in Twilio's list, a reconciler fetch) takes a lease alone (``lease``,
``lease.lua``): no sender slot, the same cap.

Time is Redis' clock (``TIME`` inside the scripts); ``Wait.until`` and ``Grant.granted_at`` are
translated to this process' clock, so a worker whose clock is off still wakes at the right moment.
``now=`` (tests) replaces both with a simulated clock. All keys start with ``notifyq:pace:``; one
call touches the sender's and the account's keys together (fine for one Redis or Sentinel, not for
Redis Cluster).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from notifyq.settings import PacingSettings, Settings

PREFIX: Final = "notifyq:pace"
INDEX_KEY: Final = f"{PREFIX}:index"
RATES_KEY: Final = f"{PREFIX}:rates"
WAKE_KEY: Final = f"{PREFIX}:wake"
SENDER_KINDS: Final = frozenset({"long_code", "toll_free", "short_code", "alphanumeric", "messaging_service"})
CALL_CHANNELS: Final = frozenset({"call", "voice"})
UNKNOWN_ACCOUNT_MAX_IN_FLIGHT: Final = 10  # Twilio does not publish the cap; 10 is safe for any account type
UNKNOWN_ACCOUNT_CPS: Final = 1.0  # Twilio's default for every account
LOOSE_S: Final = 0.25  # acquire.lua's LOOSE: how late a loose grant may still be used
_US: Final = 1_000_000
_TOLL_FREE = re.compile(r"\+1(800|833|844|855|866|877|888)\d{7}")
_SHORT_CODE = re.compile(r"\d{5,6}")
_HOLD_ROUNDS: Final = 3
_SKEW_CREEP_S: Final = 1e-5
PACER_LANES: Final = frozenset({"urgent", "bulk"})


def _script(name: str) -> str:
    return resources.files("notifyq.pacing").joinpath("lua", name).read_text(encoding="utf-8")


ACQUIRE_LUA: Final = _script("decide.lua")
RELEASE_LUA: Final = _script("release.lua")
LEASE_LUA: Final = _script("lease.lua")
# Many decisions in one call: the one-send scripts become functions, called in a loop (a chunk job's
# deliveries: same sender, account, lane and flow). The loop stops at the first send that must wait:
# the ones after it would wait behind it anyway, and they keep no place they do not use.
# Inside the loop each send would refresh the same keys' expiry again (six or seven PEXPIREs): they are
# collected instead, and each key's last one is applied once at the end; so are the flows' finish tags
# (each send of a chunk reads and moves its flow's), and a place the call made for a send that then
# books is not taken out of the line it never entered.
# Booking (mode 'r'), the loop packs: whole messages fill a sliding second badly in a fixed order (a
# three-segment message waits while the window has room for two), so after each booking it asks the
# schedule (``fit``, the one-send script's own ``earliest``) where a send of each cost still to book
# would go, and books next the send that goes first (of equal slots, the larger). The order inside
# a chunk does not matter (fairness is between batches); each reply says which ask it answers.
_PEXPIRE_CALL: Final = "redis.call('PEXPIRE', "
_FIT_MARK: Final = "-- @fit:"
_MEMO_MARK: Final = "local memo = {} -- @memo"
_FIT_LUA: Final = (
    "fit = function(c) local keep = cost; cost = c; local s = math.max(earliest(), now + lead); "
    "cost = keep; return s end; if ARGV[27] == 'peek' then save() return {'P'} end --"
)
MAX_FIT_COSTS: Final = 8  # distinct costs weighed per booking (the others keep their order)
# Redis' clock in whole microseconds, as the scripts read it, as an argument string
_NOW_LUA: Final = """
local function redis_now()
  local t = redis.call('TIME')
  return string.format('%d', tonumber(t[1]) * 1000000 + tonumber(t[2]))
end
"""
ACQUIRE_MANY_LUA: Final = (
    _NOW_LUA
    + f"""
local expiries, expiry_order = {{}}, {{}}
local function pexpire_later(key, ms)
  if expiries[key] == nil then expiry_order[#expiry_order + 1] = key end
  expiries[key] = ms
end
local fit
local memo = {{defer = true}} -- shared by the sends of this call; the schedule's state is written at the end
local function acquire_one(KEYS, ARGV)
{ACQUIRE_LUA.replace(_PEXPIRE_CALL, "pexpire_later(").replace(_FIT_MARK, _FIT_LUA).replace(_MEMO_MARK, "--")}
end
-- KEYS as acquire.lua (KEYS[7] unused); ARGV[1..25] as acquire.lua, then (job key, cost, token) per send;
-- every send after the first is a continuation (ARGV[26]).
-- Mode 'h' (held reservations coming due) answers every send; the others stop at the first wait.
-- Mode 'r' appends to each answer the (0-based) index of the ask it answers.
local keys, args, out = {{}}, {{}}, {{}}
for i = 1, #KEYS do keys[i] = KEYS[i] end
for i = 1, 25 do args[i] = ARGV[i] end
if args[1] == '' then args[1] = redis_now() end -- one clock read: the call's sends are decided at one instant
local booking = ARGV[22] == 'r'
local order = {{}}
for i = 26, #ARGV, 3 do order[#order + 1] = (i - 26) / 3 end
-- the ask in order[from..] to book next: the cost whose slot comes first; of equal slots, the cost
-- with the most asks left (a chunk that spends its costs evenly keeps a choice to its end)
local function pick(from)
  local first, count, costs = {{}}, {{}}, {{}}
  for j = from, #order do
    local c = tonumber(ARGV[27 + 3 * order[j]])
    if count[c] then
      count[c] = count[c] + 1
    elseif #costs < {MAX_FIT_COSTS} then
      first[c], count[c], costs[#costs + 1] = j, 1, c
    end
  end
  if #costs < 2 then return from end
  local best, best_s
  for _, c in ipairs(costs) do
    local s = fit(c)
    if not best or s < best_s or (s == best_s and count[c] > count[best]) then best, best_s = c, s end
  end
  return first[best]
end
local place -- the first ask's place in line, when another ask goes first
local mixed = false -- a wave of one cost has nothing to choose: no peek
for j = 2, #order do
  if ARGV[27 + 3 * order[j]] ~= ARGV[27] then mixed = true break end
end
if booking and mixed then
  -- where would each cost go? (a peek: the schedule's housekeeping, nothing booked). The first ask may
  -- hold a place in the sender's line (under its job key): the send that goes first takes that place;
  -- one holding a reservation already goes first as it is
  keys[7], args[4], args[5], args[16], args[27] = ARGV[26], ARGV[27], '', '0', 'peek'
  fit = nil
  acquire_one(keys, args)
  args[16], args[27] = ARGV[16], nil
  local held = redis.call('GET', ARGV[26])
  if fit and not (held and string.sub(held, 1, 1) == 't') then
    local best = pick(1)
    if best ~= 1 then
      table.insert(order, 1, table.remove(order, best))
      if held then
        place = held
        redis.call('DEL', ARGV[26])
      end
    end
  end
end
for k = 1, #order do
  if booking and fit and k > 1 and k < #order then
    local best = pick(k)
    if best ~= k then table.insert(order, k, table.remove(order, best)) end
  end
  fit = nil
  local i = 26 + 3 * order[k]
  keys[7], args[4], args[5] = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if k == 1 and place then args[5] = place end
  args[6] = ARGV[6] .. order[k]
  if k > 1 then args[26] = '1' end
  local r = acquire_one(keys, args)
  for j = 1, #r do out[#out + 1] = r[j] end
  if booking then out[#out + 1] = order[k] end
  if r[1] == 'W' and ARGV[22] ~= 'h' then break end
end
if memo.st then -- the schedule's state as the call's last send left it; the keys' expiries as save() sets them
  local st = memo.st
  redis.call('HSET', KEYS[1], 'tat', st[1], 'last', st[2], 'cn', st[3], 'base', st[4], memo.vfield, st[5],
    'rate', st[6], 'iv', string.format('%.0f', memo.interval), 'ac', st[7])
  for _, i in ipairs({{1, 2, 9}}) do pexpire_later(KEYS[i], memo.ttl) end
  for _, i in ipairs({{11, 12, 13}}) do pexpire_later(KEYS[i], 3600000) end
end
if memo.flows then
  for flow_key, finish in pairs(memo.flows) do redis.call('HSET', KEYS[13], flow_key, finish) end
end
for _, key in ipairs(expiry_order) do redis.call('PEXPIRE', key, expiries[key]) end
return out
"""
)
# Releases share the account's state the same way: read once, each release works on what the one before
# it wrote (the same strings the hash would hold), written once at the end.
RELEASE_MANY_LUA: Final = (
    _NOW_LUA
    + f"""
local memo = {{defer = true}}
local function release_one(KEYS, ARGV)
{RELEASE_LUA.replace(_MEMO_MARK, "--")}
end
-- KEYS as release.lua; ARGV[2..7] as release.lua, then (lease, throttled) per lease
local args = {{}}
for i = 1, 7 do args[i] = ARGV[i] end
if args[2] == '' then args[2] = redis_now() end -- one clock read for the call's releases
for i = 8, #ARGV, 2 do
  args[1], args[3] = ARGV[i], ARGV[i + 1]
  release_one(KEYS, args)
end
if memo.acct then
  redis.call('HSET', KEYS[1], 'cap', memo.acct[1], 'ok', memo.acct[2], 'dec', memo.acct[3], 'lat', memo.acct[4])
  redis.call('PEXPIRE', KEYS[1], 86400000)
end
return #ARGV
"""
)


@dataclass(frozen=True, slots=True)
class Grant:
    """Send now, then ``release`` the lease. ``granted_at`` is epoch seconds on this process' clock."""

    lease: str
    granted_at: float
    loose: bool = False  # the sender is far from its rate: the request may go up to LOOSE_S late


@dataclass(frozen=True, slots=True)
class Wait:
    """Do not send; come back at ``until`` (epoch seconds, this process' clock) presenting ``reserved``."""

    until: float
    reason: str
    reserved: str | None
    job_id: str | None = None  # ``reserve_many``: the ask this wait is for (it keeps its place under this id)


def still_to_book(
    asks: Sequence[tuple[str, int]], reservations: Sequence[Reservation], wait: Wait | None
) -> list[tuple[str, int]]:
    """The asks of a ``reserve_many`` call that got no slot, the one that waits first (it holds a place in line)."""
    booked = {r.job_id for r in reservations}
    rest = [a for a in asks if a[0] not in booked]
    if wait is not None and wait.job_id is not None:
        rest.sort(key=lambda a: a[0] != wait.job_id)
    return rest


@dataclass(frozen=True, slots=True)
class Reservation:
    """A sender slot booked for one send, without a lease: redeem it at ``at`` (epoch seconds, this clock)."""

    job_id: str
    cost: int
    token: str
    at: float


@dataclass(frozen=True, slots=True)
class PacerTuning:
    """The pacer's knobs; the defaults suit arq workers polling every ``worker.poll_delay_s``."""

    early_s: float = 0.002  # a reserved job is granted this long before its slot (timer rounding)
    late_s: float = 0.008  # ... and this long after (a held reservation: the event loop's lag)
    jitter_s: float | None = None  # grant to arrival at Twilio, its spread; None: pacing.arrival_jitter_s
    ahead_s: float = 0.25  # held reservations: jobs in line come back and book this long before their turn
    burst_s: float = 0.1  # GCRA burst tolerance: an idle sender sends this much of a second at once
    horizon_s: float = 0.5  # reservations reach this far ahead (what a newcomer may find booked before it) ...
    horizon_segments: int = 2  # ... or this many segments, when that is further (a slow sender)
    hold_s: float = 0.015  # waits up to this long happen inside acquire(), not through the queue
    lease_ttl_s: float | None = None  # None: connect + request timeout + 5 s
    pause_recheck_s: float = 5.0
    increase_after: int = 20  # successful releases per +1 on the in-flight cap
    decrease_factor: float = 0.5
    latency_guess_s: float = 0.25  # request time assumed before any release has measured it


def sender_kind(sender: str | None, messaging_service_sid: str | None) -> str:
    """Classify a sender for its default rate: messaging_service, short_code, toll_free, alphanumeric, long_code."""
    if messaging_service_sid or (sender or "").startswith("MG"):
        return "messaging_service"
    number = (sender or "").rpartition(":")[2]  # "whatsapp:+1..." paces by the number
    if _SHORT_CODE.fullmatch(number):
        return "short_code"
    if _TOLL_FREE.fullmatch(number):
        return "toll_free"
    if any(ch.isalpha() for ch in number):
        return "alphanumeric"
    return "long_code"


def kind_rate(pacing: PacingSettings, kind: str) -> float:
    """The default segments per second of a sender kind."""
    rates = {
        "long_code": pacing.long_code_mps,
        "toll_free": pacing.toll_free_mps,
        "short_code": pacing.short_code_mps,
        "alphanumeric": pacing.alphanumeric_mps,
        "messaging_service": pacing.messaging_service_mps,
    }
    if kind not in rates:
        raise ValueError(f"unknown sender kind {kind!r}; expected one of {sorted(SENDER_KINDS)}")
    return rates[kind]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Pacer:
    """Shared sender pacing and account concurrency; cheap to build, one per process is enough."""

    def __init__(self, redis: Redis, settings: Settings, *, tuning: PacerTuning | None = None) -> None:
        self.redis = redis
        self.settings = settings
        self.tuning = tuning or PacerTuning()
        t = self.tuning
        lease_ttl = t.lease_ttl_s or settings.twilio.connect_timeout_s + settings.twilio.request_timeout_s + 5.0
        self.jitter_s = t.jitter_s if t.jitter_s is not None else settings.pacing.arrival_jitter_s
        self._tail = [str(round(self.jitter_s * _US)), str(round(t.ahead_s * _US))]
        self._static = [
            str(round(lease_ttl * _US)),
            str(round(t.early_s * _US)),
            str(round(t.late_s * _US)),
            str(round(t.burst_s * _US)),
            str(round(t.horizon_s * _US)),
            str(t.horizon_segments),
            str(round(t.pause_recheck_s * _US)),
            str(round(t.latency_guess_s * _US)),
        ]
        self._acquire = redis.register_script(ACQUIRE_LUA)
        self._release = redis.register_script(RELEASE_LUA)
        self._acquire_many = redis.register_script(ACQUIRE_MANY_LUA)
        self._release_many = redis.register_script(RELEASE_MANY_LUA)
        self._lease = redis.register_script(LEASE_LUA)
        self.calls = 0  # script calls made by acquire(), reserve_many() and redeem_many(), for metrics and tests
        self._skew = float("inf")

    def _offset(self, redis_now: str) -> float:
        """The difference of this clock and Redis' clock, from a reply that carried Redis' time.

        The smallest difference seen is the one whose reply came back fastest: it is kept (creeping up
        by 10 us a reply, to follow a clock that drifts), so a reply that waited in a busy event loop
        does not make its grant look more recent than it is.
        """
        seen = time.time() - int(redis_now) / _US
        self._skew = min(seen, self._skew + _SKEW_CREEP_S)
        return self._skew

    def _account(self, account_sid: str) -> tuple[int, float]:
        found = self.settings.twilio.account_by_sid(account_sid)
        if found is None:
            return UNKNOWN_ACCOUNT_MAX_IN_FLIGHT, UNKNOWN_ACCOUNT_CPS
        return found[1].max_in_flight, found[1].calls_per_second

    def _keys(
        self, account_sid: str, sender: str, sender_kind: str, channel: str, job_id: str | None
    ) -> tuple[int, float, str, str, list[str]]:
        """(max in flight, rate, schedule name, override field, KEYS) of acquire.lua."""
        if sender_kind not in SENDER_KINDS:
            raise ValueError(f"unknown sender kind {sender_kind!r}; expected one of {sorted(SENDER_KINDS)}")
        max_in_flight, cps = self._account(account_sid)
        if channel in CALL_CHANNELS:
            sched, override, rate = f"cps:{account_sid}", "", cps
        else:
            sched, override = f"snd:{sender}", sender
            rate = self.settings.pacing.senders.get(sender) or kind_rate(self.settings.pacing, sender_kind)
        acct = f"{PREFIX}:acct:{account_sid}"
        keys = [
            f"{PREFIX}:{sched}",
            f"{PREFIX}:{sched}:slots",
            acct,
            f"{acct}:leases",
            f"{acct}:paused",
            RATES_KEY,
            f"{PREFIX}:job:{job_id or ''}",
            INDEX_KEY,
            f"{PREFIX}:{sched}:open",
            WAKE_KEY,
            f"{PREFIX}:{sched}:line",
            f"{PREFIX}:{sched}:due",
            f"{PREFIX}:{sched}:flows",
            f"{acct}:held",
        ]
        return max_in_flight, rate, sched, override, keys

    def _args(
        self,
        now_arg: str,
        override: str,
        rate: float,
        cost: int,
        token: str,
        max_in_flight: int,
        sched: str,
        account_sid: str,
        held: int,
        lane: str,
        flow: str | None,
        mode: str = "",
        lead_s: float | None = None,
    ) -> list[str]:
        """ARGV of acquire.lua."""
        args = [now_arg, override, repr(float(rate)), str(cost), token, secrets.token_hex(8), str(max_in_flight)]
        args += [*self._static, "1", sched, f"acct:{account_sid}", "1" if held else "0"]
        lead = "" if lead_s is None else str(round(lead_s * _US))
        return [*args, lane, flow or "", mode, lead, *self._tail]

    async def reserve_many(
        self,
        *,
        account_sid: str,
        sender: str,
        sender_kind: str,
        channel: str,
        asks: Sequence[tuple[str, int]],
        lane: str = "bulk",
        flow: str | None = None,
        lead_s: float = 0.0,
        now: float | None = None,
    ) -> tuple[list[Reservation], Wait | None]:
        """Book sender slots for many sends, (job id, cost) each; no lease is taken yet.

        Each slot is at least ``lead_s`` ahead (the time the caller needs before it can send: its
        claims), so the caller claims its deliveries, waits in process until each slot and then
        ``redeem_many``: the grant comes right before the request, with nothing in between. The first
        ask is decided first (it may hold a place in line); the others are booked in the order that
        packs the sender's window best (see ``ACQUIRE_MANY_LUA``), so the reservations come back in
        that order. The ``Wait`` (None when every ask has a slot) is for the ask named by its
        ``job_id``; it and the others without a slot come back then, the waiting one first
        (``still_to_book``). One script call, and up to two more after a wait short enough to hold in
        process (``hold_s``: a turn at a full account comes in milliseconds).
        """
        if lane not in PACER_LANES:
            raise ValueError(f"unknown lane {lane!r}; expected one of {sorted(PACER_LANES)}")
        if any(cost < 1 for _, cost in asks):
            raise ValueError("cost is at least one segment")
        if not asks:
            return [], None
        max_in_flight, rate, sched, override, keys = self._keys(account_sid, sender, sender_kind, channel, None)
        reservations: list[Reservation] = []
        wait: Wait | None = None
        todo = list(asks)
        for held in range(_HOLD_ROUNDS):  # a short wait (its turn at the account comes in ms) is held here
            now_arg = "" if now is None else str(round(now * _US))
            args = self._args(
                now_arg,
                override,
                rate,
                todo[0][1],
                "",
                max_in_flight,
                sched,
                account_sid,
                held,
                lane,
                flow,
                "r",
                lead_s,
            )
            for job_id, cost in todo:
                args += [f"{PREFIX}:job:{job_id}", str(cost), ""]
            self.calls += 1
            reply = [_text(v) for v in await self._acquire_many(keys=keys, args=args)]
            wait = None
            got: list[Reservation] = []
            i = 0
            while i < len(reply):
                if reply[i] == "R":
                    offset = 0.0 if now is not None else self._offset(reply[i + 3])
                    job_id, cost = todo[int(reply[i + 4])]
                    got.append(Reservation(job_id, cost, reply[i + 2], int(reply[i + 1]) / _US + offset))
                    i += 5
                else:
                    offset = 0.0 if now is not None else self._offset(reply[i + 4])
                    until = int(reply[i + 1]) / _US + offset
                    waiting = todo[int(reply[i + 5])][0]
                    wait = Wait(until=until, reason=reply[i + 2], reserved=reply[i + 3] or None, job_id=waiting)
                    break
            reservations += got
            if wait is None or now is not None or wait.reserved is None:
                return reservations, wait
            pause = wait.until - time.time()
            if pause > self.tuning.hold_s:
                return reservations, wait
            await asyncio.sleep(max(pause, 0.0))
            todo = still_to_book(todo, got, wait)
        return reservations, wait

    async def redeem_many(
        self,
        *,
        account_sid: str,
        sender: str,
        sender_kind: str,
        channel: str,
        held: Sequence[Reservation],
        lane: str = "bulk",
        flow: str | None = None,
        now: float | None = None,
    ) -> list[Grant | Wait]:
        """Turn reservations that have come due into grants (with their leases), in one script call.

        Each answer is a ``Grant``, or a ``Wait`` whose ``reserved`` token is redeemed at its ``until``
        (the slot is not reached yet; it passed, and a new one was booked at the head of the lane; or
        the account is full). ``Wait.reserved`` is None only when no slot is kept (a paused account).
        """
        if not held:
            return []
        max_in_flight, rate, sched, override, keys = self._keys(account_sid, sender, sender_kind, channel, None)
        now_arg = "" if now is None else str(round(now * _US))
        args = self._args(
            now_arg, override, rate, held[0].cost, "", max_in_flight, sched, account_sid, 1, lane, flow, "h", 0.0
        )
        for r in held:
            args += [f"{PREFIX}:job:{r.job_id}", str(r.cost), r.token]
        self.calls += 1
        reply = [_text(v) for v in await self._acquire_many(keys=keys, args=args)]
        answers: list[Grant | Wait] = []
        i = 0
        while i < len(reply):
            if reply[i] == "G":
                offset = 0.0 if now is not None else self._offset(reply[i + 4])
                answers.append(Grant(reply[i + 1], int(reply[i + 2]) / _US + offset, loose=reply[i + 3] == "1"))
                i += 5
            else:
                offset = 0.0 if now is not None else self._offset(reply[i + 4])
                until = int(reply[i + 1]) / _US + offset
                answers.append(Wait(until=until, reason=reply[i + 2], reserved=reply[i + 3] or None))
                i += 5
        return answers

    async def release_many(
        self, leases: Sequence[tuple[Grant, bool]], *, account_sid: str, now: float | None = None
    ) -> None:
        """``release`` for many leases of one account, (grant, throttled) each, in one script call."""
        if not leases:
            return
        acct = f"{PREFIX}:acct:{account_sid}"
        t = self.tuning
        args = [
            "",
            "" if now is None else str(round(now * _US)),
            "0",
            str(self._account(account_sid)[0]),
            str(t.increase_after),
            repr(t.decrease_factor),
            str(round(t.latency_guess_s * _US)),
        ]
        for grant, throttled in leases:
            args += [grant.lease, "1" if throttled else "0"]
        await self._release_many(keys=[acct, f"{acct}:leases"], args=args)

    async def acquire(
        self,
        *,
        account_sid: str,
        sender: str,
        sender_kind: str,
        channel: str,
        cost: int,
        reservation: str | None = None,
        job_id: str | None = None,
        lane: str = "bulk",
        flow: str | None = None,
        now: float | None = None,
    ) -> Grant | Wait:
        """Grant a send now, or say when to come back (with a reservation or a place in line).

        ``cost`` is segments (calls: 1). Pass back ``Wait.reserved`` as ``reservation``, or pass the
        same ``job_id`` every time and the reservation is kept in Redis for that job. ``lane``
        ("urgent" or "bulk") and ``flow`` (the batch) decide the order in which waiting jobs get the
        sender's slots: urgent before bulk, and within a lane a fair share per flow.
        """
        if cost < 1:
            raise ValueError("cost is at least one segment")
        if lane not in PACER_LANES:
            raise ValueError(f"unknown lane {lane!r}; expected one of {sorted(PACER_LANES)}")
        max_in_flight, rate, sched, override, keys = self._keys(account_sid, sender, sender_kind, channel, job_id)
        token = reservation or ""
        for held in range(_HOLD_ROUNDS):
            now_arg = "" if now is None else str(round(now * _US))
            args = self._args(now_arg, override, rate, cost, token, max_in_flight, sched, account_sid, held, lane, flow)
            args[15] = "1" if job_id else "0"
            self.calls += 1
            reply = [_text(v) for v in await self._acquire(keys=keys, args=args)]
            # Redis time -> our clock (a simulated clock needs no translation)
            offset = 0.0 if now is not None else self._offset(reply[-1])
            if reply[0] == "G":
                return Grant(lease=reply[1], granted_at=int(reply[2]) / _US + offset, loose=reply[3] == "1")
            decision = Wait(until=int(reply[1]) / _US + offset, reason=reply[2], reserved=reply[3] or None)
            pause = decision.until - time.time()
            if now is not None or decision.reserved is None or pause > self.tuning.hold_s:
                return decision
            await asyncio.sleep(max(pause, 0.0))
            token = decision.reserved
        return decision

    async def lease(self, account_sid: str, *, wait_s: float = 0.0) -> Grant | Wait:
        """A lease on the account for a REST request that sends nothing (a look-up, a fetch): no sender slot.

        It counts against the account's requests in flight as a send's does. A full account's turn is
        waited for in process while it comes within ``wait_s``; a paused account is not waited for.
        Give the lease back with ``release`` or ``release_many``.
        """
        acct = f"{PREFIX}:acct:{account_sid}"
        keys = [acct, f"{acct}:leases", f"{acct}:paused"]
        lease_ttl, recheck, latency_guess = self._static[0], self._static[6], self._static[7]
        deadline = time.time() + wait_s
        while True:
            args = [secrets.token_hex(8), str(self._account(account_sid)[0]), lease_ttl, latency_guess, recheck]
            reply = [_text(v) for v in await self._lease(keys=keys, args=args)]
            offset = self._offset(reply[4])
            if reply[0] == "G":
                return Grant(lease=reply[1], granted_at=int(reply[2]) / _US + offset)
            wait = Wait(until=int(reply[1]) / _US + offset, reason=reply[2], reserved=None)
            if wait.reason.startswith("account paused") or wait.until > deadline:
                return wait
            await asyncio.sleep(max(wait.until - time.time(), 0.0))

    async def release(self, grant: Grant, *, account_sid: str, throttled: bool, now: float | None = None) -> None:
        """Give the lease back; ``throttled`` (429/20429) halves the account's in-flight cap."""
        acct = f"{PREFIX}:acct:{account_sid}"
        t = self.tuning
        args = [
            grant.lease,
            "" if now is None else str(round(now * _US)),
            "1" if throttled else "0",
            str(self._account(account_sid)[0]),
            str(t.increase_after),
            repr(t.decrease_factor),
            str(round(t.latency_guess_s * _US)),
        ]
        await self._release(keys=[acct, f"{acct}:leases"], args=args)

    async def set_sender_rate(self, sender: str, mps: float) -> None:
        """Override a sender's segments per second for every worker (beats ``settings.pacing.senders``)."""
        if not mps > 0:
            raise ValueError("a sender rate is positive")
        await self.redis.hset(RATES_KEY, sender, repr(float(mps)))  # type: ignore[misc]

    async def clear_sender_rate(self, sender: str) -> None:
        """Drop an operator override; the configured rate applies again."""
        await self.redis.hdel(RATES_KEY, sender)  # type: ignore[misc]

    async def pause_account(self, account_sid: str, reason: str) -> None:
        """Stop every send from the account (20003, 30002) until ``resume_account``."""
        await self.redis.set(f"{PREFIX}:acct:{account_sid}:paused", reason)

    async def resume_account(self, account_sid: str) -> None:
        """Lift a pause; waiting jobs go on at their next check."""
        await self.redis.delete(f"{PREFIX}:acct:{account_sid}:paused")

    async def paused(self, account_sid: str) -> str | None:
        """Why the account is paused, or None."""
        reason = await self.redis.get(f"{PREFIX}:acct:{account_sid}:paused")
        return None if reason is None else _text(reason)

    async def snapshot(self) -> dict[str, Any]:
        """Caps, leases in flight and pauses per account; rate, jobs in line and backlog per sender."""
        sec, usec = await self.redis.time()
        now_us = int(sec) * _US + int(usec)
        names = sorted(_text(n) for n in await self.redis.smembers(INDEX_KEY))  # type: ignore[misc]
        names += [f"acct:{a.account_sid}" for a in self.settings.twilio.accounts.values()]
        accounts: dict[str, Any] = {}
        schedules: dict[str, Any] = {}
        for name in dict.fromkeys(names):
            kind, _, ident = name.partition(":")
            key = f"{PREFIX}:{name}"
            if kind == "acct":
                cap, lat = await self.redis.hmget(key, ["cap", "lat"])  # type: ignore[misc]
                max_in_flight = self._account(ident)[0]
                accounts[ident] = {
                    "cap": float(_text(cap)) if cap is not None else float(max_in_flight),
                    "max_in_flight": max_in_flight,
                    "in_flight": await self.redis.zcount(f"{key}:leases", now_us, "+inf"),
                    "latency_s": int(_text(lat)) / _US if lat is not None else None,
                    "paused": await self.paused(ident),
                }
            else:
                last, rate, interval = await self.redis.hmget(key, ["last", "rate", "iv"])  # type: ignore[misc]
                if rate is None:
                    await self.redis.srem(INDEX_KEY, name)  # type: ignore[misc]
                    continue
                waiting = await self.redis.zcard(f"{key}:line")
                booked = max(0, int(_text(last)) - now_us)
                schedules[name] = {
                    "rate": float(_text(rate)),
                    "waiting": waiting,
                    # slots booked ahead, plus the line of jobs waiting for one (a segment each)
                    "backlog_s": (booked + waiting * int(_text(interval or b"0"))) / _US,
                }
        return {"accounts": accounts, "schedules": schedules}

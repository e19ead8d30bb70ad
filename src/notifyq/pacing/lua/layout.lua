-- KEYS and ARGV of pace.lua by name: the Lua side of calls.py's PaceCall, which builds them (a test holds
-- the two to the same order). All times are integer microseconds; costs are segments.

local function read_keys(KEYS)
  return {
    schedule = KEYS[1], -- hash: tat, last, cn (running segment total), base, virtual times, rate, ...
    slots = KEYS[2], -- zset: the schedule's slots (member: slot:id; score: running segment total)
    account = KEYS[3], -- hash: cap, tatc (turns of a full account), lat (request time), ok, dec
    leases = KEYS[4], -- zset: the account's requests in flight (score: expiry)
    paused = KEYS[5], -- string: why the account is paused
    rates = KEYS[6], -- hash: operators' rate overrides, by sender
    index = KEYS[7], -- set: the schedules and accounts seen (the admin's snapshot lists them)
    open = KEYS[8], -- zset: reservations not yet used (member: token; score: slot)
    wake = KEYS[9], -- hash: how late the worker pool comes back (lag, dev), one for every schedule
    line = KEYS[10], -- zset: the sender's line (member: flow|id; score: lane base + start tag)
    due = KEYS[11], -- zset: the same places (score: when a place whose job never came back is given up)
    flows = KEYS[12], -- hash: each flow's finish tag (field: lane:flow)
    held = KEYS[13], -- zset: the account's booked sends not yet redeemed (member: job key; score: expiry)
  }
end

local function read_call(ARGV)
  return {
    now = clock_us(ARGV[1]), -- '' = Redis' clock
    override = ARGV[2], -- the field of the sender's rate override ('' = none: a calls schedule)
    rate = tonumber(ARGV[3]), -- segments per second, as configured
    fresh = ARGV[4], -- a random id: with each send's index, the name of what the call creates
    max_in_flight = tonumber(ARGV[5]),
    lease_ttl = tonumber(ARGV[6]),
    early = tonumber(ARGV[7]), -- a reservation is granted this long before its slot ...
    late = tonumber(ARGV[8]), -- ... and this long after
    burst = tonumber(ARGV[9]), -- GCRA burst tolerance
    horizon = tonumber(ARGV[10]), -- reservations reach this far ahead ...
    horizon_segments = tonumber(ARGV[11]), -- ... or this many segments' time, when that is further
    recheck = tonumber(ARGV[12]), -- a paused account's jobs come back this much later
    latency_guess = tonumber(ARGV[13]), -- request time assumed until releases have measured it
    schedule_name = ARGV[14], -- the names the index holds
    account_name = ARGV[15],
    punctual = ARGV[16] == '1', -- the caller waited in process: its lateness says nothing of the pool's
    lane = ARGV[17], -- 'urgent' or 'bulk'
    flow = ARGV[18], -- the batch ('' = one flow)
    mode = ARGV[19], -- 'reserve' (book slots, no lease) or 'redeem' (grant held reservations)
    lead = tonumber(ARGV[20]), -- a booked slot is at least this far ahead (nil: learnt lateness)
    jitter = tonumber(ARGV[21]) or 0, -- the spread of the time from a grant to Twilio: part of the window
    ahead = tonumber(ARGV[22]) or 0, -- reserving: jobs in line are asked back, and book, this far ahead
  }
end

local SENDS_FROM = 23 -- then (job key, cost, token) per send; token '' = the one kept under the job key

local function read_sends(ARGV)
  local sends = {}
  for i = SENDS_FROM, #ARGV, 3 do
    sends[#sends + 1] = {key = ARGV[i], cost = tonumber(ARGV[i + 1]), token = ARGV[i + 2]}
  end
  return sends
end

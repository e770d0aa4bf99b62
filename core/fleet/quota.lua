#!lua name=medops_quota_v3
--[[
The fleet's Groq quota, wire version 3: one library of Redis functions (FUNCTION LOAD), so every admission,
settle and signal is one atomic round trip on the store's clock.

Every key a function touches is in KEYS, computed by the caller (`fleet/wire.py` is the only place that knows
their order), and all of them carry the namespace's hash tag, medops:{ns}:..., so the library runs on Redis
Cluster and Valkey. KEYS is the namespace's keys (NS below), then, for a function about models, each model's
keys (MODEL below), in those orders:
  epoch            the store's epoch id (missing: emptied, must be re-seeded)
  epoch_at         ms: when this epoch began
  seeding_until    ms: the latest a re-seed may last (members that died never write back)
  seeded           SET the members that wrote their day back into this epoch
  seed_expect      how many members the fleet had, as those members last saw it
  alive            ZSET instance -> heartbeat expiry (ms)
  beat             ZSET instance -> its last heartbeat (ms)
  share            HASH instance -> the members alive it was told at that beat (its local divisor)
  members          HASH instance -> its description (JSON)
and per model:
  min, day         ZSET "instance:bucket end" -> bucket end (ms): the windows, kept as time buckets
  mamt, damt       HASH "instance:bucket end" -> "requests tokens" settled in that bucket by that instance
  fly              HASH in-flight id -> "tokens instance"
  flyx             ZSET in-flight id -> when it ends if nobody settles it (ms)
  sum              HASH running sums: mr mt dr dt fr ft
  sig              HASH signals: b1..b4 (429 blocks until), held (498), x1..x4/u1..u4 (server's extra use and
                   until), s1..s4 / l1..l4 (server's limits and until)
  wait             HASH instance -> "priority since tokens expires" (its best waiting request)
  part             HASH "instance|d" -> that member's part of dimension d (settled in window + in flight)
  carry            HASH instance -> "until_min until_day u1 u2 u3 u4": after the store was emptied, the part of a
                   member that is not writing its day back (it left or died), as the others last saw it
  fresh            ms: until then the minute windows count as full (the store was emptied)
  seen             ZSET id -> ms: ids counted that were not in flight (write-back), so a retried write-back
                   counts each once; kept SEEN_KEEP
Dimensions 1..4: rpm, rpd, tpm, tpd. All times are integer milliseconds of TIME.

Memory does not grow with traffic: a settled request adds to its instance's bucket of each window. A bucket
[b, e) counts until e plus the window's span, so it is never counted short (never over the limit) and at most a
bucket's width long: the minute's buckets are MIN_WIDTH wide, the day's DAY_WIDTH.
]]

local MINUTE, DAY = 60000, 86400000
local MIN_WIDTH, DAY_WIDTH = 250, MINUTE
-- A member whose heartbeat is this late may be cut off and admitting on its local share.
local LATE = 3000
-- How long an id counted outside a flight is remembered (a write-back retried after longer counts again:
-- more than was used, never less).
local SEEN_KEEP = 10 * MINUTE

--[[ The store is a trust boundary: any member (a compromised one, a buggy one, one of another version) may call
these functions with any arguments, or write the keys directly. So every figure is clamped where it comes in, and
what is read back is clamped again; nothing a member sends can hold the fleet longer than these bounds. ]]
local MAX_BLOCK = DAY             -- a 429's block: Groq's longest reset (the day's window)
local MAX_HOLD = 5 * MINUTE       -- a 498's hold (medops' own backoff caps it at 8 s)
local MAX_ATTEMPT = 10 * MINUTE   -- one HTTP attempt (request_timeout allows 600 s)
local MAX_GRACE = 2 * MINUTE      -- how long an emptied store may wait for its members to write their day back
local MAX_TTL = MINUTE            -- a member's heartbeat lifetime, a waiter's place in line
local LIMIT_TTL = 60 * MINUTE     -- a server limit learnt from headers lapses unless seen again (every answer)
local MAX_MEMBERS = 1000          -- members counted alive (the local share's divisor), and a seeded count
local MAX_LATE = 16               -- late members whose share is held back for them, newest first

local NS = {'epoch', 'epoch_at', 'seeding_until', 'seeded', 'seed_expect', 'alive', 'beat', 'share', 'members'}
local MODEL = {'min', 'day', 'mamt', 'damt', 'fly', 'flyx', 'sum', 'sig', 'wait', 'part', 'carry', 'fresh', 'seen'}

-- The keys by name: the namespace's, and the `n`th model's (1-based) when asked.
local function keyset(keys, n)
  local K = {}
  for i, name in ipairs(NS) do K[name] = keys[i] end
  if n then
    local base = #NS + (n - 1) * #MODEL
    for i, name in ipairs(MODEL) do K[name] = keys[base + i] end
  end
  return K
end

-- KEYS must be the namespace's and `models` models' keys, nothing else (a caller of another wire is refused).
local function expect_keys(keys, models)
  if #keys ~= #NS + models * #MODEL then
    return redis.error_reply('medops_quota_v3: expected ' .. (#NS + models * #MODEL) .. ' KEYS, got ' .. #keys)
  end
  return nil
end

-- A number from outside: `v` as an integer within [lo, hi]; not a number: `lo`.
local function clamp(v, lo, hi)
  local n = tonumber(v)
  if not n or n ~= n then return lo end
  n = math.floor(n)
  if n < lo then return lo end
  if n > hi then return hi end
  return n
end
local BIG = 1e15  -- beyond any Groq limit or count, well inside a double's exact integers

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function split(s)
  local out = {}
  for w in string.gmatch(s, '%S+') do out[#out + 1] = w end
  return out
end

local function num(v) return tonumber(v) or 0 end

-- A dimension number from outside, 1..4, or nil.
local function dim(v)
  local d = tonumber(v)
  if d == 1 or d == 2 or d == 3 or d == 4 then return d end
  return nil
end

local function span_of(d) if d == 2 or d == 4 then return DAY end return MINUTE end

-- The windows: where each keeps its buckets, how wide they are, which sums and dimensions it feeds.
local WINDOWS = {
  {zset = 'min', amt = 'mamt', width = MIN_WIDTH, span = MINUTE, r = 'mr', t = 'mt', dr = 1, dt = 3},
  {zset = 'day', amt = 'damt', width = DAY_WIDTH, span = DAY, r = 'dr', t = 'dt', dr = 2, dt = 4},
}
local function window_of(d) if d == 2 or d == 4 then return WINDOWS[2] end return WINDOWS[1] end

-- The instance of an id ('instance:seq') or of a bucket entry ('instance:bucket end').
local function instance_of(id) return string.match(id, '^(.*):[^:]*$') or id end

-- A signal's "until" (ms) read back: at most `cap` from now. One written past it (by an older library, or
-- straight into the hash) is cut down in place, so it lapses within the bound.
local function until_read(key, field, cap, now)
  local v = num(redis.call('HGET', key, field))
  if v > now + cap then
    v = now + cap
    redis.call('HSET', key, field, v)
  end
  return v
end

-- Each member's part of each dimension, so that if the store is emptied the others can say what a member
-- that is gone had used.
local function add_part(K, inst, values)
  for d = 1, 4 do
    if values[d] ~= 0 and redis.call('HINCRBY', K.part, inst .. '|' .. d, values[d]) <= 0 then
      redis.call('HDEL', K.part, inst .. '|' .. d)
    end
  end
end

-- Buckets that left a window (their end plus the span has passed) stop counting, and are forgotten.
local function expire_window(K, w, now)
  local zkey, amt = K[w.zset], K[w.amt]
  local gone = redis.call('ZRANGEBYSCORE', zkey, '-inf', now - w.span)
  if #gone == 0 then return end
  local r, t = 0, 0
  for _, entry in ipairs(gone) do
    local a = redis.call('HGET', amt, entry)
    if a then
      local v = split(a)
      local er, et = num(v[1]), num(v[2])
      r, t = r + er, t + et
      local part = {0, 0, 0, 0}
      part[w.dr], part[w.dt] = -er, -et
      add_part(K, instance_of(entry), part)
      redis.call('HDEL', amt, entry)
    end
  end
  redis.call('ZREMRANGEBYSCORE', zkey, '-inf', now - w.span)
  redis.call('HINCRBY', K.sum, w.r, -r)
  redis.call('HINCRBY', K.sum, w.t, -t)
end

-- What `inst` settled at `at` counts in each window's bucket holding `at`, while that bucket is in the window.
local function add_settled(K, inst, at, requests, tokens, now)
  for _, w in ipairs(WINDOWS) do
    local ends = (math.floor(at / w.width) + 1) * w.width
    if ends + w.span > now then
      local entry = inst .. ':' .. string.format('%d', ends)
      redis.call('ZADD', K[w.zset], ends, entry)
      local old = split(redis.call('HGET', K[w.amt], entry) or '0 0')
      redis.call('HSET', K[w.amt], entry, string.format('%d %d', num(old[1]) + requests, num(old[2]) + tokens))
      redis.call('HINCRBY', K.sum, w.r, requests)
      redis.call('HINCRBY', K.sum, w.t, tokens)
      local part = {0, 0, 0, 0}
      part[w.dr], part[w.dt] = requests, tokens
      add_part(K, inst, part)
    end
  end
end

-- An id starts its flight: it counts in every window until it lands, or lapses at `ends`.
local function take_off(K, id, tokens, inst, ends)
  redis.call('HSET', K.fly, id, string.format('%d', tokens) .. ' ' .. inst)
  redis.call('ZADD', K.flyx, ends, id)
  redis.call('HINCRBY', K.sum, 'fr', 1)
  redis.call('HINCRBY', K.sum, 'ft', tokens)
  add_part(K, inst, {1, 1, tokens, tokens})
end

-- Take an id out of flight; returns the tokens it held and its instance, or nil.
local function land(K, id)
  local f = redis.call('HGET', K.fly, id)
  if not f then return nil end
  local v = split(f)
  local tokens, inst = num(v[1]), v[2] or instance_of(id)
  redis.call('HDEL', K.fly, id)
  redis.call('ZREM', K.flyx, id)
  redis.call('HINCRBY', K.sum, 'fr', -1)
  redis.call('HINCRBY', K.sum, 'ft', -tokens)
  add_part(K, inst, {-1, -1, -tokens, -tokens})
  return tokens, inst
end

-- An id's use counted once: it lands if in flight; one never in flight (admitted while the store was away) is
-- remembered a while, so a write-back sent again does not count it twice. Returns 1 if it counted.
local function settle_id(K, id, at, requests, tokens, now)
  local flying, inst = land(K, id)
  if not flying then
    if redis.call('ZSCORE', K.seen, id) then return 0 end
    redis.call('ZADD', K.seen, now, id)
    inst = instance_of(id)
  end
  add_settled(K, inst, at, requests, tokens, now)
  return 1
end

-- Flights nobody settled within the bound (their instance died) settle as reserved, then.
local function prune(K, now)
  local lapsed = redis.call('ZRANGEBYSCORE', K.flyx, '-inf', now, 'WITHSCORES')
  for i = 1, #lapsed, 2 do
    local at = tonumber(lapsed[i + 1])
    local tokens, inst = land(K, lapsed[i])
    if tokens then add_settled(K, inst, at, 1, tokens, now) end
  end
  for _, w in ipairs(WINDOWS) do expire_window(K, w, now) end
  redis.call('ZREMRANGEBYSCORE', K.seen, '-inf', now - SEEN_KEEP)
end

-- What members that are gone held when the store was emptied (per dimension), until it has left the windows.
-- A member that has written its own day back is counted by its records instead.
local function carried(K, now)
  local c = {0, 0, 0, 0}
  local entries = redis.call('HGETALL', K.carry)
  for i = 1, #entries, 2 do
    local v = split(entries[i + 1])
    local until_min = clamp(v[1], 0, now + MINUTE + MAX_ATTEMPT)
    local until_day = clamp(v[2], 0, now + DAY + MAX_ATTEMPT)
    if until_day <= now or redis.call('SISMEMBER', K.seeded, entries[i]) == 1 then
      redis.call('HDEL', K.carry, entries[i])
    else
      for d = 1, 4 do
        if d == 2 or d == 4 or until_min > now then c[d] = c[d] + clamp(v[2 + d], 0, BIG) end
      end
    end
  end
  return c
end

-- Until when (ms) the minute windows count as full after the store was emptied: at most a minute and an
-- attempt after the epoch began.
local function fresh_until(K)
  local began = num(redis.call('GET', K.epoch_at))
  return math.min(num(redis.call('GET', K.fresh)), began + MINUTE + MAX_ATTEMPT)
end

-- Used per dimension (settled + in flight + the server's extra + what gone members carried over an emptied
-- store) and the limits in force.
local function usage(K, limits, now)
  local s = redis.call('HMGET', K.sum, 'mr', 'dr', 'mt', 'dt', 'fr', 'ft')
  local sig = K.sig
  local g = redis.call('HMGET', sig, 'x1', 'x2', 'x3', 'x4', 's1', 's2', 's3', 's4', 'l1', 'l2', 'l3', 'l4')
  local fr, ft = math.max(0, num(s[5])), math.max(0, num(s[6]))
  local carry = carried(K, now)
  local fresh = fresh_until(K) > now
  local used, lim, blocked = {}, {}, {}
  for d = 1, 4 do
    lim[d] = clamp(limits[d], 1, BIG)
    -- The server's limit tightens ours while it is fresh; it is never below 1 (0 would be full for ever).
    if g[4 + d] and num(g[8 + d]) > now then lim[d] = math.min(lim[d], clamp(g[4 + d], 1, BIG)) end
    local extra = 0
    if until_read(sig, 'u' .. d, span_of(d), now) > now then extra = clamp(g[d], 0, lim[d]) end
    local flying = (d <= 2) and fr or ft
    -- Sums are never below 0, whatever was written into them.
    used[d] = math.max(0, num(s[d])) + flying + extra + carry[d]
    if fresh and (d == 1 or d == 3) and used[d] < lim[d] then
      carry[d] = carry[d] + lim[d] - used[d]
      used[d] = lim[d]
    end
    blocked[d] = math.max(0, until_read(sig, 'b' .. d, MAX_BLOCK, now) - now)
  end
  return used, lim, blocked, math.max(0, until_read(sig, 'held', MAX_HOLD, now) - now), carry
end

-- Milliseconds until `need` units of dimension d leave its window (buckets, oldest first: at most the
-- window's buckets of each member, whatever the traffic).
local function time_until_freed(K, d, need, now)
  local w = window_of(d)
  local freed, offset = 0, 0
  while offset < 20000 do
    local batch = redis.call('ZRANGE', K[w.zset], offset, offset + 499, 'WITHSCORES')
    if #batch == 0 then break end
    for i = 1, #batch, 2 do
      local a = redis.call('HGET', K[w.amt], batch[i])
      if a then
        local v = split(a)
        freed = freed + ((d <= 2) and num(v[1]) or num(v[2]))
        if freed >= need then return math.max(0, tonumber(batch[i + 1]) + w.span - now) end
      end
    end
    offset = offset + 500
  end
  -- What must leave is still in flight: it leaves a whole window after it settles.
  return w.span
end

-- What members that may be on their local share could admit: each late member's share of each limit,
-- until it writes back (its beat is then current) or a window after it must have stopped (bound + MINUTE).
-- Bounded: only the MAX_LATE latest late members count, only those that beat through the heartbeat (their
-- share is recorded), and each one's share is at most 1/(members late + the asking one), so forged members can
-- neither hold the whole window nor make one admission walk a hundred thousand entries.
local function reserved(K, inst, lim, bound, now)
  local r = {0, 0, 0, 0}
  local late = redis.call('ZREVRANGEBYSCORE', K.beat, now - LATE, now - bound - MINUTE, 'LIMIT', 0, MAX_LATE + 1)
  local counted = {}
  for _, member in ipairs(late) do
    local share = redis.call('HGET', K.share, member)
    if member ~= inst and share and #counted < MAX_LATE then counted[#counted + 1] = share end
  end
  for _, share in ipairs(counted) do
    local n = math.max(clamp(share, 1, MAX_MEMBERS), #counted + 1)  -- the late ones and the asking member
    for d = 1, 4 do r[d] = r[d] + math.floor(lim[d] / n) end
  end
  return r
end

-- Milliseconds the re-seed of an emptied store still holds admissions: until every member the fleet had
-- has written its day back, or the cap set when the epoch began.
local function seeding_left(K, now)
  local cap = math.min(num(redis.call('GET', K.seeding_until)), num(redis.call('GET', K.epoch_at)) + MAX_GRACE)
  if cap <= now then return 0 end
  local expect = clamp(redis.call('GET', K.seed_expect), 1, MAX_MEMBERS)
  if redis.call('SCARD', K.seeded) >= expect then
    redis.call('DEL', K.seeding_until)
    return 0
  end
  return cap - now
end

-- The class a request competes in after waiting `waited` ms, as the scheduler ranks its own queue: one class up
-- per starvation bound waited, never above critical. So nothing starves, and a critical request is never passed
-- by a lower one that has waited less. Ties go to the one waiting longest.
local CRITICAL = 2
local function effective(priority, waited, starve)
  if starve <= 0 then return CRITICAL end
  return math.min(CRITICAL, priority + math.floor(waited / starve))
end

local function epoch_state(K, known, now)
  local epoch = redis.call('GET', K.epoch)
  if not epoch then return 'unseeded', 0 end
  local seeding = seeding_left(K, now)
  if seeding > 0 then return 'seeding', seeding end
  if epoch ~= known then return 'epoch', epoch end
  return nil
end

-- The fleet's use as an admission sees it, and the asking member's own part of it at the same moment.
local function usage_reply(K, inst, status, now, extra, used, lim, blocked, held)
  local own = redis.call('HMGET', K.part, inst .. '|1', inst .. '|2', inst .. '|3', inst .. '|4')
  return {now, status, extra, used[1], used[2], used[3], used[4], lim[1], lim[2], lim[3], lim[4],
          blocked[1], blocked[2], blocked[3], blocked[4], held, num(own[1]), num(own[2]), num(own[3]), num(own[4])}
end

--[[ admit: KEYS NS + one model; ARGV: instance, id, tokens, priority, waited_ms, rpm, rpd, tpm, tpd,
     flight_bound_ms, starvation_ms, waiter_ttl_ms, known_epoch.
  Replies {now, status, detail, used1..4, limit1..4, blocked1..4, held, own1..4}; status 'ok' (detail = 0),
  'wait' (detail = ms to wait), or an epoch status ('unseeded', 'seeding' with ms, 'epoch' with the id) with
  only now, status and detail. ]]
local function admit(keys, args)
  local bad = expect_keys(keys, 1)
  if bad then return bad end
  local K = keyset(keys, 1)
  local inst, id = args[1], args[2]
  local tokens, priority, waited = clamp(args[3], 0, BIG), clamp(args[4], -BIG, BIG), clamp(args[5], 0, DAY)
  local limits = {clamp(args[6], 1, BIG), clamp(args[7], 1, BIG), clamp(args[8], 1, BIG), clamp(args[9], 1, BIG)}
  local bound, starve, ttl = clamp(args[10], 1000, DAY), clamp(args[11], 0, DAY), clamp(args[12], 1, MAX_TTL)
  local now = now_ms()
  local status, detail = epoch_state(K, args[13], now)
  if status then return {now, status, detail} end
  prune(K, now)
  local used, lim, blocked, held, carry = usage(K, limits, now)
  local since = now - waited
  -- Requests waiting elsewhere that outrank this one take the next free units first.
  local ahead_r, ahead_t = 0, 0
  local waiters = redis.call('HGETALL', K.wait)
  local mine = effective(priority, now - since, starve)
  for i = 1, #waiters, 2 do
    local w = split(waiters[i + 1])
    local wprio, wsince, wtokens, wexp = clamp(w[1], -BIG, BIG), clamp(w[2], 0, now), clamp(w[3], 0, BIG),
                                         clamp(w[4], 0, now + 2 * MAX_TTL)
    if wexp <= now then
      redis.call('HDEL', K.wait, waiters[i])
    elseif waiters[i] ~= inst then
      local theirs = effective(wprio, now - wsince, starve)
      if theirs > mine or (theirs == mine and wsince < since) then ahead_r, ahead_t = ahead_r + 1, ahead_t + wtokens end
    end
  end
  local wait = math.max(held, blocked[1], blocked[2], blocked[3], blocked[4])
  local needs = {1 + ahead_r, 1 + ahead_r, tokens + ahead_t, tokens + ahead_t}
  local reserve = reserved(K, inst, lim, bound, now)
  for d = 1, 4 do
    local over = used[d] + reserve[d] + needs[d] - lim[d]
    if over > 0 then
      local freed = time_until_freed(K, d, over, now)
      -- Room held by flights, by a late member or by a gone member's carried part returns when they settle,
      -- write back or leave the window: look again soon.
      if (freed >= MINUTE and (d >= 3 or reserve[d] > 0)) or carry[d] > 0 then freed = math.min(freed, 1000) end
      wait = math.max(wait, freed, 1)
    end
  end
  if wait <= 0 then
    take_off(K, id, tokens, inst, now + bound)
    redis.call('HDEL', K.wait, inst)
    used[1], used[2], used[3], used[4] = used[1] + 1, used[2] + 1, used[3] + tokens, used[4] + tokens
    return usage_reply(K, inst, 'ok', now, 0, used, lim, blocked, held)
  end
  -- The place in line lasts until shortly after this member should ask again (it asks at least every ttl).
  local entry = string.format('%d %d %d %d', priority, since, tokens, now + math.min(wait, ttl) + ttl)
  redis.call('HSET', K.wait, inst, entry)
  return usage_reply(K, inst, 'wait', now, wait, used, lim, blocked, held)
end

-- settle: KEYS NS + one model; ARGV id, tokens used. The flight ends and counts `used` from now (once per id).
local function settle(keys, args)
  local bad = expect_keys(keys, 1)
  if bad then return bad end
  local K = keyset(keys, 1)
  local now = now_ms()
  prune(K, now)
  settle_id(K, args[1], now, 1, clamp(args[2], 0, BIG), now)
  return now
end

-- release: KEYS NS + one model; ARGV id. A reservation never sent: it ends without counting.
local function release(keys, args)
  local bad = expect_keys(keys, 1)
  if bad then return bad end
  local now = now_ms()
  land(keyset(keys, 1), args[1])
  return now
end

--[[ signal: KEYS NS + one model; ARGV kind, ...
  'block' dims(csv of 1..4) wait_ms: a 429 blocks those dimensions for everyone until now + wait.
  'hold' ms: a 498 holds the model.
  'limit' d value: the server's limit for d.
  'extra' d limit remaining hold_ms: the server counts more than the fleet does; hold the difference. ]]
local function signal(keys, args)
  local bad = expect_keys(keys, 1)
  if bad then return bad end
  local K = keyset(keys, 1)
  local kind, sig = args[1], K.sig
  local now = now_ms()
  if kind == 'block' then
    local wait = clamp(args[3], 0, MAX_BLOCK)
    for d in string.gmatch(tostring(args[2]), '[1-4]') do
      if until_read(sig, 'b' .. d, MAX_BLOCK, now) < now + wait then redis.call('HSET', sig, 'b' .. d, now + wait) end
    end
  elseif kind == 'hold' then
    local until_ms = now + clamp(args[2], 0, MAX_HOLD)
    if until_read(sig, 'held', MAX_HOLD, now) < until_ms then redis.call('HSET', sig, 'held', until_ms) end
  elseif kind == 'limit' then
    local d = dim(args[2])
    if d then redis.call('HSET', sig, 's' .. d, clamp(args[3], 1, BIG), 'l' .. d, now + LIMIT_TTL) end
  elseif kind == 'extra' then
    local d = dim(args[2])
    if not d then return now end
    local limit, remaining = clamp(args[3], 1, BIG), clamp(args[4], 0, BIG)
    local hold = clamp(args[5], 0, span_of(d))
    prune(K, now)
    local s = redis.call('HMGET', K.sum, 'mr', 'dr', 'mt', 'dt', 'fr', 'ft')
    local fleet = math.max(0, num(s[d])) + math.max(0, (d <= 2) and num(s[5]) or num(s[6])) + carried(K, now)[d]
    local extra = math.min(limit, limit - remaining) - fleet
    if extra > 0 then
      redis.call('HSET', sig, 'x' .. d, extra, 'u' .. d, now + hold)
    elseif num(redis.call('HGET', sig, 'u' .. d)) > now then
      redis.call('HSET', sig, 'x' .. d, 0, 'u' .. d, now)
    end
  end
  -- Signals lapse on their own; the hash goes once nothing in it can bind any more.
  redis.call('PEXPIRE', sig, LIMIT_TTL + MAX_BLOCK)
  return now
end

-- clear: KEYS[1] the model's signals. An operator lifts every 429 block, 498 hold, server count and server
-- limit on the model (members learn the real ones again from Groq's next answer). Its own key in KEYS, so an
-- ACL user may be allowed this and not the rest of the namespace.
local function clear(keys, args)
  local now = now_ms()
  return {now, redis.call('DEL', keys[1])}
end

--[[ sync: KEYS NS + one model; ARGV instance, flight_bound_ms, then entries "s id at_ms requests tokens"
  (settled), "f id tokens" (in flight), "r id" (released unsent), and into an emptied store "c member until_min
  until_day u1 u2 u3 u4" (another member's part as this one last saw it: it counts until that member writes its
  own day back, or until it has left the windows; reports of one member are merged by the largest) and
  "h attempt_ms since_ms" (the minute windows count as full until a minute and an attempt after the epoch began,
  if it began after since_ms: a member new to the store, that could not reach it since then, may have missed it
  emptied). What an instance admitted while the store was away (or all its day, into an emptied store): each id
  once. Replies {now, entries that counted}. ]]
local function sync(keys, args)
  local bad = expect_keys(keys, 1)
  if bad then return bad end
  local K = keyset(keys, 1)
  local inst, bound = args[1], clamp(args[2], 1000, DAY)
  local now = now_ms()
  prune(K, now)
  local added = 0
  for i = 3, #args do
    local e = split(args[i])
    if e[1] == 'r' then
      land(K, e[2])
    elseif e[1] == 'h' then
      -- The old store may have admitted, up to its last moment, requests of members that have left since and
      -- that nobody saw; they reach Groq within an attempt and count there a minute.
      local began = num(redis.call('GET', K.epoch_at))
      local until_ms = began + MINUTE + clamp(e[2], 0, MAX_ATTEMPT)
      if began > 0 and began >= num(e[3]) and until_ms > num(redis.call('GET', K.fresh)) then
        redis.call('SET', K.fresh, until_ms, 'PXAT', until_ms)
      end
    elseif e[1] == 'c' then
      if e[2] ~= inst and redis.call('SISMEMBER', K.seeded, e[2]) == 0 then
        local old = split(redis.call('HGET', K.carry, e[2]) or '0 0 0 0 0 0')
        -- A carried part lasts at most a window and an attempt; its counts are never below 0.
        local highest = {now + MINUTE + MAX_ATTEMPT, now + DAY + MAX_ATTEMPT, BIG, BIG, BIG, BIG}
        local merged = {}
        for k = 1, 6 do
          merged[k] = string.format('%d', math.max(clamp(old[k], 0, highest[k]), clamp(e[2 + k], 0, highest[k])))
        end
        redis.call('HSET', K.carry, e[2], table.concat(merged, ' '))
      end
    elseif e[1] == 's' and e[2] then
      -- Counts are never below 0 (a negative entry would give room back the window never had).
      added = added + settle_id(K, e[2], clamp(e[3], 0, now), clamp(e[4], 0, BIG), clamp(e[5], 0, BIG), now)
    elseif e[1] == 'f' and e[2] and not redis.call('HGET', K.fly, e[2]) and not redis.call('ZSCORE', K.seen, e[2]) then
      take_off(K, e[2], clamp(e[3], 0, BIG), inst, now + bound)
      added = added + 1
    end
  end
  return {now, added}
end

--[[ heartbeat: KEYS NS + each model's; ARGV instance, description, ttl_ms, flight_bound_ms, known_epoch,
     seed_grace_ms, new_epoch, then per model (in KEYS' order): "rpm rpd tpm tpd".
  Keeps the member alive and its flights from lapsing, starts a new epoch in an emptied store, and
  replies {now, epoch, seeding_ms, members_alive, then per model the usage reply's 13 numbers, then per model
  the count of its part fields and those fields' "instance|d", value pairs}. ]]
local function heartbeat(keys, args)
  local models = #args - 7
  local bad = expect_keys(keys, models)
  if bad then return bad end
  local N = keyset(keys)
  local inst = args[1]
  local ttl, bound, grace = clamp(args[3], 1000, MAX_TTL), clamp(args[4], 1000, DAY), clamp(args[6], 0, MAX_GRACE)
  local now = now_ms()
  redis.call('ZADD', N.alive, now + ttl, inst)
  redis.call('ZADD', N.beat, now, inst)
  redis.call('HSET', N.members, inst, args[2])
  -- Members silent for a day are forgotten; shorter silences stay visible as stale.
  -- (A thousand a beat at most: forged members go over a few beats, not in one long call.)
  local old = redis.call('ZRANGEBYSCORE', N.alive, '-inf', now - DAY, 'LIMIT', 0, MAX_MEMBERS)
  for _, gone in ipairs(old) do
    redis.call('HDEL', N.members, gone)
    redis.call('HDEL', N.share, gone)
    redis.call('ZREM', N.alive, gone)
  end
  redis.call('ZREMRANGEBYSCORE', N.beat, '-inf', now - DAY)
  local epoch = redis.call('GET', N.epoch)
  if not epoch then
    epoch = args[7]
    redis.call('SET', N.epoch, epoch)
    redis.call('SET', N.epoch_at, now)
    redis.call('SET', N.seeding_until, now + grace)
    redis.call('DEL', N.seeded, N.seed_expect)
  end
  local seeding = seeding_left(N, now)
  -- Counted alive: a heartbeat within its ttl, at most MAX_MEMBERS (forged beats cannot shrink shares to 0).
  local alive = math.min(MAX_MEMBERS, redis.call('ZCOUNT', N.alive, now, now + MAX_TTL))
  redis.call('HSET', N.share, inst, alive)
  local reply = {now, epoch, seeding, alive}
  for n = 1, models do
    local K = keyset(keys, n)
    local e = split(args[7 + n])
    local fly = redis.call('HGETALL', K.fly)
    for j = 1, #fly, 2 do
      if split(fly[j + 1])[2] == inst then redis.call('ZADD', K.flyx, 'XX', now + bound, fly[j]) end
    end
    prune(K, now)
    local used, lim, blocked, held = usage(K, {e[1], e[2], e[3], e[4]}, now)
    for d = 1, 4 do reply[#reply + 1] = used[d] end
    for d = 1, 4 do reply[#reply + 1] = lim[d] end
    for d = 1, 4 do reply[#reply + 1] = blocked[d] end
    reply[#reply + 1] = held
  end
  for n = 1, models do
    local parts = redis.call('HGETALL', keyset(keys, n).part)
    reply[#reply + 1] = #parts / 2
    for _, v in ipairs(parts) do reply[#reply + 1] = v end
  end
  return reply
end

-- leave: KEYS NS; ARGV instance. A member stopping cleanly stops counting at once: not alive, nothing reserved
-- for it. It stays listed (members) until its entry ages out.
local function leave(keys, args)
  local bad = expect_keys(keys, 0)
  if bad then return bad end
  local N = keyset(keys)
  local now = now_ms()
  redis.call('ZADD', N.alive, now, args[1])
  redis.call('ZREM', N.beat, args[1])
  redis.call('HDEL', N.share, args[1])
  return now
end

-- seeded: KEYS NS; ARGV instance, members it last saw alive. It has written its day into this epoch.
local function seeded(keys, args)
  local bad = expect_keys(keys, 0)
  if bad then return bad end
  local N = keyset(keys)
  local now = now_ms()
  redis.call('SADD', N.seeded, args[1])
  -- The members it saw, at most MAX_MEMBERS; the wait for them is capped by seeding_until (MAX_GRACE) anyway.
  local expect = clamp(args[2], 0, MAX_MEMBERS)
  if expect > num(redis.call('GET', N.seed_expect)) then
    redis.call('SET', N.seed_expect, expect)
  end
  return now
end

redis.register_function('medops_v3_admit', admit)
redis.register_function('medops_v3_seeded', seeded)
redis.register_function('medops_v3_leave', leave)
redis.register_function('medops_v3_settle', settle)
redis.register_function('medops_v3_release', release)
redis.register_function('medops_v3_signal', signal)
redis.register_function('medops_v3_sync', sync)
redis.register_function('medops_v3_heartbeat', heartbeat)
redis.register_function('medops_v3_clear', clear)

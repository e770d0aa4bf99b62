#!lua name=medops_quota_v2
--[[
The fleet's Groq quota, one library of Redis functions (FUNCTION LOAD), so every
admission, settle and signal is one atomic round trip on the store's clock.

Keys under a namespace prefix P (KEYS[1]) and a model M:
  P..'epoch'               the store's epoch id (missing: emptied, must be re-seeded)
  P..'epoch_at'            ms: when this epoch began
  P..'seeding_until'       ms: the latest a re-seed may last (members that died never write back)
  P..'seeded'              SET the members that wrote their day back into this epoch
  P..'seed_expect'         how many members the fleet had, as those members last saw it
  P..'alive'               ZSET instance -> heartbeat expiry (ms)
  P..'beat'                ZSET instance -> its last heartbeat (ms)
  P..'share'               HASH instance -> the members alive it was told at that beat (its local divisor)
  P..'members'             HASH instance -> its description (JSON)
  P..'q:'..M..':min'/':day'  ZSET settled id -> time it settled (ms)
  P..'q:'..M..':amt'       HASH settled id -> "requests tokens"
  P..'q:'..M..':fly'       HASH in-flight id -> "tokens instance"
  P..'q:'..M..':flyx'      ZSET in-flight id -> when it ends if nobody settles it (ms)
  P..'q:'..M..':sum'       HASH running sums: mr mt dr dt fr ft
  P..'q:'..M..':sig'       HASH signals: b1..b4 (429 blocks until), held (498), x1..x4/u1..u4
                           (server's extra use and until), s1..s4 (server's limits)
  P..'q:'..M..':wait'      HASH instance -> "priority since tokens expires" (its best waiting request)
  P..'q:'..M..':part'      HASH "instance|d" -> that member's part of dimension d (settled in window + in flight)
  P..'q:'..M..':carry'     HASH instance -> "until_min until_day u1 u2 u3 u4": after the store was emptied, the
                           part of a member that is not writing its day back (it left or died), as the others
                           last saw it
  P..'q:'..M..':fresh'     ms: until then the minute windows count as full (the store was emptied and what the
                           old one admitted in its last moments, by members that have left, is known to nobody)
Dimensions 1..4: rpm, rpd, tpm, tpd. All times are integer milliseconds of TIME.
]]

local MINUTE, DAY = 60000, 86400000
-- A member whose heartbeat is this late may be cut off and admitting on its local share.
local LATE = 3000

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

local function qkey(p, m, part) return p .. 'q:' .. m .. ':' .. part end

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
-- that is gone had used. Ids are 'instance:seq'.
local function add_part(p, m, id, r1, r2, t3, t4)
  local inst = string.match(id, '^(.*):[^:]*$') or id
  local key = qkey(p, m, 'part')
  local values = {r1, r2, t3, t4}
  for d = 1, 4 do
    if values[d] ~= 0 and redis.call('HINCRBY', key, inst .. '|' .. d, values[d]) <= 0 then
      redis.call('HDEL', key, inst .. '|' .. d)
    end
  end
end

-- Settled entries that left a window stop counting; a day-old one is forgotten.
local function expire_window(p, m, part, span, rf, tf, now, forget)
  local zkey = qkey(p, m, part)
  local gone = redis.call('ZRANGEBYSCORE', zkey, '-inf', now - span)
  if #gone == 0 then return end
  local amt, sum = qkey(p, m, 'amt'), qkey(p, m, 'sum')
  local r, t = 0, 0
  for _, id in ipairs(gone) do
    local a = redis.call('HGET', amt, id)
    if a then
      local v = split(a)
      r, t = r + num(v[1]), t + num(v[2])
      if rf == 'mr' then add_part(p, m, id, -num(v[1]), 0, -num(v[2]), 0)
      else add_part(p, m, id, 0, -num(v[1]), 0, -num(v[2])) end
      if forget then redis.call('HDEL', amt, id) end
    end
  end
  redis.call('ZREMRANGEBYSCORE', zkey, '-inf', now - span)
  redis.call('HINCRBY', sum, rf, -r)
  redis.call('HINCRBY', sum, tf, -t)
end

-- A settled admission counts in both windows from `at` on; an id is counted once.
local function add_settled(p, m, id, at, requests, tokens, now)
  local day = qkey(p, m, 'day')
  if redis.call('ZSCORE', day, id) or at + DAY <= now then return 0 end
  local sum = qkey(p, m, 'sum')
  redis.call('ZADD', day, at, id)
  redis.call('HSET', qkey(p, m, 'amt'), id, requests .. ' ' .. tokens)
  redis.call('HINCRBY', sum, 'dr', requests)
  redis.call('HINCRBY', sum, 'dt', tokens)
  if at + MINUTE > now then
    redis.call('ZADD', qkey(p, m, 'min'), at, id)
    redis.call('HINCRBY', sum, 'mr', requests)
    redis.call('HINCRBY', sum, 'mt', tokens)
    add_part(p, m, id, requests, requests, tokens, tokens)
  else
    add_part(p, m, id, 0, requests, 0, tokens)
  end
  return 1
end

-- An id starts its flight: it counts in every window until it lands, or lapses at `ends`.
local function take_off(p, m, id, tokens, inst, ends)
  redis.call('HSET', qkey(p, m, 'fly'), id, tokens .. ' ' .. inst)
  redis.call('ZADD', qkey(p, m, 'flyx'), ends, id)
  redis.call('HINCRBY', qkey(p, m, 'sum'), 'fr', 1)
  redis.call('HINCRBY', qkey(p, m, 'sum'), 'ft', tokens)
  add_part(p, m, id, 1, 1, tokens, tokens)
end

-- Take an id out of flight; returns the tokens it held, or nil.
local function land(p, m, id)
  local fly = qkey(p, m, 'fly')
  local f = redis.call('HGET', fly, id)
  if not f then return nil end
  local tokens = num(split(f)[1])
  redis.call('HDEL', fly, id)
  redis.call('ZREM', qkey(p, m, 'flyx'), id)
  local sum = qkey(p, m, 'sum')
  redis.call('HINCRBY', sum, 'fr', -1)
  redis.call('HINCRBY', sum, 'ft', -tokens)
  add_part(p, m, id, -1, -1, -tokens, -tokens)
  return tokens
end

-- Flights nobody settled within the bound (their instance died) settle as reserved, then.
local function prune(p, m, now)
  local lapsed = redis.call('ZRANGEBYSCORE', qkey(p, m, 'flyx'), '-inf', now, 'WITHSCORES')
  for i = 1, #lapsed, 2 do
    local id, at = lapsed[i], tonumber(lapsed[i + 1])
    local tokens = land(p, m, id)
    if tokens then add_settled(p, m, id, at, 1, tokens, now) end
  end
  expire_window(p, m, 'min', MINUTE, 'mr', 'mt', now, false)
  expire_window(p, m, 'day', DAY, 'dr', 'dt', now, true)
end


-- What members that are gone held when the store was emptied (per dimension), until it has left the windows.
-- A member that has written its own day back is counted by its records instead.
local function carried(p, m, now)
  local c = {0, 0, 0, 0}
  local key = qkey(p, m, 'carry')
  local entries = redis.call('HGETALL', key)
  for i = 1, #entries, 2 do
    local v = split(entries[i + 1])
    local until_min = clamp(v[1], 0, now + MINUTE + MAX_ATTEMPT)
    local until_day = clamp(v[2], 0, now + DAY + MAX_ATTEMPT)
    if until_day <= now or redis.call('SISMEMBER', p .. 'seeded', entries[i]) == 1 then
      redis.call('HDEL', key, entries[i])
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
local function fresh_until(p, m)
  local began = num(redis.call('GET', p .. 'epoch_at'))
  return math.min(num(redis.call('GET', qkey(p, m, 'fresh'))), began + MINUTE + MAX_ATTEMPT)
end

-- Used per dimension (settled + in flight + the server's extra + what gone members carried over an emptied
-- store) and the limits in force.
local function usage(p, m, limits, now)
  local s = redis.call('HMGET', qkey(p, m, 'sum'), 'mr', 'dr', 'mt', 'dt', 'fr', 'ft')
  local sig = qkey(p, m, 'sig')
  local g = redis.call('HMGET', sig, 'x1', 'x2', 'x3', 'x4', 's1', 's2', 's3', 's4', 'l1', 'l2', 'l3', 'l4')
  local fr, ft = math.max(0, num(s[5])), math.max(0, num(s[6]))
  local carry = carried(p, m, now)
  local fresh = fresh_until(p, m) > now
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

-- Milliseconds until `need` units of dimension d leave its window (settled entries, oldest first).
local function time_until_freed(p, m, d, need, now)
  local part, span = 'min', MINUTE
  if d == 2 or d == 4 then part, span = 'day', DAY end
  local amt = qkey(p, m, 'amt')
  local freed, offset = 0, 0
  while offset < 20000 do
    local batch = redis.call('ZRANGE', qkey(p, m, part), offset, offset + 499, 'WITHSCORES')
    if #batch == 0 then break end
    for i = 1, #batch, 2 do
      local a = redis.call('HGET', amt, batch[i])
      if a then
        local v = split(a)
        freed = freed + ((d <= 2) and num(v[1]) or num(v[2]))
        if freed >= need then return math.max(0, tonumber(batch[i + 1]) + span - now) end
      end
    end
    offset = offset + 500
  end
  -- What must leave is still in flight: it leaves a whole window after it settles.
  return span
end

-- What members that may be on their local share could admit: each late member's share of each limit,
-- until it writes back (its beat is then current) or a window after it must have stopped (bound + MINUTE).
-- Bounded: only the MAX_LATE latest late members count, only those that beat through medops_heartbeat (their
-- share is recorded), and each one's share is at most 1/(members late + the asking one), so forged members can
-- neither hold the whole window nor make one admission walk a hundred thousand entries.
local function reserved(p, inst, lim, bound, now)
  local r = {0, 0, 0, 0}
  local late = redis.call('ZREVRANGEBYSCORE', p .. 'beat', now - LATE, now - bound - MINUTE,
                          'LIMIT', 0, MAX_LATE + 1)
  local counted = {}
  for _, member in ipairs(late) do
    local share = redis.call('HGET', p .. 'share', member)
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
local function seeding_left(p, now)
  local cap = math.min(num(redis.call('GET', p .. 'seeding_until')),
                       num(redis.call('GET', p .. 'epoch_at')) + MAX_GRACE)
  if cap <= now then return 0 end
  local expect = clamp(redis.call('GET', p .. 'seed_expect'), 1, MAX_MEMBERS)
  if redis.call('SCARD', p .. 'seeded') >= expect then
    redis.call('DEL', p .. 'seeding_until')
    return 0
  end
  return cap - now
end

local function epoch_state(p, known, now)
  local epoch = redis.call('GET', p .. 'epoch')
  if not epoch then return 'unseeded', 0 end
  local seeding = seeding_left(p, now)
  if seeding > 0 then return 'seeding', seeding end
  if epoch ~= known then return 'epoch', epoch end
  return nil
end

-- The fleet's use as an admission sees it, and the asking member's own part of it at the same moment.
local function usage_reply(p, m, inst, status, now, extra, used, lim, blocked, held)
  local own = redis.call('HMGET', qkey(p, m, 'part'), inst .. '|1', inst .. '|2', inst .. '|3', inst .. '|4')
  return {now, status, extra, used[1], used[2], used[3], used[4], lim[1], lim[2], lim[3], lim[4],
          blocked[1], blocked[2], blocked[3], blocked[4], held, num(own[1]), num(own[2]), num(own[3]), num(own[4])}
end

--[[ admit: KEYS[1]=P; ARGV: model, instance, id, tokens, priority, waited_ms, rpm, rpd, tpm, tpd,
     flight_bound_ms, starvation_ms, waiter_ttl_ms, known_epoch.
  Replies {now, status, detail, used1..4, limit1..4, blocked1..4, held, own1..4}; status 'ok' (detail = 0),
  'wait' (detail = ms to wait), or an epoch status ('unseeded', 'seeding' with ms, 'epoch' with the id). ]]
local function admit(keys, args)
  local p, m, inst, id = keys[1], args[1], args[2], args[3]
  local tokens, priority, waited = clamp(args[4], 0, BIG), clamp(args[5], -BIG, BIG), clamp(args[6], 0, DAY)
  local limits = {clamp(args[7], 1, BIG), clamp(args[8], 1, BIG), clamp(args[9], 1, BIG), clamp(args[10], 1, BIG)}
  local bound, starve, ttl = clamp(args[11], 1000, DAY), clamp(args[12], 0, DAY), clamp(args[13], 1, MAX_TTL)
  local now = now_ms()
  local status, detail = epoch_state(p, args[14], now)
  if status then return {now, status, detail} end
  prune(p, m, now)
  local used, lim, blocked, held, carry = usage(p, m, limits, now)
  local since = now - waited
  -- Requests waiting elsewhere that outrank this one take the next free units first.
  local ahead_r, ahead_t = 0, 0
  local waiters = redis.call('HGETALL', qkey(p, m, 'wait'))
  local my_aged = (now - since) >= starve
  for i = 1, #waiters, 2 do
    local w = split(waiters[i + 1])
    local wprio, wsince, wtokens, wexp = clamp(w[1], -BIG, BIG), clamp(w[2], 0, now), clamp(w[3], 0, BIG),
                                         clamp(w[4], 0, now + 2 * MAX_TTL)
    if wexp <= now then
      redis.call('HDEL', qkey(p, m, 'wait'), waiters[i])
    elseif waiters[i] ~= inst then
      local aged = (now - wsince) >= starve
      local better
      if aged ~= my_aged then better = aged
      elseif wprio ~= priority and not aged then better = wprio > priority
      else better = wsince < since end
      if better then ahead_r, ahead_t = ahead_r + 1, ahead_t + wtokens end
    end
  end
  local wait = math.max(held, blocked[1], blocked[2], blocked[3], blocked[4])
  local needs = {1 + ahead_r, 1 + ahead_r, tokens + ahead_t, tokens + ahead_t}
  local reserve = reserved(p, inst, lim, bound, now)
  for d = 1, 4 do
    local over = used[d] + reserve[d] + needs[d] - lim[d]
    if over > 0 then
      local freed = time_until_freed(p, m, d, over, now)
      -- Room held by flights, by a late member or by a gone member's carried part returns when they settle,
      -- write back or leave the window: look again soon.
      if (freed >= MINUTE and (d >= 3 or reserve[d] > 0)) or carry[d] > 0 then freed = math.min(freed, 1000) end
      wait = math.max(wait, freed, 1)
    end
  end
  if wait <= 0 then
    take_off(p, m, id, tokens, inst, now + bound)
    redis.call('HDEL', qkey(p, m, 'wait'), inst)
    used[1], used[2], used[3], used[4] = used[1] + 1, used[2] + 1, used[3] + tokens, used[4] + tokens
    return usage_reply(p, m, inst, 'ok', now, 0, used, lim, blocked, held)
  end
  -- The place in line lasts until shortly after this member should ask again (it asks at least every ttl).
  local entry = priority .. ' ' .. since .. ' ' .. tokens .. ' ' .. (now + math.min(wait, ttl) + ttl)
  redis.call('HSET', qkey(p, m, 'wait'), inst, entry)
  return usage_reply(p, m, inst, 'wait', now, wait, used, lim, blocked, held)
end

-- settle: ARGV model, id, tokens used. The flight ends and counts `used` from now (once per id).
local function settle(keys, args)
  local p, m, id, used = keys[1], args[1], args[2], clamp(args[3], 0, BIG)
  local now = now_ms()
  prune(p, m, now)
  land(p, m, id)
  add_settled(p, m, id, now, 1, used, now)
  return now
end

-- release: ARGV model, id. A reservation never sent: it ends without counting.
local function release(keys, args)
  local now = now_ms()
  land(keys[1], args[1], args[2])
  return now
end

--[[ signal: ARGV model, kind, ...
  'block' dims(csv of 1..4) wait_ms: a 429 blocks those dimensions for everyone until now + wait.
  'hold' ms: a 498 holds the model.
  'limit' d value: the server's limit for d.
  'extra' d limit remaining hold_ms: the server counts more than the fleet does; hold the difference. ]]
local function signal(keys, args)
  local p, m, kind = keys[1], args[1], args[2]
  local sig = qkey(p, m, 'sig')
  local now = now_ms()
  if kind == 'block' then
    local wait = clamp(args[4], 0, MAX_BLOCK)
    for d in string.gmatch(tostring(args[3]), '[1-4]') do
      if until_read(sig, 'b' .. d, MAX_BLOCK, now) < now + wait then redis.call('HSET', sig, 'b' .. d, now + wait) end
    end
  elseif kind == 'hold' then
    local until_ms = now + clamp(args[3], 0, MAX_HOLD)
    if until_read(sig, 'held', MAX_HOLD, now) < until_ms then redis.call('HSET', sig, 'held', until_ms) end
  elseif kind == 'limit' then
    local d = dim(args[3])
    if d then redis.call('HSET', sig, 's' .. d, clamp(args[4], 1, BIG), 'l' .. d, now + LIMIT_TTL) end
  elseif kind == 'extra' then
    local d = dim(args[3])
    if not d then return now end
    local limit, remaining = clamp(args[4], 1, BIG), clamp(args[5], 0, BIG)
    local hold = clamp(args[6], 0, span_of(d))
    prune(p, m, now)
    local s = redis.call('HMGET', qkey(p, m, 'sum'), 'mr', 'dr', 'mt', 'dt', 'fr', 'ft')
    local fleet = math.max(0, num(s[d])) + math.max(0, (d <= 2) and num(s[5]) or num(s[6])) + carried(p, m, now)[d]
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

-- clear: KEYS[1] the model's signals (P..'q:'..M..':sig'). An operator lifts every 429 block, 498 hold, server
-- count and server limit on the model (members learn the real ones again from Groq's next answer). Its own key
-- in KEYS, so an ACL user may be allowed this and not the rest of the namespace.
local function clear(keys, args)
  local now = now_ms()
  return {now, redis.call('DEL', keys[1])}
end

--[[ sync: ARGV model, instance, flight_bound_ms, then entries "s id at_ms requests tokens" (settled),
  "f id tokens" (in flight), "r id" (released unsent), and into an emptied store "c member until_min until_day
  u1 u2 u3 u4" (another member's part as this one last saw it: it counts until that member writes its own day
  back, or until it has left the windows; reports of one member are merged by the largest) and "h attempt_ms
  since_ms" (the minute windows count as full until a minute and an attempt after the epoch began, if it began
  after since_ms: a member new to the store, that could not reach it since then, may have missed it emptied).
  What an instance admitted while the store was away (or all its day, into an emptied store): each id once. ]]
local function sync(keys, args)
  local p, m, inst, bound = keys[1], args[1], args[2], clamp(args[3], 1000, DAY)
  local now = now_ms()
  prune(p, m, now)
  local added = 0
  for i = 4, #args do
    local e = split(args[i])
    if e[1] == 'r' then
      land(p, m, e[2])
    elseif e[1] == 'h' then
      -- "h attempt_ms since_ms": the old store may have admitted, up to its last moment, requests of members
      -- that have left since and that nobody saw; they reach Groq within an attempt and count there a minute.
      local began = num(redis.call('GET', p .. 'epoch_at'))
      local until_ms = began + MINUTE + clamp(e[2], 0, MAX_ATTEMPT)
      if began > 0 and began >= num(e[3]) and until_ms > num(redis.call('GET', qkey(p, m, 'fresh'))) then
        redis.call('SET', qkey(p, m, 'fresh'), until_ms, 'PXAT', until_ms)
      end
    elseif e[1] == 'c' then
      if e[2] ~= inst and redis.call('SISMEMBER', p .. 'seeded', e[2]) == 0 then
        local key = qkey(p, m, 'carry')
        local old = split(redis.call('HGET', key, e[2]) or '0 0 0 0 0 0')
        -- A carried part lasts at most a window and an attempt; its counts are never below 0.
        local highest = {now + MINUTE + MAX_ATTEMPT, now + DAY + MAX_ATTEMPT, BIG, BIG, BIG, BIG}
        local merged = {}
        for k = 1, 6 do merged[k] = math.max(clamp(old[k], 0, highest[k]), clamp(e[2 + k], 0, highest[k])) end
        redis.call('HSET', key, e[2], table.concat(merged, ' '))
      end
    elseif e[1] == 's' and e[2] then
      land(p, m, e[2])
      -- Counts are never below 0 (a negative entry would give room back the window never had).
      added = added + add_settled(p, m, e[2], clamp(e[3], 0, now), clamp(e[4], 0, BIG), clamp(e[5], 0, BIG), now)
    elseif e[1] == 'f' and e[2] and not redis.call('HGET', qkey(p, m, 'fly'), e[2])
        and not redis.call('ZSCORE', qkey(p, m, 'day'), e[2]) then
      take_off(p, m, e[2], clamp(e[3], 0, BIG), inst, now + bound)
      added = added + 1
    end
  end
  return {now, added}
end

--[[ heartbeat: ARGV instance, description, ttl_ms, flight_bound_ms, known_epoch, seed_grace_ms, new_epoch,
     then per model: name rpm rpd tpm tpd.
  Keeps the member alive and its flights from lapsing, starts a new epoch in an emptied store, and
  replies {now, epoch, seeding_ms, members_alive, then per model the usage reply's 13 numbers, then per model
  the count of its part fields and those fields' "instance|d", value pairs}. ]]
local function heartbeat(keys, args)
  local p, inst = keys[1], args[1]
  local ttl, bound, grace = clamp(args[3], 1000, MAX_TTL), clamp(args[4], 1000, DAY), clamp(args[6], 0, MAX_GRACE)
  local now = now_ms()
  redis.call('ZADD', p .. 'alive', now + ttl, inst)
  redis.call('ZADD', p .. 'beat', now, inst)
  redis.call('HSET', p .. 'members', inst, args[2])
  -- Members silent for a day are forgotten; shorter silences stay visible as stale.
  -- (A thousand a beat at most: forged members go over a few beats, not in one long call.)
  local old = redis.call('ZRANGEBYSCORE', p .. 'alive', '-inf', now - DAY, 'LIMIT', 0, MAX_MEMBERS)
  for _, gone in ipairs(old) do
    redis.call('HDEL', p .. 'members', gone)
    redis.call('HDEL', p .. 'share', gone)
    redis.call('ZREM', p .. 'alive', gone)
  end
  redis.call('ZREMRANGEBYSCORE', p .. 'beat', '-inf', now - DAY)
  local epoch = redis.call('GET', p .. 'epoch')
  if not epoch then
    epoch = args[7]
    redis.call('SET', p .. 'epoch', epoch)
    redis.call('SET', p .. 'epoch_at', now)
    redis.call('SET', p .. 'seeding_until', now + grace)
    redis.call('DEL', p .. 'seeded', p .. 'seed_expect')
  end
  local seeding = seeding_left(p, now)
  -- Counted alive: a heartbeat within its ttl, at most MAX_MEMBERS (forged beats cannot shrink shares to 0).
  local alive = math.min(MAX_MEMBERS, redis.call('ZCOUNT', p .. 'alive', now, now + MAX_TTL))
  redis.call('HSET', p .. 'share', inst, alive)
  local reply = {now, epoch, seeding, alive}
  for i = 8, #args do
    local e = split(args[i])
    local m = e[1]
    local fly = redis.call('HGETALL', qkey(p, m, 'fly'))
    for j = 1, #fly, 2 do
      if split(fly[j + 1])[2] == inst then redis.call('ZADD', qkey(p, m, 'flyx'), 'XX', now + bound, fly[j]) end
    end
    prune(p, m, now)
    local used, lim, blocked, held = usage(p, m, {e[2], e[3], e[4], e[5]}, now)
    for d = 1, 4 do reply[#reply + 1] = used[d] end
    for d = 1, 4 do reply[#reply + 1] = lim[d] end
    for d = 1, 4 do reply[#reply + 1] = blocked[d] end
    reply[#reply + 1] = held
  end
  for i = 8, #args do
    local parts = redis.call('HGETALL', qkey(p, split(args[i])[1], 'part'))
    reply[#reply + 1] = #parts / 2
    for _, v in ipairs(parts) do reply[#reply + 1] = v end
  end
  return reply
end

-- leave: ARGV instance. A member stopping cleanly stops counting at once: not alive, nothing reserved for it.
-- It stays listed (members) until its entry ages out.
local function leave(keys, args)
  local now = now_ms()
  redis.call('ZADD', keys[1] .. 'alive', now, args[1])
  redis.call('ZREM', keys[1] .. 'beat', args[1])
  redis.call('HDEL', keys[1] .. 'share', args[1])
  return now
end

-- seeded: ARGV instance, members it last saw alive. It has written its day into this epoch.
local function seeded(keys, args)
  local p = keys[1]
  local now = now_ms()
  redis.call('SADD', p .. 'seeded', args[1])
  -- The members it saw, at most MAX_MEMBERS; the wait for them is capped by seeding_until (MAX_GRACE) anyway.
  local expect = clamp(args[2], 0, MAX_MEMBERS)
  if expect > num(redis.call('GET', p .. 'seed_expect')) then
    redis.call('SET', p .. 'seed_expect', expect)
  end
  return now
end

redis.register_function('medops_admit', admit)
redis.register_function('medops_seeded', seeded)
redis.register_function('medops_leave', leave)
redis.register_function('medops_settle', settle)
redis.register_function('medops_release', release)
redis.register_function('medops_signal', signal)
redis.register_function('medops_sync', sync)
redis.register_function('medops_heartbeat', heartbeat)
redis.register_function('medops_clear', clear)

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
      r, t = r + tonumber(v[1]), t + tonumber(v[2])
      if rf == 'mr' then add_part(p, m, id, -tonumber(v[1]), 0, -tonumber(v[2]), 0)
      else add_part(p, m, id, 0, -tonumber(v[1]), 0, -tonumber(v[2])) end
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
  local tokens = tonumber(split(f)[1])
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
    local until_min, until_day = tonumber(v[1]), tonumber(v[2])
    if until_day <= now or redis.call('SISMEMBER', p .. 'seeded', entries[i]) == 1 then
      redis.call('HDEL', key, entries[i])
    else
      for d = 1, 4 do
        if d == 2 or d == 4 or until_min > now then c[d] = c[d] + tonumber(v[2 + d]) end
      end
    end
  end
  return c
end

-- Used per dimension (settled + in flight + the server's extra + what gone members carried over an emptied
-- store) and the limits in force.
local function usage(p, m, limits, now)
  local s = redis.call('HMGET', qkey(p, m, 'sum'), 'mr', 'dr', 'mt', 'dt', 'fr', 'ft')
  local g = redis.call('HMGET', qkey(p, m, 'sig'), 'x1', 'x2', 'x3', 'x4', 'u1', 'u2', 'u3', 'u4',
                       's1', 's2', 's3', 's4', 'b1', 'b2', 'b3', 'b4', 'held')
  local fr, ft = num(s[5]), num(s[6])
  local carry = carried(p, m, now)
  local fresh = num(redis.call('GET', qkey(p, m, 'fresh'))) > now
  local used, lim, blocked = {}, {}, {}
  for d = 1, 4 do
    local extra = 0
    if num(g[4 + d]) > now then extra = num(g[d]) end
    local flying = (d <= 2) and fr or ft
    used[d] = num(s[d]) + flying + extra + carry[d]
    lim[d] = limits[d]
    if g[8 + d] and num(g[8 + d]) < lim[d] then lim[d] = num(g[8 + d]) end
    if fresh and (d == 1 or d == 3) and used[d] < lim[d] then
      carry[d] = carry[d] + lim[d] - used[d]
      used[d] = lim[d]
    end
    blocked[d] = math.max(0, num(g[12 + d]) - now)
  end
  return used, lim, blocked, math.max(0, num(g[17]) - now), carry
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
        freed = freed + ((d <= 2) and tonumber(v[1]) or tonumber(v[2]))
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
local function reserved(p, inst, lim, bound, now)
  local r = {0, 0, 0, 0}
  local late = redis.call('ZRANGEBYSCORE', p .. 'beat', now - bound - MINUTE, now - LATE)
  for _, member in ipairs(late) do
    if member ~= inst then
      local n = math.max(1, num(redis.call('HGET', p .. 'share', member)))
      for d = 1, 4 do r[d] = r[d] + math.floor(lim[d] / n) end
    end
  end
  return r
end

-- Milliseconds the re-seed of an emptied store still holds admissions: until every member the fleet had
-- has written its day back, or the cap set when the epoch began.
local function seeding_left(p, now)
  local cap = num(redis.call('GET', p .. 'seeding_until'))
  if cap <= now then return 0 end
  local expect = math.max(1, num(redis.call('GET', p .. 'seed_expect')))
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
  local tokens, priority, waited = tonumber(args[4]), tonumber(args[5]), tonumber(args[6])
  local limits = {tonumber(args[7]), tonumber(args[8]), tonumber(args[9]), tonumber(args[10])}
  local bound, starve, ttl = tonumber(args[11]), tonumber(args[12]), tonumber(args[13])
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
    local wprio, wsince, wtokens, wexp = tonumber(w[1]), tonumber(w[2]), tonumber(w[3]), tonumber(w[4])
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
  local p, m, id, used = keys[1], args[1], args[2], tonumber(args[3])
  local now = now_ms()
  prune(p, m, now)
  land(p, m, id)
  add_settled(p, m, id, now, 1, math.max(0, used), now)
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
    local wait = tonumber(args[4])
    for d in string.gmatch(args[3], '%d') do
      if num(redis.call('HGET', sig, 'b' .. d)) < now + wait then redis.call('HSET', sig, 'b' .. d, now + wait) end
    end
  elseif kind == 'hold' then
    local until_ms = now + tonumber(args[3])
    if num(redis.call('HGET', sig, 'held')) < until_ms then redis.call('HSET', sig, 'held', until_ms) end
  elseif kind == 'limit' then
    redis.call('HSET', sig, 's' .. args[3], tonumber(args[4]))
  elseif kind == 'extra' then
    local d, limit, remaining, hold = tonumber(args[3]), tonumber(args[4]), tonumber(args[5]), tonumber(args[6])
    prune(p, m, now)
    local s = redis.call('HMGET', qkey(p, m, 'sum'), 'mr', 'dr', 'mt', 'dt', 'fr', 'ft')
    local fleet = num(s[d]) + ((d <= 2) and num(s[5]) or num(s[6])) + carried(p, m, now)[d]
    local extra = (limit - remaining) - fleet
    if extra > 0 then
      redis.call('HSET', sig, 'x' .. d, extra, 'u' .. d, now + hold)
    elseif num(redis.call('HGET', sig, 'u' .. d)) > now then
      redis.call('HSET', sig, 'x' .. d, 0, 'u' .. d, now)
    end
  end
  return now
end

--[[ sync: ARGV model, instance, flight_bound_ms, then entries "s id at_ms requests tokens" (settled),
  "f id tokens" (in flight), "r id" (released unsent), and into an emptied store "c member until_min until_day
  u1 u2 u3 u4" (another member's part as this one last saw it: it counts until that member writes its own day
  back, or until it has left the windows; reports of one member are merged by the largest) and "h attempt_ms
  since_ms" (the minute windows count as full until a minute and an attempt after the epoch began, if it began
  after since_ms: a member new to the store, that could not reach it since then, may have missed it emptied).
  What an instance admitted while the store was away (or all its day, into an emptied store): each id once. ]]
local function sync(keys, args)
  local p, m, inst, bound = keys[1], args[1], args[2], tonumber(args[3])
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
      local until_ms = began + MINUTE + tonumber(e[2])
      if began > 0 and began >= num(e[3]) and until_ms > num(redis.call('GET', qkey(p, m, 'fresh'))) then
        redis.call('SET', qkey(p, m, 'fresh'), until_ms, 'PXAT', until_ms)
      end
    elseif e[1] == 'c' then
      if e[2] ~= inst and redis.call('SISMEMBER', p .. 'seeded', e[2]) == 0 then
        local key = qkey(p, m, 'carry')
        local old = split(redis.call('HGET', key, e[2]) or '0 0 0 0 0 0')
        local merged = {}
        for k = 1, 6 do merged[k] = math.max(tonumber(old[k]), tonumber(e[2 + k])) end
        redis.call('HSET', key, e[2], table.concat(merged, ' '))
      end
    elseif e[1] == 's' then
      land(p, m, e[2])
      added = added + add_settled(p, m, e[2], math.min(tonumber(e[3]), now), tonumber(e[4]), tonumber(e[5]), now)
    elseif not redis.call('HGET', qkey(p, m, 'fly'), e[2]) and not redis.call('ZSCORE', qkey(p, m, 'day'), e[2]) then
      take_off(p, m, e[2], tonumber(e[3]), inst, now + bound)
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
  local ttl, bound, grace = tonumber(args[3]), tonumber(args[4]), tonumber(args[6])
  local now = now_ms()
  redis.call('ZADD', p .. 'alive', now + ttl, inst)
  redis.call('ZADD', p .. 'beat', now, inst)
  redis.call('HSET', p .. 'members', inst, args[2])
  -- Members silent for a day are forgotten; shorter silences stay visible as stale.
  local old = redis.call('ZRANGEBYSCORE', p .. 'alive', '-inf', now - DAY)
  for _, gone in ipairs(old) do
    redis.call('HDEL', p .. 'members', gone)
    redis.call('HDEL', p .. 'share', gone)
  end
  redis.call('ZREMRANGEBYSCORE', p .. 'alive', '-inf', now - DAY)
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
  local alive = redis.call('ZCOUNT', p .. 'alive', now, '+inf')
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
    local used, lim, blocked, held = usage(p, m, {tonumber(e[2]), tonumber(e[3]), tonumber(e[4]), tonumber(e[5])}, now)
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
  if tonumber(args[2]) > num(redis.call('GET', p .. 'seed_expect')) then
    redis.call('SET', p .. 'seed_expect', tonumber(args[2]))
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

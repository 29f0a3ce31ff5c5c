"""The Lua scripts of :class:`majordome.feedback.budgets.RedisBudgets`: each budget operation is one
script, so Redis runs it atomically however many workers share the server.

Keys of one tenant share the hash tag {<tenant, percent-encoded>}, so a cluster keeps them in one
slot. Per tenant: <base>:day:<YYYY-MM-DD> and <base>:month:<YYYY-MM> are hashes {spent, reserved};
<base>:pending is a ZSET of held reservation ids by expiry; <base>:records maps each id to
"<nanos> <day> <month>"; <base>:expired is a ZSET of expired ids by the time to forget them.
Amounts travel as decimal strings: Lua's numbers print large integers in exponent notation,
which HINCRBY refuses.
"""

__all__ = ["FINISH", "RESERVE", "USAGE"]

_EXPIRE_STALE = """
local function expire_stale(base, now, forget_at, ttl)
  local pending = base .. ':pending'
  local records = base .. ':records'
  local expired = base .. ':expired'
  local stale = redis.call('ZRANGEBYSCORE', pending, '-inf', now)
  for _, id in ipairs(stale) do
    local record = redis.call('HGET', records, id)
    if record then
      local amount, day, month = string.match(record, '^(%d+) (%S+) (%S+)$')
      if amount ~= '0' then
        for _, key in ipairs({base .. ':day:' .. day, base .. ':month:' .. month}) do
          if redis.call('EXISTS', key) == 1 then
            redis.call('HINCRBY', key, 'reserved', '-' .. amount)
          end
        end
      end
      redis.call('ZADD', expired, forget_at, id)
      redis.call('EXPIRE', expired, ttl)
    end
    redis.call('ZREM', pending, id)
  end
  local forgotten = redis.call('ZRANGEBYSCORE', expired, '-inf', now)
  for _, id in ipairs(forgotten) do
    redis.call('HDEL', records, id)
    redis.call('ZREM', expired, id)
  end
end
"""

# Safe to repeat (a client retries after a broken connection): a reservation id held already is
# not held twice.
# KEYS: day, month, pending, records. ARGV: now, amount, day cap (-1: none), month cap (-1: none),
# id, expires_at, day ttl, month ttl, bookkeeping ttl, base, day, month, forget_at.
RESERVE = (
    _EXPIRE_STALE
    + """
expire_stale(ARGV[10], ARGV[1], ARGV[13], ARGV[9])
local d = redis.call('HMGET', KEYS[1], 'spent', 'reserved')
local m = redis.call('HMGET', KEYS[2], 'spent', 'reserved')
local ds, dr, ms, mr = d[1] or '0', d[2] or '0', m[1] or '0', m[2] or '0'
if redis.call('HEXISTS', KEYS[4], ARGV[5]) == 1 then
  -- a retried call whose first run held the amount already
  return {1, ds, dr, ms, mr}
end
local amount = tonumber(ARGV[2])
local day_cap, month_cap = tonumber(ARGV[3]), tonumber(ARGV[4])
if (day_cap >= 0 and tonumber(ds) + tonumber(dr) + amount > day_cap)
    or (month_cap >= 0 and tonumber(ms) + tonumber(mr) + amount > month_cap) then
  return {0, ds, dr, ms, mr}
end
redis.call('HINCRBY', KEYS[1], 'reserved', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[7])
redis.call('HINCRBY', KEYS[2], 'reserved', ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[8])
redis.call('ZADD', KEYS[3], ARGV[6], ARGV[5])
redis.call('EXPIRE', KEYS[3], ARGV[9])
redis.call('HSET', KEYS[4], ARGV[5], ARGV[2] .. ' ' .. ARGV[11] .. ' ' .. ARGV[12])
redis.call('EXPIRE', KEYS[4], ARGV[9])
return {1, ds, dr, ms, mr}
"""
)

# KEYS: day, month (the reservation's), pending, records, expired. ARGV: id, actual, day ttl, month ttl.
# Returns 1 (was held), 2 (had expired: spend recorded late), 0 (finished before, or unknown).
FINISH = """
local record = redis.call('HGET', KEYS[4], ARGV[1])
if not record then
  return 0
end
local outcome = 2
if redis.call('ZREM', KEYS[3], ARGV[1]) == 1 then
  outcome = 1
  local amount = string.match(record, '^(%d+) ')
  if amount ~= '0' then
    for i = 1, 2 do
      if redis.call('EXISTS', KEYS[i]) == 1 then
        redis.call('HINCRBY', KEYS[i], 'reserved', '-' .. amount)
      end
    end
  end
else
  redis.call('ZREM', KEYS[5], ARGV[1])
end
redis.call('HDEL', KEYS[4], ARGV[1])
if ARGV[2] ~= '0' then
  redis.call('HINCRBY', KEYS[1], 'spent', ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  redis.call('HINCRBY', KEYS[2], 'spent', ARGV[2])
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
return outcome
"""

# KEYS: day, month. ARGV: now, base, forget_at, bookkeeping ttl.
USAGE = (
    _EXPIRE_STALE
    + """
expire_stale(ARGV[2], ARGV[1], ARGV[3], ARGV[4])
local d = redis.call('HMGET', KEYS[1], 'spent', 'reserved')
local m = redis.call('HMGET', KEYS[2], 'spent', 'reserved')
return {d[1] or '0', d[2] or '0', m[1] or '0', m[2] or '0'}
"""
)

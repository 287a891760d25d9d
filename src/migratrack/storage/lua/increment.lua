-- Hot-path counter increment. Returns the new counters {so, fo, td}; {-1} if a transition holds the
-- lock, {-2} if the migration does not exist. An operation id already recorded (score at or after
-- the cutoff) adds nothing and returns the current counters.
-- KEYS: h e lock o.  ARGV: successful, failed, bytes deltas, the write's time (epoch microseconds;
-- '' = the server's TIME), actor, payload, operation id ('' = none), the dedupe window (ms).
-- The write's time is never before the migration's last event (h.lt): event times never go back.
if redis.call('EXISTS', KEYS[3]) == 1 then return {-1} end
if redis.call('EXISTS', KEYS[1]) == 0 then return {-2} end
local now
if ARGV[4] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[4])
end
now = math.max(now, tonumber(redis.call('HGET', KEYS[1], 'lt') or '0'))
local us = string.format('%.0f', now)
local at = string.format('%.6f', now / 1000000)
local cutoff = (now - tonumber(ARGV[8]) * 1000) / 1000000
local op = ARGV[7]
-- record first (one command when the id is new, the common case)
if op ~= '' and redis.call('ZADD', KEYS[4], 'NX', at, op) == 0 then
  if tonumber(redis.call('ZSCORE', KEYS[4], op)) >= cutoff then
    local v = redis.call('HMGET', KEYS[1], 'so', 'fo', 'td')
    return {tonumber(v[1] or '0'), tonumber(v[2] or '0'), tonumber(v[3] or '0')}
  end
  redis.call('ZADD', KEYS[4], at, op)  -- an expired record of the same id: taken over
end
local a = redis.call('HINCRBY', KEYS[1], 'so', ARGV[1])
local b = redis.call('HINCRBY', KEYS[1], 'fo', ARGV[2])
local c = redis.call('HINCRBY', KEYS[1], 'td', ARGV[3])
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[1], 'lt', us)
redis.call('XADD', KEYS[2], seq .. '-0', 't', 'metrics.updated', 'us', us, 'a', ARGV[5], 'p', ARGV[6])
if op ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. string.format('%.6f', cutoff))
  redis.call('PEXPIRE', KEYS[4], ARGV[8])
end
return {a, b, c}

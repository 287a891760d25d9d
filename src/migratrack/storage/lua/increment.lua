-- Hot-path counter increment. Returns the new counters {so, fo, td}; {-1} if a transition holds the
-- lock, {-2} if the migration does not exist. An operation id already recorded (score at or after
-- the cutoff) adds nothing and returns the current counters.
-- KEYS: h e lock o.  ARGV: successful, failed, bytes deltas, ts, actor, payload, operation id ('' = none),
-- ts as epoch seconds, the dedupe cutoff (epoch seconds), the dedupe window (ms)
if redis.call('EXISTS', KEYS[3]) == 1 then return {-1} end
if redis.call('EXISTS', KEYS[1]) == 0 then return {-2} end
local op = ARGV[7]
-- record first (one command when the id is new, the common case)
if op ~= '' and redis.call('ZADD', KEYS[4], 'NX', ARGV[8], op) == 0 then
  if tonumber(redis.call('ZSCORE', KEYS[4], op)) >= tonumber(ARGV[9]) then
    local v = redis.call('HMGET', KEYS[1], 'so', 'fo', 'td')
    return {tonumber(v[1] or '0'), tonumber(v[2] or '0'), tonumber(v[3] or '0')}
  end
  redis.call('ZADD', KEYS[4], ARGV[8], op)  -- an expired record of the same id: taken over
end
local a = redis.call('HINCRBY', KEYS[1], 'so', ARGV[1])
local b = redis.call('HINCRBY', KEYS[1], 'fo', ARGV[2])
local c = redis.call('HINCRBY', KEYS[1], 'td', ARGV[3])
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('XADD', KEYS[2], seq .. '-0', 't', 'metrics.updated', 'ts', ARGV[4], 'a', ARGV[5], 'p', ARGV[6])
if op ~= '' then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[9])
  redis.call('PEXPIRE', KEYS[4], ARGV[10])
end
return {a, b, c}

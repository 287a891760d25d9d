-- Hot-path counter increment. Returns the new counters {so, fo, td}; {-1} if a transition holds the
-- lock, {-2} if the migration does not exist.
-- KEYS: h e lock.  ARGV: successful, failed, bytes deltas, ts, actor, payload
if redis.call('EXISTS', KEYS[3]) == 1 then return {-1} end
if redis.call('EXISTS', KEYS[1]) == 0 then return {-2} end
local a = redis.call('HINCRBY', KEYS[1], 'so', ARGV[1])
local b = redis.call('HINCRBY', KEYS[1], 'fo', ARGV[2])
local c = redis.call('HINCRBY', KEYS[1], 'td', ARGV[3])
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('XADD', KEYS[2], seq .. '-0', 't', 'metrics.updated', 'ts', ARGV[4], 'a', ARGV[5], 'p', ARGV[6])
return {a, b, c}

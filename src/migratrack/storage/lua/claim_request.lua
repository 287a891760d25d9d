-- Bind an Idempotency-Key to a request's fingerprint unless a request within the window bound it
-- first. Returns {fingerprint, response ('' = none yet)} of the key as it stands.
-- KEYS: the key's hash.  ARGV: fingerprint, ts (epoch seconds), the dedupe cutoff (epoch seconds),
-- the dedupe window (ms)
local v = redis.call('HMGET', KEYS[1], 'f', 't', 'r')
if v[1] and tonumber(v[2]) >= tonumber(ARGV[3]) then return {v[1], v[3] or ''} end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'f', ARGV[1], 't', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return {ARGV[1], ''}

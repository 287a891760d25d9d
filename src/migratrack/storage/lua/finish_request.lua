-- Keep the answer of the request that holds an Idempotency-Key (only if it is still that request's).
-- KEYS: the key's hash.  ARGV: fingerprint, response
if redis.call('HGET', KEYS[1], 'f') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'r', ARGV[2])
return 1

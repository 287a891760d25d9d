-- Insert or replace a token record, dropping the hash index entry of the token it replaces.
-- KEYS: tokens by id, id by hash.  ARGV: id, token hash, record (JSON)
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local prev = cjson.decode(old)
  if redis.call('HGET', KEYS[2], prev.token_hash) == ARGV[1] then redis.call('HDEL', KEYS[2], prev.token_hash) end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
return 1

-- A compare-and-set on one of the alert dispatcher's documents.
-- KEYS[1] the kind's hash (field: key, value: "<version>:<encoded value>")
-- ARGV[1] key, ARGV[2] expected version ('' for any), ARGV[3] the encoded value, or '' with
-- ARGV[4] = 'del' to delete. Answers the new version (1 for a delete), or -1 on a mismatch
-- (0 for a delete of nothing).
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local version = 0
if cur then version = tonumber(string.match(cur, '^(%d+):')) end
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= version then
  if ARGV[4] == 'del' then return 0 end
  return -1
end
if ARGV[4] == 'del' then
  if not cur then return 0 end
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
redis.call('HSET', KEYS[1], ARGV[1], (version + 1) .. ':' .. ARGV[3])
return version + 1

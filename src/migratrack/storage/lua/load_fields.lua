-- Named fields of a migration's hashes (a scoped load: what a transition reads, nothing more),
-- the server's TIME, and (given an operation id) the id's score in o; false if the migration does
-- not exist. KEYS: h, p, s[, o].  ARGV[1]: JSON {"h": [fields], "p": [fields], "s": [fields]};
-- ARGV[2]: an operation id (with KEYS[4])
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local want = cjson.decode(ARGV[1])
local function get(key, fields)
  local out = {}
  if type(fields) ~= 'table' then return out end
  for i = 1, #fields, 3000 do
    local vals = redis.call('HMGET', key, unpack(fields, i, math.min(i + 2999, #fields)))
    for _, v in ipairs(vals) do out[#out + 1] = v end
  end
  return out
end
local score = false
if KEYS[4] then score = redis.call('ZSCORE', KEYS[4], ARGV[2]) end
return {get(KEYS[1], want.h), get(KEYS[2], want.p), get(KEYS[3], want.s), redis.call('TIME'), score}

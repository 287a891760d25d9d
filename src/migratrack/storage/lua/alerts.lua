-- The newest alerts first, at most `limit`: id, data, id, data, ...
-- KEYS: a an au.  ARGV: limit, unacknowledged only (0/1)
local limit = tonumber(ARGV[1])
local out = {}
local start = 0
while #out < 2 * limit do
  local ids = redis.call('ZREVRANGE', KEYS[2], start, start + 199)
  if #ids == 0 then break end
  for _, id in ipairs(ids) do
    if ARGV[2] == '0' or redis.call('SISMEMBER', KEYS[3], id) == 1 then
      out[#out + 1] = id
      out[#out + 1] = redis.call('HGET', KEYS[1], id)
      if #out >= 2 * limit then break end
    end
  end
  start = start + 200
end
return out

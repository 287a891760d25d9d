-- A migration's header, phases and (some) sub-tasks as flat field/value lists, the server's TIME,
-- and (given an operation id) the id's score in o; false if the migration does not exist.
-- KEYS: h, p, s[, o].  ARGV[1]: '*' every phase's sub-tasks, '' none, else one phase id;
-- ARGV[2]: an operation id (with KEYS[4])
local h = redis.call('HGETALL', KEYS[1])
if #h == 0 then return false end
local p = redis.call('HGETALL', KEYS[2])
local s = {}
if ARGV[1] == '*' then
  s = redis.call('HGETALL', KEYS[3])
elseif ARGV[1] ~= '' then
  local order = redis.call('HGET', KEYS[2], ARGV[1] .. '/o')
  if order then
    local ids = cjson.decode(order)
    local fields = {}
    for _, sid in ipairs(ids) do
      local f = ARGV[1] .. '/' .. sid .. '/'
      fields[#fields + 1] = f .. 's'
      fields[#fields + 1] = f .. 'p'
      fields[#fields + 1] = f .. 'x'
    end
    for i = 1, #fields, 3000 do
      local vals = redis.call('HMGET', KEYS[3], unpack(fields, i, math.min(i + 2999, #fields)))
      for j, val in ipairs(vals) do
        s[#s + 1] = fields[i + j - 1]
        s[#s + 1] = val
      end
    end
  end
end
local score = false
if KEYS[4] then score = redis.call('ZSCORE', KEYS[4], ARGV[2]) end
return {h, p, s, redis.call('TIME'), score}

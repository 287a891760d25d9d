-- A page of one phase's sub-tasks in plan order: id, status, progress, rest for each.
-- KEYS: p, s.  ARGV: phase id, status ('' any), after (a sub-task id), limit, '1' if after is given
-- (the phase's id list is read whole: the one part of a page that grows with the phase)
local order = redis.call('HGET', KEYS[1], ARGV[1] .. '/o')
if not order then return {} end
local ids = cjson.decode(order)
local start = 1
if ARGV[5] == '1' then
  start = #ids + 1
  for i, sid in ipairs(ids) do
    if sid == ARGV[3] then start = i + 1 break end
  end
end
local limit = tonumber(ARGV[4])
local out = {}
for i = start, #ids do
  local f = ARGV[1] .. '/' .. ids[i] .. '/'
  local st = redis.call('HGET', KEYS[2], f .. 's')
  if st and (ARGV[2] == '' or st == ARGV[2]) then
    local v = redis.call('HMGET', KEYS[2], f .. 'p', f .. 'x')
    out[#out + 1] = ids[i]
    out[#out + 1] = st
    out[#out + 1] = v[1]
    out[#out + 1] = v[2]
    if #out >= limit * 4 then break end
  end
end
return out

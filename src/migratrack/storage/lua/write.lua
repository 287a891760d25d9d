-- A transition's writes, applied only while the caller still holds the migration's lock; releases it.
-- Returns the last event's seq, or an error reply MTLOCKLOST, MTEXISTS (create) or MTMISSING (update).
-- KEYS: h p s e a an au lock o.  ARGV[1]: lock token, ARGV[2]: JSON document of the writes; its `op`
-- (when present: operation id, ts as epoch seconds, dedupe cutoff, window in ms) is recorded in o.
-- Events come with their times (epoch microseconds), never before the last event's: the caller
-- read that (h.lt) under the lock, and writes the new one in doc.h.
local doc = cjson.decode(ARGV[2])
if redis.call('GET', KEYS[8]) ~= ARGV[1] then return redis.error_reply('MTLOCKLOST') end
if doc.mode == 'create' then
  if redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('DEL', KEYS[8])
    return redis.error_reply('MTEXISTS')
  end
elseif doc.mode == 'replace' then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[9])
elseif redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[8])
  return redis.error_reply('MTMISSING')
end
local function hset(key, flat)
  for i = 1, #flat, 4000 do
    redis.call('HSET', key, unpack(flat, i, math.min(i + 3999, #flat)))
  end
end
if #doc.h > 0 then hset(KEYS[1], doc.h) end
if #doc.p > 0 then hset(KEYS[2], doc.p) end
if #doc.s > 0 then hset(KEYS[3], doc.s) end
for _, a in ipairs(doc.new_alerts) do
  redis.call('HSET', KEYS[5], a[1], a[3])
  redis.call('ZADD', KEYS[6], redis.call('HINCRBY', KEYS[1], 'an', 1), a[1])
  redis.call('HINCRBY', KEYS[1], 'ac:' .. a[2], 1)
  if a[4] == 0 then
    redis.call('SADD', KEYS[7], a[1])
    redis.call('HINCRBY', KEYS[1], 'unack', 1)
  end
end
for _, a in ipairs(doc.updated_alerts) do
  redis.call('HSET', KEYS[5], a[1], a[2])
  if a[3] == 1 and redis.call('SREM', KEYS[7], a[1]) == 1 then
    redis.call('HINCRBY', KEYS[1], 'unack', -1)
  end
end
local seq = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
for _, e in ipairs(doc.events) do
  seq = seq + 1
  redis.call('XADD', KEYS[4], seq .. '-0', 't', e[1], 'us', e[2], 'a', e[3], 'p', e[4])
end
redis.call('HSET', KEYS[1], 'seq', seq)
if doc.op then
  redis.call('ZADD', KEYS[9], doc.op[2], doc.op[1])
  redis.call('ZREMRANGEBYSCORE', KEYS[9], '-inf', '(' .. doc.op[3])
  redis.call('PEXPIRE', KEYS[9], doc.op[4])
end
if doc.expire > 0 then
  for i = 1, 7 do redis.call('EXPIRE', KEYS[i], doc.expire) end
elseif doc.expire == 0 then
  for i = 1, 7 do redis.call('PERSIST', KEYS[i]) end
end
redis.call('DEL', KEYS[8])
return seq

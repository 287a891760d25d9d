-- Hot-path merges (one or many, in one call). A missing migration has no rows, so they answer
-- FALLBACK and transact() reports it. Returns per merge 0 FALLBACK, 1 STALE, 2 APPLIED; {-1} if a
-- transition holds the lock.
-- KEYS: h p s e lock o.  ARGV: the write's time (epoch microseconds; '' = the server's TIME),
-- actor, the dedupe window (ms), then per merge: kind ('s' sub-task | 'p' phase), field prefix,
-- progress ('' = none), done ('' = none), add, payload, operation id ('' = none).
-- The write's time is never before the migration's last event (h.lt): event times never go back.
-- A merge whose operation id is in o with a score (when applied, epoch seconds) at or after the
-- cutoff (the write's time less the window) was applied before: STALE, nothing written. An
-- APPLIED merge records its id in the same call; one that applied nothing leaves it free (the
-- rules may apply it under the same id).
if redis.call('EXISTS', KEYS[5]) == 1 then return {-1} end
local now
if ARGV[1] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[1])
end
now = math.max(now, tonumber(redis.call('HGET', KEYS[1], 'lt') or '0'))
local us = string.format('%.0f', now)
local at = string.format('%.6f', now / 1000000)
local cutoff = (now - tonumber(ARGV[3]) * 1000) / 1000000
local actor = ARGV[2]
local function sub(f, prog, payload)
  local v = redis.call('HMGET', KEYS[3], f .. 's', f .. 'p')
  if v[1] ~= 'in_progress' then return 0 end
  if tonumber(prog) <= tonumber(v[2]) then return 1 end
  redis.call('HSET', KEYS[3], f .. 'p', prog)
  local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
  redis.call('XADD', KEYS[4], seq .. '-0', 't', 'subtask.progress', 'us', us, 'a', actor, 'p', payload)
  return 2
end
local function phase(f, prog, done, add, payload)
  local v = redis.call('HMGET', KEYS[2], f .. 's', f .. 'p', f .. 'd', f .. 't')
  if v[1] ~= 'in_progress' then return 0 end
  local cur_p = tonumber(v[2])
  local cur_d = tonumber(v[3])
  local nd = cur_d
  if done ~= '' then nd = math.max(cur_d, tonumber(done)) end
  nd = nd + add
  local np = cur_p
  if prog ~= '' then np = math.max(np, tonumber(prog)) end
  local total = v[4]
  if total ~= '' and (done ~= '' or add > 0) then
    local t = tonumber(total)
    if nd > t then return 0 end
    local ratio = 100.0
    if t ~= 0 then ratio = math.min(100.0, nd * 100.0 / t) end
    np = math.max(np, ratio)
  end
  if np == cur_p and nd == cur_d then return 1 end
  local ps = string.format('%.17g', np)
  local ds = string.format('%.0f', nd)
  redis.call('HSET', KEYS[2], f .. 'p', ps, f .. 'd', ds)
  local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
  local tj = 'null'
  if total ~= '' then tj = total end
  redis.call('XADD', KEYS[4], seq .. '-0', 't', 'phase.progress', 'us', us, 'a', actor, 'p', payload,
    'x', '{"progress":' .. ps .. ',"done":' .. ds .. ',"total":' .. tj .. '}')
  return 2
end
local out = {}
local recorded = false
local applied = false
for i = 4, #ARGV, 7 do
  local op = ARGV[i + 6]
  local seen = false
  -- record first (one command when the id is new, the common case), undo if nothing applied
  if op ~= '' and redis.call('ZADD', KEYS[6], 'NX', at, op) == 0 then
    if tonumber(redis.call('ZSCORE', KEYS[6], op)) >= cutoff then
      seen = true
    else  -- an expired record of the same id: this write takes it over
      redis.call('ZADD', KEYS[6], at, op)
    end
  end
  local r = 1
  if not seen then
    if ARGV[i] == 's' then
      r = sub(ARGV[i + 1], ARGV[i + 2], ARGV[i + 5])
    else
      r = phase(ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], tonumber(ARGV[i + 4]), ARGV[i + 5])
    end
    if r == 2 then applied = true end
    if op ~= '' then
      if r == 2 then recorded = true else redis.call('ZREM', KEYS[6], op) end
    end
  end
  out[#out + 1] = r
end
if applied then redis.call('HSET', KEYS[1], 'lt', us) end
if recorded then
  -- forget the expired ids; the set itself goes a window after its last write
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', '(' .. string.format('%.6f', cutoff))
  redis.call('PEXPIRE', KEYS[6], ARGV[3])
end
return out

-- Release a migration's lock, but only if it is still ours (it may have expired and been retaken).
-- KEYS: lock.  ARGV[1]: lock token
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0

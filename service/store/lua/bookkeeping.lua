#!lua flags=allow-oom
-- One small write of the service's own bookkeeping (the node registry, which rooms a node and a
-- user are in) that must go on while Redis refuses writes for want of memory (maxmemory with
-- `noeviction`): it is bounded by the live nodes and connections, never by the messages.
-- KEYS[1] the key; ARGV[1] the command, one of those below; ARGV[2..] its arguments
local allowed = {SADD = true, ZADD = true, HSET = true, PEXPIRE = true}
if not allowed[ARGV[1]] then return redis.error_reply('ERR not a bookkeeping write: ' .. ARGV[1]) end
return redis.call(ARGV[1], KEYS[1], unpack(ARGV, 2))

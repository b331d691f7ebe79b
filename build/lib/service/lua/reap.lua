-- Forget every presence entry of a node, announcing leaves for users it held last, once.
-- With ARGV[3] = '' the node is reaped only if its last heartbeat is older than ARGV[4] (claimed
-- by removing it from the registry, so only one node reaps it); with ARGV[3] = 'force' always
-- (a node clearing what its previous run left behind).
-- KEYS[1] node registry zset, KEYS[2] the node's rooms set
-- ARGV channel, node, mode, cutoff_ms, host_id, key prefix for rooms
local node = ARGV[2]
if ARGV[3] ~= 'force' then
  local seen = redis.call('ZSCORE', KEYS[1], node)
  if not seen or tonumber(seen) >= tonumber(ARGV[4]) then return -1 end
  redis.call('ZREM', KEYS[1], node)
end
local prefix = node .. '|'
local removed = 0
for _, room in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local conns_key = ARGV[6] .. room .. ':conns'
  local users_key = ARGV[6] .. room .. ':users'
  local conns = redis.call('HGETALL', conns_key)
  for i = 1, #conns, 2 do
    if string.sub(conns[i], 1, #prefix) == prefix then
      local user = conns[i + 1]
      redis.call('HDEL', conns_key, conns[i])
      removed = removed + 1
      if redis.call('HINCRBY', users_key, user, -1) <= 0 then
        redis.call('HDEL', users_key, user)
        redis.call('PUBLISH', ARGV[1], cjson.encode({
          method = 'emit', event = 'presence', binary = false, namespace = '/', room = 'r:' .. room,
          data = {{room = room, user = user, action = 'leave'}}, host_id = ARGV[5]}))
      end
    end
  end
end
redis.call('DEL', KEYS[2])
return removed

#!lua
-- The index of outboxes with pending webhook events (outbox.py), one sorted set for every room
-- and inbox, beside the time of each one's oldest undelivered event while a try left some.
-- KEYS[1] due (member -> when to try it next, ms), KEYS[2] since (member -> oldest event, ms)
-- ARGV[1] the operation, ARGV[2] the member, ARGV[3] a time (ms), ARGV[4] another (ms)
--   'add'      index the member to try at ARGV[3], unless it is indexed: 1 if it was not
--   'schedule' try it at ARGV[3]; its oldest undelivered event is from ARGV[4]
--   'later'    try it at ARGV[3], if it is indexed
--   'remove'   forget it
--   'figures'  {indexed outboxes, the earliest try (ms) or false, the oldest event (ms) or false}
local op = ARGV[1]
if op == 'add' then
  return redis.call('ZADD', KEYS[1], 'NX', ARGV[3], ARGV[2])
elseif op == 'schedule' then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[2])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
  return 1
elseif op == 'later' then
  return redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[2])
elseif op == 'remove' then
  redis.call('ZREM', KEYS[1], ARGV[2])
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 1
elseif op == 'figures' then
  local due = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  local since = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return {redis.call('ZCARD', KEYS[1]), due[2] or false, since[2] or false}
end
return redis.error_reply('ERR unknown webhook index operation: ' .. op)

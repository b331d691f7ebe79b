#!lua
-- A sender that holds an outbox's lease moves past what it delivered or dropped (outbox.py): the
-- cursor moves, the delivered webhook events go, and the marker is cleared when nothing is left,
-- all in one step with the appends (which set the marker again).
-- KEYS[1] the outbox's lease, KEYS[2] its webhook hash, KEYS[3] its pending marker,
-- KEYS[4] its stream (room log or inbox), KEYS[5] a room's webhook events (an inbox: KEYS[4])
-- ARGV[1] the sender's token, ARGV[2] the new cursor ('' to keep it), ARGV[3] 'keep' (the lease
-- stays), 'release' (it goes) or 'delivered' (it goes, and the failures in a row and the pause
-- after them are forgotten),
-- ARGV[4..] ids of KEYS[5] to delete
-- Returns {'lost'} when the lease is not the sender's any more (nothing changes), {'done'} when
-- nothing is left (the marker is cleared), else {'more', the oldest id left}.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return {'lost'} end
local cursor = redis.call('HGET', KEYS[2], 'cursor')
if ARGV[2] ~= '' and (not cursor or id_before(cursor, ARGV[2])) then
  cursor = ARGV[2]
  redis.call('HSET', KEYS[2], 'cursor', cursor)
end
local room = KEYS[5] ~= KEYS[4]
if room and #ARGV >= 4 then
  redis.call('XDEL', KEYS[5], unpack(ARGV, 4))
  if redis.call('XLEN', KEYS[5]) == 0 then redis.call('DEL', KEYS[5]) end
end
if ARGV[3] == 'delivered' then redis.call('HDEL', KEYS[2], 'failures', 'next') end
if ARGV[3] ~= 'keep' then redis.call('DEL', KEYS[1]) end
local left = false
if cursor then
  local next_entry = redis.call('XRANGE', KEYS[4], '(' .. cursor, '+', 'COUNT', 1)[1]
  if next_entry then left = next_entry[1] end
end
if room then
  local event = redis.call('XRANGE', KEYS[5], '-', '+', 'COUNT', 1)[1]
  if event and (not left or id_before(event[1], left)) then left = event[1] end
end
if not left then
  redis.call('DEL', KEYS[3])
  return {'done'}
end
return {'more', left}

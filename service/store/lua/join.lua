#!lua flags=allow-oom
-- Record one connection's presence in a room, announcing the user if it is its first connection
-- there; with ARGV[4] '1', make the user a member too (kept until it leaves). Returns the room's
-- members, the user's last-read id in the room (or false), 1 when the user became a member now
-- (0 when it was one already), and 1 if it set the room's webhook marker (else 0); or
-- 'forbidden' (nothing done) when ARGV[5] is 'member' and the app no longer lists the user (a
-- DELETE came between the admission and this join).
-- KEYS[1] room connections hash, KEYS[2] room users hash, KEYS[3] room channel,
-- KEYS[4] room members hash, KEYS[5] room read positions, KEYS[6] room log,
-- KEYS[7] room rules hash, KEYS[8] the users the app added, KEYS[9] the admitted senders,
-- KEYS[10] the room's webhook events and KEYS[11] its webhook marker (outbox.py)
-- ARGV[1] connection field (node|sid), ARGV[2] user, ARGV[3] the presence join frame,
-- ARGV[4] '1' to make the user a member, ARGV[5] how a private room admitted the user: 'member'
-- (the app added it), 'granted' (its token, or the join hook), or '' (the room is public),
-- ARGV[6] '1' when webhooks are on: the announced join (presence) and a new membership (member
-- joined) are recorded as webhook events
if ARGV[5] == 'member' and redis.call('SISMEMBER', KEYS[8], ARGV[2]) == 0 then
  return 'forbidden'
end
if ARGV[5] ~= '' then redis.call('SADD', KEYS[9], ARGV[2]) end
redis.call('HDEL', KEYS[7], 'out:' .. ARGV[2])  -- joined again since the app removed it
local marked = 0
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  if redis.call('HINCRBY', KEYS[2], ARGV[2], 1) == 1 then
    redis.call('SPUBLISH', KEYS[3], ARGV[3])
    if ARGV[6] == '1' then
      marked = marked + record_event(KEYS[10], KEYS[11], 'presence', ARGV[2], 'join')
    end
  end
end
local new_member = 0
if ARGV[4] == '1' and redis.call('HEXISTS', KEYS[4], ARGV[2]) == 0 then
  local newest = redis.call('XREVRANGE', KEYS[6], '+', '-', 'COUNT', 1)[1]
  redis.call('HSET', KEYS[4], ARGV[2], newest and newest[1] or '0-0')
  new_member = 1
  if ARGV[6] == '1' then
    marked = marked + record_event(KEYS[10], KEYS[11], 'member', ARGV[2], 'joined')
  end
end
return {redis.call('HKEYS', KEYS[2]), redis.call('HGET', KEYS[5], ARGV[2]), new_member, marked}

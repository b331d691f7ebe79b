#!lua flags=allow-oom
-- Record one connection's presence in a room, announcing the user if it is its first connection
-- there; with ARGV[4] '1', make the user a member too (kept until it leaves). Returns the room's
-- members, the user's last-read id in the room (or false), and 1 if it set the room's webhook
-- marker (else 0).
-- KEYS[1] room connections hash, KEYS[2] room users hash, KEYS[3] room channel,
-- KEYS[4] room members hash, KEYS[5] room read positions, KEYS[6] room log,
-- KEYS[7] the room's webhook events and KEYS[8] its webhook marker (outbox.py)
-- ARGV[1] connection field (node|sid), ARGV[2] user, ARGV[3] the presence join frame,
-- ARGV[4] '1' to make the user a member, ARGV[5] '1' when webhooks are on: the announced join
-- (presence) and a new membership (member joined) are recorded as webhook events
local marked = 0
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  if redis.call('HINCRBY', KEYS[2], ARGV[2], 1) == 1 then
    redis.call('SPUBLISH', KEYS[3], ARGV[3])
    if ARGV[5] == '1' then
      marked = marked + record_event(KEYS[7], KEYS[8], 'presence', ARGV[2], 'join')
    end
  end
end
if ARGV[4] == '1' and redis.call('HEXISTS', KEYS[4], ARGV[2]) == 0 then
  local newest = redis.call('XREVRANGE', KEYS[6], '+', '-', 'COUNT', 1)[1]
  redis.call('HSET', KEYS[4], ARGV[2], newest and newest[1] or '0-0')
  if ARGV[5] == '1' then
    marked = marked + record_event(KEYS[7], KEYS[8], 'member', ARGV[2], 'joined')
  end
end
return {redis.call('HKEYS', KEYS[2]), redis.call('HGET', KEYS[5], ARGV[2]), marked}

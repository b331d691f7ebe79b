#!lua flags=allow-oom
-- Remove one connection's presence from a room; announce the user's leave with its last connection.
-- KEYS[1] room connections hash, KEYS[2] room users hash, KEYS[3] room channel,
-- KEYS[4] the room's webhook events and KEYS[5] its webhook marker (outbox.py)
-- ARGV[1] connection field (node|sid), ARGV[2] user, ARGV[3] the presence leave frame,
-- ARGV[4] '1' when webhooks are on: the announced leave is recorded as a webhook event
-- Returns 1 if it set the room's webhook marker, else 0.
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  if redis.call('HINCRBY', KEYS[2], ARGV[2], -1) <= 0 then
    redis.call('HDEL', KEYS[2], ARGV[2])
    redis.call('SPUBLISH', KEYS[3], ARGV[3])
    if ARGV[4] == '1' then
      return record_event(KEYS[4], KEYS[5], 'presence', ARGV[2], 'leave')
    end
  end
end
return 0

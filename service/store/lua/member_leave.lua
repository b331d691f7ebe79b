#!lua flags=allow-oom
-- End a user's membership of a room, forget its read position there and its admission to send
-- while the room is private; with webhooks on, record the end (ARGV[3]: `left`, or `removed` by
-- the app) as a webhook event if it was a member.
-- KEYS[1] room members hash, KEYS[2] room read positions, KEYS[3] the room's admitted senders,
-- KEYS[4] the room's webhook events and KEYS[5] its webhook marker (outbox.py)
-- ARGV[1] user, ARGV[2] '1' when webhooks are on, ARGV[3] the membership event's action
-- Returns {1 if the user was a member, 1 if it set the room's webhook marker}.
local was = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
local marked = 0
if was == 1 and ARGV[2] == '1' then
  marked = record_event(KEYS[4], KEYS[5], 'member', ARGV[1], ARGV[3])
end
return {was, marked}

#!lua
-- The app adds a user as a member of a room: a private room admits it, and it may send there;
-- with webhooks on, a new addition is a `member` event (`added`) in the same step.
-- KEYS[1] the users the app added, KEYS[2] the admitted senders,
-- KEYS[3] the room's webhook events and KEYS[4] its webhook marker (outbox.py)
-- ARGV[1] the user, ARGV[2] '1' when webhooks are on
-- Returns {1 if the app had not added the user yet (else 0), 1 if it set the webhook marker}.
redis.call('SADD', KEYS[2], ARGV[1])
local added = redis.call('SADD', KEYS[1], ARGV[1])
local marked = 0
if added == 1 and ARGV[2] == '1' then
  marked = record_event(KEYS[3], KEYS[4], 'member', ARGV[1], 'added')
end
return {added, marked}

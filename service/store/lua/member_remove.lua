#!lua
-- The app removes a user from a room, in one step: no longer added or admitted, the join hook's
-- remembered answer forgotten, membership and read position ended, and its sends refused from
-- now on (`out:<user>`, until it joins again: lua/append.lua, lua/join.lua), so that a send
-- Redis takes after this is refused on every node, before any node has heard of the removal.
-- KEYS[1] the users the app added, KEYS[2] the admitted senders, KEYS[3] the join hook's
-- remembered answer, KEYS[4] the room's members hash, KEYS[5] its read positions,
-- KEYS[6] its rules hash, KEYS[7] its webhook events and KEYS[8] its webhook marker (outbox.py)
-- ARGV[1] the user, ARGV[2] '1' when webhooks are on
-- Returns {1 if the user was added, admitted or a member (else 0), 1 if it set the marker}.
local was = redis.call('SREM', KEYS[1], ARGV[1]) + redis.call('SREM', KEYS[2], ARGV[1])
  + redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('DEL', KEYS[3])
redis.call('HDEL', KEYS[5], ARGV[1])
if was == 0 then return {0, 0} end  -- never added, admitted or joined: none of it is there
redis.call('HSET', KEYS[6], 'out:' .. ARGV[1], '1')
local marked = 0
if ARGV[2] == '1' then marked = record_event(KEYS[7], KEYS[8], 'member', ARGV[1], 'removed') end
return {1, marked}

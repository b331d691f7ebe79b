#!lua flags=no-writes
-- What a join or a read of a room needs to know about one user, in one step.
-- KEYS[1] the room's rules hash, KEYS[2] the users the app added, KEYS[3] the admitted senders,
-- KEYS[4] the join hook's remembered answer for the user
-- ARGV[1] the user
-- Returns {private, read_only, added, admitted, hook_allowed}: the rules as set ('1', '0', or
-- false: the default), then 1 or 0 each.
local rules = redis.call('HMGET', KEYS[1], 'private', 'read_only')
return {rules[1], rules[2], redis.call('SISMEMBER', KEYS[2], ARGV[1]),
        redis.call('SISMEMBER', KEYS[3], ARGV[1]), redis.call('EXISTS', KEYS[4])}

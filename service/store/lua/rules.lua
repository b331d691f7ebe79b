#!lua
-- Set a room's rules, the given ones only, and return both as they stand.
-- KEYS[1] the room's rules hash
-- ARGV[1] private and ARGV[2] read_only: '1', '0', or '' to keep the rule as it is
-- Returns {private, read_only}, each '1', '0' or false (never set: the default).
if ARGV[1] ~= '' then redis.call('HSET', KEYS[1], 'private', ARGV[1]) end
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'read_only', ARGV[2]) end
return redis.call('HMGET', KEYS[1], 'private', 'read_only')

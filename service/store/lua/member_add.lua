#!lua
-- The app adds a user as a member of a room: a private room admits it, and it may send there.
-- KEYS[1] the users the app added, KEYS[2] the admitted senders
-- ARGV[1] the user
-- Returns 1 if the app had not added the user yet, else 0.
redis.call('SADD', KEYS[2], ARGV[1])
return redis.call('SADD', KEYS[1], ARGV[1])

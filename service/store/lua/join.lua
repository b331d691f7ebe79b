#!lua
-- Record one connection's presence in a room, announcing the user if it is its first connection
-- there, and return the room's members.
-- KEYS[1] room connections hash, KEYS[2] room users hash, KEYS[3] room channel
-- ARGV[1] connection field (node|sid), ARGV[2] user, ARGV[3] the presence join frame
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  if redis.call('HINCRBY', KEYS[2], ARGV[2], 1) == 1 then
    redis.call('SPUBLISH', KEYS[3], ARGV[3])
  end
end
return redis.call('HKEYS', KEYS[2])

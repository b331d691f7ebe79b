#!lua flags=allow-oom
-- Remove one connection's presence from a room; announce the user's leave with its last connection.
-- KEYS[1] room connections hash, KEYS[2] room users hash, KEYS[3] room channel
-- ARGV[1] connection field (node|sid), ARGV[2] user, ARGV[3] the presence leave frame
if redis.call('HDEL', KEYS[1], ARGV[1]) == 1 then
  if redis.call('HINCRBY', KEYS[2], ARGV[2], -1) <= 0 then
    redis.call('HDEL', KEYS[2], ARGV[2])
    redis.call('SPUBLISH', KEYS[3], ARGV[3])
  end
  return 1
end
return 0

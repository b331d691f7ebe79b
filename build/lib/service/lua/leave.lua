-- Remove one connection's presence from a room; announce the user's leave with its last connection.
-- KEYS[1] room connections hash, KEYS[2] room users hash
-- ARGV channel, room, user, connection field, socketio_room, host_id
if redis.call('HDEL', KEYS[1], ARGV[4]) == 1 then
  if redis.call('HINCRBY', KEYS[2], ARGV[3], -1) <= 0 then
    redis.call('HDEL', KEYS[2], ARGV[3])
    redis.call('PUBLISH', ARGV[1], cjson.encode({
      method = 'emit', event = 'presence', binary = false, namespace = '/', room = ARGV[5],
      data = {{room = ARGV[2], user = ARGV[3], action = 'leave'}}, host_id = ARGV[6]}))
  end
  return 1
end
return 0

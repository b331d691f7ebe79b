-- Record one connection's presence in a room (announcing the user if it is its first connection
-- there), then read the members and, when `since` is given, what the room stored after it.
-- KEYS[1] room connections hash, KEYS[2] room users hash, KEYS[3] node's rooms set, KEYS[4] stream,
-- KEYS[5] newest trimmed id of the stream
-- ARGV channel, room, user, connection field, since ('' for none), socketio_room, host_id
if redis.call('HSETNX', KEYS[1], ARGV[4], ARGV[3]) == 1 then
  redis.call('SADD', KEYS[3], ARGV[2])
  if redis.call('HINCRBY', KEYS[2], ARGV[3], 1) == 1 then
    redis.call('PUBLISH', ARGV[1], cjson.encode({
      method = 'emit', event = 'presence', binary = false, namespace = '/', room = ARGV[6],
      data = {{room = ARGV[2], user = ARGV[3], action = 'join'}}, host_id = ARGV[7]}))
  end
end
local members = redis.call('HKEYS', KEYS[2])
if ARGV[5] == '' then return {members, {}, ''} end
local entries = redis.call('XREVRANGE', KEYS[4], '+', '(' .. ARGV[5], 'COUNT', 501)
return {members, entries, redis.call('GET', KEYS[5]) or ''}

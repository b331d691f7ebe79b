-- Append a room message to the room's stream and publish it to every node, as one atomic step,
-- so that the order nodes receive messages in is the order they were stored in.
-- Retention: the stream keeps at least `maxlen` messages; beyond maxlen + 100 the oldest are
-- trimmed in one batch and the id of the newest trimmed message is kept in KEYS[2], so a resuming
-- client learns exactly whether messages after its id were dropped.
-- KEYS[1] room stream, KEYS[2] newest trimmed id
-- ARGV channel, maxlen, room, user, text, node, client_id, has_client_id, socketio_room, host_id
local fields = {'u', ARGV[4], 't', ARGV[5], 'n', ARGV[6]}
if ARGV[8] == '1' then
  table.insert(fields, 'c'); table.insert(fields, ARGV[7])
end
local id = redis.call('XADD', KEYS[1], '*', unpack(fields))
local excess = redis.call('XLEN', KEYS[1]) - tonumber(ARGV[2])
if excess >= 100 then
  local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', excess + 1)
  redis.call('XTRIM', KEYS[1], 'MINID', oldest[excess + 1][1])
  redis.call('SET', KEYS[2], oldest[excess][1])
end
local ts = tonumber(string.match(id, '^(%d+)'))
local message = {id = id, room = ARGV[3], user = ARGV[4], text = ARGV[5], ts = ts, node = ARGV[6]}
if ARGV[8] == '1' then message.client_id = ARGV[7] end
redis.call('PUBLISH', ARGV[1], cjson.encode({
  method = 'emit', event = 'message', data = {message}, binary = false, namespace = '/',
  room = ARGV[9], host_id = ARGV[10]}))
return id

-- Store a direct message in the recipient's inbox stream and publish it to the recipient's and
-- the sender's connections, atomically. Returns false when the recipient does not exist.
-- KEYS[1] recipient's account hash, KEYS[2] recipient's inbox stream
-- ARGV channel, maxlen, from, to, text, node, client_id, has_client_id, skip_sid, host_id
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local fields = {'f', ARGV[3], 'to', ARGV[4], 't', ARGV[5], 'n', ARGV[6]}
if ARGV[8] == '1' then
  table.insert(fields, 'c'); table.insert(fields, ARGV[7])
end
local id = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(fields))
local ts = tonumber(string.match(id, '^(%d+)'))
local message = {id = id, from = ARGV[3], to = ARGV[4], text = ARGV[5], ts = ts, node = ARGV[6]}
if ARGV[8] == '1' then message.client_id = ARGV[7] end
local rooms = {'u:' .. ARGV[4]}
if ARGV[3] ~= ARGV[4] then table.insert(rooms, 'u:' .. ARGV[3]) end
redis.call('PUBLISH', ARGV[1], cjson.encode({
  method = 'emit', event = 'direct', data = {message}, binary = false, namespace = '/',
  room = rooms, skip_sid = ARGV[9], host_id = ARGV[10]}))
return id

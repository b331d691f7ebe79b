#!lua flags=allow-oom
-- Move a reader's last-read id in a room or a conversation forwards (never backwards), up to the
-- stream's newest id; in a conversation, count again what stays unread after it.
-- KEYS[1] the stream (room log or conversation), KEYS[2] the read positions hash,
-- KEYS[3] the room's members hash (when ARGV[3] is not ''),
-- KEYS[4] the conversation's unread counts (when ARGV[4] is not '')
-- ARGV[1] the reader's field in KEYS[2] (and KEYS[4]), ARGV[2] the id read,
-- ARGV[3] who must be a member, or '', ARGV[4] the reader in a conversation, or '',
-- ARGV[5] the most entries to count
-- Returns {'forbidden'} when ARGV[3] is not a member, {'empty'} when the stream holds nothing,
-- {'kept', id} when the position was already there or later, {'moved', id} when it moved.
if ARGV[3] ~= '' and redis.call('HEXISTS', KEYS[3], ARGV[3]) == 0 then return {'forbidden'} end
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
if not newest then return {'empty'} end
local wanted = ARGV[2]
if id_before(newest[1], wanted) then wanted = newest[1] end
local current = redis.call('HGET', KEYS[2], ARGV[1])
if current and not id_before(current, wanted) then return {'kept', current} end
redis.call('HSET', KEYS[2], ARGV[1], wanted)
if ARGV[4] ~= '' then
  local unread = count_after(KEYS[1], wanted, 'f', ARGV[4], tonumber(ARGV[5]))
  redis.call('HSET', KEYS[4], ARGV[1], unread)
end
return {'moved', wanted}

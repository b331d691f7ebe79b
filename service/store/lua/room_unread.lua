#!lua flags=no-writes
-- What a member's room list shows of one room: how many messages of others it has not read
-- (after its last-read id, or after the room's newest id when it joined), and the newest id.
-- KEYS[1] room log, KEYS[2] room members hash, KEYS[3] room read positions
-- ARGV[1] user, ARGV[2] the most to count
-- Returns false when the user is not a member, else {unread, newest id or false}.
local joined = redis.call('HGET', KEYS[2], ARGV[1])
if not joined then return false end
local read = redis.call('HGET', KEYS[3], ARGV[1])
local after = joined
if read and id_before(joined, read) then after = read end
local unread, newest = count_after(KEYS[1], after, 'u', ARGV[1], tonumber(ARGV[2]))
return {unread, newest and newest[1] or false}

#!lua flags=no-writes
-- What a user's conversation list shows: for each other user, the newest message and how many
-- of theirs the user has not read (counted as they arrive, recounted as the user reads).
-- KEYS[1] the user's unread counts, KEYS[2..] the conversations' streams
-- ARGV[1..] the other users, in KEYS' order
-- Returns {unread, newest entry or false} per conversation.
local answers = {}
for i = 2, #KEYS do
  local newest = redis.call('XREVRANGE', KEYS[i], '+', '-', 'COUNT', 1)[1] or false
  local unread = tonumber(redis.call('HGET', KEYS[1], ARGV[i - 1]) or '0')
  answers[#answers + 1] = {unread, newest}
end
return answers

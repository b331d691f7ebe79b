#!lua
-- What a user's conversation list shows: for each other user, the newest message and how many
-- of theirs the user has not read.
-- KEYS[1] the user's conversation read positions, KEYS[2..] the conversations' streams
-- ARGV[1] the user, ARGV[2] the most to count, ARGV[3..] the other users, in KEYS' order
-- Returns {unread, newest entry or false} per conversation.
local cap = tonumber(ARGV[2])
local answers = {}
for i = 2, #KEYS do
  local read = redis.call('HGET', KEYS[1], ARGV[i + 1]) or '0-0'
  local unread, newest = count_after(KEYS[i], read, 'f', ARGV[1], cap)
  answers[#answers + 1] = {unread, newest}
end
return answers

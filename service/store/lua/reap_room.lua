#!lua flags=allow-oom
-- Forget every connection a (dead or restarted) node had in one room, announcing the leave of
-- each user it held last. Safe to run again: what is gone stays gone.
-- KEYS[1] room connections hash, KEYS[2] room users hash, KEYS[3] room channel,
-- KEYS[4] the room's webhook events and KEYS[5] its webhook marker (outbox.py)
-- ARGV[1] the node's field prefix (node|), ARGV[2..3] the presence leave frame's pieces
-- (bus/message.py: presence_template), joined around the user's name, ARGV[4] '1' when
-- webhooks are on: each announced leave is recorded as a webhook event
-- Returns {how many connections were removed, 1 if it set the room's webhook marker}.
local prefix = ARGV[1]
local removed, marked = 0, 0
local conns = redis.call('HGETALL', KEYS[1])
for i = 1, #conns, 2 do
  if string.sub(conns[i], 1, #prefix) == prefix then
    local user = conns[i + 1]
    redis.call('HDEL', KEYS[1], conns[i])
    removed = removed + 1
    if redis.call('HINCRBY', KEYS[2], user, -1) <= 0 then
      redis.call('HDEL', KEYS[2], user)
      redis.call('SPUBLISH', KEYS[3], ARGV[2] .. user .. ARGV[3])
      if ARGV[4] == '1' then
        marked = marked + record_event(KEYS[4], KEYS[5], 'presence', user, 'leave')
      end
    end
  end
end
return {removed, marked}

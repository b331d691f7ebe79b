#!lua
-- A sender takes one outbox (a room, or an inbox) for a try (outbox.py): its lease, then what is
-- undelivered, read in the same step.
-- KEYS[1] the outbox's lease, KEYS[2] its webhook hash, KEYS[3] its pending marker,
-- KEYS[4] its stream (room log or inbox), KEYS[5] a room's webhook events (an inbox: KEYS[4])
-- ARGV[1] the sender's token, ARGV[2] the lease in ms, ARGV[3] the most entries to read of each
-- stream, ARGV[4] '1' to read KEYS[5]
-- Returns false when another sender holds the lease; {'paused', ms left} when the outbox's pause
-- after a failure (`next`, by Redis's clock) has not passed (a sender's list of due outboxes can
-- be older than the pause); else {1 if the marker is set, failures in a row, entries retention
-- dropped undelivered (`expired`, zeroed now: the caller counts them), the stream's entries
-- after the cursor, the webhook events (each oldest first)}.
local pause_until = redis.call('HGET', KEYS[2], 'next')
if pause_until then
  local now = redis.call('TIME')
  local left = tonumber(pause_until) - (tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
  if left > 0 then return {'paused', left} end
end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
local state = redis.call('HMGET', KEYS[2], 'cursor', 'failures', 'expired')
if state[3] then redis.call('HDEL', KEYS[2], 'expired') end
local log, side = {}, {}
if state[1] then log = redis.call('XRANGE', KEYS[4], '(' .. state[1], '+', 'COUNT', ARGV[3]) end
if ARGV[4] == '1' then side = redis.call('XRANGE', KEYS[5], '-', '+', 'COUNT', ARGV[3]) end
return {redis.call('EXISTS', KEYS[3]), tonumber(state[2] or '0'), tonumber(state[3] or '0'),
        log, side}

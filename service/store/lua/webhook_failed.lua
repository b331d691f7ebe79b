#!lua
-- A sender's try of an outbox failed (outbox.py): count it, pause the outbox, give the lease back.
-- KEYS[1] the outbox's lease, KEYS[2] its webhook hash
-- ARGV[1] the sender's token, ARGV[2] the pause in ms: no sender takes the outbox before it
-- passed (`next`, by Redis's clock: webhook_take.lua)
-- Returns the outbox's failures in a row, or false when the lease is not the sender's any more.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return false end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('HSET', KEYS[2], 'next', string.format('%.0f', now_ms + tonumber(ARGV[2])))
redis.call('DEL', KEYS[1])
return redis.call('HINCRBY', KEYS[2], 'failures', 1)

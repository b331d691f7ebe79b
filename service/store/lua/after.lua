#!lua flags=no-writes
-- The entries of a stream after id `since`, and whether any entry after it is gone.
-- KEYS[1] stream, KEYS[2] its meta hash (append.lua)
-- ARGV[1] since ('' for none: no entries, only the newest id), ARGV[2] limit
-- Returns {entries newest first (at most limit + 1, so the caller sees there were more),
--          truncated (1 or 0), the stream's newest id or ''}.
-- Truncated: entries after `since` are gone for some reason: retention dropped up to or past it,
-- the stream started again after it (it was lost), a failover since may have lost writes after
-- it, or `since` is newer than anything stored (the writes it saw are gone).
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local last = newest[1] and newest[1][1] or ''
if ARGV[1] == '' then return {{}, 0, last} end
local since = ARGV[1]
local entries = redis.call('XREVRANGE', KEYS[1], '+', '(' .. since, 'COUNT', tonumber(ARGV[2]) + 1)
local meta = redis.call('HMGET', KEYS[2], 'trimmed', 'created', 'gap')
local trimmed, created, gap = meta[1], meta[2], meta[3]
local truncated = last == '' or id_before(last, since)
  or (trimmed and not id_before(trimmed, since))
  or (created and id_before(since, created))
  or (gap and id_before(since, gap))
return {entries, truncated and 1 or 0, last}

#!lua
-- Append an entry to a stream (a room's log or a user's inbox) and publish its frame to the
-- stream's channel, as one atomic step: nodes receive a stream's messages in stored order.
-- KEYS[1] stream, KEYS[2] its meta hash, KEYS[3] its channel,
-- KEYS[4] a key that must exist (the recipient's account) when ARGV[2] is '1',
-- KEYS[5] where the id of this client_id's first append is kept, when ARGV[3] is '1',
-- KEYS[6] the conversation's stream, KEYS[7] the owner's conversations and KEYS[8] its unread
-- counts, when ARGV[6] names the other user of a direct message (the entry is copied there
-- with the same id, and counted unread when ARGV[7] is '1': the other user sent it)
-- KEYS[9] the room's rules hash and KEYS[10] its admitted senders, when ARGV[12] names a sender
-- whose send the room's rules must allow
-- KEYS[11] the stream's webhook pending marker and KEYS[12] its webhook hash (outbox.py), when
-- ARGV[14] is not '0'
-- (unused KEYS repeat KEYS[1]; every key is in the stream's slot)
-- ARGV[1] maxlen, ARGV[2] check KEYS[4], ARGV[3] idempotent by KEYS[5] (for ARGV[4] seconds),
-- ARGV[5] the id to take if it is newer than the stream's newest, else '*' (a new one),
-- ARGV[6] the other user of a direct message, or '', ARGV[7] '1' to count it unread,
-- ARGV[8..11] the frame's pieces (bus/message.py: stored_template),
-- ARGV[12] the sender whose send the room's rules must allow, or '' (the app's own posts),
-- ARGV[13] '1' when a room without a `private` rule is private (ROOMS_DEFAULT),
-- ARGV[14] webhooks: '0' off, '1' on and this entry is an event (the marker is set), '2' on and
-- it is none (the sender's copy of a direct message), ARGV[15] WEBHOOK_RETRY_S in ms,
-- ARGV[16] '' for a room, or the inbox's owner: only entries to the owner are events there,
-- ARGV[17..] field, value pairs
-- Returns {id, 1 if it was new, 1 if it set the webhook marker}, false when KEYS[4] does not
-- exist, or {'forbidden', why} (why: `removed`, `read_only`, `private`) when the rules refuse the
-- sender. A repeat within the window returns the first id and stores and publishes nothing (a
-- retry is answered even if the rules changed since). The rules cost a public room one HMGET:
-- they are read here, with the append, so that a rule or a removal that Redis took before the
-- send always applies to it.
-- Webhooks: an event's append sets the marker; the first one also sets the cursor to the entry
-- before it (what was stored before webhooks were on is not sent).
-- Meta: `created` the first id of this stream (a stream that is gone and starts again gets a new
-- one), `trimmed` the newest id retention dropped, `rid` the replication id of the master that
-- wrote last, and `gap` the first id written after a failover: when this master is the replica
-- that took over from the one that wrote last (its previous replication id, master_replid2, is
-- `rid`), writes that did not reach it may be lost. A slot that migrated to another master keeps
-- its data: no gap. Retention keeps at least maxlen entries, trimming in batches; with webhooks
-- on it never trims an entry after the webhook cursor that is younger than WEBHOOK_RETRY_S (one
-- that is older is dropped with the cursor moved past it and counted in `expired`).
if ARGV[2] == '1' and redis.call('EXISTS', KEYS[4]) == 0 then return false end
if ARGV[3] == '1' then
  local first = redis.call('GET', KEYS[5])
  if first then
    redis.call('SET', KEYS[5], first, 'KEEPTTL')  -- a write, so a WAIT after it covers the first
    return {first, 0, 0}
  end
end
if ARGV[12] ~= '' then
  local rules = redis.call('HMGET', KEYS[9], 'private', 'read_only', 'out:' .. ARGV[12])
  if rules[3] then return {'forbidden', 'removed'} end
  if rules[2] == '1' then return {'forbidden', 'read_only'} end
  if (rules[1] or ARGV[13]) == '1' and redis.call('SISMEMBER', KEYS[10], ARGV[12]) == 0 then
    return {'forbidden', 'private'}
  end
end
local fresh = redis.call('EXISTS', KEYS[1]) == 0
local webhooks = ARGV[14] ~= '0'
if ARGV[14] == '1' and redis.call('HEXISTS', KEYS[12], 'cursor') == 0 then
  local before = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
  redis.call('HSET', KEYS[12], 'cursor', before and before[1] or '0-0')
end
local replication = redis.call('INFO', 'replication')
local replid = string.match(replication, 'master_replid:(%w+)')
local previous = string.match(replication, 'master_replid2:(%w+)')
local seen = redis.call('HGET', KEYS[2], 'rid')
local failed_over = seen and seen ~= replid and seen == previous
local wanted = ARGV[5]
if seen and (fresh or failed_over) then
  -- written before, and now gone or taken over by a replica: ids issued before may be lost, and
  -- `*` could issue one of them again in the same millisecond. Lost ids are at most one
  -- millisecond ahead of the clock (this rule), so start two ahead.
  local now = redis.call('TIME')
  local floor_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + 2
  if wanted == '*' or tonumber(string.match(wanted, '^(%d+)')) < floor_ms then
    wanted = floor_ms .. '-0'
  end
end
local id
if wanted ~= '*' then
  local taken = redis.pcall('XADD', KEYS[1], wanted, unpack(ARGV, 17))
  if type(taken) == 'string' then id = taken end  -- else not newer than the stream's newest
end
id = id or redis.call('XADD', KEYS[1], '*', unpack(ARGV, 17))
if fresh then redis.call('HSET', KEYS[2], 'created', id) end
if ARGV[3] == '1' then redis.call('SET', KEYS[5], id, 'EX', tonumber(ARGV[4])) end
if seen ~= replid then
  if failed_over and not fresh then redis.call('HSET', KEYS[2], 'gap', id) end
  redis.call('HSET', KEYS[2], 'rid', replid)
end
local excess = redis.call('XLEN', KEYS[1]) - tonumber(ARGV[1])
if excess >= 100 then
  local upto = '+'  -- the newest entry retention may drop
  local cursor = webhooks and redis.call('HGET', KEYS[12], 'cursor')
  if cursor then  -- undelivered entries stay until WEBHOOK_RETRY_S passed
    local now = redis.call('TIME')
    local young = (tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
                   - tonumber(ARGV[15])) .. '-0'
    upto = id_before(cursor, young) and ('(' .. young) or cursor
  end
  local oldest = redis.call('XRANGE', KEYS[1], '-', upto, 'COUNT', excess)
  if #oldest > 0 then
    local last = oldest[#oldest][1]
    redis.call('XTRIM', KEYS[1], 'MINID', id_next(last))
    redis.call('HSET', KEYS[2], 'trimmed', last)
    if cursor and id_before(cursor, last) then
      local expired = 0
      for _, entry in ipairs(oldest) do
        if id_before(cursor, entry[1])
            and (ARGV[16] == '' or field_of(entry[2], 'to') == ARGV[16]) then
          expired = expired + 1
        end
      end
      redis.call('HSET', KEYS[12], 'cursor', last)
      if expired > 0 then redis.call('HINCRBY', KEYS[12], 'expired', expired) end
    end
  end
end
local marked = 0
if ARGV[14] == '1' and redis.call('SET', KEYS[11], '1', 'NX') then marked = 1 end
local ts = string.match(id, '^(%d+)')
if ARGV[6] ~= '' then
  local copied = redis.pcall('XADD', KEYS[6], 'MAXLEN', '~', ARGV[1], id, unpack(ARGV, 17))
  if type(copied) ~= 'string' then  -- an inbox lost and started again with older ids
    redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, 17))
  end
  redis.call('ZADD', KEYS[7], ts, ARGV[6])
  if ARGV[7] == '1' then redis.call('HINCRBY', KEYS[8], ARGV[6], 1) end
end
redis.call('SPUBLISH', KEYS[3], ARGV[8] .. id .. ARGV[9] .. id .. ARGV[10] .. ts .. ARGV[11])
return {id, 1, marked}

-- Put before every script's body (scripts.py): helpers for stream ids and counting.
local function parse_id(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function id_before(a, b)  -- a < b
  local ams, aseq = parse_id(a)
  local bms, bseq = parse_id(b)
  return ams < bms or (ams == bms and aseq < bseq)
end
-- How many of the (at most `cap`) entries of `stream` after id `after` have `field` other than
-- `value`: `cap` when more than `cap` entries follow (the count is then "cap or more"); and the
-- stream's newest entry (or false). Reads at most `cap` + 1 entries, however long the stream.
local function count_after(stream, after, field, value, cap)
  local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1] or false
  local count, scanned = 0, 0
  local from = '(' .. after
  while newest and scanned < cap do
    local wanted = math.min(200, cap - scanned)
    local batch = redis.call('XRANGE', stream, from, '+', 'COUNT', wanted)
    for _, entry in ipairs(batch) do
      scanned = scanned + 1
      local fields = entry[2]
      for i = 1, #fields, 2 do
        if fields[i] == field then
          if fields[i + 1] ~= value then count = count + 1 end
          break
        end
      end
    end
    if #batch < wanted then return count, newest end
    from = '(' .. batch[#batch][1]
  end
  if newest and #redis.call('XRANGE', stream, from, '+', 'COUNT', 1) > 0 then
    return cap, newest
  end
  return count, newest
end
local function id_next(id)  -- the smallest id after `id`
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return ms .. '-' .. string.format('%.0f', tonumber(seq) + 1)
end
local function field_of(fields, name)  -- a stream entry's field, or false
  for i = 1, #fields, 2 do
    if fields[i] == name then return fields[i + 1] end
  end
  return false
end
-- Webhooks (outbox.py): append an event (type, user, action) to a room's side stream and set the
-- room's pending marker; 1 if the marker was not set before (the caller indexes the room).
local function record_event(side, marker, kind, user, action)
  redis.call('XADD', side, '*', 'k', kind, 'u', user, 'a', action)
  if redis.call('SET', marker, '1', 'NX') then return 1 end
  return 0
end

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
-- How many entries of `stream` after id `after` have `field` other than `value`, counted up to
-- `cap`; and the stream's newest entry (or false).
local function count_after(stream, after, field, value, cap)
  local newest = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1] or false
  local count = 0
  local from = '(' .. after
  while newest and count < cap do
    local batch = redis.call('XRANGE', stream, from, '+', 'COUNT', 200)
    for _, entry in ipairs(batch) do
      local fields = entry[2]
      for i = 1, #fields, 2 do
        if fields[i] == field then
          if fields[i + 1] ~= value then count = count + 1 end
          break
        end
      end
    end
    if #batch < 200 then break end
    from = '(' .. batch[#batch][1]
  end
  return math.min(count, cap), newest
end

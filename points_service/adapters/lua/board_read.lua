-- One read of one board (scores stored negated: see redis_boards.py), in one call.
-- KEYS[1] the board. ARGV[1] the mode:
--   "page", start, count        -> {members, {member, score, ...}, higher than the first}
--   "around", member, around [, profile head, field, name, field, name...]
--                               -> {members, position or false, score, higher, start,
--                                   {member, score, ...}, higher than the window's first
--                                   (with a profile head: the window and the fields
--                                   as JSON, below)}
--   "ranks", member...          -> {members, {score or false, higher}...}
-- "higher" counts members with a strictly higher score (a standard competition rank is
-- that plus one).
-- With a profile head, "around" also reads the display fields of each window member,
-- saving the caller a second round trip: the profile views (head .. member .. '}:v', one
-- MGET), and for a member without one its profile hash (head .. member .. '}:p'). Then
-- the window and the display fields come as JSON texts, which the caller decodes in one
-- step each: the window as [[member, score (not negated)]...], the fields as
-- [{name: value...}...] (absent ones left out). Those keys are not declared: one Redis
-- node only (on a cluster they are in other slots, and the adapter never passes a head
-- there).
local key, mode = KEYS[1], ARGV[1]
local members = redis.call('ZCARD', key)

local function higher(score)
  return redis.call('ZCOUNT', key, '-inf', '(' .. score)
end

local function window(start, count)
  local rows = redis.call('ZRANGE', key, start, start + count - 1, 'WITHSCORES')
  local first = 0
  if #rows > 0 and start > 0 then first = higher(rows[2]) end
  return rows, first
end

if mode == 'page' then
  local rows, first = window(tonumber(ARGV[2]), tonumber(ARGV[3]))
  return {members, rows, first}
elseif mode == 'around' then
  local position = redis.call('ZRANK', key, ARGV[2])
  if not position then return {members, false} end
  local score = redis.call('ZSCORE', key, ARGV[2])
  local around = tonumber(ARGV[3])
  local size = 2 * around + 1
  local start = math.max(0, math.min(position - around, members - size))
  local rows, first = window(start, size)
  local head = ARGV[4]
  if not head then return {members, position, score, higher(score), start, rows, first} end
  local fields, names, ids, views, placed = {}, {}, {}, {}, {}
  for i = 5, #ARGV, 2 do
    fields[#fields + 1], names[#names + 1] = ARGV[i], ARGV[i + 1]
  end
  for i = 1, #rows, 2 do
    ids[#ids + 1] = rows[i]
    views[#views + 1] = head .. rows[i] .. '}:v'
    placed[#placed + 1] = {rows[i], -tonumber(rows[i + 1])}
  end
  local display = redis.call('MGET', unpack(views))
  for i, view in ipairs(display) do
    if not view then  -- a profile written before views (or restored): its hash
      local values = redis.call('HMGET', head .. ids[i] .. '}:p', unpack(fields))
      local shown = {}
      for f = 1, #fields do
        if values[f] then shown[names[f]] = values[f] end
      end
      display[i] = cjson.encode(shown)
    end
  end
  return {members, position, score, higher(score), start, cjson.encode(placed), first,
          '[' .. table.concat(display, ',') .. ']'}
end
local out = {}
for i = 2, #ARGV do
  local score = redis.call('ZSCORE', key, ARGV[i])
  if score then out[#out + 1] = {score, higher(score)} else out[#out + 1] = {false, 0} end
end
return {members, out}

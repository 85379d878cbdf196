-- One read of one board (scores stored negated: see redis_boards.py), in one call.
-- KEYS[1] the board. ARGV[1] the mode:
--   "page", start, count        -> {members, "member\nscore\n...", higher than the
--                                   first, rows}: one bulk string, not two a member, is
--                                   less for Redis to write and the caller to read
--                                   (informant ids have no newline; the row count
--                                   tells the caller of a member that has one)
--   "rows", start, count        -> {members, {member, score, ...}, higher than the first}
--   "around", member, around [, profile head]
--                               -> {members, position or false, score, higher, start,
--                                   {member, score, ...}, higher than the window's first
--                                   (with a profile head: the window as a page's
--                                   text, and the fields as JSON, below)}
--   "ranks", member...          -> {members, {score or false, higher}...}
--   "display"                      with KEYS the n profile views, then the n profile
--                                   hashes (no board)  -> the fields as JSON
-- "higher" counts members with a strictly higher score (a standard competition rank is
-- that plus one).
-- Display fields (`shown`): each informant's profile view as it is (one MGET), or for one
-- without a view (written before views, or restored) the FIELDS of its hash under their
-- NAMES (both written in by redis_boards.py); one JSON text, [{name: value...}...]
-- (absent fields left out). One Redis node only: the keys are in many slots (on a
-- cluster the adapter pipelines HMGETs instead).
-- With a profile head, "around" also reads the display fields of each window member
-- (head .. member .. '}:v' and '}:p'; keys not declared, so one node only: the adapter
-- never passes a head on a cluster), saving the caller a second round trip; the window
-- then comes as one text, as a page does (never empty: the member is in it). Not as
-- cjson: it writes numbers with 14 digits, and a score past 10^14 came back rounded.
local mode = ARGV[1]
local FIELDS, NAMES = {--FIELDS--}, {--NAMES--}

local function shown(views, hashes)
  local found = redis.call('MGET', unpack(views))
  for i, view in ipairs(found) do
    if not view then
      local values = redis.call('HMGET', hashes[i], unpack(FIELDS))
      local one = {}
      for f = 1, #FIELDS do
        if values[f] then one[NAMES[f]] = values[f] end
      end
      found[i] = cjson.encode(one)
    end
  end
  return '[' .. table.concat(found, ',') .. ']'
end

if mode == 'display' then
  local n = #KEYS / 2
  return shown({unpack(KEYS, 1, n)}, {unpack(KEYS, n + 1)})
end

local key = KEYS[1]
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

if mode == 'page' or mode == 'rows' then
  local rows, first = window(tonumber(ARGV[2]), tonumber(ARGV[3]))
  if mode == 'rows' then return {members, rows, first} end
  return {members, table.concat(rows, '\n'), first, #rows}
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
  local views, hashes = {}, {}
  for i = 1, #rows, 2 do
    views[#views + 1] = head .. rows[i] .. '}:v'
    hashes[#hashes + 1] = head .. rows[i] .. '}:p'
  end
  return {members, position, score, higher(score), start, table.concat(rows, '\n'), first,
          shown(views, hashes)}
end
local out = {}
for i = 2, #ARGV do
  local score = redis.call('ZSCORE', key, ARGV[i])
  if score then out[#out + 1] = {score, higher(score)} else out[#out + 1] = {false, 0} end
end
return {members, out}

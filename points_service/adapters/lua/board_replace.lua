-- Replace a board with these members in one step (a rebuild). KEYS[1] its shadow key,
-- KEYS[2] the board (one slot: the board's hash tag). ARGV[1] JSON {member: score...}
-- with scores already negated (see redis_boards.py). No members: the board is removed.
local members = cjson.decode(ARGV[1])
redis.call('DEL', KEYS[1])
local args, count = {}, 0
for member, score in pairs(members) do
  args[#args + 1] = score
  args[#args + 1] = member
  count = count + 1
  if #args >= 1000 then
    redis.call('ZADD', KEYS[1], unpack(args))
    args = {}
  end
end
if #args > 0 then redis.call('ZADD', KEYS[1], unpack(args)) end
-- UNLINK first: a large old board is freed in the background, not inside this call.
redis.call('UNLINK', KEYS[2])
if count > 0 then redis.call('RENAME', KEYS[1], KEYS[2]) end
return count

-- Add to leaderboards. KEYS: the boards; ARGV[1]: JSON [[board index, member, delta]...]
-- with deltas already negated (scores are stored negated: see redis_boards.py). On one
-- Redis node a call carries many boards; on a cluster, one (so that no call touches two
-- slots).
local writes = cjson.decode(ARGV[1])
for _, w in ipairs(writes) do
  redis.call('ZINCRBY', KEYS[w[1]], w[3], w[2])
end
return #writes

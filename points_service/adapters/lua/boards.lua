-- Add to leaderboards. KEYS: the boards. ARGV, board by board in KEYS order: the number
-- of its writes, then each write's member and delta (already negated: scores are stored
-- negated, see redis_boards.py). On one Redis node a call carries many boards; on a
-- cluster, one (so that no call touches two slots).
--
-- Flat string arguments, not JSON: nothing to decode, and a delta goes to ZINCRBY as the
-- string it came as (Redis 7.0 formats a Lua number argument with snprintf "%.17g").
local i, written = 1, 0
for k = 1, #KEYS do
  local key, n = KEYS[k], tonumber(ARGV[i])
  for j = i + 1, i + 2 * n, 2 do
    redis.call('ZINCRBY', key, ARGV[j + 1], ARGV[j])
  end
  i = i + 1 + 2 * n
  written = written + n
end
return written

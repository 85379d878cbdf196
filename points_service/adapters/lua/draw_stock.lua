-- Put a draw's stock hash back from what the ledger recorded, unless it is there.
-- KEYS[1] the draw's stock hash; ARGV field, value, ... (n, sp, u:<prize>)
-- Returns 1 when written, 0 when it was there.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1

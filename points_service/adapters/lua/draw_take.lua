-- A lottery draw's outcome, in the draw's own slot (its stock and budget are global):
-- once per draw id, the next seq and the prize the pick gives, with the stock and the
-- budget taken in the same step. domain/draws.py `resolve` is the same function.
-- KEYS[1] the draw's stock hash (n: seq, sp: budget spent, u:<prize>: given out),
-- KEYS[2] outcomes by draw id
-- ARGV[1] draw id, ARGV[2] pick, ARGV[3] JSON {b: budget, ps: [[id, running weight,
-- quantity, value, 1 if no prize], ...]}, ARGV[4] outcomes ttl seconds
-- Returns {0 new | 1 known, JSON {n, p, k, f}} or {3 no stock hash | 4 sold out |
-- 5 budget exhausted, ''}
local known = redis.call('HGET', KEYS[2], ARGV[1])
if known then
  return {1, known}
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {3, ''}
end
local t = cjson.decode(ARGV[3])
local left = t.b - tonumber(redis.call('HGET', KEYS[1], 'sp') or '0')
local used = {}
local none = nil
local stocked, winnable = false, false
for i, p in ipairs(t.ps) do
  if p[5] == 1 then
    none = i
  else
    used[i] = tonumber(redis.call('HGET', KEYS[1], 'u:' .. p[1]) or '0')
    if used[i] < p[3] then
      stocked = true
      if p[4] <= left then
        winnable = true
      end
    end
  end
end
if not winnable then
  if stocked then
    return {5, ''}
  end
  return {4, ''}
end
local pick = tonumber(ARGV[2])
local chosen = nil
for i, p in ipairs(t.ps) do
  if pick < p[2] then
    chosen = i
    break
  end
end
local fallback = 0
local p = t.ps[chosen]
if p[5] ~= 1 and (used[chosen] >= p[3] or p[4] > left) then
  chosen = none
  fallback = 1
  p = t.ps[chosen]
end
local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
if p[5] ~= 1 then
  redis.call('HINCRBY', KEYS[1], 'u:' .. p[1], 1)
  redis.call('HINCRBY', KEYS[1], 'sp', p[4])
end
local record = cjson.encode({n = n, p = p[1], k = ARGV[2], f = fallback})
redis.call('HSET', KEYS[2], ARGV[1], record)
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
return {0, record}

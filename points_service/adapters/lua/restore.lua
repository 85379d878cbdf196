-- Put one informant's state back from the ledger (after Redis lost it), atomically.
-- KEYS[1] state hash, KEYS[2] for-ever dedup set, KEYS[3] profile hash, KEYS[4] its view
--         (the display fields as one JSON text), KEYS[5..] the day hashes of every day
--         the grace window still reaches
-- ARGV[1] JSON {"b": balance, "e": earned, "sk": streak, "sd": streak day,
--               "x": [for-ever dedup members], "d": [[KEYS index, [field, value, ...]]],
--               "t": day-key ttl seconds, "p": [profile field, value, ...] (absent: no
--               profile), "f": true to overwrite a state that is there}
-- Returns 1 when it wrote, 0 when the informant has a state already (another request
-- restored it first) and "f" is not set. Without "f" a profile hash that is there is
-- kept: the profiles use case wrote it after the loss, from the same SQL truth.
local req = cjson.decode(ARGV[1])
if not req.f and redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local profile_there = redis.call('EXISTS', KEYS[3]) == 1
redis.call('DEL', unpack(KEYS, 1, 2))
if #KEYS > 4 then
  redis.call('DEL', unpack(KEYS, 5, #KEYS))
end
redis.call('HSET', KEYS[1], 'b', req.b, 'e', req.e, 'sk', req.sk, 'sd', req.sd)
local members = req.x or {}
for i = 1, #members, 1000 do
  redis.call('SADD', KEYS[2], unpack(members, i, math.min(i + 999, #members)))
end
for _, d in ipairs(req.d or {}) do
  local fields = d[2]
  for i = 1, #fields, 1000 do
    redis.call('HSET', KEYS[d[1]], unpack(fields, i, math.min(i + 999, #fields)))
  end
  redis.call('EXPIRE', KEYS[d[1]], req.t)
end
if req.f or not profile_there then
  -- the view would show the old fields: readers fall back to the hash until
  -- set_profile writes the view again
  redis.call('DEL', KEYS[3], KEYS[4])
  if req.p and #req.p > 0 then
    redis.call('HSET', KEYS[3], unpack(req.p))
  end
end
return 1

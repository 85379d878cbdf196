-- Take back what one apply.lua decision changed, when its ledger commit failed: the
-- event was not acknowledged, so it must leave no trace; the client's retry applies it
-- afresh. Only the decision stored under the event id is undone (a different body, or
-- none, means there is nothing of this event's to take back).
--
-- KEYS[1] state hash, KEYS[2] for-ever dedup set, KEYS[3] idempotency string,
-- KEYS[4] day hash
-- ARGV[1] JSON {"h": body hash, "a": action, "t": total points, "late": bool,
--               "ps": [streak, streak day] or absent,
--               "r": [[rule id, points, dedup member or "", for ever 0|1], ...]}
-- Returns 1 when undone, 0 when there was nothing to undo.
-- (0 - x, never -x: Lua's -0 reaches Redis as "-0", which HINCRBY refuses.)
local known = redis.call('GET', KEYS[3])
if not known then
  return 0
end
local req = cjson.decode(ARGV[1])
if cjson.decode(known).h ~= req.h then
  return 0
end
for _, r in ipairs(req.r or {}) do  -- omitted when empty
  redis.call('HINCRBY', KEYS[4], 'n:' .. r[1], -1)
  redis.call('HINCRBY', KEYS[4], 'p:' .. r[1], 0 - r[2])
  if r[3] ~= '' then
    if r[4] == 1 then
      redis.call('SREM', KEYS[2], r[3])
    else
      redis.call('HDEL', KEYS[4], 'x:' .. r[3])
    end
  end
end
if not req.late then
  redis.call('HINCRBY', KEYS[4], 'a:' .. req.a, -1)
  redis.call('HINCRBY', KEYS[4], 'ap:' .. req.a, 0 - req.t)
end
redis.call('HINCRBY', KEYS[1], 'b', 0 - req.t)
redis.call('HINCRBY', KEYS[1], 'e', 0 - req.t)
if req.ps then
  redis.call('HSET', KEYS[1], 'sk', req.ps[1], 'sd', req.ps[2])
end
redis.call('DEL', KEYS[3])
return 1

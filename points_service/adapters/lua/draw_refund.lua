-- Give back a held draw's cost (draw_hold.lua) when the draw refused it (sold out, or
-- budget exhausted): only a record still "held" with this body is refunded, once.
-- KEYS[1] state hash, KEYS[2] the draw id's record, KEYS[3] the day counter it counted in
-- ARGV[1] body hash
-- Returns 1 when refunded, 0 when there was nothing to refund.
local known = redis.call('GET', KEYS[2])
if not known then
  return 0
end
local record = cjson.decode(known)
if record.h ~= ARGV[1] or record.s ~= 'held' then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'b', record.c)
redis.call('DECR', KEYS[3])
redis.call('DEL', KEYS[2])
return 1

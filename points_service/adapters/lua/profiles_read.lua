-- Display fields of many informants' profile hashes in one call (one Redis node only:
-- the keys are in many slots; on a cluster the adapter pipelines HMGETs instead).
-- KEYS: profile hashes; ARGV: the fields.
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('HMGET', key, unpack(ARGV))
end
return out

-- Display fields of many informants in one call (one Redis node only: the keys are in
-- many slots; on a cluster the adapter pipelines HMGETs instead).
-- KEYS: the n profile views, then the n profile hashes, in the same order.
-- ARGV: hash field, name, hash field, name...
-- Returns one JSON text, [{name: value...}...] (absent fields left out): each view as it
-- is, or for an informant without one, the fields of its hash.
local n = #KEYS / 2
local views = redis.call('MGET', unpack(KEYS, 1, n))
local fields, names = {}, {}
for i = 1, #ARGV, 2 do
  fields[#fields + 1], names[#names + 1] = ARGV[i], ARGV[i + 1]
end
for i, view in ipairs(views) do
  if not view then
    local values = redis.call('HMGET', KEYS[n + i], unpack(fields))
    local shown = {}
    for f = 1, #fields do
      if values[f] then shown[names[f]] = values[f] end
    end
    views[i] = cjson.encode(shown)
  end
end
return '[' .. table.concat(views, ',') .. ']'

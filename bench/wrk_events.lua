-- wrk script for bench/credit_load.py: every request carries fresh events.
--
-- wrk -s bench/wrk_events.lua URL -- MODE TAG INFORMANTS CONTENTS BATCH MIX
--   MODE        single (one event per body) | batch ({"events": [BATCH events]})
--   TAG         makes event ids unique across runs; each thread adds its number and a counter
--   INFORMANTS  informant ids are inf1..infN; CONTENTS: content ids c1..cN, share ids s1..sN
--   MIX         action=weight=field+field;... where the fields are those the action requires
--
-- POINTS_BENCH_RATE (with POINTS_BENCH_THREADS, wrk's -t) in the environment makes it
-- an open loop at that many requests a second: latency from when each request was due
-- (open_loop.lua). Unset, each connection sends its next request as soon as it has an
-- answer.
--
-- done() prints one line, "BENCH {json}", that credit_load.py reads: the request count,
-- socket errors, latency percentiles (microseconds), events accepted, and every non-2xx
-- status (or refused batch item) with a sample body; in an open loop also
-- open_loop.summary's fields.

package.path = debug.getinfo(1, "S").source:match("^@(.*/)") .. "?.lua;" .. package.path
local open_loop = require("open_loop")

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
-- The API key (bench/credit_load.py makes one per run and passes it here).
local auth = os.getenv("POINTS_BENCH_AUTH")
if auth then
  wrk.headers["Authorization"] = auth
end

local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
  thread:set("tid", #threads)
end

-- Read back by done() through thread:get, so global, and flat: wrk 4.1 crashes copying a
-- nested table. Non-2xx answers are counted under "http_<status>".
stats = { ok = 0, events = 0, rejected = 0, unparsed = 0 }

local mode, tag, informants, contents, batch
local actions, total_weight = {}, 0
local counter = 0
local second, stamp = -1, ""

function init(args)
  mode, tag = args[1], args[2] .. "-" .. tid .. "-"
  informants, contents, batch = tonumber(args[3]), tonumber(args[4]), tonumber(args[5])
  for spec in string.gmatch(args[6], "[^;]+") do
    local name, weight, fields = string.match(spec, "^([%w_]+)=(%d+)=(.*)$")
    local wanted = {}
    for f in string.gmatch(fields, "[%w_]+") do
      wanted[#wanted + 1] = f
    end
    total_weight = total_weight + tonumber(weight)
    actions[#actions + 1] = { name = name, upto = total_weight, fields = wanted }
  end
  math.randomseed(os.time() * 1000 + tid)
end

local function now()
  local t = os.time()
  if t ~= second then
    second, stamp = t, os.date("!%Y-%m-%dT%H:%M:%SZ", t)
  end
  return stamp
end

local function value(f)
  if f == "content_id" then
    return "c" .. math.random(contents)
  elseif f == "share_id" then
    return "s" .. math.random(contents)
  end
  return "inf" .. math.random(informants) -- viewer_id
end

local function event()
  counter = counter + 1
  local roll = math.random(total_weight)
  local action = actions[#actions]
  for _, a in ipairs(actions) do
    if roll <= a.upto then
      action = a
      break
    end
  end
  local parts = {
    '{"event_id":"', tag, counter, '","informant_id":"inf', math.random(informants),
    '","action":"', action.name, '","occurred_at":"', now(), '"',
  }
  for _, f in ipairs(action.fields) do
    parts[#parts + 1] = ',"' .. f .. '":"' .. value(f) .. '"'
  end
  parts[#parts + 1] = "}"
  return table.concat(parts)
end

local rate = tonumber(os.getenv("POINTS_BENCH_RATE") or "")
local stamp, answered
if rate then -- wrk looks for delay() once, when it loads the script
  delay, stamp, answered = open_loop.start(rate, tonumber(os.getenv("POINTS_BENCH_THREADS")))
end

function request()
  if mode == "batch" then
    local events = {}
    for i = 1, batch do
      events[i] = event()
    end
    return wrk.format(nil, nil, stamp and stamp(), '{"events":[' .. table.concat(events, ",") .. "]}")
  end
  return wrk.format(nil, nil, stamp and stamp(), event())
end

function response(status, headers, body)
  if answered then
    answered(headers)
  end
  if status < 200 or status > 299 then
    local key = "http_" .. status
    stats[key] = (stats[key] or 0) + 1
    stats.sample = stats.sample or body
    return
  end
  stats.ok = stats.ok + 1
  if mode ~= "batch" then
    stats.events = stats.events + 1
    return
  end
  local accepted, rejected = string.match(body, '"accepted":(%d+),"rejected":(%d+)}%s*$')
  if not accepted then
    stats.unparsed = stats.unparsed + 1
    stats.sample = stats.sample or body
    return
  end
  stats.events = stats.events + tonumber(accepted)
  stats.rejected = stats.rejected + tonumber(rejected)
  if tonumber(rejected) > 0 and not stats.item then
    stats.item = string.match(body, '{"index":%d+,"status":%d+,"error":%b{}}')
  end
end

local function quote(s)
  return '"' .. string.gsub(s, '[%c"\\]', function(c)
    return string.format("\\u%04x", string.byte(c))
  end) .. '"'
end

function done(summary, latency, requests)
  local total = { ok = 0, events = 0, rejected = 0, unparsed = 0 }
  local statuses, sample, item = {}, nil, nil
  for _, thread in ipairs(threads) do
    local s = thread:get("stats")
    for k in pairs(total) do
      total[k] = total[k] + s[k]
    end
    for key, n in pairs(s) do
      local status = string.match(key, "^http_(%d+)$")
      if status then
        statuses[status] = (statuses[status] or 0) + n
      end
    end
    sample, item = sample or s.sample, item or s.item
  end
  local non2xx = {}
  for status, n in pairs(statuses) do
    non2xx[#non2xx + 1] = quote(status) .. ":" .. n
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"ok":%d,"events":%d,"rejected":%d,"unparsed":%d,'
      .. '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},'
      .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"non2xx":{%s},'
      .. '"sample":%s,"item":%s%s}\n',
    summary.requests, summary.duration, total.ok, total.events, total.rejected, total.unparsed,
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    table.concat(non2xx, ","),
    sample and quote(string.sub(sample, 1, 600)) or "null",
    item and quote(item) or "null",
    rate and open_loop.summary(threads) or ""
  ))
end

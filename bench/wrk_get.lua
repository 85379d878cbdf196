-- wrk script for bench/board_load.py: GETs, optionally with a random member id.
--
-- wrk -s bench/wrk_get.lua URL -- PATH [MEMBERS]
--   PATH     the request path; "{id}" in it becomes m<random 1..MEMBERS>
-- POINTS_BENCH_RATE (with POINTS_BENCH_THREADS, wrk's -t) in the environment makes it
-- an open loop at that many requests a second: latency from when each request was due
-- (open_loop.lua). Unset, there is no delay() at all (wrk then sends each request at
-- once, not through a timer).
--
-- done() prints one line, "BENCH {json}": requests, duration, latency percentiles
-- (microseconds), socket errors and every non-2xx status with a sample body; in an open
-- loop also open_loop.summary's fields.

package.path = debug.getinfo(1, "S").source:match("^@(.*/)") .. "?.lua;" .. package.path
local open_loop = require("open_loop")

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

stats = { ok = 0 }
local path, members

function init(args)
  path, members = args[1], tonumber(args[2] or "0")
  math.randomseed(os.time() * 1000 + tid)
end

-- wrk looks for delay() once, when it loads the script: define it only when pacing.
local rate = tonumber(os.getenv("POINTS_BENCH_RATE") or "")
local stamp, answered
if rate then
  delay, stamp, answered = open_loop.start(rate, tonumber(os.getenv("POINTS_BENCH_THREADS")))
end

function request()
  local p = path
  if members > 0 then
    p = string.gsub(path, "{id}", "m" .. math.random(1, members))
  end
  return wrk.format("GET", p, stamp and stamp())
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
end

local function quote(s)
  return '"' .. string.gsub(s, '[%c"\\]', function(c)
    return string.format("\\u%04x", string.byte(c))
  end) .. '"'
end

function done(summary, latency, requests)
  local ok, statuses, sample = 0, {}, nil
  for _, thread in ipairs(threads) do
    local s = thread:get("stats")
    ok = ok + s.ok
    for key, n in pairs(s) do
      local status = string.match(key, "^http_(%d+)$")
      if status then
        statuses[status] = (statuses[status] or 0) + n
      end
    end
    sample = sample or s.sample
  end
  local non2xx = {}
  for status, n in pairs(statuses) do
    non2xx[#non2xx + 1] = quote(status) .. ":" .. n
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"ok":%d,'
      .. '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},'
      .. '"p50_us":%d,"p99_us":%d,"non2xx":{%s},"sample":%s%s}\n',
    summary.requests, summary.duration, ok, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), table.concat(non2xx, ","),
    sample and quote(string.sub(sample, 1, 600)) or "null", rate and open_loop.summary(threads) or ""
  ))
end

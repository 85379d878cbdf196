-- An open loop for the bench's wrk scripts (wrk_get.lua, wrk_events.lua), as wrk2 does
-- it (wrk2 is not packaged here): requests are due on a fixed schedule, one every
-- THREADS/RATE seconds per wrk thread, whenever the answers come. A request is sent when
-- it is due and a connection is free, and its latency counts from when it was due, so a
-- stall is charged to every request due during it, not only to the few in flight. wrk's
-- timer has whole milliseconds and may fire early: such a request counts from its send.
--
-- Each request carries its due time in X-Request-ID, which the service answers with, so
-- each answer is paired with its own request whichever connection carried it.
--
--   local open_loop = require("open_loop")
--   delay, stamp, answered = open_loop.start(rate, threads)   -- in init()
--   request(): wrk.format(method, path, stamp(), body)         -- the headers to send
--   response(status, headers, body): answered(headers)
--   done(): open_loop.summary(threads) -> ',"timed":...' for the BENCH line
--
-- Latencies go in histograms (10 us buckets up to 100 ms, 1 ms ones beyond), kept as
-- flat globals per thread (wrk copies them to done() through thread:get).

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock, bench_timespec *out);
]]

local M = {}
local BUCKET_US, FINE = 10, 10000
local ts = ffi.new("bench_timespec")

local function now_us()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000000 + tonumber(ts.tv_nsec) / 1000
end

local function record(into, us)
  local b = math.floor(us / BUCKET_US)
  if b >= FINE then
    b = FINE + math.floor((us - FINE * BUCKET_US) / 1000)
  end
  into[b] = (into[b] or 0) + 1
end

function M.start(rate, threads)
  open_timed, open_late = {}, {} -- globals: done() reads them from each thread
  local interval = 1000000 * threads / rate
  local first_due, claimed, due = nil, 0, {}

  -- A connection about to send claims the next slot of the schedule and waits for it.
  local function delay()
    first_due = first_due or now_us()
    local slot = first_due + claimed * interval
    claimed = claimed + 1
    due[#due + 1] = slot
    return math.max(0, math.floor((slot - now_us()) / 1000))
  end

  -- The headers of the request about to go: wrk.headers and the earliest slot not yet
  -- sent (it is due: the sending connection's own slot is no earlier). One table, made
  -- once: wrk.format reads it at once, and takes it instead of wrk.headers.
  local headers
  local function stamp()
    if not headers then
      headers = {}
      for name, value in pairs(wrk.headers) do
        headers[name] = value
      end
    end
    local now = now_us()
    local slot = table.remove(due, 1) or now
    if now > slot then
      record(open_late, now - slot)
    end
    headers["X-Request-ID"] = string.format("s%d", math.min(slot, now))
    return headers
  end

  local function answered(headers)
    local sent = tonumber(string.match(headers["x-request-id"] or "", "^s(%d+)$") or "")
    if sent then
      record(open_timed, now_us() - sent)
    end
  end

  return delay, stamp, answered
end

-- Percentiles (a bucket's upper edge, in us) of one histogram merged over the threads.
local function percentiles(threads, name, wanted)
  local merged, total, keys = {}, 0, {}
  for _, thread in ipairs(threads) do
    for b, n in pairs(thread:get(name)) do
      if not merged[b] then
        keys[#keys + 1] = b
      end
      merged[b] = (merged[b] or 0) + n
      total = total + n
    end
  end
  table.sort(keys)
  local out = {}
  for i, p in ipairs(wanted) do
    local want, seen = math.ceil(total * p / 100), 0
    out[i] = 0
    for _, b in ipairs(keys) do
      seen = seen + merged[b]
      if seen >= want then
        out[i] = b < FINE and (b + 1) * BUCKET_US or FINE * BUCKET_US + (b - FINE + 1) * 1000
        break
      end
    end
  end
  return total, out
end

-- The fields the BENCH line adds in an open loop: answers timed, latency from the due
-- time (p50, p99, p99.9), and how many requests wrk itself sent late, by how much (p99).
function M.summary(threads)
  local timed, at = percentiles(threads, "open_timed", { 50, 99, 99.9 })
  local late, late_at = percentiles(threads, "open_late", { 99 })
  return string.format(
    ',"timed":%d,"due_p50_us":%d,"due_p99_us":%d,"due_p999_us":%d,"late":%d,"late_p99_us":%d',
    timed, at[1], at[2], at[3], late, late_at[1]
  )
end

return M

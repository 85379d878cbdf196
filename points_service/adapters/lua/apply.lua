-- Apply event plans atomically, per informant: idempotency, dedup, caps, streak,
-- balance. The semantics are domain/engine.py `decide`, step for step; a test keeps the
-- two equal. Each group is one informant, whose keys share the informant's hash tag; on
-- Redis Cluster a call carries one group, so no call touches two slots. On one Redis
-- node a call may carry many groups (a whole batch in one script call).
--
-- ARGV[1] JSON {"t": day-key ttl seconds, "i": idempotency ttl seconds,
--               "m": 1 to refuse groups whose state hash is missing (see below),
--               "mk": index of the marker key (one Redis node only): while it exists,
--                     every informant the ledger knows has a state here, so a missing
--                     state is a new informant's and is not refused,
--               "rl": [limit, window number]: at most `limit` new events per informant
--                     in a rate window; past it an event is refused, unrecorded, so
--                     its retry after the window is judged as new (omitted: no limit),
--               "g": [{"s": state key index, "x": ever key index, "p": profile key index,
--                      "ev": [plans]}]}
-- KEYS: for each group its state hash (b balance, e earned, sk streak, sd streak day),
--       its set of for-ever dedup members, its profile hash (the informant's placement
--       and status, kept by the profiles use case), and the idempotency strings and day
--       hashes its plans name by index.
-- Returns, per group: {{one entry per plan: {0 | 1 (replay), decision JSON}
--                                           or {2, ''} (over the rate limit)},
--                      {province, city, county, institution, status} (false if unset)},
--          or 0 when "m" is set and the informant has no state hash: the caller puts
--          the state back from the ledger (restore.lua, an empty one for a new
--          informant) and calls again.
--
-- Each event reads the day fields it needs with one HMGET and writes them back with one
-- HSET: redis.call is the expensive part of a script, so the script makes few of them.
local req = cjson.decode(ARGV[1])
local groups = {}
-- Whole numbers go to redis.call as strings made with %d: Redis 7.0 formats a Lua number
-- argument with snprintf "%.17g", several times slower.
local fmt = string.format
local day_ttl, idem_ttl = fmt('%d', req.t), fmt('%d', req.i)

for _, g in ipairs(req.g) do
  local state, ever = KEYS[g.s], KEYS[g.x]
  -- rw rc: the informant's rate window and the new events counted in it.
  local st = redis.call('HMGET', state, 'b', 'e', 'sk', 'sd', 'rw', 'rc')
  if req.m == 1 and not (st[1] or st[2] or st[3] or st[4])
      and not (req.mk and redis.call('EXISTS', KEYS[req.mk]) == 1) then
    -- No state: new, or lost with Redis's data. The caller asks the ledger and calls
    -- again; nothing is judged on a state that may be missing.
    groups[#groups + 1] = 0
  else
    local out = {}
    local profile = redis.call('HMGET', KEYS[g.p], 'pv', 'ct', 'co', 'in', 'st')
    local balance = tonumber(st[1]) or 0
    local earned = tonumber(st[2]) or 0
    local streak = tonumber(st[3]) or 0
    local streak_day = tonumber(st[4]) or 0
    local changed = false
    local rl, rc = req.rl, 0
    if rl and tonumber(st[5]) == rl[2] then rc = tonumber(st[6]) or 0 end

    for _, ev in ipairs(g.ev) do
      local ikey = KEYS[ev.ik]
      local known = redis.call('GET', ikey)
      if known then
        out[#out + 1] = {1, known}
      elseif rl and not ev.dry and rc >= rl[1] then
        out[#out + 1] = {2, ''}
      else
        local write = not ev.dry
        local dkey = KEYS[ev.dk]
        local rules = ev.rules or {}
        local lines, c, total = {}, {0, 0, 0}, 0
        local sk, sd = streak, streak_day

        -- The day's fields this event can touch, read at once.
        local names = {'a:' .. ev.a, 'ap:' .. ev.a}
        for _, r in ipairs(rules) do
          names[#names + 1] = 'n:' .. r.r
          names[#names + 1] = 'p:' .. r.r
          if r.dk and not r.ever then
            names[#names + 1] = 'x:' .. r.dk
          end
        end
        local values = redis.call('HMGET', dkey, unpack(names))
        local day = {}
        for i, name in ipairs(names) do
          day[name] = tonumber(values[i]) or 0
        end
        local dirty = {}

        for _, r in ipairs(rules) do
          local handled = false
          if ev.late then
            lines[#lines + 1] = {r.r, 0, 'late', r.p}
            handled = true
          elseif r.skip then
            lines[#lines + 1] = {r.r, 0, r.skip, r.p}
            handled = true
          elseif r.dk then
            local seen
            if r.ever then
              seen = redis.call('SISMEMBER', ever, r.dk) == 1
            else
              seen = day['x:' .. r.dk] == 1
            end
            if seen then
              lines[#lines + 1] = {r.r, 0, 'duplicate', r.p}
              handled = true
            elseif write then
              if r.ever then
                redis.call('SADD', ever, r.dk)
              else
                dirty['x:' .. r.dk] = 1
              end
            end
          end
          if not handled then
            local count = day['n:' .. r.r]
            local used = day['p:' .. r.r]
            local points, reason = r.p, 'credited'
            local cc, pc = r.cc or -1, r.pc or -1
            if cc >= 0 and count >= cc then
              points, reason = 0, 'daily_cap'
            elseif pc >= 0 and used + points > pc then
              points, reason = math.max(0, pc - used), 'daily_cap'
            end
            dirty['n:' .. r.r] = count + 1
            dirty['p:' .. r.r] = used + points
            for _, idx in ipairs(r.ctr or {}) do
              c[idx + 1] = c[idx + 1] + 1
            end
            lines[#lines + 1] = {r.r, points, reason, r.p}
            total = total + points
            if r.ms and ev.day > sd then
              if sd == ev.day - 1 then sk = sk + 1 else sk = 1 end
              sd = ev.day
              for _, m in ipairs(r.ms) do
                if m[1] == sk then
                  lines[#lines + 1] = {r.r .. '.streak_' .. m[1], m[2], 'streak_bonus', m[2]}
                  total = total + m[2]
                end
              end
            end
          end
        end
        if #rules == 0 then
          local reason = 'no_active_rule'
          if ev.late then reason = 'late' end
          lines[#lines + 1] = {cjson.null, 0, reason, 0}
        end
        if write and not ev.late then
          dirty['a:' .. ev.a] = day['a:' .. ev.a] + 1
          dirty['ap:' .. ev.a] = day['ap:' .. ev.a] + total
          local args = {}
          for name, value in pairs(dirty) do
            args[#args + 1] = name
            args[#args + 1] = fmt('%d', value)
          end
          redis.call('HSET', dkey, unpack(args))
          redis.call('EXPIRE', dkey, day_ttl)
        end
        local ps = nil
        if sk ~= streak or sd ~= streak_day then ps = {streak, streak_day} end
        local decision = cjson.encode({h = ev.h, p = total, b = balance + total, l = lines,
          c = c, sk = sk, v = ev.v, day = ev.day, late = ev.late or false, ps = ps,
          e = earned + total})
        if write then
          balance = balance + total
          earned = earned + total
          streak, streak_day = sk, sd
          changed = true
          rc = rc + 1
          redis.call('SET', ikey, decision, 'EX', idem_ttl)
        end
        out[#out + 1] = {0, decision}
      end
    end

    if changed and rl then
      redis.call('HSET', state, 'b', fmt('%d', balance), 'e', fmt('%d', earned),
        'sk', fmt('%d', streak), 'sd', fmt('%d', streak_day), 'rw', fmt('%d', rl[2]),
        'rc', fmt('%d', rc))
    elseif changed then
      redis.call('HSET', state, 'b', fmt('%d', balance), 'e', fmt('%d', earned),
        'sk', fmt('%d', streak), 'sd', fmt('%d', streak_day))
    end
    groups[#groups + 1] = {out, profile}
  end
end
return groups

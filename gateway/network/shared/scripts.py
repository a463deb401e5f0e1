"""The Lua scripts of the shared store: each runs atomically on the Redis server, so that two roofs never
both take a frame, a DevNonce or a downlink counter."""

# The claim of one copy: append it to the frame's copies, take the lock if nobody has it.
# 1: this roof took the lock; 2: this roof had it already; 0: another roof has it.
CLAIM = """
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[3]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then return 2 end
return 0
"""

# A roof that handed a frame to another roof takes it over when no roof marked it done in time (the lock's
# holder died, e.g. SIGKILL, with the frame in its dedup window): 1 taken over, 0 it was processed or another
# roof took it over first (a lock taken over is marked with a leading '>').
TAKE_OVER = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, 1) == '>' then return 0 end
redis.call('SET', KEYS[1], '>' .. ARGV[1], 'PX', ARGV[2])
return 1
"""

# A batch's writes (ARGV[1] prefix, ARGV[2] JSON list of operations), all or nothing: every join is checked
# (device there, DevNonce unused, session not changed since it was read) before anything is written.
COMMIT = """
local p = ARGV[1]
local ops = cjson.decode(ARGV[2])
for i, op in ipairs(ops) do
  if op.op == 'activate' then
    local k = p .. 'dev:' .. op.eui
    if redis.call('EXISTS', k) == 0 then return redis.error_reply('NODEV ' .. op.eui) end
    if redis.call('SISMEMBER', p .. 'nonces:' .. op.eui, op.nonce) == 1 then
      return redis.error_reply('NONCE ' .. op.eui .. ' ' .. op.nonce)
    end
    local ep = tonumber(redis.call('HGET', k, 'epoch') or '0') or 0
    if ep + 1 ~= op.epoch then return redis.error_reply('EPOCH ' .. op.eui) end
  end
end
local out = {}
for i, op in ipairs(ops) do
  local k = p .. 'dev:' .. op.eui
  if op.op == 'fcnt' then
    local done = 0
    if redis.call('HGET', k, 'epoch') == tostring(op.epoch) then
      local cur = tonumber(redis.call('HGET', k, 'fcnt_up') or '')
      if cur == nil or op.f > cur then
        redis.call('HSET', k, 'fcnt_up', string.format('%d', op.f), 'last_seen', tostring(op.seen))
        done = 1
      end
    end
    out[i] = done
  elseif op.op == 'battery' then
    redis.call('HSET', k, 'battery', op.b, 'battery_at', tostring(op.at))
    out[i] = 1
  elseif op.op == 'activate' then
    local old = redis.call('HGET', k, 'dev_addr')
    if old and old ~= '' then redis.call('SREM', p .. 'addr:' .. old, op.eui) end
    redis.call('SADD', p .. 'nonces:' .. op.eui, op.nonce)
    redis.call('HSET', k, 'dev_addr', op.addr, 'nwk_s_key', op.nwk, 'app_s_key', op.app, 'fcnt_up', '',
      'fcnt_down', '0', 'epoch', op.epoch, 'rx1_delay', op.rx1_delay, 'rx1_dr_offset', op.rx1_dr_offset,
      'rx2_dr', op.rx2_dr, 'last_seen', tostring(op.now))
    redis.call('SADD', p .. 'addr:' .. op.addr, op.eui)
    out[i] = op.epoch
  end
end
return out
"""

# The devices of one DevAddr: [DevEUI, HGETALL as a flat list (or an error text), ...], one round trip.
AT_ADDR = """
local out = {}
for _, e in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local h = redis.pcall('HGETALL', ARGV[1] .. 'dev:' .. e)
  out[#out + 1] = e
  if type(h) == 'table' and h.err then out[#out + 1] = h.err else out[#out + 1] = h end
end
return out
"""

# The next downlink counter; never one handed out before (also not one a roof took and did not send).
FCNT_DOWN = """
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('NODEV') end
return redis.call('HINCRBY', KEYS[1], 'fcnt_down', 1) - 1
"""

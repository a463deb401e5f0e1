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
# Each counter raised leaves a marker ``applied:<DevAddr>:<FCnt16>`` (ARGV[3] ms) with the counter before it,
# deleted once the roof's own SQLite commit holds the frame: a roof killed between the two commits (or one
# that takes the frame over) finds it and accepts the frame once more instead of refusing it as a replay.
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
        local addr = redis.call('HGET', k, 'dev_addr')
        if addr and addr ~= '' and tonumber(ARGV[3]) > 0 then
          redis.call('SET', p .. 'applied:' .. addr .. ':' .. string.format('%d', op.f % 65536),
            cjson.encode({e = op.eui, ep = op.epoch, f = op.f, prev = cur or -1}), 'PX', ARGV[3])
        end
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

# A command into a device's queue (KEYS dlq, awaiting, expiry set, and optionally the command's id key;
# ARGV the command, the queue's limit, its expiry time, its member in the expiry set, and with the id key:
# its request, submission number, time and ttl in ms). Returns {'queued', commands waiting with it},
# {'full', commands waiting} (refused: the queue, with a command awaiting its ACK, is full) or, for the same
# id and request again within its ttl_s (an MQTT QoS 1 re-delivery), {'again', first number, first time}.
QUEUE = """
if KEYS[4] then
  local prev = redis.call('GET', KEYS[4])
  if prev then
    local ok, p = pcall(cjson.decode, prev)
    if ok and type(p) == 'table' and p.req == ARGV[5] then
      return {'again', tostring(p.seq), tostring(p.at)}
    end
  end
end
local n = redis.call('LLEN', KEYS[1]) + redis.call('EXISTS', KEYS[2])
if n >= tonumber(ARGV[2]) then return {'full', tostring(n)} end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
if KEYS[4] then
  redis.call('SET', KEYS[4], cjson.encode({req = ARGV[5], seq = ARGV[6], at = ARGV[7]}), 'PX', ARGV[8])
end
return {'queued', tostring(n + 1)}
"""

# What goes down after a device's uplink (KEYS dlq, awaiting; ARGV the uplink's ACK bit, now, the attempts
# of a confirmed command): a flat list of (event, JSON) pairs. A confirmed command awaiting its ACK is
# 'acked' (the uplink has the ACK bit), 'failed' (out of attempts), 'expired_aw' or sent 'again'; otherwise
# the queue's next command ('next'), expired ones on the way ('expired'). Last: 'more' and how many wait.
TAKE = """
local now = tonumber(ARGV[2])
local out = {}
local aw = redis.call('GET', KEYS[2])
if aw then
  local ok, a = pcall(cjson.decode, aw)
  if not ok or type(a) ~= 'table' or type(a.raw) ~= 'string' then
    redis.call('DEL', KEYS[2]); out[#out + 1] = 'damaged'; out[#out + 1] = aw; aw = nil
  elseif ARGV[1] == '1' then
    redis.call('DEL', KEYS[2]); out[#out + 1] = 'acked'; out[#out + 1] = aw; aw = nil
  elseif tonumber(a.exp) and tonumber(a.exp) <= now then
    redis.call('DEL', KEYS[2]); out[#out + 1] = 'expired_aw'; out[#out + 1] = aw; aw = nil
  elseif (tonumber(a.attempts) or 0) >= tonumber(ARGV[3]) then
    redis.call('DEL', KEYS[2]); out[#out + 1] = 'failed'; out[#out + 1] = aw; aw = nil
  end
end
if aw then
  out[#out + 1] = 'again'; out[#out + 1] = aw
else
  while true do
    local raw = redis.call('LPOP', KEYS[1])
    if not raw then break end
    local ok, c = pcall(cjson.decode, raw)
    if ok and type(c) == 'table' and tonumber(c.exp) and tonumber(c.exp) <= now then
      out[#out + 1] = 'expired'; out[#out + 1] = raw
    else
      out[#out + 1] = 'next'; out[#out + 1] = raw
      break
    end
  end
end
out[#out + 1] = 'more'; out[#out + 1] = tostring(redis.call('LLEN', KEYS[1]))
return out
"""

# Commands whose ttl_s ran out (KEYS the expiry set; ARGV prefix, now, how many at most), taken out of their
# queue or their wait for an ACK by exactly one roof: a flat list of (event, JSON) pairs as TAKE's. A member
# is "<DevEUI> <command>"; one whose command went out meanwhile is only dropped from the set.
EXPIRE = """
local p = ARGV[1]
local out = {}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, m in ipairs(due) do
  redis.call('ZREM', KEYS[1], m)
  local sp = string.find(m, ' ', 1, true)
  if sp then
    local eui, raw = string.sub(m, 1, sp - 1), string.sub(m, sp + 1)
    if redis.call('LREM', p .. 'dlq:' .. eui, 1, raw) == 1 then
      out[#out + 1] = 'expired'; out[#out + 1] = raw
    else
      local aw = redis.call('GET', p .. 'awaiting:' .. eui)
      if aw then
        local ok, a = pcall(cjson.decode, aw)
        if ok and type(a) == 'table' and a.raw == raw then
          redis.call('DEL', p .. 'awaiting:' .. eui)
          out[#out + 1] = 'expired_aw'; out[#out + 1] = aw
        end
      end
    end
  end
end
return out
"""

"""The Lua scripts behind ``RedisStore``: every write (and every multi-key read) is one script.

A script runs atomically on the server, so two hub instances can never interleave inside one. Redis
does not roll a script back when it fails half-way, so the writing scripts check everything first and
only then write. Float values travel as Python ``repr`` strings and are written back unchanged:
Lua's ``tostring`` keeps only 14 digits, so numbers are never formatted in Lua (``tonumber`` is only
used to compare and sort, which is exact).

``ARGV[1]`` is always the key prefix. The fixed index keys arrive as ``KEYS``; per-record keys are
``prefix .. 'outbox:' .. id`` and so on, built inside the scripts (one Redis server, not a cluster).
"""

from __future__ import annotations

__all__ = [
    "ACCEPT",
    "CLAIM",
    "LIST_DEAD",
    "NEXT_DUE",
    "NEXT_NUMBER",
    "PUT_RESOURCES",
    "RECORD",
    "RELEASE",
    "REPAIR_ORDER",
    "REPLAY",
    "SNAPSHOT",
    "STATS",
]

# A resource travels as a list of 9 values: key suffix, kind, id, client_id, body, transaction_id, has
# transaction_id ('1'/'0'), created_at, updated_at. An existing resource keeps client_id and
# created_at (the SQLite upsert updates body, transaction_id and updated_at only).
_PUT_RESOURCE = """
local function put_resource(P, r)
  local key = P .. 'resource:' .. r[1]
  if redis.call('EXISTS', key) == 1 then
    redis.call('HSET', key, 'body', r[5], 'updated_at', r[9])
  else
    redis.call('HSET', key, 'kind', r[2], 'id', r[3], 'client_id', r[4], 'body', r[5], 'created_at', r[8],
      'updated_at', r[9])
  end
  if r[7] == '1' then
    redis.call('HSET', key, 'transaction_id', r[6])
  else
    redis.call('HDEL', key, 'transaction_id')
  end
end
"""

# An entry with an order key is queued in ``order:{key}`` (scored by ``order-seq``) and is in
# ``pending`` only while it is the queue's head: the others are held until the entries before them
# are done or dead. Returns whether the entry is now the head.
_ENQUEUE = """
local function enqueue(P, id, okey)
  if okey == nil or okey == false or okey == '' then return true end
  local seq = redis.call('INCR', P .. 'order-seq')
  redis.call('HSET', P .. 'outbox:' .. id, 'order_seq', seq)
  redis.call('SADD', P .. 'order-queues', okey)
  local q = P .. 'order:' .. okey
  local first = redis.call('ZCARD', q) == 0
  redis.call('ZADD', q, seq, id)
  return first
end
"""

# KEYS: pending, dead, waiting, then the keys of records written along with the work (the idempotency
# record answering for it, the audit log's pending list). ARGV: prefix, transaction id, and the work
# as one MessagePack array of four arrays (every value in them a string):
# 1. the transaction's field/value pairs;
# 2. its resources, each the 9 values of put_resource then '1' when it may only be created, '2' when
#    only with the same body, '0' otherwise;
# 3. its outbox entries, each: id, transaction_id, state, next_attempt_at, created_at, order key ('' for
#    none), then the entry's field/value pairs as one array;
# 4. per extra key: 'set' with a value and its time to live in ms, or 'push' with a value to append to
#    a list (and '').
# Why one packed argument instead of ~95 plain ones: packing each argument into the command costs the
# hub ~0.2 us in hiredis (17 us of an accepted journal's ~280 us); MessagePack packs the same values
# in ~1 us and the script unpacks them on the server.
ACCEPT = (
    _PUT_RESOURCE
    + _ENQUEUE
    + """
local P, txn = ARGV[1], ARGV[2]
local work = cmsgpack.unpack(ARGV[3])
local fields, resources, entries, extras = work[1], work[2], work[3], work[4]
local tkey = P .. 'txn:' .. txn
if redis.call('EXISTS', tkey) == 1 then return redis.error_reply('ERR duplicate transaction ' .. txn) end
for _, r in ipairs(resources) do  -- never another client's; flag 1: create only; flag 2: only with the same body
  local owner = redis.call('HGET', P .. 'resource:' .. r[1], 'client_id')
  if owner and owner ~= r[4] then
    return redis.error_reply('ERR resource-taken belongs to another client ' .. r[2] .. ' ' .. r[3])
  end
  if owner and r[10] == '1' then
    return redis.error_reply('ERR resource-taken exists already ' .. r[2] .. ' ' .. r[3])
  end
  if owner and r[10] == '2' and redis.call('HGET', P .. 'resource:' .. r[1], 'body') ~= r[5] then
    return redis.error_reply('ERR resource-taken exists with another body ' .. r[2] .. ' ' .. r[3])
  end
end
local seen = {}
for _, e in ipairs(entries) do
  local id, owner = e[1], e[2]
  if seen[id] or redis.call('EXISTS', P .. 'outbox:' .. id) == 1 then
    return redis.error_reply('ERR duplicate outbox entry ' .. id)
  end
  if owner ~= txn and redis.call('EXISTS', P .. 'txn:' .. owner) == 0 then
    return redis.error_reply('ERR outbox entry ' .. id .. ' names an unknown transaction')
  end
  seen[id] = true
end
redis.call('HSET', tkey, unpack(fields))
for _, r in ipairs(resources) do put_resource(P, r) end
for _, e in ipairs(entries) do
  local id, state = e[1], e[3]
  redis.call('HSET', P .. 'outbox:' .. id, unpack(e[7]))
  redis.call('SADD', P .. 'txn-outbox:' .. e[2], id)
  if state == 'pending' and enqueue(P, id, e[6]) then redis.call('ZADD', KEYS[1], e[4], id) end
  if state == 'dead' then redis.call('ZADD', KEYS[2], 0, id) end
  if state == 'pending' or state == 'in_flight' then redis.call('ZADD', KEYS[3], e[5], id) end
end
for k = 4, #KEYS do
  local extra = extras[k - 3]
  if extra[1] == 'set' then redis.call('SET', KEYS[k], extra[2], 'PX', extra[3])
  else redis.call('RPUSH', KEYS[k], extra[2]) end
end
return 1
"""
)

# ARGV: prefix, then 10 values per resource (as for ACCEPT; the write-condition flag is not read).
PUT_RESOURCES = (
    _PUT_RESOURCE
    + """
for i = 2, #ARGV, 10 do put_resource(ARGV[1], {unpack(ARGV, i, i + 8)}) end
return 1
"""
)

# KEYS: pending, inflight, lease-token counter. ARGV: prefix, now, limit, lease_until, owner.
# Due pending entries and expired leases, ordered by next_attempt_at (then id), one fresh token.
CLAIM = """
local P, now, limit = ARGV[1], ARGV[2], tonumber(ARGV[3])
if limit <= 0 then return {} end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
if #due == 0 and #expired == 0 then return {} end
local picked = {}
for k = 1, #due, 2 do picked[#picked + 1] = {due[k], tonumber(due[k + 1])} end
for _, id in ipairs(expired) do
  local at = redis.call('HGET', P .. 'outbox:' .. id, 'next_attempt_at')
  picked[#picked + 1] = {id, tonumber(at) or 0}
end
table.sort(picked, function(a, b)
  if a[2] ~= b[2] then return a[2] < b[2] end
  return a[1] < b[1]
end)
local token = redis.call('INCR', KEYS[3])
local out = {}
for k = 1, math.min(limit, #picked) do
  local id = picked[k][1]
  local key = P .. 'outbox:' .. id
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZADD', KEYS[2], ARGV[4], id)
  redis.call('HSET', key, 'state', 'in_flight', 'lease_until', ARGV[4], 'lease_owner', ARGV[5], 'lease_token', token)
  out[k] = redis.call('HGETALL', key)
end
return out
"""

# A transaction's state from its entries', as derive_state(states, attempted=True).
_DERIVE = """
local function derive(P, txn)
  local all_done, all_final = true, true
  for _, id in ipairs(redis.call('SMEMBERS', P .. 'txn-outbox:' .. txn)) do
    local s = redis.call('HGET', P .. 'outbox:' .. id, 'state')
    if s ~= 'done' then all_done = false end
    if s ~= 'done' and s ~= 'dead' then all_final = false end
  end
  if all_done then return 'completed' end
  if all_final then return 'failed' end
  return 'delivering'
end
"""

# KEYS: pending, inflight, dead, waiting, and optionally the audit log's pending list.
# ARGV: prefix, id, lease token, new state, next_attempt_at ('' keeps it), attempt number, attempt
# JSON, updated_at, n, n field/value pairs to set, c, c fields to delete; with KEYS[5], the attempt's
# audit entry to push.
# Returns 0 when the lease is no longer ours, else the transaction's fields.
RECORD = (
    _DERIVE
    + """
local P, id, state = ARGV[1], ARGV[2], ARGV[4]
local key = P .. 'outbox:' .. id
local cur = redis.call('HMGET', key, 'lease_token', 'state', 'transaction_id', 'next_attempt_at', 'order_key')
if cur[1] ~= ARGV[3] or cur[2] ~= 'in_flight' then return 0 end
redis.call('HSET', P .. 'attempts:' .. id, ARGV[6], ARGV[7])
local n = tonumber(ARGV[9])
redis.call('HSET', key, unpack(ARGV, 10, 9 + 2 * n))
local c = tonumber(ARGV[10 + 2 * n])
redis.call('HDEL', key, 'lease_until', 'lease_owner', unpack(ARGV, 11 + 2 * n, 10 + 2 * n + c))
if KEYS[5] then redis.call('RPUSH', KEYS[5], ARGV[11 + 2 * n + c]) end
redis.call('ZREM', KEYS[2], id)
if state == 'pending' then
  local at = ARGV[5]
  if at == '' then at = cur[4] end
  redis.call('ZADD', KEYS[1], at, id)
else
  redis.call('ZREM', KEYS[4], id)
  if state == 'dead' then redis.call('ZADD', KEYS[3], 0, id) end
  if cur[5] then  -- finished: the next entry of its order key is due when its own time comes
    local q = P .. 'order:' .. cur[5]
    redis.call('ZREM', q, id)
    local next_id = redis.call('ZRANGE', q, 0, 0)[1]
    if next_id then
      local nxt = redis.call('HMGET', P .. 'outbox:' .. next_id, 'state', 'next_attempt_at')
      if nxt[1] == 'pending' then redis.call('ZADD', KEYS[1], nxt[2], next_id) end
    else
      redis.call('SREM', P .. 'order-queues', cur[5])
    end
  end
end
local tkey = P .. 'txn:' .. cur[3]
redis.call('HSET', tkey, 'state', derive(P, cur[3]), 'updated_at', ARGV[8])
return redis.call('HGETALL', tkey)
"""
)

# KEYS: pending, inflight. ARGV: prefix, id, lease token, next_attempt_at. 0 when the lease is lost.
RELEASE = """
local key = ARGV[1] .. 'outbox:' .. ARGV[2]
local cur = redis.call('HMGET', key, 'lease_token', 'state')
if cur[1] ~= ARGV[3] or cur[2] ~= 'in_flight' then return 0 end
redis.call('HSET', key, 'state', 'pending', 'next_attempt_at', ARGV[4])
redis.call('HDEL', key, 'lease_until', 'lease_owner')
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[2])
return 1
"""

# KEYS: pending, dead, waiting. ARGV: prefix, now, ids... Only dead entries; fresh budget.
REPLAY = (
    _ENQUEUE
    + """
local P, now = ARGV[1], ARGV[2]
local out = {}
for k = 3, #ARGV do
  local id = ARGV[k]
  local key = P .. 'outbox:' .. id
  if redis.call('HGET', key, 'state') == 'dead' then
    redis.call('HSET', key, 'state', 'pending', 'next_attempt_at', now, 'budget_attempts', '0', 'updated_at', now)
    redis.call('HINCRBY', key, 'replays', 1)
    redis.call('HDEL', key, 'budget_started_at', 'lease_until', 'lease_owner')
    redis.call('ZREM', KEYS[2], id)
    -- queued behind what waits for its order key, like a new entry
    if enqueue(P, id, redis.call('HGET', key, 'order_key')) then redis.call('ZADD', KEYS[1], now, id) end
    redis.call('ZADD', KEYS[3], redis.call('HGET', key, 'created_at'), id)
    local txn = redis.call('HGET', key, 'transaction_id')
    redis.call('HSET', P .. 'txn:' .. txn, 'state', 'delivering', 'updated_at', now)
    out[#out + 1] = redis.call('HGETALL', key)
  end
end
return out
"""
)

# KEYS: dead. ARGV: prefix, lex start, limit, ids to examine, then for target, error_kind,
# dead_before, dead_after a flag ('1' = filter on it) and a value.
# Returns {last id examined, ids examined, matching entries' fields}.
LIST_DEAD = """
local P, limit = ARGV[1], tonumber(ARGV[3])
local ids = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[2], '+', 'LIMIT', 0, ARGV[4])
local before, after = tonumber(ARGV[10]), tonumber(ARGV[12])
local out, last = {}, false
for _, id in ipairs(ids) do
  last = id
  local key = P .. 'outbox:' .. id
  local f = redis.call('HMGET', key, 'state', 'target', 'error_kind', 'updated_at')
  local at = tonumber(f[4])
  if f[1] == 'dead'
    and (ARGV[5] == '0' or f[2] == ARGV[6])
    and (ARGV[7] == '0' or f[3] == ARGV[8])
    and (ARGV[9] == '0' or at < before)
    and (ARGV[11] == '0' or at >= after) then
    out[#out + 1] = redis.call('HGETALL', key)
    if #out >= limit then break end
  end
end
return {last, #ids, out}
"""

# ARGV: prefix, transaction id. Returns nil, or {transaction fields, {entry fields...}, {attempt JSON...}}.
# A pending entry that is not the head of its order queue gets one more field, held_behind: the head's
# transaction (a read-only fact, never stored).
SNAPSHOT = """
local P = ARGV[1]
local txn = redis.call('HGETALL', P .. 'txn:' .. ARGV[2])
if #txn == 0 then return false end
local settled = false  -- a completed or failed transaction has no pending entry to look at
for k = 1, #txn, 2 do
  if txn[k] == 'state' then settled = txn[k + 1] == 'completed' or txn[k + 1] == 'failed' end
end
local entries, attempts = {}, {}
for _, id in ipairs(redis.call('SMEMBERS', P .. 'txn-outbox:' .. ARGV[2])) do
  local fields = redis.call('HGETALL', P .. 'outbox:' .. id)
  local f = settled and {} or redis.call('HMGET', P .. 'outbox:' .. id, 'state', 'order_key')
  if f[1] == 'pending' and f[2] then
    local head = redis.call('ZRANGE', P .. 'order:' .. f[2], 0, 0)[1]
    if head and head ~= id then
      fields[#fields + 1] = 'held_behind'
      fields[#fields + 1] = redis.call('HGET', P .. 'outbox:' .. head, 'transaction_id') or ''
    end
  end
  entries[#entries + 1] = fields
  for _, a in ipairs(redis.call('HVALS', P .. 'attempts:' .. id)) do attempts[#attempts + 1] = a end
end
return {txn, entries, attempts}
"""

# KEYS: order-queues, pending. ARGV: prefix, SSCAN cursor, count. A process of an earlier release
# (a rolling upgrade) finishes an entry without taking it out of its order queue, so what waits behind
# it would be held for good: drop finished entries from the head of each queue and make a pending
# head due. Returns {next cursor, heads made due}.
REPAIR_ORDER = """
local P = ARGV[1]
local scan = redis.call('SSCAN', KEYS[1], ARGV[2], 'COUNT', ARGV[3])
local released = 0
for _, okey in ipairs(scan[2]) do
  local q = P .. 'order:' .. okey
  while true do
    local head = redis.call('ZRANGE', q, 0, 0)[1]
    if not head then
      redis.call('SREM', KEYS[1], okey)
      break
    end
    local f = redis.call('HMGET', P .. 'outbox:' .. head, 'state', 'next_attempt_at')
    if f[1] == 'in_flight' then break end
    if f[1] == 'pending' then
      if not redis.call('ZSCORE', KEYS[2], head) then
        redis.call('ZADD', KEYS[2], f[2], head)
        released = released + 1
      end
      break
    end
    redis.call('ZREM', q, head)  -- done, dead, or gone
  end
end
return {scan[1], released}
"""

# KEYS: waiting, dead. Returns {waiting count, oldest created_at or nil, dead count}.
STATS = """
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {redis.call('ZCARD', KEYS[1]), oldest[2] or false, redis.call('ZCARD', KEYS[2])}
"""

# KEYS: pending, inflight. Returns {earliest next_attempt_at or nil, earliest lease_until or nil}.
NEXT_DUE = """
local a = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local b = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
return {a[2] or false, b[2] or false}
"""

# KEYS: the sequence. ARGV: ceiling, first. The next value: first for a new sequence, then one more,
# back to 1 after the ceiling.
NEXT_NUMBER = """
local v = redis.call('GET', KEYS[1])
if v then v = tonumber(v) % tonumber(ARGV[1]) + 1 else v = tonumber(ARGV[2]) end
redis.call('SET', KEYS[1], v)
return v
"""

/**
 * Private Lua scripts of the Redis tracker store: one script changes a peer's
 * record atomically in its hash slot and derives the index updates; another
 * applies index updates in one slot; the read scripts sample holders and
 * count them server-side so a reply never moves whole holder sets.
 *
 * @module
 */

/**
 * Applies index updates: `a` adds a member at score `now`, trims members
 * older than the expiry window and extends the key's TTL; `t` (a heartbeat)
 * only moves a member to `now` (re-adding it if it was lost), and `e` also
 * extends the TTL; `r` removes a member; `n` records a name in the lexicographic
 * name index and its last-seen time, and drops a few names nobody has
 * announced within the window and the half TTL its time may lag (so the
 * index cleans itself without a sweeper); `s` only moves a name's last-seen
 * time, at a TTL extension. Healing in a cluster
 * (see `entries`) never overwrites: `k` sets a holder's id only if it has
 * none, `l` puts a name back in the lexicographic index if it is missing,
 * `j` an id in the id index. Index entries (`n`, `d`, `s`, `u`, `l`, `j`)
 * go in one call per key.
 */
/** What the Redis keys of this version mean; see {@linkcode LAYOUT_SCRIPT}. */
export const LAYOUT = "2";

/** Joins the fields of index updates passed between scripts. */
export const INDEX_SEPARATOR = "\x01";

const APPLY = `
-- Numbers go to Redis as decimal strings made once: Redis formats a Lua
-- number with %.17g at every call, a large share of a script's time.
local function int(n) return string.format('%d', n) end

-- Index updates travel between scripts as one string: their fields joined
-- by a byte no name, key or address holds (names refuse control
-- characters).
local SEP = '\\1'

-- Where the last \`char\` is in \`s\`, or nil: a plain search from one
-- occurrence to the next (an end-anchored pattern would be tried at every
-- position of \`s\`).
local function last(s, char)
  local at = string.find(s, char, 1, true)
  while at do
    local after = string.find(s, char, at + 1, true)
    if not after then return at end
    at = after
  end
  return nil
end

-- A name's entry in the base-name index (its last path segment, lowercase,
-- NUL, the name), or nil for a name without a directory.
local function base_entry(lower, name)
  local slash = last(lower, '/')
  return slash and (string.sub(lower, slash + 1) .. '\\0' .. name) or nil
end

local function apply_ops(P, now, cutoff, ttl, ops, first)
  -- Index entries batched by key: (score, member) or (field, value) pairs.
  local plain, seen, heal, lowers = {}, {}, {}, {}
  local dropNames, dropIds = {}, {}
  local function batch(into, key, a, b)
    local list = into[key]
    if list == nil then list = {}; into[key] = list end
    list[#list + 1] = a; list[#list + 1] = b
  end
  -- A name's entries in the lexicographic and base-name indexes (\`member\`
  -- is the name, or its lowercase form, NUL, the name), batched in \`into\`;
  -- returns the name.
  local function name_entries(into, key, member)
    local nul = string.find(member, '\\0', 1, true)
    local name = nul and string.sub(member, nul + 1) or member
    local lower = nul and string.sub(member, 1, nul - 1) or member
    batch(into, key .. ':lex', '0', member)
    if nul then batch(lowers, key .. ':lower', name, lower) end
    local base = base_entry(lower, name)
    if base then batch(into, key .. ':base', '0', base) end
    return name
  end
  local NOW, CUT, TTL = int(now), int(cutoff), int(ttl)
  -- Names' and ids' last-seen times move once a quarter TTL (see
  -- \`entries\`), and that update can be lost like any index call in a
  -- cluster: one older than two quarters has no live holder.
  local STALE = int(cutoff - ttl / 2)
  for i = first, #ops, 3 do
    local kind, key, member = ops[i], ops[i + 1], ops[i + 2]
    if kind == 'a' then
      redis.call('ZADD', key, NOW, member)
      -- Trim dead holders (and a name's ids of them).
      for _, d in ipairs(redis.call('ZRANGEBYSCORE', key, '-inf', CUT, 'LIMIT', '0', '64')) do
        redis.call('ZREM', key, d)
        if string.sub(d, 1, 2) == 'S\\0' then
          redis.call('HDEL', key .. ':i', string.sub(d, 3))
        end
      end
      redis.call('PEXPIRE', key, TTL)
    elseif kind == 'h' then
      local at = last(member, '\\0')
      redis.call('HSET', key, string.sub(member, 1, at - 1), string.sub(member, at + 1))
      redis.call('PEXPIRE', key, TTL)
    elseif kind == 'k' then
      local at = last(member, '\\0')
      redis.call('HSETNX', key, string.sub(member, 1, at - 1), string.sub(member, at + 1))
      redis.call('PEXPIRE', key, TTL)
    elseif kind == 'j' then
      batch(heal, key .. ':ids', '0', member)
    elseif kind == 'l' then
      name_entries(heal, key, member)
    elseif kind == 'x' then
      redis.call('HDEL', key, member)
    elseif kind == 'p' then
      redis.call('PEXPIRE', key, TTL)
    elseif kind == 't' then
      redis.call('ZADD', key, NOW, member)
    elseif kind == 'e' then
      redis.call('ZADD', key, NOW, member)
      redis.call('PEXPIRE', key, TTL)
    elseif kind == 'r' then
      redis.call('ZREM', key, member)
    elseif kind == 's' or kind == 'u' then
      batch(seen, key .. (kind == 's' and ':seen' or ':idseen'), NOW, member)
    elseif kind == 'd' then
      -- A content id in the id index (for id-prefix queries).
      batch(plain, key .. ':ids', '0', member)
      batch(seen, key .. ':idseen', NOW, member)
      dropIds[key] = math.min((dropIds[key] or 0) + 8, 64)
    else
      batch(seen, key .. ':seen', NOW, name_entries(plain, key, member))
      dropNames[key] = math.min((dropNames[key] or 0) + 8, 64)
    end
  end
  -- The index entries go in one call per key and 500 entries.
  local function flush(into, command, flag)
    for key, list in pairs(into) do
      for i = 1, #list, 1000 do
        if flag then
          redis.call(command, key, flag, unpack(list, i, math.min(i + 999, #list)))
        else
          redis.call(command, key, unpack(list, i, math.min(i + 999, #list)))
        end
      end
    end
  end
  flush(plain, 'ZADD')
  flush(lowers, 'HSET')
  flush(seen, 'ZADD', 'GT')
  flush(heal, 'ZADD', 'NX')
  -- Then a few names and ids nobody has announced since STALE go (8 per
  -- one added, at most 64 per change).
  for key, n in pairs(dropIds) do
    local ids, idseen = key .. ':ids', key .. ':idseen'
    for _, d in ipairs(redis.call('ZRANGEBYSCORE', idseen, '-inf', STALE, 'LIMIT', '0', int(n))) do
      redis.call('ZREM', ids, d)
      redis.call('ZREM', idseen, d)
    end
  end
  for key, n in pairs(dropNames) do
    -- Whoever adds names says which layout they are in (Redis may have
    -- restarted empty since a tracker checked it).
    redis.call('SET', key .. ':layout', '${LAYOUT}')
    local lex, base, names = key .. ':lex', key .. ':base', key .. ':seen'
    for _, d in ipairs(redis.call('ZRANGEBYSCORE', names, '-inf', STALE, 'LIMIT', '0', int(n))) do
      local dl = redis.call('HGET', key .. ':lower', d)
      if dl then
        redis.call('HDEL', key .. ':lower', d)
        redis.call('ZREM', lex, dl .. '\\0' .. d)
      else
        dl = d
        redis.call('ZREM', lex, d)
      end
      local entry = base_entry(dl, d)
      if entry then redis.call('ZREM', base, entry) end
      redis.call('ZREM', names, d)
    end
  end
end
`;

/**
 * `KEYS[1]`: any key of the node. `ARGV`: prefix, expiry, ttl, then for each
 * change (one or many peers' changes, in order) its time and its
 * (kind, key, member) triples joined by `\x01` ({@linkcode INDEX_SEPARATOR}),
 * every key on that node (a cluster node may serve several slots in one
 * script with `allow-cross-slot-keys`).
 */
export const INDEX_SCRIPT: string = `#!lua flags=allow-cross-slot-keys
${APPLY}
local expiry, ttl = tonumber(ARGV[2]), tonumber(ARGV[3])
for c = 4, #ARGV, 2 do
  local ops, packed, at = {}, ARGV[c + 1], 1
  while true do
    local sep = string.find(packed, SEP, at, true)
    ops[#ops + 1] = string.sub(packed, at, (sep or 0) - 1)
    if sep == nil then break end
    at = sep + 1
  end
  local now = tonumber(ARGV[c])
  apply_ops(ARGV[1], now, now - expiry, ttl, ops, 1)
end
return 1
`;

/**
 * Changes one peer's record. `KEYS[1]`: the record. `ARGV`: op, now, expiry,
 * ttl, prefix, tag (the record's hash tag), address, inline ("1": apply the
 * index updates here, single Redis; "0": return them, cluster), then the
 * op's arguments. Returns `{result, seq, ops}`: the index updates still to
 * apply (cluster), (kind, key, member) triples joined by `\x01`.
 */
export const PEER_SCRIPT: string = `${APPLY}
local op, now, expiry, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local P, tag, address, inline = ARGV[5], ARGV[6], ARGV[7], ARGV[8] == '1'
local cutoff = now - expiry
local NOW, TTL, CUT = ARGV[2], ARGV[4], int(cutoff)
local pkey = KEYS[1]
local ops = {}
local NUL = '\\0'

local function ukey(net) return P .. ':{' .. tag .. '}:u:' .. net end
local function fkey(net) return P .. ':{' .. tag .. '}:uf:' .. net end
local function ckey(id) return P .. ':{c:' .. id .. '}' end
local function nkey(name) return P .. ':{f:' .. name .. '}' end

local nops = 0
local function push(kind, key, member)
  ops[nops + 1] = kind; ops[nops + 2] = key; ops[nops + 3] = member
  nops = nops + 3
end
local NAMES = P .. ':{names}'

-- A file is {name, id, size[, lower]} (size a string): id and size '' for a seed peer's.
local function entries(kind, f)
  -- In a cluster the index updates follow this script in other calls, and
  -- one can be lost (a node down, the tracker killed in between). A TTL
  -- extension there puts back every index entry that is missing, so what
  -- was lost comes back within a quarter of the TTL. It adds only what is
  -- missing: these updates can land after a newer change of the same peer.
  local heal = kind == 'e' and not inline
  local nk = nkey(f[1])
  if f[2] == '' then
    push(kind, nk, 'L' .. NUL .. address)
  else
    -- A name's holders are short (Redis keeps a small sorted set compact
    -- while members stay under 64 bytes); their ids sit in a hash beside it.
    local held = address .. NUL .. f[3]
    push(kind, nk, 'S' .. NUL .. held)
    if kind == 'a' then
      push('h', nk .. ':i', held .. NUL .. f[2])
    elseif heal then
      push('k', nk .. ':i', held .. NUL .. f[2])
    elseif kind == 'r' then
      push('x', nk .. ':i', held)
    elseif kind == 'e' then
      push('p', nk .. ':i', '')
    end
    push(kind, ckey(f[2]), held .. NUL .. f[1])
  end
  if kind == 'a' then
    push('n', NAMES, f[4] and (f[4] .. NUL .. f[1]) or f[1])
    if f[2] ~= '' then push('d', NAMES, f[2]) end
  elseif kind == 'e' then
    -- A name's and an id's last-seen times move only at a TTL extension:
    -- the name index is a prefilter, read with a cutoff half a TTL
    -- earlier (\`STALE\` in apply_ops); holder sets decide liveness.
    push('s', NAMES, f[1])
    if f[2] ~= '' then push('u', NAMES, f[2]) end
    if heal then
      push('l', NAMES, f[4] and (f[4] .. NUL .. f[1]) or f[1])
      if f[2] ~= '' then push('j', NAMES, f[2]) end
    end
  end
end

local function load()
  local h = redis.call('HMGET', pkey, 'proto', 'seen', 'seq', 'net', 'files', 'tx', 'key')
  if not h[1] then return nil end
  return { proto = h[1], seen = tonumber(h[2]), seq = tonumber(h[3]),
           net = h[4], files = cjson.decode(h[5]), tx = tonumber(h[6]) or 0,
           key = h[7] or nil }
end

local function alive(r) return r ~= nil and r.seen > cutoff end

-- Live peers and files of a network; forgets the expired ones.
-- Live peers and files of a network; forgets the expired ones. The files
-- are a running total (field TOTAL of the counts hash), so this costs
-- O(expired peers), not O(peers).
local TOTAL = NUL .. 'total'
local function usage(net)
  local uk, fk = ukey(net), fkey(net)
  local dead = redis.call('ZRANGEBYSCORE', uk, '-inf', CUT)
  if #dead > 0 then
    local gone = 0
    for _, a in ipairs(dead) do
      gone = gone + (tonumber(redis.call('HGET', fk, a)) or 0)
      redis.call('HDEL', fk, a)
    end
    redis.call('HINCRBY', fk, TOTAL, -gone)
    redis.call('ZREMRANGEBYSCORE', uk, '-inf', CUT)
  end
  return redis.call('ZCARD', uk), tonumber(redis.call('HGET', fk, TOTAL)) or 0
end

-- Sets this peer's file count in its network (nil: it left).
local function count(net, n)
  local fk = fkey(net)
  local old = tonumber(redis.call('HGET', fk, address)) or 0
  if n == nil then redis.call('HDEL', fk, address) else redis.call('HSET', fk, address, n) end
  if (n or 0) ~= old then redis.call('HINCRBY', fk, TOTAL, (n or 0) - old) end
end

local function forget(r)
  for _, f in ipairs(r.files) do entries('r', f) end
  redis.call('ZREM', ukey(r.net), address)
  count(r.net, nil)
  redis.call('DEL', pkey)
end

-- Writes the record (all of it when changed, else its time) and marks the
-- peer alive in its network; extends the keys' TTLs when changed or asked.
local function save(r, changed, extend)
  -- With the TTLs extended, the record says when (field tx, see \`refresh\`).
  if changed then
    -- A registration keeps its files as the tracker encoded them.
    local fields = { 'proto', r.proto, 'seen', NOW, 'seq', r.seq, 'net', r.net,
      'files', r.json or (#r.files == 0 and '[]' or cjson.encode(r.files)) }
    -- Only a new record (the old one was deleted) gains or loses its key;
    -- a changed one was loaded with the key it has.
    if r.key then fields[#fields + 1] = 'key'; fields[#fields + 1] = r.key end
    if extend then fields[#fields + 1] = 'tx'; fields[#fields + 1] = NOW end
    redis.call('HSET', pkey, unpack(fields))
    count(r.net, #r.files)
  elseif extend then
    redis.call('HSET', pkey, 'seen', NOW, 'tx', NOW)
  else
    redis.call('HSET', pkey, 'seen', NOW)
  end
  local uk = ukey(r.net)
  redis.call('ZADD', uk, NOW, address)
  if changed or extend then
    redis.call('PEXPIRE', pkey, TTL)
    redis.call('PEXPIRE', uk, TTL)
    redis.call('PEXPIRE', fkey(r.net), TTL)
  end
  r.seen = now
end

-- Saves and refreshes every index entry: new files (all when \`added\` is
-- nil) are added, the others only get the new time.
-- The index keys' TTLs are extended when a quarter of it has passed (not
-- at every heartbeat).
local function refresh(r, changed, added)
  local kept = 't'
  if now - (r.tx or 0) >= ttl / 4 then kept = 'e' end
  save(r, changed, kept == 'e')
  for _, f in ipairs(r.files) do
    entries((added == nil or added[f[1]]) and 'a' or kept, f)
  end
end

-- The live record, or nil (an expired one is forgotten here).
local function live()
  local r = load()
  if r ~= nil and not alive(r) then forget(r); r = nil end
  return r
end

local function register(proto, net, files, maxPeers, maxNet, key, json)
  local old = live()
  local same = old ~= nil and old.net == net
  local peers, used = usage(net)
  if not same and peers >= maxPeers then return 'too_many_peers' end
  if used - (same and #old.files or 0) + #files > maxNet then
    return 'too_many_files'
  end
  if old ~= nil then forget(old) end
  refresh({ proto = proto, seq = 0, net = net, files = files, key = key, json = json }, true, nil)
  return 'ok'
end

local function replace(r, files, maxNet)
  local _, used = usage(r.net)
  if used - #r.files + #files > maxNet then
    refresh(r, false, {})
    return 'too_many_files'
  end
  for _, f in ipairs(r.files) do entries('r', f) end
  r.files = files
  r.seq = 0
  refresh(r, true, nil)
  return 'ok'
end

local function finish(result, seq)
  if inline then
    apply_ops(P, now, cutoff, ttl, ops, 1)
    return { result, seq }
  end
  return { result, seq, table.concat(ops, SEP) }
end

if op == 'register' then
  local files = cjson.decode(ARGV[11])
  local key = ARGV[14] ~= '' and ARGV[14] or nil
  return finish(register(ARGV[9], ARGV[10], files, tonumber(ARGV[12]), tonumber(ARGV[13]), key, ARGV[11]), 0)
elseif op == 'replace' then
  local r = live()
  if r == nil then return finish('unknown_peer', 0) end
  return finish(replace(r, cjson.decode(ARGV[9]), tonumber(ARGV[10])), 0)
elseif op == 'apply' then
  local r = live()
  if r == nil then return finish('unknown_peer', 0) end
  local seq = tonumber(ARGV[9])
  if seq ~= r.seq + 1 then refresh(r, false, {}); return finish('resync', r.seq) end
  local added, removed = cjson.decode(ARGV[10]), cjson.decode(ARGV[11])
  local maxFiles, maxNet = tonumber(ARGV[12]), tonumber(ARGV[13])
  local gone, have, fresh = {}, {}, {}
  for _, name in ipairs(removed) do gone[name] = true end
  for _, f in ipairs(r.files) do have[f[1]] = true end
  local n = #r.files
  for name in pairs(gone) do if have[name] then n = n - 1 end end
  for _, f in ipairs(added) do
    if not have[f[1]] or gone[f[1]] then n = n + 1 end
    fresh[f[1]] = true
  end
  local _, used = usage(r.net)
  if n > maxFiles or used - #r.files + n > maxNet then
    refresh(r, false, {})
    return finish('too_many_files', r.seq)
  end
  local files = {}
  for _, f in ipairs(r.files) do
    if gone[f[1]] or fresh[f[1]] then entries('r', f) else files[#files + 1] = f end
  end
  for _, f in ipairs(added) do files[#files + 1] = f end
  r.files = files
  r.seq = seq
  refresh(r, true, fresh)
  return finish('ok', seq)
elseif op == 'touch' then
  local r = live()
  if r == nil then return finish('unknown_peer', 0) end
  refresh(r, false, {})
  return finish('ok', r.seq)
elseif op == 'seed' then
  local command, hasFiles = ARGV[9], ARGV[10] ~= ''
  local files = hasFiles and cjson.decode(ARGV[10]) or {}
  local r = live()
  if command == 'register' or (hasFiles and (r == nil or r.proto ~= 'legacy')) then
    return finish(register('legacy', ARGV[11], files, tonumber(ARGV[12]), tonumber(ARGV[13])), 0)
  elseif r == nil then
    return finish('unknown_peer', 0)
  elseif hasFiles then
    return finish(replace(r, files, tonumber(ARGV[13])), 0)
  end
  refresh(r, false, {})
  return finish('ok', 0)
elseif op == 'unregister' then
  local r = load()
  if r == nil then return finish('unknown_peer', 0) end
  local was = alive(r)
  forget(r)
  return finish(was and 'ok' or 'unknown_peer', 0)
end
return redis.error_reply('unknown op ' .. tostring(op))
`;

/**
 * Live members of a sorted set (`KEYS[1]`): all of them when there are at
 * most `ARGV[2]`, else a random sample of about that many. `ARGV[1]`: the
 * expiry cutoff (members at or below it are gone); `ARGV[3]` = `ids`: a
 * name's holders, each followed by the content id it holds.
 */
export const SAMPLE_SCRIPT: string = `
local k, cutoff, want = KEYS[1], ARGV[1], tonumber(ARGV[2])
local low = '(' .. cutoff
-- With ARGV[3] = 'ids', a name's members each followed by its id.
local function withIds(members)
  if ARGV[3] ~= 'ids' then return members end
  local out = {}
  for _, m in ipairs(members) do
    out[#out + 1] = m
    out[#out + 1] = string.sub(m, 1, 1) == 'S'
      and (redis.call('HGET', k .. ':i', string.sub(m, 3)) or '') or ''
  end
  return out
end
local n = redis.call('ZCOUNT', k, low, '+inf')
if n <= want then return withIds(redis.call('ZRANGEBYSCORE', k, low, '+inf')) end
local out, seen = {}, {}
local s = redis.call('ZRANDMEMBER', k, want * 2, 'WITHSCORES')
for i = 1, #s, 2 do
  if tonumber(s[i + 1]) > tonumber(cutoff) and not seen[s[i]] then
    seen[s[i]] = true; out[#out + 1] = s[i]
  end
end
if #out < want then
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', k, low, '+inf', 'LIMIT', 0, want)) do
    if not seen[m] then seen[m] = true; out[#out + 1] = m end
  end
end
return withIds(out)
`;

/**
 * What names hold, counted server-side: `KEYS[1]` routes to the node,
 * `ARGV[1]` is the cutoff, `ARGV[2]` the number of names and the names'
 * keys follow (all on that node). For each name: the number of (id, size)
 * pairs, each pair's `id\0size` and live holders, then its live
 * seed-protocol holders.
 */
export const NAME_TALLY_SCRIPT: string =
  `#!lua flags=allow-cross-slot-keys,no-writes
local out = {}
for k = 1, tonumber(ARGV[2]) do
  local counts, order, legacy = {}, {}, 0
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', ARGV[2 + k], '(' .. ARGV[1], '+inf')) do
    if string.sub(m, 1, 1) == 'L' then
      legacy = legacy + 1
    else
      local held = string.sub(m, 3)
      local size = string.sub(held, string.find(held, '\\0', 1, true) + 1)
      local key = (redis.call('HGET', ARGV[2 + k] .. ':i', held) or '') .. '\\0' .. size
      if counts[key] == nil then counts[key] = 0; order[#order + 1] = key end
      counts[key] = counts[key] + 1
    end
  end
  out[#out + 1] = #order
  for _, key in ipairs(order) do out[#out + 1] = key; out[#out + 1] = counts[key] end
  out[#out + 1] = legacy
end
return out
`;

/**
 * Distinct live holders of content ids per size: `KEYS[1]` routes to the
 * node, `ARGV[1]` is the cutoff, `ARGV[2]` the number `n` of ids, then the
 * ids' keys (all on that node), then for each the sizes asked,
 * comma-separated, then for each the holders already known under one name
 * per size, comma-separated. When the id has no other live holder entries
 * than those (one count of its sorted set) they are the answer; else its
 * entries are read. Returns the counts in that order.
 */
export const CONTENT_COUNT_SCRIPT: string =
  `#!lua flags=allow-cross-slot-keys,no-writes
local out = {}
local n = tonumber(ARGV[2])
local low = '(' .. ARGV[1]
for k = 1, n do
  local key, bySize, sizes, known, total = ARGV[2 + k], {}, {}, {}, 0
  for size in string.gmatch(ARGV[2 + n + k], '[^,]+') do
    bySize[size] = {}; sizes[#sizes + 1] = size
  end
  for c in string.gmatch(ARGV[2 + 2 * n + k] or '', '[^,]+') do
    known[#known + 1] = tonumber(c); total = total + tonumber(c)
  end
  if #known == #sizes and redis.call('ZCOUNT', key, low, '+inf') == total then
    for i = 1, #sizes do out[#out + 1] = known[i] end
  else
    for _, m in ipairs(redis.call('ZRANGEBYSCORE', key, low, '+inf')) do
      local a = string.find(m, '\\0', 1, true)
      local b = string.find(m, '\\0', a + 1, true)
      local set = bySize[string.sub(m, a + 1, b - 1)]
      if set then set[string.sub(m, 1, a - 1)] = true end
    end
    for _, size in ipairs(sizes) do
      local c = 0
      for _ in pairs(bySize[size]) do c = c + 1 end
      out[#out + 1] = c
    end
  end
end
return out
`;

/**
 * A page of the name index (`KEYS[1]` the index's base key): up to
 * `ARGV[3]` entries of `…:lex` or `…:base` (`ARGV[4]`) from `ARGV[1]` to
 * `ARGV[2]` (ZRANGEBYLEX bounds), keeping names seen after the cutoff
 * `ARGV[5]` (by `…:seen`, or by `…:ARGV[6]`: `ids` pages by `idseen`). Returns `{examined, last entry, live entries…}`.
 */
export const NAMES_PAGE_SCRIPT: string = `
local seen = KEYS[1] .. ':' .. (ARGV[6] or 'seen')
local page = redis.call('ZRANGEBYLEX', KEYS[1] .. ':' .. ARGV[4], ARGV[1], ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local out = { #page, page[#page] or '' }
local cutoff = tonumber(ARGV[5])
for _, entry in ipairs(page) do
  local nul = string.find(entry, '\\0', 1, true)
  local name = nul and string.sub(entry, nul + 1) or entry
  local s = redis.call('ZSCORE', seen, name)
  if s and tonumber(s) > cutoff then out[#out + 1] = entry end
end
return out
`;

/**
 * The public keys of peers: `KEYS[1]` routes to the node, `ARGV` are peer
 * record keys on it; returns each record's key (`""` when none).
 */
export const KEYS_SCRIPT: string = `#!lua flags=allow-cross-slot-keys,no-writes
local out = {}
for i = 1, #ARGV do out[i] = redis.call('HGET', ARGV[i], 'key') or '' end
return out
`;

/**
 * What content ids hold, for an id-prefix query: `KEYS[1]` routes to the
 * node, `ARGV[1]` is the cutoff and the ids' keys follow (all on that
 * node). For each id: the number of sizes, then each size and its most
 * common name (ties to the smaller name).
 */
export const CONTENT_NAMES_SCRIPT: string =
  `#!lua flags=allow-cross-slot-keys,no-writes
local out = {}
for k = 2, #ARGV do
  local names, sizes = {}, {}
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', ARGV[k], '(' .. ARGV[1], '+inf')) do
    local a = string.find(m, '\\0', 1, true)
    local b = string.find(m, '\\0', a + 1, true)
    local size, name = string.sub(m, a + 1, b - 1), string.sub(m, b + 1)
    if names[size] == nil then names[size] = {}; sizes[#sizes + 1] = size end
    names[size][name] = (names[size][name] or 0) + 1
  end
  out[#out + 1] = #sizes
  for _, size in ipairs(sizes) do
    local best, count = nil, 0
    for name, n in pairs(names[size]) do
      if n > count or (n == count and name < best) then best, count = name, n end
    end
    out[#out + 1] = size; out[#out + 1] = best
  end
end
return out
`;

/**
 * Records or reads the layout of a prefix's keys: `KEYS[1]` is the name
 * index's base key, `ARGV[1]` this version's layout. Returns the layout the
 * keys are in: the one recorded (every script that adds a name records it),
 * `1` for a name index an older version wrote (it recorded none), else
 * `ARGV[1]`, now recorded.
 */
export const LAYOUT_SCRIPT: string = `
local at = KEYS[1] .. ':layout'
local recorded = redis.call('GET', at)
if recorded then return recorded end
if redis.call('EXISTS', KEYS[1] .. ':lex') == 1 then return '1' end
redis.call('SET', at, ARGV[1])
return ARGV[1]
`;

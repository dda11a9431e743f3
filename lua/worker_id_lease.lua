-- Lease the first free worker id, and claim its high-water mark: the latest millisecond
-- the new holder may stamp ids with before it renews.
--
-- KEYS[1..n]     lease keys of worker ids 0..n-1, e.g. {ids}:worker:0
-- KEYS[n+1..2n]  high-water keys of the same worker ids, e.g. {ids}:high-water:0
-- ARGV[1]  owner token: a random string only the new holder knows
-- ARGV[2]  lease TTL in milliseconds (integer >= 1)
-- ARGV[3]  now in Unix milliseconds, by the holder's clock (the clock that stamps its ids)
--
-- Returns  {worker_id, previous_high_water_ms, high_water_ms}
--   worker_id               the leased worker id, or -1 when every worker id is leased
--   previous_high_water_ms  the mark left by earlier holders (-1 when there was none):
--                           the new holder must stamp ids later than it
--   high_water_ms           max(previous, now + TTL), now stored
-- Errors   "ERR_BAD_ARGUMENT" when the keys are not pairs, the token is empty, or TTL or
--          now is not a non-negative integer (TTL >= 1).

local n = #KEYS / 2
local token = ARGV[1]
local ttl_ms = tonumber(ARGV[2])
local now_ms = tonumber(ARGV[3])
if n < 1 or #KEYS % 2 ~= 0 or not token or token == "" or not ttl_ms or ttl_ms < 1
    or not now_ms or now_ms < 0 then
  return redis.error_reply("ERR_BAD_ARGUMENT")
end

for i = 1, n do
  if redis.call("SET", KEYS[i], token, "NX", "PX", ttl_ms) then
    local previous = tonumber(redis.call("GET", KEYS[n + i]) or "-1")
    -- Never lower the mark here: an earlier holder may have stamped ids up to it.
    local high_water = math.max(previous, now_ms + ttl_ms)
    redis.call("SET", KEYS[n + i], string.format("%d", high_water))
    return {i - 1, previous, high_water}
  end
end
return {-1, 0, 0}

-- Renew a worker-id lease, only while the caller's token still owns it, and raise the
-- worker id's high-water mark to the latest millisecond the holder may now stamp ids with.
--
-- KEYS[1]  the lease key, e.g. {ids}:worker:7
-- KEYS[2]  the high-water key of the same worker id, e.g. {ids}:high-water:7
-- ARGV[1]  owner token given when the lease was taken
-- ARGV[2]  lease TTL in milliseconds (integer >= 1)
-- ARGV[3]  now in Unix milliseconds, by the holder's clock
--
-- Returns  {renewed, high_water_ms}
--   renewed        1 when renewed; 0 when the lease lapsed or another token holds it
--                  (nothing is changed then)
--   high_water_ms  max(stored mark, now + TTL) when renewed, else 0
-- Errors   "ERR_BAD_ARGUMENT" when the token is empty or TTL or now is not a
--          non-negative integer (TTL >= 1).

local token = ARGV[1]
local ttl_ms = tonumber(ARGV[2])
local now_ms = tonumber(ARGV[3])
if not token or token == "" or not ttl_ms or ttl_ms < 1 or not now_ms or now_ms < 0 then
  return redis.error_reply("ERR_BAD_ARGUMENT")
end

if redis.call("GET", KEYS[1]) ~= token then
  return {0, 0}
end
redis.call("PEXPIRE", KEYS[1], ttl_ms)
-- Never lower the mark: a step back of the holder's clock must not shrink its promise.
local high_water = math.max(tonumber(redis.call("GET", KEYS[2]) or "-1"), now_ms + ttl_ms)
redis.call("SET", KEYS[2], string.format("%d", high_water))
return {1, high_water}

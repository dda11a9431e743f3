-- Fixed-window counter for rate limits: count one hit in the current window
-- and say whether it is still within the limit.
--
-- KEYS[1]  the window's counter key, e.g. damai:rl:{ip:1.2.3.4}:admin (infra/redis_keys.py, api/rate_limit.py)
-- ARGV[1]  limit: hits allowed per window (integer >= 1)
-- ARGV[2]  window length in milliseconds (integer >= 1)
--
-- Returns  {allowed, count, retry_after_ms}
--   allowed         1 when this hit is within the limit, 0 when it is over
--   count           hits counted in this window, including this one
--   retry_after_ms  milliseconds until the window resets (0 when allowed)
-- Errors   "ERR_BAD_ARGUMENT" when limit or window is not a positive integer.

local limit = tonumber(ARGV[1])
local window_ms = tonumber(ARGV[2])
if not limit or limit < 1 or not window_ms or window_ms < 1 then
  return redis.error_reply("ERR_BAD_ARGUMENT")
end

local count = redis.call("INCR", KEYS[1])
if count == 1 then
  redis.call("PEXPIRE", KEYS[1], window_ms)
end

if count <= limit then
  return {1, count, 0}
end
local ttl = redis.call("PTTL", KEYS[1])
if ttl < 0 then
  -- A counter without expiry would block forever; give it one.
  redis.call("PEXPIRE", KEYS[1], window_ms)
  ttl = window_ms
end
return {0, count, ttl}

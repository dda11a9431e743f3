-- Admit an order request for the log, in one round trip: count it in the user's order rate-limit
-- window, claim its Idempotency-Key, and make the order findable by its buyer (commands/order.py,
-- infra/order_store.py:RedisOrderAdmission). Every key carries the user's hash tag {u:<id>}.
--
-- KEYS[1]  the user's order rate-limit window (infra/redis_keys.py:user_rate_limit_window)
-- KEYS[2]  the user's index entry of this order (user_order)
-- KEYS[3]  the user's Idempotency-Key record (idempotency_key); absent without a key
-- ARGV[1]  limit: order requests allowed per window (integer >= 1)
-- ARGV[2]  window length in milliseconds (integer >= 1)
-- ARGV[3]  the index entry (JSON: program, show time, requested at)
-- ARGV[4]  the index entry's time to live, seconds
-- ARGV[5]  the Idempotency-Key record (JSON: order number, fingerprint, program); with KEYS[3]
-- ARGV[6]  the record's time to live, seconds; with KEYS[3]
--
-- Returns  {1}                  admitted: the index entry (and the key's record) are written
--          {0, retry_after_ms}  over the limit: nothing written but the count
--          {2, record}          the Idempotency-Key names an earlier order: its record, nothing written
-- The window is counted as lua/fixed_window_limit.lua counts it (a fixed window from the first hit).
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
if count > limit then
  local ttl = redis.call("PTTL", KEYS[1])
  if ttl < 0 then
    redis.call("PEXPIRE", KEYS[1], window_ms)
    ttl = window_ms
  end
  return {0, ttl}
end

if KEYS[3] then
  local earlier = redis.call("GET", KEYS[3])
  if earlier then
    return {2, earlier}
  end
  redis.call("SET", KEYS[3], ARGV[5], "EX", ARGV[6])
end
redis.call("SET", KEYS[2], ARGV[3], "EX", ARGV[4])
return {1}

-- Store a freshly loaded cache value, only while the caller still holds the load lock.
-- An invalidation deletes the lock with the value, so a load that read the store of record
-- before a change cannot put the old value back after the invalidation.
--
-- KEYS[1]  the load lock, e.g. damai:{p:123}:detail:v1:loading
-- KEYS[2]  the cached value (same hash tag), e.g. damai:{p:123}:detail:v1
-- ARGV[1]  owner token given when the lock was taken (SET NX)
-- ARGV[2]  the value to store
-- ARGV[3]  its TTL in milliseconds (integer >= 1)
--
-- Returns  1 when stored (and the lock released), 0 when the lock was lost (nothing changed)
-- Errors   "ERR_BAD_ARGUMENT" when the token is empty or the TTL is not a positive integer.

local token = ARGV[1]
local ttl_ms = tonumber(ARGV[3])
if not token or token == "" or not ttl_ms or ttl_ms < 1 then
  return redis.error_reply("ERR_BAD_ARGUMENT")
end

if redis.call("GET", KEYS[1]) ~= token then
  return 0
end
redis.call("SET", KEYS[2], ARGV[2], "PX", ttl_ms)
redis.call("DEL", KEYS[1])
return 1

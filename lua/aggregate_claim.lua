-- Claim the next versions of one aggregate for a command about to append them to Kafka: the
-- command-side snapshot moves to the new state, marked pending until the append is acknowledged.
-- Two commands that loaded the same version cannot both claim (optimistic concurrency).
--
-- KEYS[1]  the aggregate's snapshot hash, e.g. {p:123}:aggregate
--          fields: version, state (JSON), token (the claiming writer), pending_until (ms, 0 = settled)
-- ARGV[1]  the version the command loaded (0 for a new aggregate)
-- ARGV[2]  the version after its events
-- ARGV[3]  the writer's token (unique per claim)
-- ARGV[4]  the new state (the aggregate's snapshot, JSON)
-- ARGV[5]  pending until (epoch ms): past it, an unsettled claim is rebuilt from the log
--
-- Returns  1 when claimed; 0 when the stored version differs or another claim is pending.
-- Errors   "ERR_BAD_ARGUMENT" when a version is not a valid integer.

local expected = tonumber(ARGV[1])
local version = tonumber(ARGV[2])
if not expected or not version or version <= expected then
  return redis.error_reply("ERR_BAD_ARGUMENT")
end

local stored = redis.call("HMGET", KEYS[1], "version", "pending_until")
local current = tonumber(stored[1] or "0")
local pending = tonumber(stored[2] or "0")
if current ~= expected or pending ~= 0 then
  return 0
end
redis.call("HSET", KEYS[1], "version", version, "state", ARGV[4], "token", ARGV[3], "pending_until", ARGV[5])
return 1

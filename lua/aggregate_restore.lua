-- Put back an aggregate's command-side snapshot rebuilt from the log (damai rebuild snapshots,
-- ADR 0007): written when there is none, or when the one there is settled and older than the log;
-- a claim in progress, or a snapshot as new, is left alone.
--
-- KEYS[1]  the aggregate's snapshot hash (see aggregate_claim.lua)
-- ARGV[1]  the version the log has
-- ARGV[2]  a new token
-- ARGV[3]  the state (JSON)
--
-- Returns  1 when written; 0 when left alone.
-- Errors   "ERR_BAD_ARGUMENT" when the version is not a valid integer.

local version = tonumber(ARGV[1])
if not version then
  return redis.error_reply("ERR_BAD_ARGUMENT")
end
local stored = redis.call("HMGET", KEYS[1], "version", "pending_until")
if stored[1] then
  if tonumber(stored[2] or "0") ~= 0 or tonumber(stored[1]) >= version then
    return 0
  end
end
redis.call("HSET", KEYS[1], "version", version, "state", ARGV[3], "token", ARGV[2], "pending_until", 0)
return 1

-- Settle one aggregate's command-side snapshot: confirm a claim once Kafka acknowledged its
-- events, or replace a snapshot with the state rebuilt from the log.
--
-- KEYS[1]  the aggregate's snapshot hash (see aggregate_claim.lua)
-- ARGV[1]  the token the caller last saw ("" when there was no snapshot)
-- ARGV[2]  the version
-- ARGV[3]  the new token
-- ARGV[4]  the state (JSON)
--
-- Returns  1 when settled; 0 when another writer has changed the snapshot since.

local token = redis.call("HGET", KEYS[1], "token") or ""
if token ~= ARGV[1] then
  return 0
end
redis.call("HSET", KEYS[1], "version", ARGV[2], "state", ARGV[4], "token", ARGV[3], "pending_until", 0)
return 1

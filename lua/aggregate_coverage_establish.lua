-- Record that a partition's snapshots are complete below an offset: after provisioning an empty
-- partition (offset 0), or after every snapshot of the partition was rebuilt from the log up to it
-- (ADR 0007). Never moves a coverage back.
--
-- KEYS[1]  the log's snapshot coverage hash (infra/redis_keys.snapshot_coverage): partition → offset
-- ARGV[1]  the partition
-- ARGV[2]  the offset
--
-- Returns  1 when recorded; 0 when the coverage already reached that offset.
-- Errors   "ERR_BAD_ARGUMENT" when the offset is not a valid integer.

local offset = tonumber(ARGV[2])
if not offset then
  return redis.error_reply("ERR_BAD_ARGUMENT")
end
local current = tonumber(redis.call("HGET", KEYS[1], ARGV[1]) or "")
if current and current >= offset then
  return 0
end
redis.call("HSET", KEYS[1], ARGV[1], offset)
return 1

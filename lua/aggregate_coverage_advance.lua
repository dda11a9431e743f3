-- Move a partition's snapshot coverage forward over a range whose every aggregate was found to
-- hold a snapshot at least as new as its events there (ADR 0007).
--
-- KEYS[1]  the log's snapshot coverage hash (infra/redis_keys.snapshot_coverage): partition → offset
-- ARGV[1]  the partition
-- ARGV[2]  the offset the checked range starts at
-- ARGV[3]  the offset it ends at (exclusive)
--
-- Returns  1 when moved; 0 when the partition has no coverage (its snapshots are not trusted),
--          when the coverage is below the range's start (the range would leave a gap), or when
--          it is already at or past the range's end.
-- Errors   "ERR_BAD_ARGUMENT" when an offset is not a valid integer.

local from = tonumber(ARGV[2])
local to = tonumber(ARGV[3])
if not from or not to then
  return redis.error_reply("ERR_BAD_ARGUMENT")
end
local current = tonumber(redis.call("HGET", KEYS[1], ARGV[1]) or "")
if not current or current < from or current >= to then
  return 0
end
redis.call("HSET", KEYS[1], ARGV[1], to)
return 1

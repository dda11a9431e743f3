-- Give a worker id back on clean shutdown, only while the caller's token still owns it,
-- and set its high-water mark to the last millisecond the holder actually stamped, so the
-- next holder need not wait out the unused rest of the lease.
--
-- KEYS[1]  the lease key, e.g. {ids}:worker:7
-- KEYS[2]  the high-water key of the same worker id, e.g. {ids}:high-water:7
-- ARGV[1]  owner token given when the lease was taken
-- ARGV[2]  last issued millisecond (Unix ms): no id of this holder is stamped later, and
--          none of an earlier holder either (this holder started after their mark)
--
-- Returns  1 when released; 0 when the lease had lapsed or another token holds it
--          (nothing is changed then: the mark may belong to the new holder)
-- Errors   "ERR_BAD_ARGUMENT" when the token is empty or the last issued millisecond is
--          not an integer.

local token = ARGV[1]
local last_issued_ms = tonumber(ARGV[2])
if not token or token == "" or not last_issued_ms then
  return redis.error_reply("ERR_BAD_ARGUMENT")
end

if redis.call("GET", KEYS[1]) ~= token then
  return 0
end
redis.call("DEL", KEYS[1])
redis.call("SET", KEYS[2], string.format("%d", last_issued_ms))
return 1

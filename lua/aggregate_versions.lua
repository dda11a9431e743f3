-- Reserve the next versions of one aggregate, for events decided outside a single-writer
-- consumer (admin catalogue commands): every reservation gets versions no one else gets.
--
-- KEYS[1]  the aggregate's version counter, e.g. {p:123}:version
-- ARGV[1]  how many versions to reserve (integer >= 1)
-- ARGV[2]  the highest version the read model has seen (integer >= 0): a counter lost with
--          Redis data restarts above it, never below
--
-- Returns  the last version reserved; the first is (last - count + 1)
-- Errors   "ERR_BAD_ARGUMENT" when count or floor is not a valid integer.

local count = tonumber(ARGV[1])
local floor = tonumber(ARGV[2])
if not count or count < 1 or not floor or floor < 0 then
  return redis.error_reply("ERR_BAD_ARGUMENT")
end

local current = tonumber(redis.call("GET", KEYS[1]) or "0")
if current < floor then
  redis.call("SET", KEYS[1], floor)
end
return redis.call("INCRBY", KEYS[1], count)

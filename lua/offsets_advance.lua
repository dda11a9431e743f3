-- Advance a projector's applied offsets, never moving one back (a replayed batch is older).
--
-- KEYS[1]  the projector's offsets (hash)   projector-offsets:<projector>   "topic:partition" -> offset
-- ARGV     pairs of "topic:partition" and offset
--
-- Returns  how many offsets moved forward
-- Errors   "ERR_BAD_ARGUMENT" for an odd argument list or an offset that is not an integer.

if #ARGV % 2 ~= 0 then
  return redis.error_reply("ERR_BAD_ARGUMENT")
end
local moved = 0
for i = 1, #ARGV, 2 do
  local offset = tonumber(ARGV[i + 1])
  if not offset then
    return redis.error_reply("ERR_BAD_ARGUMENT")
  end
  local current = tonumber(redis.call("HGET", KEYS[1], ARGV[i]) or "-1")
  if offset > current then
    redis.call("HSET", KEYS[1], ARGV[i], offset)
    moved = moved + 1
  end
end
return moved

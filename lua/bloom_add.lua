-- Add one member to a Bloom filter kept as a Redis bitmap: set its bits in the live filter
-- and in the one being built, whichever exist. Neither key is ever created here: a filter
-- that was never built must keep answering "unknown", not "absent" for everything else.
--
-- KEYS[1]  the live filter, e.g. damai:{program-bloom}:16777216x7
-- KEYS[2]  the filter being built beside it (same hash tag), e.g. ...:building
-- ARGV     the member's bit offsets (integers >= 0), at least one
--
-- Returns  {live, building}: 1 for each filter that now holds the member, 0 where the
--          filter does not exist
-- Errors   "ERR_BAD_ARGUMENT" when no offset is given or an offset is not a non-negative integer.

if #ARGV == 0 then
  return redis.error_reply("ERR_BAD_ARGUMENT")
end
for i = 1, #ARGV do
  local offset = tonumber(ARGV[i])
  if not offset or offset < 0 or offset ~= math.floor(offset) then
    return redis.error_reply("ERR_BAD_ARGUMENT")
  end
end

local added = {0, 0}
for k = 1, 2 do
  if redis.call("EXISTS", KEYS[k]) == 1 then
    for i = 1, #ARGV do
      redis.call("SETBIT", KEYS[k], ARGV[i], 1)
    end
    added[k] = 1
  end
end
return added

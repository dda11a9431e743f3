-- Start building a Bloom filter beside the live one, unless another build is under way.
-- The builder's token and the scratch bitmap share one TTL, which the builder refreshes
-- while it makes progress; an abandoned build expires by itself.
--
-- KEYS[1]  the scratch bitmap being built, e.g. damai:{program-bloom}:16777216x7:building
-- KEYS[2]  the builder key holding the owner token (same hash tag), e.g. ...:builder
-- ARGV[1]  owner token of this build (non-empty)
-- ARGV[2]  TTL of both keys in milliseconds (integer >= 1)
--
-- Returns  1 when this build now owns the scratch bitmap (emptied), 0 when another build does
-- Errors   "ERR_BAD_ARGUMENT" when the token is empty or the TTL is not a positive integer.

local token = ARGV[1]
local ttl_ms = tonumber(ARGV[2])
if not token or token == "" or not ttl_ms or ttl_ms < 1 then
  return redis.error_reply("ERR_BAD_ARGUMENT")
end

if redis.call("SET", KEYS[2], token, "NX", "PX", ttl_ms) == false then
  return 0
end
-- An empty string exists (so additions land in it) and grows as bits are set.
redis.call("SET", KEYS[1], "", "PX", ttl_ms)
return 1

-- Finish a Bloom filter build: the scratch bitmap becomes the live filter, or is OR-ed into it
-- when one exists (bits set by additions during the build are kept either way, so a rebuild
-- never makes a present member look absent).
--
-- KEYS[1]  the live filter, e.g. damai:{program-bloom}:16777216x7
-- KEYS[2]  the scratch bitmap, e.g. ...:building
-- KEYS[3]  the builder key holding the owner token, e.g. ...:builder
-- ARGV[1]  owner token given to bloom_build_start
--
-- Returns  1 when the scratch bitmap became the live filter, 2 when it was merged into it,
--          0 when this build no longer owns it (it expired or another build took over;
--          nothing is changed then)
-- Errors   "ERR_BAD_ARGUMENT" when the token is empty.

local token = ARGV[1]
if not token or token == "" then
  return redis.error_reply("ERR_BAD_ARGUMENT")
end

if redis.call("GET", KEYS[3]) ~= token or redis.call("EXISTS", KEYS[2]) == 0 then
  return 0
end
redis.call("DEL", KEYS[3])
if redis.call("EXISTS", KEYS[1]) == 1 then
  redis.call("BITOP", "OR", KEYS[1], KEYS[1], KEYS[2])
  redis.call("DEL", KEYS[2])
  return 2
end
redis.call("RENAME", KEYS[2], KEYS[1])
redis.call("PERSIST", KEYS[1])
return 1

-- Apply one user's events to the purchase path's copy of the user, each at most once: an event
-- whose aggregate version is not newer than the state's is skipped, so a redelivered or replayed
-- batch never moves the version back, never brings a removed ticket buyer back and never revives
-- a deleted user. Registration waits on the version; the purchase path refuses a deleted user
-- and checks ticket buyers here. Kept by projections/user_projector.py after Postgres commits.
--
-- KEYS[1]  the user's state (hash)          <prefix>:{u:<id>}:state           version, status
-- KEYS[2]  the user's ticket buyers (hash)  <prefix>:{u:<id>}:ticket-buyers   buyer id -> ID number blind (hex)
-- ARGV     quadruples, oldest first: aggregate version, kind, ticket buyer id, ID number blind.
--          kind: "event" (only the version moves), "buyer_added", "buyer_removed", "deleted";
--          the buyer fields are "" where the kind names no buyer (removal needs only the id).
--          The status written is "active" or "deleted" (queries/views/users.py UserStatus).
--
-- Returns  the state's version after the call
-- Errors   "ERR_BAD_ARGUMENT" for a list that is not quadruples, a version that is not a positive
--          integer, an unknown kind, or a buyer kind without the fields it needs; nothing is
--          changed then.

if #ARGV == 0 or #ARGV % 4 ~= 0 then
  return redis.error_reply("ERR_BAD_ARGUMENT")
end
for i = 1, #ARGV, 4 do
  local version, kind = tonumber(ARGV[i]), ARGV[i + 1]
  if not version or version < 1 or version ~= math.floor(version) then
    return redis.error_reply("ERR_BAD_ARGUMENT")
  end
  if kind == "buyer_added" then
    if ARGV[i + 2] == "" or ARGV[i + 3] == "" then
      return redis.error_reply("ERR_BAD_ARGUMENT")
    end
  elseif kind == "buyer_removed" then
    if ARGV[i + 2] == "" then
      return redis.error_reply("ERR_BAD_ARGUMENT")
    end
  elseif kind ~= "event" and kind ~= "deleted" then
    return redis.error_reply("ERR_BAD_ARGUMENT")
  end
end

local current = tonumber(redis.call("HGET", KEYS[1], "version") or "0")
local status = redis.call("HGET", KEYS[1], "status") or "active"
for i = 1, #ARGV, 4 do
  local version, kind = tonumber(ARGV[i]), ARGV[i + 1]
  if version > current then
    if status ~= "deleted" then
      if kind == "buyer_added" then
        redis.call("HSET", KEYS[2], ARGV[i + 2], ARGV[i + 3])
      elseif kind == "buyer_removed" then
        redis.call("HDEL", KEYS[2], ARGV[i + 2])
      elseif kind == "deleted" then
        redis.call("DEL", KEYS[2])
        status = "deleted"
      end
    end
    current = version
  end
end
redis.call("HSET", KEYS[1], "version", current, "status", status)
return current

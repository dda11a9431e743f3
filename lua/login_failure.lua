-- Login lockout of one identifier (a mobile's or email's blind index): say whether it is locked,
-- and count a failed login. The Nth failure (N = failures_max) within the window that starts at
-- the first failure counted locks the identifier for a whole window from that Nth failure; the
-- lock ends with the counter (its TTL). A successful login does not reset the count.
--
-- KEYS[1]  the identifier's failure counter, <prefix>:{login:<blind>}:failures (infra/redis_keys.py)
-- ARGV[1]  failures_max: failures that lock (integer >= 1)
-- ARGV[2]  window length in milliseconds (integer >= 1)
-- ARGV[3]  1 to count a failure, 0 to only ask
--
-- Returns  retry_after_ms: 0 when the identifier is not locked (after this failure, if counted),
--          else milliseconds until the lock ends. A failure while locked is not counted: it
--          neither extends the lock nor lets it be held forever.
-- Errors   "ERR_BAD_ARGUMENT" when an argument is not as above.

local failures_max = tonumber(ARGV[1])
local window_ms = tonumber(ARGV[2])
local record = ARGV[3]
if not failures_max or failures_max < 1 or not window_ms or window_ms < 1 or (record ~= "0" and record ~= "1") then
  return redis.error_reply("ERR_BAD_ARGUMENT")
end

local function lock_left()
  local ttl = redis.call("PTTL", KEYS[1])
  if ttl < 0 then
    -- A counter without expiry would lock forever; give it one.
    redis.call("PEXPIRE", KEYS[1], window_ms)
    return window_ms
  end
  return math.max(ttl, 1)
end

local count = tonumber(redis.call("GET", KEYS[1]) or "0")
if count >= failures_max then
  return lock_left()
end
if record == "0" then
  return 0
end

count = redis.call("INCR", KEYS[1])
if count == 1 or count >= failures_max then
  -- The first failure opens the window; the Nth locks for a whole window from now.
  redis.call("PEXPIRE", KEYS[1], window_ms)
end
if count >= failures_max then
  return window_ms
end
return 0

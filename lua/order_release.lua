-- End a held order, once: give its tickets back, seats or general-admission counts (cancelled by
-- its buyer, or expired unpaid at its deadline), or keep them out for good (sold: paid). An order
-- that is not held (already ended, rejected, never decided) is left as it is, so a repeated, late
-- or racing ending changes nothing, and every caller learns how the order did end: cancel, expiry
-- and payment all ask this script, and the first to ask decides.
--
-- KEYS[1]  the program's remaining counts (hash)     {p:<id>}:remaining    ticket category -> count
-- ARGV[1]  the program's hash tag                    {p:<id>}              (KEYS[1] must be <tag>:remaining)
-- ARGV[2]  the order number
-- ARGV[3]  the ending: "cancelled", "expired" or "sold"
-- ARGV[4]  the row stride C of the seat scores (score = row * C + column)
-- ARGV[5]  how long a cancelled or expired decision is remembered, seconds
--
-- The decision is {p:<id>}:order:<order>, as lua/order_reserve.lua stored it; the other keys are
-- derived from the tag as there (one slot on Redis Cluster by construction).
--
-- cancelled, expired: each seat back in its category's available set at row * C + column (a
--           general-admission ticket, seat "", has none to give back), each category's remaining
--           count up by its tickets, the user's account down by the tickets (the counter
--           removed at zero), each document the order claimed at the show time freed (only while
--           it still names this order); the decision's status becomes the ending, kept ARGV[5] s
--           (a request decided again after that is past its deadline, so it reserves nothing).
-- sold:     the decision's status becomes "sold", without TTL (a refund will give its seats
--           back); seats, counts and the account stay as they are.
--
-- Returns  {changed, status}: changed 1 when the order was held and has ended now, 0 otherwise;
--          status the decision's status after the call ("cancelled", "expired", "sold", "held",
--          "rejected"), or "" for an order never decided.
-- Errors   "ERR_BAD_ARGUMENT" for a tag, order number, outcome or number that is not one.

local tag, order, outcome = ARGV[1], ARGV[2], ARGV[3]
local stride, ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
local function whole(v)
  return v and v == math.floor(v) and v >= 1
end
if type(tag) ~= "string" or not string.match(tag, "^{p:%d+}$") or KEYS[1] ~= tag .. ":remaining"
  or not order or not string.match(order, "^%d+$") or (outcome ~= "cancelled" and outcome ~= "expired" and outcome ~= "sold")
  or not whole(stride) or not whole(ttl) then
  return redis.error_reply("ERR_BAD_ARGUMENT")
end

local decision_key = tag .. ":order:" .. order
local stored = redis.call("GET", decision_key)
if not stored then
  return {0, ""}
end
local decision = cjson.decode(stored)
if decision.status ~= "held" then
  return {0, decision.status}
end

decision.status = outcome
if outcome == "sold" then
  redis.call("SET", decision_key, cjson.encode(decision))
  return {1, outcome}
end

local counts = {}
for _, t in ipairs(decision.t) do
  local seat, tc, row, column = t[1], t[2], t[3], t[4]
  if seat ~= "" then
    redis.call("ZADD", tag .. ":available:" .. tc, row * stride + column, seat)
  end
  counts[tc] = (counts[tc] or 0) + 1
end
for tc, count in pairs(counts) do
  redis.call("HINCRBY", KEYS[1], tc, count)
end
local account = tag .. ":account:" .. decision.u
if redis.call("DECRBY", account, #decision.t) <= 0 then
  redis.call("DEL", account)
end
local documents = tag .. ":documents:" .. decision.st
for _, blind in ipairs(decision.d or {}) do
  if redis.call("HGET", documents, blind) == order then
    redis.call("HDEL", documents, blind)
  end
end
redis.call("SET", decision_key, cjson.encode(decision), "EX", ttl)
return {1, outcome}

-- Save an order's aggregate (aggregates/order.py) after it decided something, and give the seats
-- the effect of the ending it decided, in one atomic step: the tickets back on sale, seats or
-- general-admission counts (cancelled by its buyer, or expired unpaid at its deadline), or kept
-- out for good (sold: paid). The aggregate is the rule (which ending follows which state); this
-- script is the compare that makes it hold when two processes decide one order at once (a cancel
-- racing an expiry, two lifecycles across a rebalance): it saves only if the snapshot is still at
-- the version the aggregate was loaded at and the decision still has the status the aggregate
-- expects, so the first to save wins and the other, reloading, finds the order ended.
--
-- KEYS[1]  the program's remaining counts (hash)     {p:<id>}:remaining    ticket category -> count
-- ARGV[1]  the program's hash tag                    {p:<id>}              (KEYS[1] must be <tag>:remaining)
-- ARGV[2]  the order number
-- ARGV[3]  the ending: "cancelled", "expired", "sold", "refunded", or "" for a change that touches no
--          seat (the first snapshot of a hold, a refund of a late payment asked for)
-- ARGV[4]  the row stride C of the seat scores (score = row * C + column)
-- ARGV[5]  how long an order that holds no seats (cancelled, expired, rejected) is remembered, seconds
-- ARGV[6]  the decision's status the aggregate ended from, as the allocator calls it: "held" (an
--          order ends only while unpaid); for "refunded", "sold" (a paid order's refund: its seats
--          back) or "cancelled" / "expired" (a late payment given back: the seats were back already);
--          "" when ARGV[3] is ""
-- ARGV[7]  the aggregate's version the change was decided on (0: it had none)       } all three, or
-- ARGV[8]  the aggregate's version after the change (greater than ARGV[7])            } none: an ending
-- ARGV[9]  its snapshot after the change (JSON, aggregates/base.py), stored as it is } of the seats alone
--
-- The decision is {p:<id>}:order:<order>, as lua/order_reserve.lua stored it; the snapshot is the
-- hash {p:<id>}:aggregate:order-<order> (version, state); the other keys are derived from the tag
-- as there (one slot on Redis Cluster by construction).
--
-- Saved when the snapshot is absent or at ARGV[7], and, with an ending, the decision's status is
-- ARGV[6]. Then:
-- cancelled, expired: each seat back in its category's available set at row * C + column (a
--           general-admission ticket, seat "", has none to give back), each category's remaining
--           count up by its tickets, the user's account down by the tickets (the counter
--           removed at zero), each document the order claimed at the show time freed (only while
--           it still names this order); the decision's status becomes the ending, kept ARGV[5] s
--           (a request decided again after that is past its deadline, so it reserves nothing).
-- sold:     the decision's status becomes "sold", without TTL (a refund will give its seats
--           back); seats, counts and the account stay as they are.
-- refunded: from "sold", as cancelled (the seats back on sale); from "cancelled" or "expired", the
--           status alone (its seats went back when it ended).
-- and the snapshot becomes ARGV[8], ARGV[9]; it expires ARGV[5] s later (if it has no TTL yet)
-- unless the decision is held or sold. An ending of the seats alone (no ARGV[7..9]: the scripts'
-- own tests) leaves any snapshot as it is.
--
-- Returns  {saved, status}: saved 1 when the change was saved (and the seats given its ending), 0
--          when the snapshot had moved on or the decision was not as expected (nothing changed:
--          reload and decide again); status the decision's status after the call ("held",
--          "rejected", "cancelled", "expired", "sold", "refunded"), or "" for an order Redis holds
--          no decision of.
-- Errors   "ERR_BAD_ARGUMENT" for a tag, order number, ending, number or version that is not one.

local tag, order, outcome = ARGV[1], ARGV[2], ARGV[3]
local stride, ttl, expected = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local loaded, version, state = tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9]
local function whole(v, lowest)
  return v and v == math.floor(v) and v >= lowest
end
-- Each ending, and the statuses it may follow.
local endings = {
  cancelled = {held = true}, expired = {held = true}, sold = {held = true},
  refunded = {sold = true, cancelled = true, expired = true},
}
local saving = #ARGV == 9
if type(tag) ~= "string" or not string.match(tag, "^{p:%d+}$") or KEYS[1] ~= tag .. ":remaining"
  or not order or not string.match(order, "^%d+$") or not whole(stride, 1) or not whole(ttl, 1)
  or (outcome ~= "" and (not endings[outcome] or not endings[outcome][expected]))
  or (outcome == "") ~= (expected == "")
  or (#ARGV ~= 6 and not saving) or (outcome == "" and not saving)
  or (saving and (not whole(loaded, 0) or not whole(version, loaded + 1) or state == "")) then
  return redis.error_reply("ERR_BAD_ARGUMENT")
end

local decision_key = tag .. ":order:" .. order
local snapshot_key = tag .. ":aggregate:order-" .. order
local stored = redis.call("GET", decision_key)
local decision = stored and cjson.decode(stored) or nil
local status = decision and decision.status or ""

local at = saving and tonumber(redis.call("HGET", snapshot_key, "version"))
if (at and at ~= loaded) or (outcome ~= "" and status ~= expected) then
  return {0, status}
end

local seats_back = outcome == "cancelled" or outcome == "expired" or (outcome == "refunded" and expected == "sold")
if outcome == "sold" then
  decision.status = outcome
  redis.call("SET", decision_key, cjson.encode(decision))
elseif outcome ~= "" and not seats_back then
  decision.status = outcome
  redis.call("SET", decision_key, cjson.encode(decision), "KEEPTTL")
elseif seats_back then
  decision.status = outcome
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
end
if outcome ~= "" then
  status = outcome
end

if saving then
  redis.call("HSET", snapshot_key, "version", version, "state", state)
  if status ~= "held" and status ~= "sold" and redis.call("TTL", snapshot_key) == -1 then
    redis.call("EXPIRE", snapshot_key, ttl)
  end
end
return {1, status}

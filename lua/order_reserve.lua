-- Decide a batch of one program's order requests, in order, atomically: hold seats for each
-- request that can have them, reject the others with a reason, and remember each decision so a
-- request decided again (a redelivery, a replay) gets the same decision and changes nothing.
--
-- KEYS[1]  the program's remaining counts (hash)     {p:<id>}:remaining    ticket category -> count
-- ARGV[1]  the program's hash tag                    {p:<id>}              (KEYS[1] must be <tag>:remaining)
-- ARGV[2]  now, epoch ms
-- ARGV[3]  the row stride C of the seat scores (score = row * C + column)
-- ARGV[4]  how long a rejected decision is remembered, seconds
-- ARGV[5..] one request each, JSON:
--          {"o": order number, "u": user id, "st": show time id,
--           "tc": ticket category id, "n": count                   (automatic seats), or
--           "s": [[seat id, "price the buyer saw"], ...]            (chosen seats),
--           "b": [[ticket buyer id, "document blind index hex"], ...] (at most one per ticket),
--           "lim": per-account limit, "real": 1 when real names are required else 0,
--           "dl": decision deadline (ms), "pay": payment deadline (ms)}
--          Ids are strings of digits: Lua numbers are doubles and lose 63-bit ids.
--
-- Every other key is the tag and a suffix (the names of infra/redis_keys.py, which the tests
-- read them with): :price, :seat-category, :category-show-time, :category-columns,
-- :available:<tc>, :order:<order>, :account:<user>, :documents:<show time>, :hold-sequence. Only KEYS[1] is
-- declared, to route the call to the program's slot; the others share its hash tag, so on Redis
-- Cluster they are in the same slot, on the same node, by construction.
--
-- Each request, first failing check wins:
--   decided before (its :order key exists)  -> that decision, unchanged; nothing changes
--   now > dl                                -> DEADLINE_PASSED
--   tickets held or bought by the user for the program + tickets > lim -> PER_ACCOUNT_LIMIT
--   real names: a buyer's document already holds a ticket for the show time, or two buyers of
--     the request share one                 -> TICKET_BUYER_HAS_TICKET
--   chosen seats, each in turn: no such seat in the program, or its category is of another show
--     time -> SEAT_NOT_FOUND; not available, or named twice -> SEAT_UNAVAILABLE; a price other
--     than the category's now (compared in cents: "80" is "80.00") -> PRICE_CHANGED
--   automatic: the category is not of the show time, or has no price -> SEAT_NOT_FOUND; fewer
--     remaining than n -> SOLD_OUT; a seated program's category ("seated": 1, the program lets
--     buyers choose seats, so every category has a layout): no n adjacent seats in any row, or no
--     layout in the inventory yet -> NO_ADJACENT_SEATS. The seats are those
--     of aggregates/seating.py (row nearest the stage, then run nearest the centre line, ties to
--     the lower column), found row by row with one ZRANGEBYSCORE each from the lowest available
--     seat's row, so a 50,000-seat category is never read whole. A category of a program that is
--     not seated ("seated": 0) is counted by its total (general admission): n tickets without
--     seats, decided on the count alone; the request says which, so a seated category whose seats
--     are not projected yet is never sold by count. (A chosen seat is never of such a category: it has no seats, so SEAT_NOT_FOUND.)
-- A held request takes its seats out of the available sets, its tickets off the remaining counts,
-- adds them to the user's account and, with real names, maps each buyer's document to the order
-- at the show time; its decision is kept without TTL (lua/order_release.lua needs it). A rejected
-- request changes nothing but its decision, kept for ARGV[4] seconds.
--
-- Returns  a JSON array of the decisions, in request order:
--          held:     {"o","u","st","status":"held","t":[[seat, tc, row, column, "price",
--                    ticket buyer id or ""], ...],"total":"123.00","pay": ms,"d":[blinds],
--                    "hs": hold sequence}
--                    (ticket i gets buyer i; a general-admission ticket is ["", tc, 0, 0, "price",
--                    buyer]: no seat, row and column 0, which no seat has; "d", with real names
--                    only, the documents' blind indexes it claimed at the show time, which a
--                    release gives back; "hs", the program's count of holds with this one,
--                    :hold-sequence incremented: it orders one seat's holds across orders,
--                    whatever order the projector applies the orders' partitions in —
--                    projections/order_projector.py)
--          rejected: {"o","u","st","status":"rejected","r": reason}
--          a decision taken before is returned as stored (its status may since be "released" or
--          "sold") with "again":1 added in the reply only.
-- Errors   "ERR_BAD_ARGUMENT" for a tag or number that is not one, or any malformed request; all
--          requests are checked before anything is written.

local tag = ARGV[1]
local now, stride, rejected_ttl = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])

local function whole(v, lowest)
  return type(v) == "number" and v == math.floor(v) and v >= lowest
end

local function id(v)
  return type(v) == "string" and #v <= 19 and string.match(v, "^%d+$") ~= nil
end

local function price_text(p)
  return type(p) == "string" and (string.match(p, "^%d+$") or string.match(p, "^%d+%.%d%d?$")) ~= nil
end

local function cents(p)
  return math.floor(tonumber(p) * 100 + 0.5)
end

local function yuan(c)
  return string.format("%d.%02d", math.floor(c / 100), c % 100)
end

if type(tag) ~= "string" or not string.match(tag, "^{p:%d+}$") or KEYS[1] ~= tag .. ":remaining"
  or not whole(now, 0) or not whole(stride, 1) or not whole(rejected_ttl, 1) then
  return redis.error_reply("ERR_BAD_ARGUMENT")
end

-- A request as JSON, checked; nil when malformed. JSON null counts as absent.
local function parse(raw)
  local ok, r = pcall(cjson.decode, raw)
  if not ok or type(r) ~= "table" then
    return nil
  end
  for k, v in pairs(r) do
    if v == cjson.null then
      r[k] = nil
    end
  end
  if not (id(r.o) and id(r.u) and id(r.st) and whole(r.lim, 0) and (r.real == 0 or r.real == 1)
      and (r.seated == 0 or r.seated == 1) and whole(r.dl, 0) and whole(r.pay, 0)) then
    return nil
  end
  if r.tc ~= nil or r.n ~= nil then
    if r.s ~= nil or not id(r.tc) or not whole(r.n, 1) then
      return nil
    end
    r.tickets = r.n
  else
    if type(r.s) ~= "table" or #r.s == 0 then
      return nil
    end
    for _, seat in ipairs(r.s) do
      if type(seat) ~= "table" or not id(seat[1]) or not price_text(seat[2]) then
        return nil
      end
    end
    r.tickets = #r.s
  end
  r.b = r.b or {}
  if type(r.b) ~= "table" or #r.b > r.tickets or (r.real == 1 and #r.b ~= r.tickets) then
    return nil
  end
  for _, buyer in ipairs(r.b) do
    if type(buyer) ~= "table" or not id(buyer[1]) or type(buyer[2]) ~= "string"
        or not string.match(buyer[2], "^%x+$") then
      return nil
    end
  end
  return r
end

local requests = {}
for i = 5, #ARGV do
  local r = parse(ARGV[i])
  if not r then
    return redis.error_reply("ERR_BAD_ARGUMENT")
  end
  requests[#requests + 1] = r
end

local remaining_key = KEYS[1]
local prices_key = tag .. ":price"
local seat_categories_key = tag .. ":seat-category"
local show_times_key = tag .. ":category-show-time"
local columns_key = tag .. ":category-columns"
local function available_key(tc) return tag .. ":available:" .. tc end
local function decision_key(order) return tag .. ":order:" .. order end
local function account_key(user) return tag .. ":account:" .. user end
local function documents_key(show_time) return tag .. ":documents:" .. show_time end

-- Row and column of a seat score (fmod is exact where a division may round).
local function position(score)
  local column = math.fmod(score, stride)
  return (score - column) / stride, column
end

local function document_taken(r)
  local documents, seen = documents_key(r.st), {}
  for _, buyer in ipairs(r.b) do
    if seen[buyer[2]] or redis.call("HEXISTS", documents, buyer[2]) == 1 then
      return true
    end
    seen[buyer[2]] = true
  end
  return false
end

-- Tickets: {seat, tc, row, column, price as stored}; or nil and the reason.
local function chosen_seats(r)
  local tickets, seen = {}, {}
  for i, choice in ipairs(r.s) do
    local seat = choice[1]
    local tc = redis.call("HGET", seat_categories_key, seat)
    if not tc or redis.call("HGET", show_times_key, tc) ~= r.st then
      return nil, "SEAT_NOT_FOUND"
    end
    local score = not seen[seat] and redis.call("ZSCORE", available_key(tc), seat)
    if not score then
      return nil, "SEAT_UNAVAILABLE"
    end
    local price = redis.call("HGET", prices_key, tc)
    if not price or cents(price) ~= cents(choice[2]) then
      return nil, "PRICE_CHANGED"
    end
    seen[seat] = true
    local row, column = position(tonumber(score))
    tickets[i] = {seat, tc, row, column, price}
  end
  return tickets
end

-- The start column of the best run of n in one row (aggregates/seating.py's best_start); the row
-- is ZRANGEBYSCORE's reply with scores, in column order.
local function best_start(row_reply, n, centre_twice)
  local ideal = math.floor((centre_twice - n + 1) / 2)
  local best, best_distance, first, previous
  local function close_run()
    if first and previous - first + 1 >= n then
      local start = math.max(first, math.min(ideal, previous - n + 1))
      local distance = math.abs(2 * start + n - 1 - centre_twice)
      if not best or distance < best_distance or (distance == best_distance and start < best) then
        best, best_distance = start, distance
      end
    end
  end
  for k = 2, #row_reply, 2 do
    local _, column = position(tonumber(row_reply[k]))
    if not previous or column ~= previous + 1 then
      close_run()
      first = column
    end
    previous = column
  end
  close_run()
  return best
end

local NO_SEAT = ""

-- n tickets of a category counted by its total: no seat, row or column to give.
local function counted_tickets(tc, n, price)
  local tickets = {}
  for i = 1, n do
    tickets[i] = {NO_SEAT, tc, 0, 0, price}
  end
  return tickets
end

local function automatic_seats(r)
  local tc, n = r.tc, r.n
  local price = redis.call("HGET", prices_key, tc)
  -- lua/inventory_apply.lua writes a category's price and show time together: without a price
  -- the category is not (yet) in the inventory.
  if not price or redis.call("HGET", show_times_key, tc) ~= r.st then
    return nil, "SEAT_NOT_FOUND"
  end
  if (tonumber(redis.call("HGET", remaining_key, tc)) or 0) < n then
    return nil, "SOLD_OUT"
  end
  local bounds = redis.call("HMGET", columns_key, tc .. ":min", tc .. ":max")
  if r.seated == 0 then
    return counted_tickets(tc, n, price)
  end
  if not bounds[1] then
    -- A seated program's category whose seats are not in the inventory yet: nothing to hold.
    return nil, "NO_ADJACENT_SEATS"
  end
  local centre_twice = tonumber(bounds[1]) + tonumber(bounds[2])
  local available = available_key(tc)
  local next_seat = redis.call("ZRANGE", available, 0, 0, "WITHSCORES")
  while next_seat[2] do
    local row = position(tonumber(next_seat[2]))
    local low = row * stride
    local row_reply = redis.call("ZRANGEBYSCORE", available, low, low + stride - 1, "WITHSCORES")
    local start = #row_reply / 2 >= n and best_start(row_reply, n, centre_twice)
    if start then
      local tickets = {}
      for k = 2, #row_reply, 2 do
        local _, column = position(tonumber(row_reply[k]))
        if column >= start and column < start + n then
          tickets[#tickets + 1] = {row_reply[k - 1], tc, row, column, price}
        end
      end
      return tickets
    end
    next_seat = redis.call("ZRANGEBYSCORE", available, low + stride, "+inf", "WITHSCORES", "LIMIT", 0, 1)
  end
  return nil, "NO_ADJACENT_SEATS"
end

local function hold(r, tickets)
  local total, counts, seats, blinds = 0, {}, {}, {}
  for i, t in ipairs(tickets) do
    local tc = t[2]
    counts[tc] = (counts[tc] or 0) + 1
    if t[1] ~= NO_SEAT then
      seats[tc] = seats[tc] or {}
      table.insert(seats[tc], t[1])
    end
    local c = cents(t[5])
    total = total + c
    t[5] = yuan(c)
    t[6] = r.b[i] and r.b[i][1] or ""
  end
  for tc, taken in pairs(seats) do
    redis.call("ZREM", available_key(tc), unpack(taken))
  end
  for tc, count in pairs(counts) do
    redis.call("HINCRBY", remaining_key, tc, -count)
  end
  redis.call("INCRBY", account_key(r.u), #tickets)
  if r.real == 1 then
    for i, buyer in ipairs(r.b) do
      redis.call("HSET", documents_key(r.st), buyer[2], r.o)
      blinds[i] = buyer[2]
    end
  end
  local decision = cjson.encode({o = r.o, u = r.u, st = r.st, status = "held", t = tickets,
    total = yuan(total), pay = r.pay, d = r.real == 1 and blinds or nil,
    hs = redis.call("INCR", tag .. ":hold-sequence")})
  redis.call("SET", decision_key(r.o), decision)
  return decision
end

local function decide(r)
  local stored = redis.call("GET", decision_key(r.o))
  if stored then
    return '{"again":1,' .. string.sub(stored, 2)
  end
  local tickets, reason
  if now > r.dl then
    reason = "DEADLINE_PASSED"
  elseif (tonumber(redis.call("GET", account_key(r.u))) or 0) + r.tickets > r.lim then
    reason = "PER_ACCOUNT_LIMIT"
  elseif r.real == 1 and document_taken(r) then
    reason = "TICKET_BUYER_HAS_TICKET"
  elseif r.s then
    tickets, reason = chosen_seats(r)
  else
    tickets, reason = automatic_seats(r)
  end
  if tickets then
    return hold(r, tickets)
  end
  local decision = cjson.encode({o = r.o, u = r.u, st = r.st, status = "rejected", r = reason})
  redis.call("SET", decision_key(r.o), decision, "EX", rejected_ttl)
  return decision
end

local decisions = {}
for i, r in ipairs(requests) do
  decisions[i] = decide(r)
end
return "[" .. table.concat(decisions, ",") .. "]"

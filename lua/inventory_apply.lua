-- Apply one catalogue event to a program's seat inventory, once: the inventory remembers the
-- ids of the events it applied (a program has a few dozen), so a redelivered or replayed event
-- can never put a sold seat back on sale or reset a count, whatever order events arrive in.
--
-- KEYS[1]  the program's applied-event set          {p:<id>}:inventory:applied
-- KEYS[2]  the program's remaining counts (hash)    {p:<id>}:remaining         ticket category -> count
-- KEYS[3]  the category's available seats (zset)    {p:<id>}:available:<tc>    seat id, score row*C+column
-- KEYS[4]  the category's seat facts (hash)         {p:<id>}:seat:<tc>         seat id -> "row:column:price"
-- ARGV[1]  the event id
-- ARGV[2]  kind: "category" or "seats"
-- ARGV[3]  ticket category id
-- ARGV[4]  category: its total; seats: the row stride C (score = row * C + column)
-- ARGV[5..] seats only: seat id, row, column, price — four values per seat
--
-- Returns  1 when applied, 0 when this event was already applied (nothing changed)
-- Errors   "ERR_BAD_ARGUMENT" for a missing event id, an unknown kind or a malformed seat list.

local event_id = ARGV[1]
if not event_id or event_id == "" then
  return redis.error_reply("ERR_BAD_ARGUMENT")
end
if redis.call("SISMEMBER", KEYS[1], event_id) == 1 then
  return 0
end

local kind, category = ARGV[2], ARGV[3]
if kind == "category" then
  local total = tonumber(ARGV[4])
  if not total or total < 0 then
    return redis.error_reply("ERR_BAD_ARGUMENT")
  end
  redis.call("HSET", KEYS[2], category, total)
elseif kind == "seats" then
  local stride = tonumber(ARGV[4])
  if not stride or stride < 1 or (#ARGV - 4) % 4 ~= 0 then
    return redis.error_reply("ERR_BAD_ARGUMENT")
  end
  for i = 5, #ARGV, 4 do
    local seat, row, column, price = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), ARGV[i + 3]
    redis.call("ZADD", KEYS[3], row * stride + column, seat)
    redis.call("HSET", KEYS[4], seat, row .. ":" .. column .. ":" .. price)
  end
else
  return redis.error_reply("ERR_BAD_ARGUMENT")
end
redis.call("SADD", KEYS[1], event_id)
return 1

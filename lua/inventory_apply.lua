-- Apply one catalogue event to a program's seat inventory, once: the inventory remembers the
-- ids of the events it applied (a program has a few dozen), so a redelivered or replayed event
-- can never put a sold seat back on sale, reset a count or restore an old price, whatever
-- order events arrive in.
--
-- KEYS[1]  the program's applied-event set          {p:<id>}:inventory:applied
-- KEYS[2]  the program's remaining counts (hash)    {p:<id>}:remaining         ticket category -> count
-- KEYS[3]  the program's prices (hash)              {p:<id>}:price             ticket category -> "1680.00"
-- KEYS[4]  the category's available seats (zset)    {p:<id>}:available:<tc>    seat id, score row*C+column
-- KEYS[5]  the category's seat facts (hash)         {p:<id>}:seat:<tc>         seat id -> "row:column"
-- KEYS[6]  the versions of the prices (hash)        {p:<id>}:price-version     ticket category -> version
-- KEYS[7]  the program's seats' categories (hash)   {p:<id>}:seat-category     seat id -> ticket category
-- KEYS[8]  the categories' show times (hash)        {p:<id>}:category-show-time ticket category -> show time
-- KEYS[9]  the categories' column bounds (hash)     {p:<id>}:category-columns  "<tc>:min" / "<tc>:max" -> column
-- ARGV[1]  the event id
-- ARGV[2]  kind: "category", "seats" or "price"
-- ARGV[3]  ticket category id
-- ARGV[4..] category: its total, price, the event's aggregate version and its show time id;
--          seats: the row stride C (score = row * C + column), then seat id, row, column for each
--          seat; price: the new price and the event's aggregate version
--
-- The last three keys are what the allocator (lua/order_reserve.lua) needs besides the seats: a
-- chosen seat names no category, so it is found through KEYS[7]; a request names its show time,
-- checked against KEYS[8]; automatic seats prefer the centre line of the category's layout, the
-- middle of the lowest and highest columns of all its SeatsLaidOut chunks (KEYS[9]).
--
-- Prices follow the newest version, not the order of arrival: two admins changing one price at
-- once may have their events appended in the other order, and Postgres and Elasticsearch keep
-- the newest version too.
--
-- Returns  1 when applied, 0 when this event was already applied (nothing changed)
-- Errors   "ERR_BAD_ARGUMENT" for a missing event id, an unknown kind or malformed arguments (a
--          total that is not written in decimal digits, whatever Lua's tonumber would make of it).

local event_id = ARGV[1]
if not event_id or event_id == "" then
  return redis.error_reply("ERR_BAD_ARGUMENT")
end
if redis.call("SISMEMBER", KEYS[1], event_id) == 1 then
  return 0
end

local kind, category = ARGV[2], ARGV[3]
local function set_price(price, version)
  local current = tonumber(redis.call("HGET", KEYS[6], category) or "0")
  if version > current then
    redis.call("HSET", KEYS[3], category, price)
    redis.call("HSET", KEYS[6], category, version)
  end
end

if kind == "category" then
  -- The count is stored as given: a Lua number would turn a large one into "9.2233720368547758e+18".
  local total, price, version, show_time = ARGV[4], ARGV[5], tonumber(ARGV[6]), ARGV[7]
  if not total or not string.match(total, "^%d+$") or not tonumber(price) or not version
    or not show_time or not string.match(show_time, "^%d+$") then
    return redis.error_reply("ERR_BAD_ARGUMENT")
  end
  redis.call("HSET", KEYS[2], category, total)
  redis.call("HSET", KEYS[8], category, show_time)
  set_price(price, version)
elseif kind == "seats" then
  local stride = tonumber(ARGV[4])
  if not stride or stride < 1 or (#ARGV - 4) % 3 ~= 0 then
    return redis.error_reply("ERR_BAD_ARGUMENT")
  end
  -- Check every seat before writing any: a script that fails half-way keeps its writes.
  for i = 5, #ARGV, 3 do
    if not tonumber(ARGV[i + 1]) or not tonumber(ARGV[i + 2]) then
      return redis.error_reply("ERR_BAD_ARGUMENT")
    end
  end
  local lowest = tonumber(redis.call("HGET", KEYS[9], category .. ":min"))
  local highest = tonumber(redis.call("HGET", KEYS[9], category .. ":max"))
  for i = 5, #ARGV, 3 do
    local seat, row, column = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
    redis.call("ZADD", KEYS[4], row * stride + column, seat)
    redis.call("HSET", KEYS[5], seat, row .. ":" .. column)
    redis.call("HSET", KEYS[7], seat, category)
    if not lowest or column < lowest then lowest = column end
    if not highest or column > highest then highest = column end
  end
  if lowest then
    redis.call("HSET", KEYS[9], category .. ":min", lowest, category .. ":max", highest)
  end
elseif kind == "price" then
  local version = tonumber(ARGV[5])
  if not tonumber(ARGV[4]) or not version then
    return redis.error_reply("ERR_BAD_ARGUMENT")
  end
  set_price(ARGV[4], version)
else
  return redis.error_reply("ERR_BAD_ARGUMENT")
end
redis.call("SADD", KEYS[1], event_id)
return 1

-- What a program's search document should say about its sold-out state, read from the program's
-- remaining counts, and what of it has been indexed: the search availability processor and the
-- program projector ask this script before writing the document (projections/search_index.py).
--
-- KEYS[1]  the program's remaining counts (hash)       {p:<id>}:remaining   ticket category -> count
-- KEYS[2]  the program's search availability (hash)    search:{p:<id>}:availability
--            "soldOut"  the sold-out ticket categories of the last reading, sorted, comma-separated
--            "stamp"    the reading's stamp: milliseconds of Redis' clock, strictly increasing
--            "indexed"  the highest stamp a search document has been written with
-- ARGV[1]  "read" or "indexed"
-- ARGV[2]  indexed: the stamp a document was written with
--
-- read:    a ticket category is sold out when its count is 0 or less (a count that is not a
--          number is not). When the sold-out categories differ from the last reading's, or there
--          was none, the reading gets a new stamp, max(now, last + 1). The stamp orders readings
--          (the low part of the document's external version): of two writers, the one that read
--          later wins, whatever order their writes reach Elasticsearch in.
-- indexed: "indexed" becomes ARGV[2] if that is higher.
--
-- KEYS[2] is in the program's slot (its hash tag is the program's) but outside the pattern of the
-- program's own keys ({p:<id>}*): it is the search's bookkeeping, which `damai rebuild inventory`
-- neither owns nor replaces.
--
-- Returns  read: {write, stamp, sold-out category, ...}: write 1 when the reading is new or a
--          document with its stamp has not been written yet, 0 when the document says it already.
--          indexed: 1.
-- Errors   "ERR_BAD_ARGUMENT" for another mode or a stamp that is not a whole number.

local mode = ARGV[1]
if mode == "indexed" then
  local stamp = ARGV[2]
  if not stamp or not string.match(stamp, "^%d+$") then
    return redis.error_reply("ERR_BAD_ARGUMENT")
  end
  local indexed = tonumber(redis.call("HGET", KEYS[2], "indexed") or "0")
  if tonumber(stamp) > indexed then
    redis.call("HSET", KEYS[2], "indexed", stamp)
  end
  return 1
end
if mode ~= "read" then
  return redis.error_reply("ERR_BAD_ARGUMENT")
end

local counts = redis.call("HGETALL", KEYS[1])
local sold_out = {}
for i = 1, #counts, 2 do
  local count = tonumber(counts[i + 1])
  if count and count <= 0 then
    sold_out[#sold_out + 1] = counts[i]
  end
end
table.sort(sold_out)
local signature = table.concat(sold_out, ",")

local last = redis.call("HMGET", KEYS[2], "soldOut", "stamp", "indexed")
local stamp = tonumber(last[2])
if last[1] ~= signature or not stamp then
  local now = redis.call("TIME")
  local clock = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  if stamp and clock <= stamp then
    clock = stamp + 1
  end
  stamp = clock
  redis.call("HSET", KEYS[2], "soldOut", signature, "stamp", string.format("%d", stamp))
end
local write = 0
if stamp > tonumber(last[3] or "0") then
  write = 1
end
local reply = {write, stamp}
for _, category in ipairs(sold_out) do
  reply[#reply + 1] = category
end
return reply

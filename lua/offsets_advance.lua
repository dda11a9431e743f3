-- Advance a projector's applied offsets, never moving one back (a replayed batch is older), and
-- tell which partitions' batches began past the offset after the last one applied (a gap).
-- Twin of `advance` in projections/batch.py (the rule in Python, for the Postgres offsets);
-- tests/integration/test_offsets_advance.py holds the two equal.
--
-- KEYS[1]  the projector's offsets (hash)   projector-offsets:<projector>   "topic:partition" -> offset
-- ARGV     triples of "topic:partition", the batch's lowest offset there and its highest
--
-- Returns  a flat list of "topic:partition", last applied offset (-1: none), lowest offset seen,
--          for each partition with a gap
-- Errors   "ERR_BAD_ARGUMENT" for a list that is not triples or an offset that is not an integer.

if #ARGV % 3 ~= 0 then
  return redis.error_reply("ERR_BAD_ARGUMENT")
end
local gaps = {}
for i = 1, #ARGV, 3 do
  local lowest, highest = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  if not lowest or not highest then
    return redis.error_reply("ERR_BAD_ARGUMENT")
  end
  local current = tonumber(redis.call("HGET", KEYS[1], ARGV[i]) or "-1")
  if lowest > current + 1 then
    table.insert(gaps, ARGV[i])
    table.insert(gaps, current)
    table.insert(gaps, lowest)
  end
  if highest > current then
    redis.call("HSET", KEYS[1], ARGV[i], highest)
  end
end
return gaps

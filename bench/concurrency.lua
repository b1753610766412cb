-- bench/concurrency.lua: a 10-batch refresh against an emulator answering
-- after 200 ms, at concurrency 5.  The ideal is 2 x 200 ms; prints the ratio
-- of the measured wall time to that ideal (1.00 = perfect overlap), and the
-- same refresh at concurrency 1 as the sequential baseline of the same run.
local core = require "cdnkit.core"
local emu = require "emu"

local LAT, BATCHES, CONC = 0.2, 10, 5
local e = emu.start("qcloud", { latency = LAT })
local qc = emu.client(e, { rate = false })
local urls = {}
for i = 1, BATCHES do urls[i] = "http://host-0001.example.com/bench-" .. i end

local function run(conc)
  e:reset()
  local t = core.monotime()
  local report = qc:refresh { urls = urls, batch_size = 1, concurrency = conc }
  local dt = core.monotime() - t
  assert(report.ok and report.done == BATCHES, "refresh failed")
  return dt, e:stats().max_inflight
end

run(CONC) -- warm up (connections)
local best = math.huge
local seen
for _ = 1, 3 do
  local dt, inflight = run(CONC)
  if dt < best then best, seen = dt, inflight end
end
local seq = run(1)
local ideal = math.ceil(BATCHES / CONC) * LAT
print(("concurrency: %d batches, latency %.0f ms, concurrency %d (max in flight seen: %d)")
  :format(BATCHES, LAT * 1000, CONC, seen))
print(("  concurrent:  %.3f s   ideal %.3f s   ratio %.2f"):format(best, ideal, best / ideal))
print(("  sequential:  %.3f s   ideal %.3f s   ratio %.2f   (speed-up %.1fx)")
  :format(seq, BATCHES * LAT, seq / (BATCHES * LAT), seq / best))
qc:close()
e:stop()

-- wrk script for bench/run.sh: POSTs the envelopes that `wsbench gen-wrk`
-- wrote, thread i reading FILE.i (each envelope followed by "\n--MSG--\n"),
-- each envelope once until the file runs out; then it wraps, and a SOAP
-- route's replay cache refuses the repeats (run.sh reports them).
-- Argument: FILE
local counter = 0
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

local msgs, idx = {}, 0
function init(args)
  local f = assert(io.open(args[1] .. "." .. tid, "rb"))
  local data = f:read("*a")
  f:close()
  for m in string.gmatch(data, "(.-)\n%-%-MSG%-%-\n") do
    msgs[#msgs + 1] = m
  end
end

local headers = { ["Content-Type"] = "text/xml; charset=utf-8", ["SOAPAction"] = '""' }
function request()
  idx = idx + 1
  if idx > #msgs then
    idx = 1
  end
  return wrk.format("POST", nil, headers, msgs[idx])
end

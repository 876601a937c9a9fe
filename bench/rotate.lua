-- wrk script: rotate through pre-built OCSP requests read from the file given after
-- "--" (bench/common.py writes it): per request a line "GET <path> 0" or
-- "POST <path> <length>", then <length> raw body bytes and a newline.
-- A second argument "close" adds "Connection: close" (a new connection per request).
-- done() prints one RESULT line that bench/common.py parses.

-- wrk opens and closes a probe connection before the run; skip it (as bench/load.py does):
-- the load goes to the resolved address only.
function wrk.resolve(host, service)
   wrk.addrs = wrk.lookup(host, service)
end

local requests = {}
local thread_count = 0

function setup(thread)
   thread:set("offset", thread_count * 7919)
   thread_count = thread_count + 1
end

function init(args)
   local close = args[2] == "close"
   local file = assert(io.open(args[1], "rb"))
   local data = file:read("*a")
   file:close()
   local pos = 1
   while pos <= #data do
      local eol = data:find("\n", pos, true)
      local method, path, length = data:sub(pos, eol - 1):match("^(%S+) (%S+) (%d+)$")
      length = tonumber(length)
      local body = data:sub(eol + 1, eol + length)
      pos = eol + length + 2
      local headers = {}
      if close then headers["Connection"] = "close" end
      if method == "POST" then
         headers["Content-Type"] = "application/ocsp-request"
         requests[#requests + 1] = wrk.format("POST", path, headers, body)
      else
         requests[#requests + 1] = wrk.format("GET", path, headers)
      end
   end
   index = (offset or 0) % #requests
end

function request()
   index = index % #requests + 1
   return requests[index]
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "RESULT requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p99_us=%d\n",
      summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(99)))
end

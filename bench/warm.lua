-- wrk script: a warm-up pass over the requests of rotate.lua's file (given after "--"),
-- each sent once: with "-- FILE N" (N = wrk's -t), thread k sends requests k+1, k+1+N, ...
-- and stops once its share is answered. A separate script from rotate.lua, because defining
-- response() makes wrk hand every response to Lua, which would slow the measured runs.

local requests = {}
local thread_count = 0

function wrk.resolve(host, service)
   wrk.addrs = wrk.lookup(host, service)
end

function setup(thread)
   thread:set("id", thread_count)
   thread_count = thread_count + 1
end

function init(args)
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
      if method == "POST" then
         requests[#requests + 1] = wrk.format("POST", path, {["Content-Type"] = "application/ocsp-request"}, body)
      else
         requests[#requests + 1] = wrk.format("GET", path, {})
      end
   end
   step = tonumber(args[2])
   first = (id or 0) + 1
   index = first
   share = math.floor((#requests - first) / step) + 1
   answered = 0
end

function request()
   local current = requests[index]
   index = index + step
   if index > #requests then index = first end  -- sent while the last of the share is in flight
   return current
end

function response(status, headers, body)
   answered = answered + 1
   if answered >= share then wrk.thread:stop() end
end

-- wrk script for bench.callbacks (run with one thread, -t1): POST pre-signed Twilio status callbacks from a
-- file (one per line: path TAB signature TAB form body), each exactly once, in order. A callback is never
-- replayed: once the file is used up, the thread sends GET /healthz instead and counts those in `overrun`,
-- so the bench can refuse a run that ran out. `done` prints one line of JSON: requests completed, the
-- non-2xx answers among them (errors.status), socket errors, latency percentiles, callbacks in the file,
-- and the overrun.
local requests = {}
local index = 0
local spare
local threads = {}
overrun = 0

function setup(thread)
  threads[#threads + 1] = thread
end

function init(args)
  for line in io.lines(args[1]) do
    local path, signature, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
    requests[#requests + 1] = wrk.format("POST", path, {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["X-Twilio-Signature"] = signature,
    }, body)
  end
  spare = wrk.format("GET", "/healthz")
  callbacks = #requests
end

function request()
  index = index + 1
  if index > #requests then
    overrun = overrun + 1
    return spare
  end
  return requests[index]
end

function done(summary, latency, requests_)
  local callbacks, over = 0, 0
  for _, thread in ipairs(threads) do
    callbacks = callbacks + (thread:get("callbacks") or 0)
    over = over + (thread:get("overrun") or 0)
  end
  io.write("WRK-JSON {")
  io.write(string.format('"requests":%d,"duration_us":%d,', summary.requests, summary.duration))
  io.write(string.format('"not_2xx":%d,"socket_errors":%d,', summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
  io.write(string.format('"callbacks_in_file":%d,"overrun":%d,', callbacks, over))
  io.write(string.format('"p50_ms":%.2f,"p90_ms":%.2f,"p99_ms":%.2f,"max_ms":%.2f',
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
  io.write("}\n")
end

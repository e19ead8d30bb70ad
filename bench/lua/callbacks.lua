-- wrk script for bench.callbacks: POST pre-signed Twilio status callbacks, cycling through a file of
-- requests (one per line: path TAB signature TAB form body). `done` prints one line of JSON: requests
-- completed, the non-2xx answers among them (errors.status), socket errors, latency percentiles.
local requests = {}
local index = 0

function init(args)
  for line in io.lines(args[1]) do
    local path, signature, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
    requests[#requests + 1] = wrk.format("POST", path, {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["X-Twilio-Signature"] = signature,
    }, body)
  end
  -- each thread starts at its own offset so threads do not send the same callbacks together
  index = math.floor(#requests * (tonumber(args[2]) or 0))
end

function request()
  index = index % #requests + 1
  return requests[index]
end

function done(summary, latency, requests_)
  io.write("WRK-JSON {")
  io.write(string.format('"requests":%d,"duration_us":%d,', summary.requests, summary.duration))
  io.write(string.format('"not_2xx":%d,"socket_errors":%d,', summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
  io.write(string.format('"p50_ms":%.2f,"p90_ms":%.2f,"p99_ms":%.2f,"max_ms":%.2f',
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
  io.write("}\n")
end

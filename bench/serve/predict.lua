-- One single-instance prediction per request, 20 numeric features.
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
local fields = {}
for j = 0, 19 do
  fields[#fields + 1] = string.format('"x%d": %.2f', j, (j - 10) / 7)
end
wrk.body = '{"instances": [{' .. table.concat(fields, ", ") .. '}]}'

done = function(summary, latency, requests)
  io.write(string.format("requests/s %.0f\n", summary.requests / (summary.duration / 1e6)))
  io.write(string.format("p50_ms %.3f\np99_ms %.3f\n", latency:percentile(50) / 1000, latency:percentile(99) / 1000))
  io.write(string.format("errors %d\n", summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end

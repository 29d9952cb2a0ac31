-- acquire.lua: wrk script posting AcquireLicense bodies to /v1/licenses.
-- BODY_FILE (environment): a file of bodies, one per line (each a whole
-- AcquireLicense document without newlines); requests cycle through them.
-- Responses other than 200 are counted and reported at the end.
local bodies = {}
local index = 0
local non_200 = 0

function init(args)
  local path = os.getenv("BODY_FILE")
  for line in io.lines(path) do
    if #line > 0 then bodies[#bodies + 1] = line end
  end
  index = math.random(#bodies) - 1
end

function request()
  index = index % #bodies + 1
  return wrk.format("POST", "/v1/licenses", {["Content-Type"] = "application/xml"}, bodies[index])
end

function response(status, headers, body)
  if status ~= 200 then non_200 = non_200 + 1 end
end

function done(summary, latency, requests)
  io.stderr:write(string.format("non-200 responses: %d (errors: connect %d read %d write %d timeout %d status %d)\n",
    non_200, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout, summary.errors.status))
end

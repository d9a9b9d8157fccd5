-- wrk script: counts responses per connection. Run with as many threads as connections
-- (wrk -t C -c C) so that each wrk thread holds one connection; done() prints how many
-- connections never received a response, which wrk 4.1 itself does not report (it only
-- counts completed requests).
--
-- On one CPU, wrk's main thread creates its threads while the ones already created keep
-- it off the CPU, so late threads would start only near the end of the run and look
-- unanswered. Every thread therefore holds its first request until a common start time,
-- START_DELAY seconds after setup (add it to wrk's -d); a connection that never sent a
-- request is reported as not started, not as unanswered.
local START_DELAY = 3
local threads = {}
local common_start  -- in the main Lua state; each thread gets it as the global start_at

function setup(thread)
  common_start = common_start or os.time() + START_DELAY
  thread:set("start_at", common_start)
  table.insert(threads, thread)
end

function init(args)
  tries = 0
  responses = 0
end

function delay()
  tries = tries + 1
  local wait = start_at - os.time()
  if wait > 0 then return wait * 1000 end
  return 0
end

function response(status, headers, body)
  responses = responses + 1
end

function done(summary, latency, requests)
  local silent, not_started, least = 0, 0, nil
  for _, thread in ipairs(threads) do
    local n = thread:get("responses") or 0
    if (thread:get("tries") or 0) == 0 then
      not_started = not_started + 1
    else
      if n == 0 then silent = silent + 1 end
      if least == nil or n < least then least = n end
    end
  end
  io.write(string.format("connections=%d never_answered=%d not_started=%d fewest_responses=%d\n",
                         #threads, silent, not_started, least or 0))
end

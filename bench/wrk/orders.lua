-- wrk script for `make bench`: every request is a new, eligible customer.
--
-- Configured from the environment (bench/run.py sets it):
--   BENCH_PATH        request path (/api/v1/orders/ or /bench/floor)
--   BENCH_KEY         partner API key (optional)
--   BENCH_LAUNCH      launch slug
--   BENCH_POSTCODE    every bench customer's postcode (bench.stack.POSTCODE)
--   BENCH_FIRST       first customer number (D + seven digits)
--   BENCH_PER_THREAD  customers per wrk thread: thread i uses FIRST + i*PER_THREAD onwards,
--                     so the threads' ranges never overlap (each thread has its own Lua state)
--   BENCH_STORES      comma-separated partner store codes; 3 in 5 orders collect from one
--   BENCH_REFS_DIR    where each thread writes the references of its 202 answers
-- done() prints one line "WRK_JSON {...}" with the counts by status and the latency
-- percentiles (microseconds).

local first = tonumber(os.getenv("BENCH_FIRST") or "1")
local per_thread = tonumber(os.getenv("BENCH_PER_THREAD") or "100000")
local path = os.getenv("BENCH_PATH") or "/api/v1/orders/"
local key = os.getenv("BENCH_KEY")
local launch = os.getenv("BENCH_LAUNCH") or "iphone-3g"
local postcode = os.getenv("BENCH_POSTCODE") or "SW1A 1AA"
local refs_dir = os.getenv("BENCH_REFS_DIR")
local skus = { "IP3G-8GB-BLACK", "IP3G-16GB-BLACK", "IP3G-16GB-WHITE" }
local stores = {}
for code in string.gmatch(os.getenv("BENCH_STORES") or "", "[^,]+") do
  stores[#stores + 1] = code
end

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  next_customer = first + id * per_thread
  last_customer = next_customer + per_thread - 1
  statuses = {}
  retry_after = 0
  overflow = 0
  headers = { ["Content-Type"] = "application/json" }
  if key and key ~= "" then
    headers["Authorization"] = "Api-Key " .. key
  end
  if refs_dir and refs_dir ~= "" then
    refs = io.open(refs_dir .. "/refs-" .. id .. ".txt", "w")
  end
end

function request()
  local n = next_customer
  if n > last_customer then
    -- Out of fresh customers: this answer will be a 409, and the run says so.
    overflow = overflow + 1
  end
  next_customer = n + 1
  local sku = skus[n % 3 + 1]
  local body
  if #stores > 0 and n % 5 < 3 then
    body = string.format(
      '{"launch":"%s","customer":"D%07d","postcode":"%s","sku":"%s","fulfilment":"collect","store":"%s"}',
      launch, n, postcode, sku, stores[n % #stores + 1]
    )
  else
    body = string.format(
      '{"launch":"%s","customer":"D%07d","postcode":"%s","sku":"%s","fulfilment":"delivery"}',
      launch, n, postcode, sku
    )
  end
  return wrk.format("POST", path, headers, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 202 and refs then
    local ref = string.match(body, '"reference"%s*:%s*"(%w+)"')
    if ref then
      refs:write(ref, "\n")
    end
  elseif status == 429 or status == 503 then
    if headers["Retry-After"] or headers["retry-after"] then
      retry_after = retry_after + 1
    end
  end
end

function done(summary, latency, requests)
  local merged, ra, over = {}, 0, 0
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses") or {}) do
      merged[tostring(status)] = (merged[tostring(status)] or 0) + count
    end
    ra = ra + (thread:get("retry_after") or 0)
    over = over + (thread:get("overflow") or 0)
  end
  local parts = {}
  for status, count in pairs(merged) do
    parts[#parts + 1] = string.format('"%s":%d', status, count)
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"statuses":{%s},"retry_after":%d,"overflow":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, table.concat(parts, ","), ra, over,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean
  ))
end

-- wrk script: GET /rates over a fixed list of routes and date ranges (bench/routes.txt lines of
-- "ORIG DEST FROM TO"), picked at random per request. Written by scripts/bench_api.py.
local paths = {}
local routes_file = os.getenv("RATES_BENCH_ROUTES") or "bench/routes.txt"
for line in io.lines(routes_file) do
  local o, d, f, t = line:match("(%S+) (%S+) (%S+) (%S+)")
  paths[#paths + 1] = "/rates?date_from=" .. f .. "&date_to=" .. t .. "&orig_code=" .. o .. "&dest_code=" .. d
end
math.randomseed(42)

request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end

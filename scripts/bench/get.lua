-- wrk script for GET scenarios (headers come from wrk -H).
dofile(os.getenv("BENCH_LUA") .. "/report.lua")

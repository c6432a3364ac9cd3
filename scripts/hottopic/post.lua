-- wrk script of scripts/hot-topic.sh: POST the body in the file named by
-- the BODY environment variable to every request.
local f = assert(io.open(os.getenv("BODY"), "r"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"

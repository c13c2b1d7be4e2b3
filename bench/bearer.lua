-- wrk script for bench/run.sh: GET with a bearer token (the first argument).
function init(args)
  wrk.headers["Authorization"] = "Bearer " .. args[1]
end

#!/usr/bin/env bash
# bench/run.sh: wsgate against its peers, side by side in one run on one
# machine (issue 7). See bench/README.md. Not run by CI.
#
#   bench/run.sh            # about two minutes
#
# Environment: DURATION (s per wrk run, 5), THREADS (wrk, 2), CONNS (wrk, 16),
# VERIFY_SECONDS (s per envelope, 3), SOAP_MESSAGES (distinct signed
# envelopes for the SOAP route, 100000), PYTHON (/usr/bin/python3), KEEP=1
# keeps the work directory, WSGATE_GOGC sets GOGC for wsgate only.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5}
THREADS=${THREADS:-2}
CONNS=${CONNS:-16}
VERIFY_SECONDS=${VERIFY_SECONDS:-3}
SOAP_MESSAGES=${SOAP_MESSAGES:-100000}
PYTHON=${PYTHON:-/usr/bin/python3}

die() { echo "bench: $*" >&2; exit 1; }
command -v go >/dev/null || die "go not found"
command -v wrk >/dev/null || die "wrk not found (apt-get install -y wrk)"
"$PYTHON" -c 'import xmlsec, lxml' 2>/dev/null ||
	die "$PYTHON cannot import xmlsec (apt-get install -y python3-xmlsec)"

work=$(mktemp -d /tmp/wsgate-bench.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	if [ "${KEEP:-}" = 1 ]; then echo "bench: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

echo "building wsgate and wsbench..." >&2
CGO_ENABLED=0 go build -o "$work/wsgate" ./cmd/wsgate
CGO_ENABLED=0 go build -o "$work/wsbench" ./bench/wsbench

"$work/wsbench" upstream -addr-file "$work/upstream.addr" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/upstream.addr" ] && break; sleep 0.05; done
up=$(cat "$work/upstream.addr")
"$work/wsbench" gen -dir "$work" -upstream "http://$up"

echo "verifying in-process on one core: wssec..." >&2
"$work/wsbench" verify -dir "$work" -duration "${VERIFY_SECONDS}s" >"$work/wssec.tsv"
echo "verifying in-process on one core: libxmlsec1..." >&2
"$PYTHON" bench/xmlsec_verify.py "$work" "$VERIFY_SECONDS" >"$work/xmlsec.tsv"

echo "starting wsgate..." >&2
env ${WSGATE_GOGC:+GOGC=$WSGATE_GOGC} "$work/wsgate" serve -config "$work/wsgate.yaml" >"$work/wsgate.log" 2>&1 &
gw_pid=$!
pids+=("$gw_pid")
gw=""
for _ in $(seq 200); do
	gw=$(sed -n 's/.*"msg":"wsgate listening".*"addr":"\([^"]*\)".*/\1/p' "$work/wsgate.log" | head -n1)
	[ -n "$gw" ] && break
	kill -0 "$gw_pid" 2>/dev/null || { cat "$work/wsgate.log" >&2; die "wsgate exited"; }
	sleep 0.05
done
[ -n "$gw" ] || { cat "$work/wsgate.log" >&2; die "wsgate did not start"; }

echo "signing $SOAP_MESSAGES envelopes for the SOAP route..." >&2
"$work/wsbench" gen-wrk -dir "$work" -n "$SOAP_MESSAGES" -threads "$THREADS" -out "$work/soap.msgs"
token=$(cat "$work/token.txt")

run() { # name url [lua-script [script args...]]
	local name=$1 url=$2 script=()
	shift 2
	if [ $# -gt 0 ]; then script=(-s "$1"); shift; fi
	echo "wrk: $name" >&2
	wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "${script[@]}" "$url" -- "$@" >"$work/wrk-$name.txt"
}
run upstream-post "http://$up/ws/orders" bench/post.lua "$work/soap.msgs"
run public-post "http://$gw/public" bench/post.lua "$work/soap.msgs"
run soap "http://$gw/soap/orders" bench/post.lua "$work/soap.msgs"
run upstream-get "http://$up/api/orders/1"
run public-get "http://$gw/public/orders/1"
run rest-jwt "http://$gw/api/bench/orders/1" bench/bearer.lua "$token"

hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$gw_pid/status")
"$PYTHON" - "$work" "$hwm" "$THREADS" "$CONNS" "$DURATION" <<'PY'
import re, sys
work, hwm_kb, threads, conns, duration = sys.argv[1:6]

def tsv(name):
    rows = [l.rstrip("\n").split("\t") for l in open("%s/%s" % (work, name))][1:]
    return {r[0]: (int(r[1]), float(r[2])) for r in rows}

go, py = tsv("wssec.tsv"), tsv("xmlsec.tsv")
print("\nWS-Security verification in-process, one core (messages/s)")
print("%-14s %9s %10s %11s %7s" % ("envelope", "bytes", "wssec", "libxmlsec1", "ratio"))
for name, (size, rate) in go.items():
    if name.startswith("raw-"):
        continue
    peer = py[name][1]
    print("%-14s %9d %10.0f %11.0f %7.2f" % (name, size, rate, peer, rate / peer))
for kt in ("rsa2048", "ecp256"):
    raw = go["raw-" + kt][1]
    print("raw %s verify: %.0f/s; wssec 2KB envelope / raw = %.2f" % (kt, raw, go[kt + "-2KB"][1] / raw))

def unit(v, u):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[u]

def wrk(name):
    text = open("%s/wrk-%s.txt" % (work, name)).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    lat = {p: unit(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)}
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errs = re.search(r"Socket errors:.*", text)
    return rps, lat.get("50"), lat.get("99"), int(bad.group(1)) if bad else 0, errs.group(0) if errs else ""

rows = [("upstream-post", "upstream direct, POST envelope", None),
        ("public-post", "public route, POST envelope", "upstream-post"),
        ("soap", "SOAP route, WS-Security verify", "public-post"),
        ("upstream-get", "upstream direct, GET", None),
        ("public-get", "public route, GET", "upstream-get"),
        ("rest-jwt", "REST route, JWT (cached)", "public-get")]
res = {n: wrk(n) for n, _, _ in rows}
print("\nEnd to end over loopback (wrk -t%s -c%s -d%ss; wrk, wsgate and the upstream share the machine)" % (threads, conns, duration))
print("%-32s %9s %8s %8s %8s %10s %10s" % ("", "req/s", "p50 ms", "p99 ms", "non-2xx", "vs no-sec", "vs direct"))
for name, label, base in rows:
    rps, p50, p99, bad, errs = res[name]
    direct = "upstream-post" if "post" in name or name == "soap" else "upstream-get"
    vs_base = "%.2f" % (rps / res[base][0]) if base and name in ("soap", "rest-jwt") else ""
    vs_direct = "%.2f" % (rps / res[direct][0]) if name != direct else ""
    print("%-32s %9.0f %8.2f %8.2f %8d %10s %10s %s" % (label, rps, p50 or 0, p99 or 0, bad, vs_base, vs_direct, errs))
print("\nwsgate peak RSS (VmHWM) under this load: %.1f MiB" % (int(hwm_kb) / 1024))
if res["soap"][3]:
    print("note: %d SOAP requests were refused; if the envelopes ran out (replays), raise SOAP_MESSAGES" % res["soap"][3])
PY

#!/usr/bin/env bash
# bench/run.sh: wsgate against its peers, side by side in one run on one
# machine (issues 7, 13 and 18): libxmlsec1 for verification and for
# decrypt+verify, nginx and HAProxy as plain reverse proxies, and the Go
# floor (wsbench floor: net/http and ReverseProxy alone). See
# bench/README.md. Not run by CI.
#
#   bench/run.sh            # about three minutes
#   INPROCESS=1 bench/run.sh  # the in-process tables only (no wrk, no peers)
#
# Environment: DURATION (s per wrk run, 5), THREADS (wrk, 2), CONNS (wrk, 16),
# VERIFY_SECONDS (s per envelope, 3), ROUNDS (of the in-process pairs, best
# kept, 1), SOAP_MESSAGES (distinct signed
# envelopes for the SOAP route, 100000), PYTHON (/usr/bin/python3), KEEP=1
# keeps the work directory, WSGATE_GOGC sets GOGC for wsgate only, NGINX and
# HAPROXY the peers' binaries (default: from PATH, else /usr/sbin),
# INPROCESS=1 stops after the in-process tables.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-5}
THREADS=${THREADS:-2}
CONNS=${CONNS:-16}
VERIFY_SECONDS=${VERIFY_SECONDS:-3}
ROUNDS=${ROUNDS:-1}
SOAP_MESSAGES=${SOAP_MESSAGES:-100000}
PYTHON=${PYTHON:-/usr/bin/python3}

INPROCESS=${INPROCESS:-}

die() { echo "bench: $*" >&2; exit 1; }
command -v go >/dev/null || die "go not found"
"$PYTHON" -c 'import xmlsec, lxml' 2>/dev/null ||
	die "$PYTHON cannot import xmlsec (apt-get install -y python3-xmlsec)"
if [ "$INPROCESS" != 1 ]; then
	command -v wrk >/dev/null || die "wrk not found (apt-get install -y wrk)"
	NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
	HAPROXY=${HAPROXY:-$(command -v haproxy || echo /usr/sbin/haproxy)}
	[ -x "$NGINX" ] || die "nginx not found (apt-get install -y --no-install-recommends nginx; stop and disable its service: run.sh starts its own on 127.0.0.1)"
	[ -x "$HAPROXY" ] || die "haproxy not found (apt-get install -y --no-install-recommends haproxy; stop and disable its service: run.sh starts its own on 127.0.0.1)"
fi

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

# In-process, one core, before anything else runs: wssec and libxmlsec1 on
# the same envelope files.
# ROUNDS > 1 alternates the two sides and keeps each row's best round, so
# that a burst of load from elsewhere does not land on one side only.
for round in $(seq "$ROUNDS"); do
	echo "round $round/$ROUNDS: verifying in-process on one core: wssec, libxmlsec1..." >&2
	"$work/wsbench" verify -dir "$work" -duration "${VERIFY_SECONDS}s" >>"$work/wssec.tsv"
	"$PYTHON" bench/xmlsec_verify.py "$work" "$VERIFY_SECONDS" >>"$work/xmlsec.tsv"
	echo "round $round/$ROUNDS: decrypting and verifying in-process on one core: wssec, libxmlsec1..." >&2
	"$work/wsbench" decrypt -dir "$work" -duration "${VERIFY_SECONDS}s" >>"$work/wssec-decrypt.tsv"
	"$PYTHON" bench/xmlsec_decrypt.py "$work" "$VERIFY_SECONDS" >>"$work/xmlsec-decrypt.tsv"
done

"$PYTHON" - "$work" <<'PY'
import sys
work = sys.argv[1]

def tsv(name):  # name -> (bytes, best messages/s over the rounds)
    out = {}
    for line in open("%s/%s" % (work, name)):
        r = line.rstrip("\n").split("\t")
        if r[0] != "name":
            out[r[0]] = (int(r[1]), max(float(r[2]), out.get(r[0], (0, 0.0))[1]))
    return out

def table(title, go, py):
    print(title)
    print("%-14s %9s %10s %11s %7s" % ("envelope", "bytes", "wssec", "libxmlsec1", "ratio"))
    for name, (size, rate) in go.items():
        if name.startswith("raw-"):
            continue
        peer = py[name][1]
        print("%-14s %9d %10.0f %11.0f %7.2f" % (name, size, rate, peer, rate / peer))

go = tsv("wssec.tsv")
table("\nWS-Security verification in-process, one core (messages/s)", go, tsv("xmlsec.tsv"))
for kt in ("rsa2048", "ecp256"):
    raw = go["raw-" + kt][1]
    print("raw %s verify: %.0f/s; wssec 2KB envelope / raw = %.2f" % (kt, raw, go[kt + "-2KB"][1] / raw))
table("\nWS-Security decrypt + verify in-process, one core (messages/s; signed by RSA-2048, then\n"
      "Body encrypted: rsa-oaep-mgf1p RSA-2048 + AES-128-GCM, as WSS4J does by default)",
      tsv("wssec-decrypt.tsv"), tsv("xmlsec-decrypt.tsv"))
dec = tsv("wssec-decrypt.tsv")
raw = dec["raw-rsa2048-oaep"][1]
print("raw rsa2048 OAEP decrypt: %.0f/s; wssec enc-2KB / raw = %.2f" % (raw, dec["enc-2KB"][1] / raw))
PY
[ "$INPROCESS" = 1 ] && exit 0

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { # name port pid
	for _ in $(seq 200); do
		(exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
		kill -0 "$3" 2>/dev/null || { cat "$work/$1.log" >&2; die "$1 exited"; }
		sleep 0.05
	done
	die "$1 did not listen on 127.0.0.1:$2"
}

# The peers: plain reverse proxies to the same upstream with an upstream
# keep-alive pool, in the foreground, from configs written here (never the
# system services). nginx logs every request to a file, as wsgate does.
mkdir -p "$work/nginx"
nginx_port=$(free_port)
cat >"$work/nginx/nginx.conf" <<NGINX_CONF
daemon off;
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
	access_log $work/nginx/access.log;
	client_body_temp_path $work/nginx/body;
	proxy_temp_path $work/nginx/proxy;
	fastcgi_temp_path $work/nginx/fastcgi;
	uwsgi_temp_path $work/nginx/uwsgi;
	scgi_temp_path $work/nginx/scgi;
	client_body_buffer_size 64k;
	client_max_body_size 10m;
	upstream backend {
		server $up;
		keepalive 64;
	}
	server {
		listen 127.0.0.1:$nginx_port;
		location / {
			proxy_pass http://backend;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
		}
	}
}
NGINX_CONF
"$NGINX" -e "$work/nginx/error.log" -p "$work/nginx" -c "$work/nginx/nginx.conf" >"$work/nginx.log" 2>&1 &
nginx_pid=$!
pids+=("$nginx_pid")
wait_port nginx "$nginx_port" "$nginx_pid"

haproxy_port=$(free_port)
cat >"$work/haproxy.cfg" <<HAPROXY_CONF
global
	maxconn 4096
defaults
	mode http
	timeout connect 5s
	timeout client 30s
	timeout server 30s
	http-reuse always
frontend bench
	bind 127.0.0.1:$haproxy_port
	default_backend upstream
backend upstream
	server up $up
HAPROXY_CONF
"$HAPROXY" -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
haproxy_pid=$!
pids+=("$haproxy_pid")
wait_port haproxy "$haproxy_port" "$haproxy_pid"
nginx="127.0.0.1:$nginx_port"
haproxy="127.0.0.1:$haproxy_port"

# The Go floor: net/http's server and httputil.ReverseProxy over wsgate's
# own upstream transport, nothing else (see wsbench floor).
"$work/wsbench" floor -upstream "http://$up" -addr-file "$work/floor.addr" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/floor.addr" ] && break; sleep 0.05; done
[ -s "$work/floor.addr" ] || die "wsbench floor did not start"
floor=$(cat "$work/floor.addr")

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
# The plain 5 KB POST: one unsigned SOAP envelope of 5120 bytes, in
# post.lua's format (one file per wrk thread).
"$PYTHON" - "$work/post5k.msgs" "$THREADS" <<'GEN_POST'
import sys
out, threads = sys.argv[1], int(sys.argv[2])
head = '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><ord:order xmlns:ord="urn:example:orders">'
tail = '</ord:order></soapenv:Body></soapenv:Envelope>'
body = head + "x" * (5120 - len(head) - len(tail)) + tail
for t in range(threads):
    with open("%s.%d" % (out, t), "w") as f:
        f.write(body + "\n--MSG--\n")
GEN_POST

run() { # name url [lua-script [script args...]]
	local name=$1 url=$2 script=()
	shift 2
	if [ $# -gt 0 ]; then script=(-s "$1"); shift; fi
	echo "wrk: $name" >&2
	wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency "${script[@]}" "$url" -- "$@" >"$work/wrk-$name.txt"
}
run upstream-post "http://$up/ws/orders" bench/post.lua "$work/soap.msgs"
run nginx-post "http://$nginx/ws/orders" bench/post.lua "$work/soap.msgs"
run haproxy-post "http://$haproxy/ws/orders" bench/post.lua "$work/soap.msgs"
run floor-post "http://$floor/ws/orders" bench/post.lua "$work/soap.msgs"
run public-post "http://$gw/public" bench/post.lua "$work/soap.msgs"
run soap "http://$gw/soap/orders" bench/post.lua "$work/soap.msgs"
run upstream-post5k "http://$up/ws/orders" bench/post.lua "$work/post5k.msgs"
run nginx-post5k "http://$nginx/ws/orders" bench/post.lua "$work/post5k.msgs"
run haproxy-post5k "http://$haproxy/ws/orders" bench/post.lua "$work/post5k.msgs"
run floor-post5k "http://$floor/ws/orders" bench/post.lua "$work/post5k.msgs"
run public-post5k "http://$gw/public" bench/post.lua "$work/post5k.msgs"
run upstream-get "http://$up/api/orders/1"
run nginx-get "http://$nginx/api/orders/1"
run haproxy-get "http://$haproxy/api/orders/1"
run floor-get "http://$floor/api/orders/1"
run public-get "http://$gw/public/orders/1"
run rest-jwt "http://$gw/api/bench/orders/1" bench/bearer.lua "$token"

hwm=$(awk '/^VmHWM:/ {print $2}' "/proc/$gw_pid/status")
"$PYTHON" - "$work" "$hwm" "$THREADS" "$CONNS" "$DURATION" <<'PY'
import re, sys
work, hwm_kb, threads, conns, duration = sys.argv[1:6]

def unit(v, u):
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[u]

def wrk(name):
    text = open("%s/wrk-%s.txt" % (work, name)).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    lat = {p: unit(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)}
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errs = re.search(r"Socket errors:.*", text)
    return rps, lat.get("50"), lat.get("99"), int(bad.group(1)) if bad else 0, errs.group(0) if errs else ""

# name, label, no-security baseline, group (the upstream direct and the peers)
rows = [("upstream-post", "upstream direct, POST envelope", None, "post"),
        ("nginx-post", "nginx, POST envelope", None, "post"),
        ("haproxy-post", "HAProxy, POST envelope", None, "post"),
        ("floor-post", "Go floor, POST envelope", None, "post"),
        ("public-post", "public route, POST envelope", None, "post"),
        ("soap", "SOAP route, WS-Security verify", "public-post", "post"),
        ("upstream-post5k", "upstream direct, POST 5 KB", None, "post5k"),
        ("nginx-post5k", "nginx, POST 5 KB", None, "post5k"),
        ("haproxy-post5k", "HAProxy, POST 5 KB", None, "post5k"),
        ("floor-post5k", "Go floor, POST 5 KB", None, "post5k"),
        ("public-post5k", "public route, POST 5 KB", None, "post5k"),
        ("upstream-get", "upstream direct, GET", None, "get"),
        ("nginx-get", "nginx, GET", None, "get"),
        ("haproxy-get", "HAProxy, GET", None, "get"),
        ("floor-get", "Go floor, GET", None, "get"),
        ("public-get", "public route, GET", None, "get"),
        ("rest-jwt", "REST route, JWT (cached)", "public-get", "get")]
res = {n: wrk(n) for n, _, _, _ in rows}
print("\nEnd to end over loopback (wrk -t%s -c%s -d%ss; wrk, the proxies and the upstream share the machine)" % (threads, conns, duration))
print("%-32s %9s %8s %8s %8s %9s %9s %9s %10s %9s" % ("", "req/s", "p50 ms", "p99 ms", "non-2xx",
      "vs no-sec", "vs direct", "vs nginx", "vs HAProxy", "p99/nginx"))

def ratio(a, b):
    return "%.2f" % (a / b) if a is not None and b else ""

for name, label, base, group in rows:
    rps, p50, p99, bad, errs = res[name]
    direct = "upstream-" + group
    wsgate = not name.startswith(("upstream-", "nginx-", "haproxy-"))
    vs_base = ratio(rps, res[base][0]) if base else ""
    vs_direct = ratio(rps, res[direct][0]) if name != direct else ""
    vs_nginx = ratio(rps, res["nginx-" + group][0]) if wsgate else ""
    vs_haproxy = ratio(rps, res["haproxy-" + group][0]) if wsgate else ""
    p99_nginx = ratio(p99, res["nginx-" + group][2]) if wsgate else ""
    print("%-32s %9.0f %8.2f %8.2f %8d %9s %9s %9s %10s %9s %s" % (label, rps, p50 or 0, p99 or 0, bad,
          vs_base, vs_direct, vs_nginx, vs_haproxy, p99_nginx, errs))
print("\nGo floor = net/http's server + httputil.ReverseProxy over wsgate's upstream transport, no checks, no log.")
print("wsgate public route / Go floor: POST envelope %.2f, POST 5 KB %.2f, GET %.2f" % tuple(
    res["public-" + g][0] / res["floor-" + g][0] for g in ("post", "post5k", "get")))
print("\nwsgate peak RSS (VmHWM) under this load: %.1f MiB" % (int(hwm_kb) / 1024))
if res["soap"][3]:
    print("note: %d SOAP requests were refused; if the envelopes ran out (replays), raise SOAP_MESSAGES" % res["soap"][3])
PY

#!/usr/bin/env python3
"""Demo upstreams for the docker-compose deployment (and its process test).

    echo.py soap [--host H] [--port P]   SOAP echo: POST an envelope, get an
                                          envelope of the same SOAP version whose
                                          Body wraps a copy of yours in echo:Echo
    echo.py rest [--host H] [--port P]   REST echo: any request gets JSON
                                          describing what arrived (method, path,
                                          query, headers, body)

GET /healthz answers 200 "ok" on both (compose health checks). The bound
address is printed as "listening on HOST:PORT" (port 0 picks a free one).
Standard library only; bodies are capped at 1 MiB and XML with a DOCTYPE or
entity declarations is refused: a stand-in backend, but not a naive one.
"""

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20
SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
ECHO_NS = "urn:wsgate:demo:echo"


def soap_echo(data):
    """Returns (status, content type, body bytes) for a request envelope."""
    if b"<!" in data:
        return 400, "text/plain", b"DOCTYPE or markup declarations refused\n"
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return 400, "text/plain", b"not well-formed XML\n"
    ns = root.tag[1:].split("}", 1)[0] if root.tag.startswith("{") else ""
    if root.tag not in ("{%s}Envelope" % SOAP11, "{%s}Envelope" % SOAP12):
        return 400, "text/plain", b"not a SOAP 1.1 or 1.2 envelope\n"
    body = root.find("{%s}Body" % ns)
    if body is None:
        return 400, "text/plain", b"envelope has no Body\n"
    ET.register_namespace("soap", ns)
    ET.register_namespace("echo", ECHO_NS)
    env = ET.Element("{%s}Envelope" % ns)
    rbody = ET.SubElement(env, "{%s}Body" % ns)
    echo = ET.SubElement(rbody, "{%s}Echo" % ECHO_NS)
    echo.extend(list(body))
    ctype = "text/xml; charset=utf-8" if ns == SOAP11 else "application/soap+xml; charset=utf-8"
    return 200, ctype, ET.tostring(env, encoding="utf-8", xml_declaration=True)


class Handler(BaseHTTPRequestHandler):
    mode = "rest"
    server_version = "wsgate-demo-echo"
    protocol_version = "HTTP/1.1"

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n < 0 or n > MAX_BODY:
            return None
        return self.rfile.read(n)

    def _send(self, status, ctype, body):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self):
        if self.path == "/healthz":
            self._body()
            return self._send(200, "text/plain", b"ok\n")
        data = self._body()
        if data is None:
            return self._send(413, "text/plain", b"body too large\n")
        if self.mode == "soap":
            if self.command != "POST":
                return self._send(405, "text/plain", b"POST a SOAP envelope\n")
            return self._send(*soap_echo(data))
        path, _, query = self.path.partition("?")
        out = {
            "method": self.command,
            "path": path,
            "headers": {k: self.headers.get_all(k) for k in sorted(set(self.headers.keys()))},
        }
        if query:
            out["query"] = query
        if data:
            out["body"] = data.decode("utf-8", "replace")
        self._send(200, "application/json", (json.dumps(out, indent=2) + "\n").encode())

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.mode, fmt % args))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["soap", "rest"])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    a = p.parse_args()
    handler = type("EchoHandler", (Handler,), {"mode": a.mode})
    srv = ThreadingHTTPServer((a.host, a.port), handler)
    print("listening on %s:%d" % srv.server_address[:2], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A webhook receiver for segpush's notification tests: HTTPS on 127.0.0.1 with a test
certificate. Each POST is appended to --log as one JSON object a line: path, headers, body and
whether the X-Segpush-Signature header is the HMAC-SHA256 of the body under --secret."""
import argparse
import hashlib
import hmac
import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--secret", default="")
    parser.add_argument("--fail-first", type=int, default=0, help="answer 503 to this many requests first")
    args = parser.parse_args()
    lock = threading.Lock()
    state = {"failures_left": args.fail_first}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            expected = "sha256=" + hmac.new(args.secret.encode(), body, hashlib.sha256).hexdigest()
            given = self.headers.get("X-Segpush-Signature", "")
            with lock:
                failing = state["failures_left"] > 0
                if failing:
                    state["failures_left"] -= 1
                entry = {
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body.decode("utf-8", "replace"),
                    "signature_ok": bool(args.secret) and hmac.compare_digest(expected, given),
                    "answered": 503 if failing else 200,
                }
                with open(args.log, "a") as log:
                    log.write(json.dumps(entry) + "\n")
            self.send_response(503 if failing else 200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *unused):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert, args.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    with open(args.port_file + ".tmp", "w") as port_file:
        port_file.write(str(server.server_address[1]))
    import os
    os.replace(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()

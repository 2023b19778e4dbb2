"""A generic local target for imported plans: any method, any path → 200 and a small JSON body.

Imported OpenAPI and HAR plans call APIs that do not exist here (pet stores, httpbin-like
recordings). This server only lets their scripts run against 127.0.0.1: it does not know those
APIs and does not pretend to. Every answer is the same shape, whatever was asked:

    {"catchall": true, "method": "POST", "path": "/pets", "bytes": 42}

so a plan that expects 201 or 204, or checks a field of the real API's answer, fails that
check here — honestly. It reads (and discards) request bodies so keep-alive works.

``python eval/plan_corpus/catchall.py --port 8002`` (127.0.0.1 only); it prints
``listening on http://127.0.0.1:PORT`` once it accepts connections (``--port 0``: any free port).
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 10 * 1024 * 1024


class CatchAll(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "plan-corpus-catchall/1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if 0 < length <= MAX_BODY:
            self.rfile.read(length)
        payload = {
            "catchall": True,
            "method": self.command,
            "path": self.path.split("?", 1)[0],
            "bytes": length,
        }
        body = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _answer

    def log_message(self, format: str, *args: object) -> None:
        return  # quiet: the scorer reads k6's output, not ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8002)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), CatchAll)
    server.daemon_threads = True
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()

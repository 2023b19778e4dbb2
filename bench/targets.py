"""Local HTTP targets for the benchmarks: nginx when installed, else a tiny Python server.

nginx runs from a config written to a temporary directory (one worker, no access log,
``return 200 "ok"`` for every path) on a free 127.0.0.1 port, in the foreground as our own
child process so it is stopped by its pid. The Python fallback is single-threaded and far
slower than k6; it exists only to smoke-test the benchmark script, not to measure anything.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    server {{
        listen 127.0.0.1:{port} reuseport;
        location / {{
            default_type text/plain;
            return 200 "ok";
        }}
    }}
}}
"""


@dataclass(frozen=True)
class Target:
    kind: str  # "nginx" or "python"
    base_url: str
    pid: int | None  # the server process (nginx master), None for the in-process server

    @property
    def measurable(self) -> bool:
        return self.kind == "nginx"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


def nginx_binary() -> str | None:
    for candidate in ("nginx", "/usr/sbin/nginx"):
        found = shutil.which(candidate)
        if found:
            return found
    return None


@contextlib.contextmanager
def nginx_target() -> Iterator[Target]:
    binary = nginx_binary()
    if binary is None:
        raise FileNotFoundError("nginx is not installed (apt-get install -y nginx-light)")
    with tempfile.TemporaryDirectory(prefix="bench-nginx-") as tmp:
        port = free_port()
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=tmp, port=port))
        proc = subprocess.Popen(
            [binary, "-p", tmp, "-c", str(conf), "-e", f"{tmp}/error.log"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            try:
                wait_for_port(port)
            except TimeoutError:
                proc.kill()
                _, err = proc.communicate(timeout=5)
                raise RuntimeError(f"nginx did not start: {err.decode(errors='replace')}") from None
            yield Target("nginx", f"http://127.0.0.1:{port}", proc.pid)
        finally:
            if proc.poll() is None:
                proc.terminate()  # SIGTERM: nginx master stops its worker and exits
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()


class _OkHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        return


@contextlib.contextmanager
def python_target() -> Iterator[Target]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OkHandler)
    server.daemon_threads = True
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="bench-target", daemon=True)
    thread.start()
    try:
        yield Target("python", f"http://127.0.0.1:{port}", None)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextlib.contextmanager
def local_target(*, allow_python: bool) -> Iterator[Target]:
    """nginx if installed; the Python server only when ``allow_python`` (smoke tests)."""
    if nginx_binary() is not None:
        with nginx_target() as target:
            yield target
        return
    if not allow_python:
        print(
            "nginx is not installed: skipping the benchmark "
            "(apt-get install -y nginx-light, or pass --smoke to try the script on a "
            "tiny Python server whose figures mean nothing)",
            file=sys.stderr,
        )
        raise SystemExit(0)
    print("nginx not installed: using the Python fallback server (smoke test only)")
    with python_target() as target:
        yield target


if __name__ == "__main__":
    with local_target(allow_python=True) as t:
        print(t)
        import urllib.request

        with urllib.request.urlopen(t.base_url + "/a") as resp:
            print(resp.status, resp.read())

"""``python -m app.demo --port 8001``: serve the demo target on 127.0.0.1;
``python -m app.demo --fix URL``: deploy the next stage of its slow endpoint's fix."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import httpx
import uvicorn

from app.demo.target import create_target


def admin(url: str, action: str) -> dict[str, Any]:
    """POST one of the demo shop's admin actions (``fix``, ``regress``) and its answer."""
    response = httpx.post(f"{url.rstrip('/')}/admin/{action}", timeout=10)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def main() -> None:
    parser = argparse.ArgumentParser(description="perf-agent's demo target")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument(
        "--fix",
        metavar="URL",
        help="don't serve: deploy the next stage of the slow endpoint's fix on the demo shop "
        "at URL (for `perf-agent budget --between`)",
    )
    parser.add_argument(
        "--regress",
        metavar="URL",
        help="don't serve: make every product page of the demo shop at URL 50 ms slower (a bad "
        "build for a CI gate to catch)",
    )
    args = parser.parse_args()
    if args.regress:
        body = admin(args.regress, "regress")
        sys.stdout.write(f"demo shop regressed: {body}\n")
        return
    if args.fix:
        body = admin(args.fix, "fix")
        sys.stdout.write(f"demo shop fix level {body['level']}: {'; '.join(body['deployed'])}\n")
        return
    uvicorn.run(create_target(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()

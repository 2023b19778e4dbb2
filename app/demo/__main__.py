"""``python -m app.demo --port 8001``: serve the demo target on 127.0.0.1."""

from __future__ import annotations

import argparse

import uvicorn

from app.demo.target import create_target


def main() -> None:
    parser = argparse.ArgumentParser(description="perf-agent's demo target")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(create_target(), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()

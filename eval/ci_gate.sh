#!/usr/bin/env bash
# A pipeline's steps, run locally: the demo shop as the system under test, a perf-agent
# service, and deploy/ci/perf-agent-gate.sh gating twice — a good build (exit 0), then a build
# with a regression injected (every product page 50 ms slower: exit 1, a JUnit file naming the
# failed objective). Each time the CI files are validated (eval/ci_validate.py: JUnit against
# its XSD, GitLab's load-performance fields, the step summary).
#
#   eval/ci_gate.sh [WORK_DIR]          # needs .venv (make venv), curl, jq, PostgreSQL
#
# The service uses PERF_AGENT_DATABASE_URL / DATABASE_URL if set, else a fresh embedded one.
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
work=${1:-$(mktemp -d)}
mkdir -p "$work"
free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
shop_port=$(free_port)
api_port=$(free_port)
shop="http://127.0.0.1:$shop_port"
export PERF_AGENT_API="http://127.0.0.1:$api_port"
export PERF_AGENT_DATA_DIR="$work/data" PERF_AGENT_WORKER_POLL_INTERVAL_S=0.2
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$py" -m app.demo --port "$shop_port" >"$work/shop.log" 2>&1 &
pids+=($!)
.venv/bin/perf-agent db upgrade >"$work/migrate.log" 2>&1
"$py" -m app.cli serve --port "$api_port" >"$work/service.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do
  curl -fsS "$PERF_AGENT_API/readyz" >/dev/null 2>&1 && curl -fsS "$shop/health" >/dev/null 2>&1 && break
  sleep 0.5
done
curl -fsS "$PERF_AGENT_API/readyz" >/dev/null || { echo "the service did not start: $work/service.log"; exit 2; }

export PERF_AGENT_API_KEY=${PERF_AGENT_API_KEY:-$(.venv/bin/perf-agent keys create --owner ci-gate@example.com \
  --scope read --scope plan --scope approve --scope execute --quiet)}
cat >"$work/plan.yaml" <<PLAN
name: ci-gate-shop
target: {base_url: "$shop", environment: local}
endpoints:
  - {name: product, path: /api/products/42}
  - {name: products, path: "/api/products?category=books"}
load: {vus: 2, duration: 6s}
slos:
  - {objective: "p95 < 40ms", endpoint: product}
  - "error_rate < 1%"
PLAN
export PERF_AGENT_PLAN="$work/plan.yaml"

echo "== good build"
set +e
PERF_AGENT_OUT="$work/good" PERF_AGENT_IDEMPOTENCY_KEY="local-good-$$" bash deploy/ci/perf-agent-gate.sh
good=$?
set -e
"$py" eval/ci_validate.py "$work/good"

echo "== a regression is deployed"
"$py" -m app.demo --regress "$shop"
set +e
PERF_AGENT_OUT="$work/bad" PERF_AGENT_IDEMPOTENCY_KEY="local-bad-$$" bash deploy/ci/perf-agent-gate.sh
bad=$?
set -e
"$py" eval/ci_validate.py "$work/bad" --failed-objective "product: p95 < 40ms"

echo "good build: exit $good (want 0); regressed build: exit $bad (want 1); files in $work"
[ "$good" -eq 0 ] && [ "$bad" -eq 1 ]

#!/usr/bin/env bash
# perf-agent's CI gate over HTTP — the steps the GitHub action, the GitLab template and
# eval/ci_gate.sh run. Needs bash, curl and jq; nothing to install from perf-agent.
#
#   PERF_AGENT_API              the service, e.g. https://perf-agent.internal
#   PERF_AGENT_API_KEY          a key with read, plan and execute (and approve: a new plan's
#                               draft is approved by the key's owner on the way)
#   PERF_AGENT_PLAN             a plan file (YAML or JSON), stored with the gate: as a new plan,
#   PERF_AGENT_PLAN_ID          or as the next version of this plan; PLAN_ID alone runs the
#                               plan's approved version
#   PERF_AGENT_BASELINE_RUN_IDS comma-separated runs to compare with (default: the service's)
#   PERF_AGENT_ALLOW_WARNING    true: a 'warning' verdict passes
#   PERF_AGENT_IDEMPOTENCY_KEY  the same on a retried job, so a retry never starts a second
#                               load test (default: from the CI's pipeline and job ids)
#   PERF_AGENT_OUT              where the reports go (default: perf-agent-report)
#   PERF_AGENT_TIMEOUT_S        how long to wait for the verdict (default: 3600)
#   PERF_AGENT_GITHUB_TOKEN     with GitHub Actions on a pull request: keep one sticky comment
#
# Writes junit.xml, summary.md, load-performance.json, report.html and gate.json to the
# output directory; appends summary.md to $GITHUB_STEP_SUMMARY and verdict=… to
# $GITHUB_OUTPUT when those are set. Exit 0 passed, 1 failed, 2 error, 3 inconclusive.
set -euo pipefail

fail() { echo "perf-agent gate: $*" >&2; exit 2; }
command -v curl >/dev/null || fail "needs curl"
command -v jq >/dev/null || fail "needs jq"
: "${PERF_AGENT_API:?set PERF_AGENT_API to the URL of the service}"
: "${PERF_AGENT_API_KEY:?set PERF_AGENT_API_KEY to a key with read, plan and execute}"
api="${PERF_AGENT_API%/}/api/agents/performance-agent"
out="${PERF_AGENT_OUT:-perf-agent-report}"
timeout_s="${PERF_AGENT_TIMEOUT_S:-3600}"
mkdir -p "$out"

# The same key for every attempt of this job: a retried job gets the same gate back.
key="${PERF_AGENT_IDEMPOTENCY_KEY:-}"
if [ -z "$key" ]; then
  if [ -n "${GITHUB_RUN_ID:-}" ]; then key="github-${GITHUB_REPOSITORY:-}-${GITHUB_RUN_ID}-${GITHUB_JOB:-}"
  elif [ -n "${CI_PIPELINE_ID:-}" ]; then key="gitlab-${CI_PROJECT_ID:-}-${CI_PIPELINE_ID}-${CI_JOB_NAME:-}"
  fi
fi

call() {  # METHOD PATH [BODY-FILE] → the response body on stdout; a problem → exit 2
  local method=$1 path=$2 body=${3:-} response status
  local args=(-sS -X "$method" -H "Authorization: Bearer $PERF_AGENT_API_KEY" -w '\n%{http_code}')
  [ -n "$body" ] && args+=(-H 'Content-Type: application/json' --data-binary "@$body")
  [ -n "$key" ] && [ "$method" = POST ] && args+=(-H "Idempotency-Key: $key")
  response=$(curl "${args[@]}" "$api$path") || fail "cannot reach $PERF_AGENT_API"
  status=${response##*$'\n'}
  response=${response%$'\n'*}
  if [ "$status" -ge 400 ]; then
    fail "$status $(jq -r '"\(.code): \(.detail)"' <<<"$response" 2>/dev/null || echo "$response")"
  fi
  printf '%s' "$response"
}

[ -n "${PERF_AGENT_PLAN:-}${PERF_AGENT_PLAN_ID:-}" ] || fail "set PERF_AGENT_PLAN or PERF_AGENT_PLAN_ID"
request="$out/.gate-request.json"
jq -n \
  --arg plan_id "${PERF_AGENT_PLAN_ID:-}" \
  --arg baselines "${PERF_AGENT_BASELINE_RUN_IDS:-}" \
  --arg allow "${PERF_AGENT_ALLOW_WARNING:-false}" \
  --arg commit "${GITHUB_SHA:-${CI_COMMIT_SHA:-}}" \
  --arg branch "${GITHUB_HEAD_REF:-${GITHUB_REF_NAME:-${CI_COMMIT_REF_NAME:-}}}" \
  --arg pipeline "${CI_PIPELINE_URL:-${GITHUB_RUN_ID:+${GITHUB_SERVER_URL:-}/${GITHUB_REPOSITORY:-}/actions/runs/${GITHUB_RUN_ID}}}" \
  --rawfile plan "${PERF_AGENT_PLAN:-/dev/null}" \
  '{
     auto_approve: true,
     allow_warning: ($allow == "true"),
     wait_s: 30,
     build: ({commit: $commit, branch: $branch, pipeline_url: $pipeline}
             | with_entries(select(.value != "")))
   }
   + (if $plan != "" then {plan: $plan} else {} end)
   + (if $plan_id != "" then {plan_id: $plan_id} else {} end)
   + (if $baselines != "" then {baseline_run_ids: ($baselines | split(","))} else {} end)' \
  >"$request"
[ -s "$request" ] || fail "could not build the request (is $PERF_AGENT_PLAN readable?)"

gate=$(call POST /gate "$request")
id=$(jq -r .id <<<"$gate")
[ "$(jq -r .replayed <<<"$gate")" = true ] && echo "gate $id: a retry — the run already started is the one judged"
run_id=$(jq -r .run_id <<<"$gate")
echo "gate $id: run $run_id, $(jq -r .status <<<"$gate")"
deadline=$(( $(date +%s) + timeout_s ))
while :; do
  status=$(jq -r .status <<<"$gate")
  case "$status" in decided|error) break ;; esac
  [ "$(date +%s)" -lt "$deadline" ] || fail "no verdict within ${timeout_s}s (gate $id is $status)"
  sleep 5
  gate=$(call GET "/gates/$id")
  echo "gate $id: $(jq -r .status <<<"$gate")"
done
printf '%s\n' "$gate" >"$out/gate.json"
[ "$status" = error ] && fail "$(jq -r .error <<<"$gate")"

verdict=$(jq -r .verdict <<<"$gate")
passed=$(jq -r .passed <<<"$gate")
download() { call GET "${1#/api/agents/performance-agent}" >"$out/$2"; }
download "$(jq -r .links.junit <<<"$gate")" junit.xml
download "$(jq -r .links.summary <<<"$gate")" summary.md
download "$(jq -r .links.gitlab <<<"$gate")" load-performance.json
download "$(jq -r .links.report <<<"$gate")" report.html
report="${PERF_AGENT_API%/}$(jq -r .links.report <<<"$gate")"

if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then cat "$out/summary.md" >>"$GITHUB_STEP_SUMMARY"; fi
if [ -n "${GITHUB_OUTPUT:-}" ]; then
  { echo "verdict=$verdict"; echo "passed=$passed"; echo "report-url=$report"
    echo "report-dir=$out"; echo "junit=$out/junit.xml"; } >>"$GITHUB_OUTPUT"
fi

# One sticky pull-request comment: found again by the marker on summary.md's first line.
pr=""
if [ -n "${GITHUB_EVENT_PATH:-}" ] && [ -f "$GITHUB_EVENT_PATH" ]; then
  pr=$(jq -r '.pull_request.number // empty' "$GITHUB_EVENT_PATH")
fi
if [ -n "${PERF_AGENT_GITHUB_TOKEN:-}" ] && [ -n "$pr" ] && [ -n "${GITHUB_REPOSITORY:-}" ]; then
  gh_api="${GITHUB_API_URL:-https://api.github.com}/repos/$GITHUB_REPOSITORY"
  gh=(-sS -f -H "Authorization: Bearer $PERF_AGENT_GITHUB_TOKEN" -H 'Accept: application/vnd.github+json')
  marker=$(head -n 1 "$out/summary.md")
  jq -n --rawfile body "$out/summary.md" '{body: $body}' >"$out/.comment.json"
  existing=$(curl "${gh[@]}" "$gh_api/issues/$pr/comments?per_page=100" \
    | jq -r --arg m "$marker" '[.[] | select(.body | startswith($m))][0].id // empty') || existing=""
  if [ -n "$existing" ]; then
    curl "${gh[@]}" -X PATCH --data-binary "@$out/.comment.json" \
      "$gh_api/issues/comments/$existing" >/dev/null || echo "could not update the PR comment" >&2
  else
    curl "${gh[@]}" -X POST --data-binary "@$out/.comment.json" \
      "$gh_api/issues/$pr/comments" >/dev/null || echo "could not comment on the PR" >&2
  fi
fi

echo "verdict $verdict (passed: $passed); reports in $out; $report"
case "$verdict" in inconclusive) exit 3 ;; esac
[ "$passed" = true ] && exit 0
exit 1

#!/usr/bin/env bash
# Onboard a customer and wait until its stack is up (replaces add-customer.sh + Terraform).
#
#   OPSCONSOLE_URL=https://console.example.com OPSCONSOLE_TOKEN=ocs_... \
#     docs/ci/add-customer.sh acme "Acme Corp" '{"isolation": "dedicated", "tags": {"plan": "enterprise"}}'
#
# The third argument is any of the onboarding form's fields as JSON (see
# /api/v1/docs). The console validates everything before AWS is touched and prints the
# plan; the onboarding job is then followed step by step. Needs curl and jq.
set -euo pipefail
slug=${1:?usage: add-customer.sh SLUG NAME [JSON]}
name=${2:?usage: add-customer.sh SLUG NAME [JSON]}
extra=${3:-'{}'}
api="${OPSCONSOLE_URL:?set OPSCONSOLE_URL}/api/v1"
auth="Authorization: Bearer ${OPSCONSOLE_TOKEN:?set OPSCONSOLE_TOKEN}"

body=$(jq -n --arg s "$slug" --arg n "$name" --argjson extra "$extra" '{slug: $s, name: $n} + $extra')
out=$(mktemp)
status=$(curl -sS -o "$out" -w '%{http_code}' -X POST -H "$auth" -H 'Content-Type: application/json' \
  -H "Idempotency-Key: onboard-$slug" --data "$body" "$api/tenants/")
if [ "$status" -ge 400 ]; then
  echo "Refused ($status): $(jq -r '.problems[] | "\(.field // "-"): \(.message)"' "$out")" >&2
  exit 1
fi
jq -r '"Onboarding \(.tenant.slug) on \(.plan.release): about $\(.plan.monthly_usd)/month", (.plan.resources[] | "  + \(.kind): \(.name)")' "$out"
job=$(jq -r .job.url "$out"); rm -f "$out"

while :; do
  state=$(curl -sS -H "$auth" "${OPSCONSOLE_URL}$job")
  case $(jq -r .status <<<"$state") in
    succeeded) echo "$slug is up."; exit 0 ;;
    failed|cancelled)
      jq -r '"Onboarding failed: \(.error)", (.steps[] | select(.status == "failed") | "  \(.label): \(.error)")' <<<"$state" >&2
      exit 1 ;;
  esac
  sleep "${OPSCONSOLE_POLL_S:-5}"
done

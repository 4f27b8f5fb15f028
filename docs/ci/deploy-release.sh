#!/usr/bin/env bash
# A CI step: register a release from an image digest, roll it out to every tenant, wait,
# and fail the job when the rollout halts, fails or is cancelled.
#
#   OPSCONSOLE_URL=https://console.example.com OPSCONSOLE_TOKEN=ocs_... \
#     docs/ci/deploy-release.sh 2026.12.0 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app@sha256:...
#
# Needs curl and jq. Safe to re-run: the release is registered once (a second run finds
# it), and the rollout's Idempotency-Key is OPSCONSOLE_RUN (default: the version), so a
# retried CI step follows the rollout it started instead of starting a second one. Set
# OPSCONSOLE_TENANTS='["acme","globex"]' to deploy to some tenants only.
set -euo pipefail
version=${1:?usage: deploy-release.sh VERSION IMAGE_DIGEST_REF}
image=${2:?usage: deploy-release.sh VERSION IMAGE_DIGEST_REF}
api="${OPSCONSOLE_URL:?set OPSCONSOLE_URL}/api/v1"
auth="Authorization: Bearer ${OPSCONSOLE_TOKEN:?set OPSCONSOLE_TOKEN}"
poll=${OPSCONSOLE_POLL_S:-10}
timeout=${OPSCONSOLE_TIMEOUT_S:-3600}

call() {  # METHOD PATH [JSON]: print the body; fail with the API's message on an error
  local out status
  out=$(mktemp)
  status=$(curl -sS -o "$out" -w '%{http_code}' -X "$1" -H "$auth" \
    -H 'Content-Type: application/json' -H "Idempotency-Key: deploy-${OPSCONSOLE_RUN:-$version}-$1-${2//\//_}" \
    ${3:+--data "$3"} "$api$2")
  if [ "$status" -ge 400 ]; then
    echo "opsconsole: $1 $2 answered $status: $(jq -r '.message + (if .field then " (" + .field + ")" else "" end)' "$out" 2>/dev/null || cat "$out")" >&2
    rm -f "$out"; return 1
  fi
  cat "$out"; rm -f "$out"
}

if curl -sS -o /dev/null -w '%{http_code}' -H "$auth" "$api/releases/$version" | grep -q '^200$'; then
  echo "Release $version is registered already."
else
  call POST /releases/ "$(jq -n --arg v "$version" --arg i "$image" '{version: $v, image: $i}')" \
    | jq -r '"Registered \(.version): \(.artifact)"'
fi

body=$(jq -n --arg v "$version" --argjson tenants "${OPSCONSOLE_TENANTS:-null}" \
  'if $tenants then {release: $v, target: "tenants", values: $tenants} else {release: $v} end')
rollout=$(call POST /rollouts/ "$body")
id=$(jq -r .id <<<"$rollout")
echo "Rollout #$id: $(jq -r '.wave_sizes | map(tostring) | join(" + ")' <<<"$rollout") tenants"

deadline=$(( $(date +%s) + timeout ))
while :; do
  rollout=$(call GET "/rollouts/$id")
  status=$(jq -r .status <<<"$rollout")
  echo "$(date +%T) $status: $(jq -r '.counts | "\(.succeeded) succeeded, \(.failed) failed, \(.running) running, \(.pending) pending"' <<<"$rollout")"
  case $status in
    succeeded) exit 0 ;;
    halted|cancelled)
      echo "Rollout #$id $status: $(jq -r .reason <<<"$rollout")" >&2
      jq -r '.deployments[] | select(.status == "failed") | "  \(.tenant): \(.reason)"' <<<"$rollout" >&2
      exit 1 ;;
  esac
  [ "$(date +%s)" -lt "$deadline" ] || { echo "Rollout #$id still $status after ${timeout}s" >&2; exit 2; }
  sleep "$poll"
done

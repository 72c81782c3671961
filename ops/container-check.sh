#!/usr/bin/env bash
# Builds the Dockerfile's image and runs it for real, then brings up docker-compose.yml and
# checks it through its load balancer. Not part of `npm test` (minutes, and it needs a working
# container engine and a registry to pull the base images from).
#
#   ops/container-check.sh            build, run the image, then the compose deployment
#   ops/container-check.sh --no-compose
#
# Engine: docker when its daemon answers, else podman (ENGINE=podman to choose). Extra build
# flags in BUILD_FLAGS (podman in a sandbox without cgroup delegation: BUILD_FLAGS="--isolation
# chroot"), extra run flags in RUN_FLAGS. Exits non-zero at the first step that fails, saying which.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=chunked-upload-server:check
NAME=chunked-upload-check-$$
PORT=${PORT:-4090}
step() { printf '\n== %s\n' "$*"; }
fail() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }

if [ -z "${ENGINE:-}" ]; then
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then ENGINE=docker
  elif command -v podman >/dev/null; then ENGINE=podman
  else fail "no container engine: docker's daemon does not answer and podman is not installed"; fi
fi
if [ "$ENGINE" = docker ] && docker compose version >/dev/null 2>&1; then COMPOSE="docker compose"
elif command -v podman-compose >/dev/null; then COMPOSE=podman-compose
elif command -v docker-compose >/dev/null; then COMPOSE=docker-compose
else COMPOSE=""; fi
echo "engine: $ENGINE ($($ENGINE --version)); compose: ${COMPOSE:-none}"

step "build the image"
# shellcheck disable=SC2086
$ENGINE build ${BUILD_FLAGS:-} -t "$IMAGE" . || fail "$ENGINE build"

step "run it (embedded database on a fresh volume, NODE_ENV=production) and ask /healthz, /readyz, /metrics"
JWT_SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n')
METRICS_TOKEN=$(head -c 24 /dev/urandom | base64 | tr -d '/+=\n')
cleanup() { $ENGINE rm -f "$NAME" >/dev/null 2>&1 || true; $ENGINE volume rm -f "$NAME" >/dev/null 2>&1 || true; }
trap cleanup EXIT
# shellcheck disable=SC2086
$ENGINE run -d --name "$NAME" ${RUN_FLAGS:-} -p "127.0.0.1:$PORT:4000" -v "$NAME:/data" \
  -e JWT_SECRET="$JWT_SECRET" -e ADMIN_PASSWORD=container-check-pw -e METRICS_TOKEN="$METRICS_TOKEN" \
  "$IMAGE" || fail "$ENGINE run"
ready=""
for _ in $(seq 1 60); do
  if curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null; then ready=yes; break; fi
  sleep 1
done
[ -n "$ready" ] || { $ENGINE logs "$NAME" | tail -20; fail "the container did not become ready within 60 s"; }
curl -sf "http://127.0.0.1:$PORT/healthz"; echo
curl -sf "http://127.0.0.1:$PORT/readyz"; echo
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/metrics")
[ "$code" = 401 ] || fail "/metrics without the token answered $code, not 401"
curl -sf -H "authorization: Bearer $METRICS_TOKEN" "http://127.0.0.1:$PORT/metrics" | grep -E '^(uploads_in_progress|process_resident_memory_bytes) ' \
  || fail "/metrics with the token"
login=$(curl -sf "http://127.0.0.1:$PORT/graphql" -H 'content-type: application/json' \
  -d '{"query":"mutation { login(username: \"admin\", password: \"container-check-pw\") { token } }"}')
echo "$login" | grep -q '"token"' || fail "login: $login"
$ENGINE logs "$NAME" 2>&1 | sed -n 1,3p
cleanup
trap - EXIT
echo "the image runs"

[ "${1:-}" = --no-compose ] && exit 0
[ -n "$COMPOSE" ] || fail "no compose tool (docker compose, podman-compose or docker-compose)"

step "docker-compose.yml: PostgreSQL, MinIO, two replicas, nginx on :4000"
export JWT_SECRET ADMIN_PASSWORD=container-check-pw
down() { $COMPOSE down -v >/dev/null 2>&1 || true; }
trap down EXIT
$COMPOSE up -d --build || fail "$COMPOSE up"
ready=""
for _ in $(seq 1 120); do
  if curl -sf http://127.0.0.1:4000/readyz >/dev/null; then ready=yes; break; fi
  sleep 1
done
[ -n "$ready" ] || { $COMPOSE logs --tail 20; fail "the deployment did not become ready within 120 s"; }
curl -sf http://127.0.0.1:4000/readyz; echo
login=$(curl -sf http://127.0.0.1:4000/graphql -H 'content-type: application/json' \
  -d '{"query":"mutation { login(username: \"admin\", password: \"container-check-pw\") { token } }"}')
echo "$login" | grep -q '"token"' || fail "login through nginx: $login"
echo "the compose deployment answers through nginx"

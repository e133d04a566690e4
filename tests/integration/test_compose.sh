#!/usr/bin/env bash
# The deployment files stay valid without a Docker engine:
# - docker-compose.yml passes the Compose client's own schema check
#   (`docker compose config`, or `docker-compose config` of Debian's
#   docker-compose package), and tests/deploy_check.py checks the stack's
#   services, health checks, KRaft, topics, documented ports, the Prometheus
#   target, and that every recstream flag it uses is one the binary accepts;
# - the Dockerfile parses (known instructions, debian:12 stages, COPY --from an
#   earlier stage, non-root final USER) and its runtime packages provide every
#   library the binary links;
# - the config files the stack mounts or documents are accepted by `recstream run`.
set -euo pipefail
: "${RECSTREAM:?}" "${TESTS_DIR:?}" "${TEST_TMPDIR:?}"
REPO=$(cd "$TESTS_DIR/.." && pwd)
fail() { echo "FAIL: $*" >&2; exit 1; }

# ---- the Compose client's schema validation, when a client is installed
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null; then
  compose=(docker-compose)
else
  compose=()
  echo "note: no Compose client (docker compose / docker-compose); schema check skipped" >&2
fi
if [ ${#compose[@]} -gt 0 ]; then
  (cd "$REPO" && "${compose[@]}" -f docker-compose.yml config -q) ||
    fail "docker-compose.yml does not validate with ${compose[*]}"
  # services it must define, as the client resolved them
  services=$(cd "$REPO" && "${compose[@]}" -f docker-compose.yml config --services | sort | tr '\n' ' ')
  for s in grafana kafka kafka-init model-init prometheus recstream schema-registry; do
    [[ " $services" == *" $s "* ]] || fail "compose service $s missing (have: $services)"
  done
fi

# ---- structure, flags in step with the binary, Dockerfile
python3 -c 'import yaml' 2>/dev/null || fail "python3 lacks PyYAML (Debian: python3-yaml)"
python3 "$TESTS_DIR/deploy_check.py" "$REPO" "$RECSTREAM" || fail "deploy_check.py"

# ---- the config files are accepted by recstream run (keys, values)
for conf in deploy/recstream.conf deploy/recstream-secure.conf.example; do
  out=$("$RECSTREAM" run -c "$REPO/$conf" --model /nonexistent -X dump 2>&1) ||
    fail "recstream run -c $conf: $out"
  ! grep -q 'CHANGE-ME' <<<"$out" || fail "-X dump of $conf shows a secret"
done
# the security example's settings reach librdkafka as written
out=$("$RECSTREAM" run -c "$REPO/deploy/recstream-secure.conf.example" --model x -X dump)
for kv in 'security.protocol = sasl_ssl' 'sasl.mechanisms = SCRAM-SHA-512' 'sasl.username = recstream' \
  'sasl.password = [redacted]' 'schema.registry.basic.auth.user.info = [redacted]'; do
  grep -qxF "$kv" <<<"$out" || fail "secure example: '$kv' not in the effective configuration"
done
echo "ok: docker-compose.yml${compose:+ (${compose[*]} config)}, Dockerfile, deploy/*.conf"

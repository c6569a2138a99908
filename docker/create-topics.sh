#!/usr/bin/env bash
# Creates the five noise.* topics of docs/formats.md section 1 on Redpanda with rpk:
# partitions, retention and compaction as the spec says. Topics that already
# exist are left alone and reported, so running it twice is fine.
#
#   docker/create-topics.sh [BROKERS]      default: localhost:19092
#
# Uses rpk from PATH when there is one, otherwise rpk inside the redpanda-0
# container of docker/docker-compose.yml. REPLICAS=3 for a three-broker cluster.
# (`integr8tor topics create --brokers BROKERS` does the same through the
# Kafka admin API, without rpk.)
set -euo pipefail

BROKERS="${1:-${BROKERS:-localhost:19092}}"
REPLICAS="${REPLICAS:-1}"

if command -v rpk >/dev/null 2>&1; then
  run_rpk() { rpk "$@" -X brokers="$BROKERS"; }
elif command -v docker >/dev/null 2>&1; then
  # inside the container localhost:19092 is the broker's own external listener
  run_rpk() { docker exec -i redpanda-0 rpk "$@" -X brokers="$BROKERS"; }
else
  echo "create-topics.sh: neither rpk nor docker is installed" >&2
  exit 2
fi

status=0
last_output=""

# create TOPIC PARTITIONS [CONFIG=VALUE ...]
create() {
  local topic=$1 partitions=$2
  shift 2
  local args=(topic create "$topic" --partitions "$partitions" --replicas "$REPLICAS")
  local config
  for config in "$@"; do
    args+=(--topic-config "$config")
  done
  if last_output=$(run_rpk "${args[@]}" 2>&1); then
    echo "$topic: created ($partitions partitions; ${*:-no configs})"
  elif grep -q TOPIC_ALREADY_EXISTS <<<"$last_output"; then
    echo "$topic: exists (left as it is)"
  else
    return 1
  fi
}

# create, or say why not
must_create() {
  create "$@" || {
    echo "$1: not created: $last_output" >&2
    status=1
  }
}

must_create noise.params 4 retention.ms=3600000
must_create noise.mod 1 retention.ms=60000
must_create noise.audio 1 retention.ms=60000
must_create noise.events 1 retention.ms=86400000
if ! create noise.state 1 cleanup.policy=compact min.cleanable.dirty.ratio=0.1; then
  if grep -qiE 'INVALID_CONFIG|min.cleanable.dirty.ratio' <<<"$last_output"; then
    # Redpanda releases without dirty-ratio compaction refuse the ratio; the
    # topic must still be compacted, so create it with the policy alone.
    echo "noise.state: this Redpanda refuses min.cleanable.dirty.ratio ($last_output); creating it with cleanup.policy=compact only" >&2
    must_create noise.state 1 cleanup.policy=compact
  else
    echo "noise.state: not created: $last_output" >&2
    status=1
  fi
fi

exit "$status"

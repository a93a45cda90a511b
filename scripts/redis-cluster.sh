#!/usr/bin/env bash
# Starts (or stops) a real 3-primary Redis Cluster on local ports, for the tests' third backend
# (REDIS_CLUSTER_ADDRS) and for trying REDIS_ADDR="a,b,c" by hand.
#
#   scripts/redis-cluster.sh start   # idempotent: does nothing when the cluster is already up
#   scripts/redis-cluster.sh stop
#   scripts/redis-cluster.sh addrs   # prints the REDIS_CLUSTER_ADDRS value
#
# REDIS_CLUSTER_PORT (default 7000) is the first of three consecutive ports; REDIS_CLUSTER_DIR
# (default $TMPDIR/carqueue-redis-cluster) holds the nodes' config files and logs. Persistence
# is off: this cluster is for tests, never for data.
set -euo pipefail

port0="${REDIS_CLUSTER_PORT:-7000}"
dir="${REDIS_CLUSTER_DIR:-${TMPDIR:-/tmp}/carqueue-redis-cluster}"
ports=("$port0" "$((port0 + 1))" "$((port0 + 2))")
addrs="127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}"

cluster_ok() {
  for p in "${ports[@]}"; do
    redis-cli -p "$p" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || return 1
  done
}

start() {
  if cluster_ok; then
    echo "redis cluster already up at $addrs"
    return 0
  fi
  mkdir -p "$dir"
  for p in "${ports[@]}"; do
    if ! redis-cli -p "$p" ping >/dev/null 2>&1; then
      # A node that is down starts afresh: an old nodes file would name a cluster that is gone.
      rm -f "$dir/nodes-$p.conf"
      redis-server --port "$p" --bind 127.0.0.1 --cluster-enabled yes \
        --cluster-config-file "$dir/nodes-$p.conf" --cluster-node-timeout 2000 \
        --save "" --appendonly no --dir "$dir" --logfile "$dir/redis-$p.log" --daemonize yes
    fi
  done
  for p in "${ports[@]}"; do
    for _ in $(seq 1 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
    redis-cli -p "$p" ping >/dev/null || { echo "redis-server on port $p did not start (see $dir/redis-$p.log)" >&2; exit 1; }
  done
  # Slots are assigned only when no node has any yet (a node that holds slots is not reset).
  local assigned
  assigned=$(redis-cli -p "${ports[0]}" cluster info | sed -n 's/^cluster_slots_assigned:\([0-9]*\).*/\1/p')
  if [ "${assigned:-0}" = 0 ]; then
    redis-cli --cluster create "127.0.0.1:${ports[0]}" "127.0.0.1:${ports[1]}" "127.0.0.1:${ports[2]}" \
      --cluster-replicas 0 --cluster-yes >"$dir/create.log" 2>&1 ||
      { cat "$dir/create.log" >&2; exit 1; }
  fi
  for _ in $(seq 1 100); do
    cluster_ok && { echo "redis cluster up at $addrs"; return 0; }
    sleep 0.1
  done
  echo "redis cluster at $addrs did not reach cluster_state:ok (logs in $dir)" >&2
  exit 1
}

stop() {
  for p in "${ports[@]}"; do
    redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true
  done
  rm -f "$dir"/nodes-*.conf
  echo "redis cluster at $addrs stopped"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
addrs) echo "$addrs" ;;
*)
  echo "usage: $0 start|stop|addrs" >&2
  exit 2
  ;;
esac

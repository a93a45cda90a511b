#!/usr/bin/env bash
# Issue 12's comparison in one run: what an answered /poll costs (server + Redis CPU), the
# saturation rate and the memory per idle keep-alive connection, for
#   before   the local harness of an earlier commit (its HTTP functions, the event path),
#   after    the server mode (functions/web) of this checkout,
#   ceiling  scripts/pollceiling (no Redis, no ticket: an HTTP stack answering from a map),
# each measured by scripts/pollload against a redis-server of its own and the harness's CAR
# emulator. Every phase gets a fresh server and queue, so no phase's users linger in another's
# line. Needs redis-server on PATH; prints pollload's reports.
#
#   scripts/pollcompare.sh                      # before = BEFORE (default c10e475)
#   BEFORE=<commit> USERS=10000 DURATION=30s CLOSED=200 IDLE=5000 scripts/pollcompare.sh
#   ONLY="after ceiling" PHASES=closed scripts/pollcompare.sh # some setups and phases
set -euo pipefail
cd "$(dirname "$0")/.."

BEFORE=${BEFORE:-c10e475}
USERS=${USERS:-10000}       # open loop: users polling once per INTERVAL at random phase
INTERVAL=${INTERVAL:-5s}
DURATION=${DURATION:-30s}
CLOSED=${CLOSED:-200}       # closed loop: users polling back to back (saturation)
CLOSED_USERS=${CLOSED_USERS:-1000}
CLOSED_DURATION=${CLOSED_DURATION:-10s}
IDLE=${IDLE:-5000}          # idle keep-alive connections
ONLY=${ONLY:-"before after ceiling"}
PHASES=${PHASES:-"open closed idle"}
RPORT=${RPORT:-16399}
BASE=${BASE_PORT:-18300}

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  redis-cli -p "$RPORT" shutdown nosave >/dev/null 2>&1 || true
  git worktree remove --force "$work/before-src" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "# building into $work"
go build -o "$work/local" ./local
go build -o "$work/web" ./functions/web
go build -o "$work/pollload" ./scripts/pollload
go build -o "$work/pollceiling" ./scripts/pollceiling
if [[ " $ONLY " == *" before "* ]]; then
  git worktree add --detach "$work/before-src" "$BEFORE" >/dev/null 2>&1
  (cd "$work/before-src" && go build -o "$work/local-before" ./local)
fi

# A redis-server of an earlier run may still hold the port while it shuts down, and then the
# new one cannot bind it and exits: start it again until it runs (up to ~10 s).
for _ in $(seq 5); do
  redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --pidfile "$work/redis.pid" --logfile "$work/redis.log" --dir "$work"
  for _ in $(seq 20); do [[ -s $work/redis.pid ]] && redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break 2; sleep 0.1; done
done
[[ -s $work/redis.pid ]] || { echo "redis-server did not start on port $RPORT:" >&2; tail -5 "$work/redis.log" >&2; exit 1; }
rpid=$(cat "$work/redis.pid")

wait_http() { # url
  for _ in $(seq 200); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "no answer from $1" >&2; return 1
}

common=(READY_TIMEOUT=1h QUEUE_IDLE_TIMEOUT=10m LOG_LEVEL=warn REDIS_ADDR=127.0.0.1:$RPORT)
n=0
hpid=""
# start_server <setup> <queue id>: starts the setup's server, sets url and spid
start_server() {
  local setup=$1 qid=$2
  n=$((n + 1))
  local port=$((BASE + 10 * n)) emu=$((BASE + 10 * n + 1)) harness=$((BASE + 10 * n + 2))
  case $setup in
  before)
    env "${common[@]}" QUEUE_ID="$qid" "$work/local-before" -capacity 1 -addr "127.0.0.1:$port" \
      -emulator-addr "127.0.0.1:$emu" >"$work/$qid.log" 2>&1 &
    spid=$!; pids+=("$spid"); url="http://127.0.0.1:$port" ;;
  after)
    # the harness only for its CAR emulator (its own queue stays empty), the server mode serving
    env "${common[@]}" QUEUE_ID="$qid-harness" "$work/local" -capacity 1 -addr "127.0.0.1:$harness" \
      -emulator-addr "127.0.0.1:$emu" >"$work/$qid-harness.log" 2>&1 &
    hpid=$!; pids+=("$hpid")
    wait_http "http://127.0.0.1:$harness/stats"
    env "${common[@]}" CARQUEUE_LOCAL=1 QUEUE_ID="$qid" CAPACITY=1 CAR_ENDPOINT="127.0.0.1:$emu" CAR_SCHEME=http \
      TENCENTCLOUD_SECRETID=AKIDLOCAL TENCENTCLOUD_SECRETKEY=local-secret-key PORT="$port" \
      "$work/web" >"$work/$qid.log" 2>&1 &
    spid=$!; pids+=("$spid"); url="http://127.0.0.1:$port" ;;
  ceiling)
    "$work/pollceiling" -addr "127.0.0.1:$port" >"$work/$qid.log" 2>&1 &
    spid=$!; pids+=("$spid"); url="http://127.0.0.1:$port" ;;
  esac
  wait_http "$url/stats"
}

stop_server() {
  for p in $spid $hpid; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  hpid=""
}

for setup in $ONLY; do
  hold=true server_pids=""
  [[ $setup == ceiling ]] && hold=false
  for phase in $PHASES; do
    start_server "$setup" "$setup-$phase-$$"
    server_pids=$spid
    [[ $setup != ceiling ]] && server_pids="$spid,$rpid"
    echo
    echo "## $setup, $phase ($(uptime | sed 's/.*load average/load average/'))"
    case $phase in
    open) "$work/pollload" -url "$url" -hold="$hold" -users "$USERS" -interval "$INTERVAL" -duration "$DURATION" -pids "$server_pids" ;;
    closed) "$work/pollload" -url "$url" -hold="$hold" -users "$CLOSED_USERS" -closed "$CLOSED" -duration "$CLOSED_DURATION" -pids "$server_pids" ;;
    idle) "$work/pollload" -url "$url" -hold="$hold" -users "$IDLE" -idle -pids "$spid" ;;
    esac
    stop_server
  done
done

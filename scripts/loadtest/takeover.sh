#!/usr/bin/env bash
# takeover.sh measures how long the reaper stalls when the instance whose run holds the reaper
# lease is killed with kill -9: the time from the kill until another instance's run takes the
# lease, and until the next user is admitted.
#
#   REDIS_ADDR=127.0.0.1:6379 scripts/loadtest/takeover.sh [harness binary]
#
# The harness binary defaults to one built from this checkout (go build ./local); give another
# (say, one built from an older commit) to compare. Three processes share one Redis: C serves
# only the CAR emulator (2 slots; ApplyConcurrent takes 3s, so a run that admits is in the
# middle of its work for seconds); A and B are two function instances of one queue, both
# talking to C's emulator. Users join through A and never heartbeat, so every READY_TIMEOUT
# (5s) the reaper reclaims a slot and admits the next user: the reaper always has work. Once
# two users were admitted and a run holds the lease (the key exists while a run works), A is
# killed with kill -9, B is started (its timer ticks every second), and the lease key is
# watched until its token changes (B's run took over), then B's /stats until AdmittedTotal
# grows. REAPER_PARALLEL=1, so the killed run leaves at most one claim behind: that user keeps
# its slot until CLAIM_LEASE (30s) ends, as its per-user lock (CAR_LOCK_TTL) forbids admitting
# it sooner; the other slot shows when work resumes. It prints one line: both delays, and B's
# start-up time (counted in both). It deletes only its own queues' keys.
set -euo pipefail

: "${REDIS_ADDR:?set REDIS_ADDR to a redis-server (host:port)}"
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
bin=${1:-$work/local}
if [ $# -eq 0 ]; then (cd "$root" && go build -o "$bin" ./local); fi
queue=takeover-$RANDOM$RANDOM
key="cq:{$queue}:reaper"
rhost=${REDIS_ADDR%:*}
rport=${REDIS_ADDR##*:}
rcli() { redis-cli -h "$rhost" -p "$rport" "$@"; }
ms() { date +%s%3N; }
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	for q in "$queue" "$queue-car"; do
		rcli --scan --pattern "cq:{$q}:*" | xargs -r redis-cli -h "$rhost" -p "$rport" unlink >/dev/null
	done
	rm -rf "$work"
}
trap cleanup EXIT

waitready() { for _ in $(seq 100); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "takeover: $1 never appeared" >&2; exit 1; }

# C: the CAR emulator (its own functions serve another, idle queue).
QUEUE_ID=$queue-car "$bin" -capacity 2 -addr 127.0.0.1:18190 -emulator-addr 127.0.0.1:18191 \
	-cleanup-delay 200ms -emulator-faults 'ApplyConcurrent:latency=3s' -ready-file "$work/c.json" >"$work/c.log" 2>&1 &
pids+=($!)
waitready "$work/c.json"

instance() { # name port
	QUEUE_ID=$queue CAPACITY=2 CAR_ENDPOINT=127.0.0.1:18191 CAR_SCHEME=http \
		TENCENTCLOUD_SECRETID=AKIDLOCAL TENCENTCLOUD_SECRETKEY=local-secret-key \
		HEARTBEAT_TIMEOUT=4s READY_TIMEOUT=5s QUEUE_IDLE_TIMEOUT=5m REAPER_PARALLEL=1 \
		"$bin" -addr "127.0.0.1:$2" -ready-file "$work/$1.json" >"$work/$1.log" 2>&1 &
	pids+=($!)
}

instance a 18180
apid=${pids[-1]}
disown "$apid" # so that bash does not report its kill
waitready "$work/a.json"
for i in $(seq 12); do
	curl -s -o /dev/null -X POST "http://127.0.0.1:18180/start" -d "{\"UserId\":\"t$i\",\"ClientSession\":\"cs-t$i\"}" &
done
wait_lease() {
	for _ in $(seq 600); do
		v=$(rcli get "$key")
		[ -n "$v" ] && { echo "$v"; return 0; }
		sleep 0.05
	done
	echo "takeover: no run ever held the lease" >&2
	exit 1
}
stats() { # port: AdmittedTotal of /stats
	curl -s -H 'Authorization: Bearer local-admin-token' "http://127.0.0.1:$1/stats" | sed -n 's/.*"AdmittedTotal":\([0-9]*\).*/\1/p'
}
# Let the first admissions through (the slots are then held, and handed on every 5s), then
# wait for a run in the middle of its work.
for _ in $(seq 300); do n=$(stats 18180); [ -n "$n" ] && [ "$n" -ge 2 ] && break; sleep 0.1; done
held=$(wait_lease)
kill -9 "$apid"
t0=$(ms)
instance b 18182
waitready "$work/b.json"
tb=$(ms)
admitted0=$(stats 18182)
took=""
for _ in $(seq 1800); do
	v=$(rcli get "$key")
	if [ -n "$v" ] && [ "${v#*:}" != "${held#*:}" ]; then took=$(ms); break; fi
	sleep 0.05
done
[ -n "$took" ] || { echo "takeover: B never took the lease" >&2; exit 1; }
next=""
for _ in $(seq 1200); do
	n=$(stats 18182)
	if [ -n "$n" ] && [ "$n" -gt "$admitted0" ]; then next=$(ms); break; fi
	sleep 0.05
done
printf 'lease taken over %.1fs after kill -9; next admission %s after it; B started in %.1fs\n' \
	"$(echo "($took - $t0)/1000" | bc -l)" \
	"$([ -n "$next" ] && printf '%.1fs' "$(echo "($next - $t0)/1000" | bc -l)" || echo 'not seen in 60s')" \
	"$(echo "($tb - $t0)/1000" | bc -l)"

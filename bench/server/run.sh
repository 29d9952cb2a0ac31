#!/usr/bin/env bash
# bench/server/run.sh: the HTTP server against the in-process pipeline, in one
# run, on loopback (issue: the server; DESIGN.md §6, §8).
#
#   bench/server/run.sh [--rounds 3] [--seconds 10] [--items 1] [--idle 10000]
#
# Per round, for cold (PL cache off: every license costs an unwrap and a
# signature) and hot (PL cache on: a signature only):
#   1. `licensor bench issue --workers 2` (in-process, the reference figure);
#   2. `licensor serve --workers 2` under licensor-load (32 keep-alive
#      connections, 4 pipelined requests each, POST /v1/licenses with --items
#      items per body), offered twice the in-process rate so that the server
#      is saturated, for --seconds after a 2 s warm-up: licenses/s = the
#      achieved requests/s × items. Requests still unanswered when the run
#      ends count as timeouts (expected at saturation); any other error
#      stops the script.
# Then, hot, with --idle idle keep-alive connections held open by
# idle_connections.py: the server's RSS before and with them, and licenses/s
# under licensor-load again. Prints one JSON object per measurement and a
# summary with medians and ratios. licensor-load runs on the same 2 cores as
# the server (its own CPU share is in each JSON line), which the in-process
# figure does not pay for.
#
# Needs: a release build (made if missing), python3, openssl.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROUNDS=3 SECONDS_PER_RUN=10 ITEMS=1 IDLE=10000
while [[ $# -gt 0 ]]; do
	case $1 in
	--rounds) ROUNDS=$2; shift 2 ;;
	--seconds) SECONDS_PER_RUN=$2; shift 2 ;;
	--items) ITEMS=$2; shift 2 ;;
	--idle) IDLE=$2; shift 2 ;;
	*) echo "usage: $0 [--rounds N] [--seconds S] [--items N] [--idle N]" >&2; exit 2 ;;
	esac
done
if [[ ! -x build-release/licensor || ! -x build-release/licensor-load ]]; then
	cmake --preset release >/dev/null && cmake --build --preset release -j2 --target licensor licensor-load >/dev/null
fi
LICENSOR=$PWD/build-release/licensor
LOAD=$PWD/build-release/licensor-load
SCRIPT_DIR=$PWD/bench/server
WORK=$(mktemp -d "${TMPDIR:-/tmp}/licensor-server-bench.XXXXXX")
SERVER_PID=""
IDLE_PID=""
cleanup() {
	[[ -n $SERVER_PID ]] && kill -9 "$SERVER_PID" 2>/dev/null || true
	[[ -n $IDLE_PID ]] && kill -9 "$IDLE_PID" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
export LICENSOR_STORE=$WORK/store
ulimit -n "$(ulimit -Hn)"

. "$PWD/bench/lib.sh"
bench_fixture "$ITEMS"

rss_kib() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }
# licenses/s the server sustains: licensor-load offering RATE requests/s (above
# what the server can do) over $URL for SECONDS; prints "licenses/s load-cpu".
load_licenses() { # seconds rate
	local load=("$LOAD" --url "$URL/v1/licenses" --body "$WORK/bodies.txt" --rate "$2"
		--connections 32 --pipeline 4 --server-pid "$SERVER_PID" --json)
	timeout 30 "${load[@]}" --duration 2 >/dev/null 2>&1 || true # warm-up
	timeout $(($1 + 30)) "${load[@]}" --duration "$1" >"$WORK/load.json" 2>/dev/null
	python3 - "$WORK/load.json" "$ITEMS" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
other = {k: v for k, v in d["errors"].items() if k != "timeout"}
if other:
    sys.exit(f"licensor-load saw errors: {other}")
print(round(d["achieved_rate"] * int(sys.argv[2]), 1), d["load_cpu_share"])
PY
}

RESULTS=$WORK/results.jsonl
for round in $(seq "$ROUNDS"); do
	for mode in cold hot; do
		flag=""
		[[ $mode == hot ]] && flag="--hot"
		inprocess=$("$LICENSOR" bench issue --workers 2 --seconds 5 $flag |
			python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["licenses_per_s"], d["ceiling_private_ops_per_s"])')
		if [[ $mode == cold ]]; then start_server --no-pl-cache; else start_server; fi
		read -r lic ceiling <<<"$inprocess"
		read -r http load_cpu <<<"$(load_licenses "$SECONDS_PER_RUN" "$(python3 -c "print(int(2 * $lic / $ITEMS) + 1)")")"
		stop_server
		echo "{\"round\":$round,\"mode\":\"$mode\",\"in_process_licenses_per_s\":$lic,\"ceiling_private_ops_per_s\":$ceiling,\"http_licenses_per_s\":$http,\"load_cpu_share\":$load_cpu}" |
			tee -a "$RESULTS"
	done
	# hot, with IDLE idle keep-alive connections open
	start_server --idle-timeout 1h --max-connections $((IDLE + 1000))
	sleep 0.5
	rss_before=$(rss_kib "$SERVER_PID")
	port=${URL##*:}
	rm -f "$WORK/stop"
	python3 "$SCRIPT_DIR/idle_connections.py" 127.0.0.1 "$port" "$IDLE" 600 "$WORK/stop" >"$WORK/idle.out" &
	IDLE_PID=$!
	for _ in $(seq 600); do grep -q '^ready' "$WORK/idle.out" 2>/dev/null && break; sleep 0.1; done
	grep -q '^ready' "$WORK/idle.out" || { echo "idle connections did not open" >&2; exit 1; }
	rss_idle=$(rss_kib "$SERVER_PID")
	read -r http load_cpu <<<"$(load_licenses "$SECONDS_PER_RUN" "$(python3 -c "print(int(2 * $lic / $ITEMS) + 1)")")" # $lic: this round's hot figure
	rss_after=$(rss_kib "$SERVER_PID")
	touch "$WORK/stop"
	wait "$IDLE_PID" || true
	IDLE_PID=""
	stop_server
	echo "{\"round\":$round,\"mode\":\"hot_with_idle\",\"idle_connections\":$IDLE,\"rss_kib_before\":$rss_before,\"rss_kib_idle\":$rss_idle,\"rss_kib_after_load\":$rss_after,\"http_licenses_per_s\":$http,\"load_cpu_share\":$load_cpu}" |
		tee -a "$RESULTS"
done

python3 - "$RESULTS" "$IDLE" <<'EOF'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
idle = int(sys.argv[2])
median = lambda xs: statistics.median(xs)
print("\nsummary (medians over rounds; ratios computed per round, then the median)")
for mode in ("cold", "hot"):
    r = [x for x in rows if x["mode"] == mode]
    ratios = [x["http_licenses_per_s"] / x["in_process_licenses_per_s"] for x in r]
    print(f"  {mode}: in-process {median([x['in_process_licenses_per_s'] for x in r]):.0f} lic/s, "
          f"HTTP {median([x['http_licenses_per_s'] for x in r]):.0f} lic/s, "
          f"HTTP/in-process {median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}]")
hot = [x for x in rows if x["mode"] == "hot"]
w = [x for x in rows if x["mode"] == "hot_with_idle"]
ratios = [wi["http_licenses_per_s"] / h["in_process_licenses_per_s"] for wi, h in zip(w, hot)]
budget = 64 * 1024 + 16 * idle
print(f"  hot with {idle} idle connections: HTTP {median([x['http_licenses_per_s'] for x in w]):.0f} lic/s, "
      f"HTTP/in-process {median(ratios):.2f}; RSS {median([x['rss_kib_idle'] for x in w]) / 1024:.1f} MiB idle, "
      f"{median([x['rss_kib_after_load'] for x in w]) / 1024:.1f} MiB after load "
      f"(budget 64 MiB + 16 KiB × {idle} = {budget / 1024:.0f} MiB)")
EOF

#!/usr/bin/env bash
# bench/byok.sh [--rounds N] [--seconds S]: licenses/s of a BYOK tenant whose
# key is in SoftHSM2 against a managed tenant of the same size, in the same
# run, cold (every PL new: an unwrap and a signature per license, both in the
# token for BYOK) and hot (PL cache hits: the signature only). Rounds
# alternate managed and BYOK so that a change in the machine's load weighs on
# both; the table shows medians and the per-round ratios' medians:
#   byok/managed   what keeping the key in the token costs;
#   hot/cold       what the PL cache saves (for BYOK: token operations saved).
# Every figure comes from `licensor bench issue` (its JSON lines are kept in
# bench/out/byok.jsonl). The token lives in a temporary directory
# (SOFTHSM2_CONF) and is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=3 SECONDS_EACH=4
while [[ $# -gt 0 ]]; do
	case $1 in
	--rounds) ROUNDS=$2; shift 2 ;;
	--seconds) SECONDS_EACH=$2; shift 2 ;;
	*) echo "usage: bench/byok.sh [--rounds N] [--seconds S]" >&2; exit 2 ;;
	esac
done
MODULE=/usr/lib/softhsm/libsofthsm2.so
[[ -f $MODULE ]] || { echo "bench/byok.sh: needs softhsm2 ($MODULE): ./setup test installs it" >&2; exit 2; }
[[ -f build-release/CMakeCache.txt ]] || cmake --preset release >/dev/null
cmake --build --preset release -j2 --target licensor >/dev/null
LICENSOR=$PWD/build-release/licensor
WORK=$(mktemp -d "${TMPDIR:-/tmp}/licensor-bench-byok.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/tokens" bench/out
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$WORK" >"$WORK/softhsm2.conf"
export SOFTHSM2_CONF=$WORK/softhsm2.conf
softhsm2-util --init-token --free --label licensor-bench --so-pin 1234 --pin 5678 >/dev/null
printf '5678\n' >"$WORK/pin"
chmod 600 "$WORK/pin"
URI="pkcs11:token=licensor-bench;object=bench-v1?pin-source=$WORK/pin"
"$LICENSOR" pkcs11 keygen "$URI" --rsa 2048 --pkcs11-module "$MODULE" >/dev/null
OUT=bench/out/byok.jsonl
: >"$OUT"
for round in $(seq "$ROUNDS"); do
	for mode in cold hot; do
		hot=(); [[ $mode == hot ]] && hot=(--hot)
		echo "round $round/$ROUNDS $mode: managed, then byok…" >&2
		"$LICENSOR" bench issue "${hot[@]}" --workers 2 --seconds "$SECONDS_EACH" | sed "s/^{/{\"round\":$round,/" >>"$OUT"
		"$LICENSOR" bench issue "${hot[@]}" --workers 2 --seconds "$SECONDS_EACH" \
			--byok "$URI" --pkcs11-module "$MODULE" | sed "s/^{/{\"round\":$round,/" >>"$OUT"
	done
done
python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
def rate(origin, mode, round_=None):
    return [r["licenses_per_s"] for r in rows if r["origin"] == origin and r["mode"] == mode
            and (round_ is None or r["round"] == round_)]
rounds = sorted({r["round"] for r in rows})
median = statistics.median
print("%-8s %-5s %12s %12s %10s" % ("origin", "mode", "licenses/s", "ceiling/s", "efficiency"))
for origin in ("managed", "byok"):
    for mode in ("cold", "hot"):
        sel = [r for r in rows if r["origin"] == origin and r["mode"] == mode]
        print("%-8s %-5s %12.0f %12.0f %10.2f" % (origin, mode, median(r["licenses_per_s"] for r in sel),
              median(r["ceiling_private_ops_per_s"] for r in sel), median(r["efficiency"] for r in sel)))
def ratio(f):
    values = [f(k) for k in rounds]
    return "%.2f [%.2f-%.2f]" % (median(values), min(values), max(values))
print("byok/managed cold  ", ratio(lambda k: rate("byok", "cold", k)[0] / rate("managed", "cold", k)[0]))
print("byok/managed hot   ", ratio(lambda k: rate("byok", "hot", k)[0] / rate("managed", "hot", k)[0]))
print("hot/cold managed   ", ratio(lambda k: rate("managed", "hot", k)[0] / rate("managed", "cold", k)[0]))
print("hot/cold byok      ", ratio(lambda k: rate("byok", "hot", k)[0] / rate("byok", "cold", k)[0]))
errors = sum(r["errors"] for r in rows)
print("errors:", errors)
sys.exit(1 if errors else 0)
PY

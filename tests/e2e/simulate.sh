# simulate.sh: `licensor simulate` end to end (DESIGN.md §8, docs/simulate.md):
# the CSV has one row per step and the same seed gives the same bytes; the
# JSON summary has its fields and the legacy clients set the 99 % day; an
# emergency rekey and a revoke show in the output at their day and not before;
# bad parameters are refused with USAGE; the plot is a PNG when gnuplot is
# installed, and a missing gnuplot is an IO error. No store is involved.
#
# Needs LICENSOR_BIN; uses bash, coreutils and python3 (gnuplot if present).

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_require_binary

cd "$E2E_TMP"
COMMON=(--clients 3000 --days 30 --rekey-day 5 --rollout 7d --legacy-share 0.05 --legacy-clear-days 10)

# ---- one run, its CSV and its summary ----
check "simulate runs" lic simulate "${COMMON[@]}" --seed 7 --csv a.csv --json
cp "$E2E_OUT" a.json
check_eq "nothing on stderr when it is not a terminal" "" "$(cat "$E2E_ERR")"
check_eq "one CSV row per 6h step, plus the header" 121 "$(wc -l <a.csv)"
check_match "CSV header" '^time,day,rollout_threshold,published_v1,' "$(head -1 a.csv)"
check_eq "summary: clients" 3000 "$(json a.json 'd["clients"]')"
check_eq "summary: 99% of new content once the legacy clients are cleared" 10.0 \
	"$(json a.json 'd["days_to_99pct_new_content"]')"
check_eq "summary: licenses by version" '["1", "2"]' "$(json a.json 'sorted(d["licenses_by_version"])')"
check_eq "summary: no failures" 0 "$(json a.json 'd["failures"]')"
check_eq "summary: licenses = 2 requests per client per day after the first step" \
	$((3000 * 2 * 30 - 1500)) "$(json a.json 'sum(d["licenses_by_version"].values())')"

# ---- determinism ----
check "same seed again" lic simulate "${COMMON[@]}" --seed 7 --csv b.csv
check "same seed, same CSV bytes" cmp a.csv b.csv
check "another seed" lic simulate "${COMMON[@]}" --seed 8 --csv c.csv
if cmp -s a.csv c.csv; then
	fail "another seed, another CSV" "a.csv and c.csv are identical"
else
	pass "another seed, another CSV"
fi

# ---- emergency rekey and revoke of the old version ----
check "emergency rekey and revoke" lic simulate "${COMMON[@]}" --emergency-rekey-day 12 \
	--revoke-old-day 20 --csv e.csv --json
cp "$E2E_OUT" e.json
check_eq "three versions served" '["1", "2", "3"]' "$(json e.json 'sorted(d["licenses_by_version"])')"
check_match "uses of the compromised version are counted" '^[1-9][0-9]*$' \
	"$(json e.json 'd["licenses_compromised"]')"
check_match "KEY_REVOKED failures" '^[1-9][0-9]*$' "$(json e.json 'd["failures_by_code"]["KEY_REVOKED"]')"
check_eq "KEY_REVOKED only from the revoke day on, on every step after it" "0 40" "$(
	python3 - e.csv <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
before = sum(int(r["failures_key_revoked"]) for r in rows if float(r["day"]) < 20)
after = sum(1 for r in rows if float(r["day"]) >= 20 and int(r["failures_key_revoked"]) > 0)
print(before, after)
EOF
)"
check_eq "no new content on v2 after the emergency rekey but from legacy clients" "0" "$(
	python3 - e.csv <<'EOF'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(sum(int(r["published_v2"]) for r in rows if float(r["day"]) >= 12))
EOF
)"

# ---- refusals ----
expect_fail USAGE "no --csv" lic simulate --clients 10
expect_fail USAGE "zero clients" lic simulate --clients 0 --csv x.csv
expect_fail USAGE "too many clients" lic simulate --clients 1000001 --csv x.csv
expect_fail USAGE "too many days" lic simulate --days 3651 --csv x.csv
expect_fail USAGE "too many steps" lic simulate --clients 10 --days 3650 --step 60s --csv x.csv
expect_fail USAGE "too much work" lic simulate --clients 1000000 --days 3650 --step 1d --csv x.csv
expect_fail USAGE "legacy share over 1" lic simulate --legacy-share 1.5 --csv x.csv
expect_fail USAGE "rekey after the end" lic simulate --days 10 --rekey-day 11 --csv x.csv
expect_fail USAGE "revoke before the rekey" lic simulate --rekey-day 7 --revoke-old-day 3 --csv x.csv
expect_fail USAGE "bad duration" lic simulate --step 6 --csv x.csv
expect_fail USAGE "bad number" lic simulate --clients 12x --csv x.csv
expect_fail USAGE "unknown option" lic simulate --frobnicate --csv x.csv
check "refusals wrote no CSV" test ! -e x.csv
expect_fail IO "CSV in a missing directory" lic simulate --clients 10 --days 2 --csv missing/x.csv

# ---- the plot ----
expect_fail IO "no gnuplot on PATH" env PATH=/nonexistent "$LICENSOR_BIN" simulate --clients 10 --days 2 \
	--csv p.csv --plot p.png
check_match "the IO error names gnuplot" 'gnuplot' "$(cat "$E2E_ERR")"
if command -v gnuplot >/dev/null; then
	check "plot" lic simulate "${COMMON[@]}" --csv p.csv --plot p.png
	check_eq "the plot is a PNG" "89504e470d0a1a0a" "$(head -c 8 p.png | od -An -tx1 | tr -d ' \n')"
else
	echo "skip the plot itself: gnuplot is not installed (apt-get install gnuplot-nox)"
fi

finish

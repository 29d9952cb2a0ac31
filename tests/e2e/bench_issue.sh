# bench_issue.sh: smoke test of `licensor bench issue` (DESIGN.md §7b, §8). A
# cold and a hot run of one second on one worker each print one JSON object
# with the contract's fields, issue licenses without a single error, count 2
# and 1 private-key operations per license (and the engine's counters agree),
# and give an efficiency between 0 and 1.5 that follows its formula; the
# temporary store is gone afterwards. A test of correctness, not of speed:
# nothing here is compared with a time or a rate.
#
# Needs LICENSOR_BIN; uses bash, python3.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_require_binary

cd "$E2E_TMP"
# The bench makes its temporary store under $TMPDIR: here, to see it removed.
export TMPDIR="$E2E_TMP"

fields='("licenses_per_s", "private_ops_per_license", "ceiling_private_ops_per_s", "efficiency",
	"workers", "algorithm", "mode", "seconds", "licenses", "errors", "batches", "mean_batch_size",
	"pl_cache_hits", "pl_cache_misses")'

for mode in cold hot; do
	flags=(--seconds 1 --workers 1)
	ops=2
	if [[ $mode == hot ]]; then
		flags+=(--hot)
		ops=1
	fi
	check "$mode: bench issue ${flags[*]} exits 0" lic bench issue "${flags[@]}"
	cp "$E2E_OUT" "$mode.json"
	check_eq "$mode: stdout is one line" 1 "$(wc -l <"$mode.json")"
	check_eq "$mode: stderr is empty (not a terminal: no progress)" "" "$(cat "$E2E_ERR")"
	check_eq "$mode: every field of the contract is there" "[]" \
		"$(json "$mode.json" "[k for k in $fields if k not in d]")"
	check_eq "$mode: mode" "$mode" "$(json "$mode.json" 'd["mode"]')"
	check_eq "$mode: algorithm" "rsa-2048" "$(json "$mode.json" 'd["algorithm"]')"
	check_eq "$mode: workers" 1 "$(json "$mode.json" 'd["workers"]')"
	check_eq "$mode: licenses > 0" true "$(json "$mode.json" 'd["licenses"] > 0')"
	check_eq "$mode: errors" 0 "$(json "$mode.json" 'd["errors"]')"
	check_eq "$mode: private_ops_per_license" "$ops" "$(json "$mode.json" 'd["private_ops_per_license"]')"
	check_eq "$mode: the engine counted private_ops_per_license ($ops) private-key operations a license" true \
		"$(json "$mode.json" 'd["private_key_operations"] == d["licenses"] * d["private_ops_per_license"]')"
	check_eq "$mode: 0 < efficiency < 1.5" true "$(json "$mode.json" '0 < d["efficiency"] < 1.5')"
	check_eq "$mode: efficiency = licenses_per_s × private_ops_per_license ÷ ceiling" true \
		"$(json "$mode.json" 'abs(d["efficiency"] - d["licenses_per_s"] * d["private_ops_per_license"] / d["ceiling_private_ops_per_s"]) < 0.001 + 0.001 * d["efficiency"]')"
	check_eq "$mode: licenses_per_s = licenses ÷ elapsed_s" true \
		"$(json "$mode.json" 'abs(d["licenses_per_s"] - d["licenses"] / d["elapsed_s"]) <= 0.01 * d["licenses_per_s"]')"
	check_eq "$mode: the temporary store is removed" "" "$(find "$E2E_TMP" -maxdepth 1 -name 'licensor-bench*')"
done

check_eq "cold: no PL cache hit" 0 "$(json cold.json 'd["pl_cache_hits"]')"
check_eq "hot: every license a PL cache hit" true "$(json hot.json 'd["pl_cache_hits"] == d["licenses"] and d["pl_cache_misses"] == 0')"

expect_fail USAGE "bench without a subcommand" lic bench
expect_fail USAGE "bench issue --workers 0" lic bench issue --workers 0
expect_fail USAGE "bench issue --seconds x" lic bench issue --seconds x
expect_fail UNSUPPORTED_VERSION "bench issue --algorithm rsa-1024" lic bench issue --algorithm rsa-1024

finish

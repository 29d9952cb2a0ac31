# lib.sh: helpers shared by the end-to-end tests of the `licensor` command.
#
# Sourced by every tests/e2e/*.sh script (`. "$(dirname "$0")/lib.sh"`). It gives
#   - strict mode (set -euo pipefail) and a temporary directory $E2E_TMP that is
#     removed when the script exits, however it exits;
#   - counters and assertions, each of which counts one check and can fail:
#       check NAME COMMAND...              the command exits 0
#       expect_fail CODE NAME COMMAND...   the command exits non-zero and its stderr is
#                                          exactly one line `licensor: CODE: sentence`
#       refuse CODE NAME COMMAND...        expect_fail, then the store is byte-for-byte
#                                          unchanged (snapshot before, compare after)
#       check_eq NAME EXPECTED ACTUAL      two strings are equal
#       check_match NAME REGEX TEXT        TEXT matches the extended regular expression
#       check_mode NAME MODE PATH          PATH has the octal mode MODE (e.g. 600)
#       snapshot_store [DIR] / assert_store_unchanged NAME [DIR]
#                                          sha256 and mode of every file and directory
#                                          under DIR (default $LICENSOR_STORE), plus the
#                                          KEK file DIR.kek beside it when there is one
#   - the stdout and stderr of the last command run by check/expect_fail/run in
#     the files $E2E_OUT and $E2E_ERR, and of every command in $E2E_ALL_OUTPUT;
#   - json FILE EXPRESSION: a Python expression over the parsed JSON `d`, printed
#     (strings raw, everything else as JSON: true, 0.5, null);
#   - finish: prints `N passed, M failed` and exits 1 when M > 0. A script that
#     dies before calling finish (an unexpected error under set -e) counts one
#     more failure and still prints the summary line.
#
# Run directly (`bash lib.sh`), the file tests its own helpers: each one must
# pass on good input and fail on bad input.

set -euo pipefail

E2E_PASSED=0
E2E_FAILED=0
E2E_FINISHED=0
E2E_TMP=$(mktemp -d "${TMPDIR:-/tmp}/licensor-e2e.XXXXXX")
E2E_OUT="$E2E_TMP/.last.out"
E2E_ERR="$E2E_TMP/.last.err"
E2E_ALL_OUTPUT="$E2E_TMP/.all-output"
E2E_SNAPSHOT="$E2E_TMP/.snapshot"
: >"$E2E_OUT"
: >"$E2E_ERR"
: >"$E2E_ALL_OUTPUT"

e2e_on_exit() {
	local status=$?
	if [[ $E2E_FINISHED -eq 0 ]]; then
		echo "FAIL script stopped early (exit status $status, line ${E2E_LAST_LINE:-?}): see the output above"
		E2E_FAILED=$((E2E_FAILED + 1))
		echo "$E2E_PASSED passed, $E2E_FAILED failed"
		status=1
	fi
	rm -rf "$E2E_TMP"
	exit "$status"
}
trap e2e_on_exit EXIT
trap 'E2E_LAST_LINE=$LINENO' ERR

# The licensor binary under test.
e2e_require_binary() {
	if [[ -z ${LICENSOR_BIN:-} || ! -x $LICENSOR_BIN ]]; then
		echo "FAIL LICENSOR_BIN must name the licensor binary (got '${LICENSOR_BIN:-}')"
		E2E_FAILED=$((E2E_FAILED + 1))
		finish
	fi
}

lic() {
	"$LICENSOR_BIN" "$@"
}

pass() {
	E2E_PASSED=$((E2E_PASSED + 1))
	echo "ok   $1"
}

fail() {
	E2E_FAILED=$((E2E_FAILED + 1))
	echo "FAIL $1"
	shift
	local line
	for line in "$@"; do
		echo "     $line"
	done
}

# Shows what the last command printed, indented, for a failure report.
e2e_last_output() {
	echo "stdout: $(head -c 600 "$E2E_OUT" | tr '\n' '|')"
	echo "stderr: $(head -c 600 "$E2E_ERR" | tr '\n' '|')"
}

# run COMMAND...: runs it, keeping its output in $E2E_OUT/$E2E_ERR; returns its status.
# Never aborts the script by itself. Stdin is /dev/null: nothing may wait for a terminal.
run() {
	local status=0
	"$@" >"$E2E_OUT" 2>"$E2E_ERR" </dev/null || status=$?
	{
		printf '$ %s\n' "$*"
		cat "$E2E_OUT" "$E2E_ERR"
	} >>"$E2E_ALL_OUTPUT"
	return "$status"
}

check() {
	local name=$1
	shift
	local status=0
	run "$@" || status=$?
	if [[ $status -eq 0 ]]; then
		pass "$name"
	else
		local out err
		out=$(e2e_last_output)
		fail "$name" "command: $*" "exit status $status" "$out"
	fi
}

# The stderr contract of DESIGN.md §7b for a failure with CODE.
e2e_stderr_is_one_line() {
	local code=$1 file=$2
	local lines
	lines=$(wc -l <"$file")
	[[ $lines -eq 1 ]] || return 1
	[[ $(tail -c 1 "$file" | od -An -c | tr -d ' ') == '\n' ]] || return 1
	local line
	line=$(cat "$file")
	[[ $line == "licensor: $code: "?* ]]
}

expect_fail() {
	local code=$1 name=$2
	shift 2
	local status=0
	run "$@" || status=$?
	if [[ $status -eq 0 ]]; then
		local out
		out=$(e2e_last_output)
		fail "$name" "command: $*" "expected failure with $code, but it exited 0" "$out"
	elif ! e2e_stderr_is_one_line "$code" "$E2E_ERR"; then
		local out
		out=$(e2e_last_output)
		fail "$name" "command: $*" "exit status $status; expected stderr: one line 'licensor: $code: ...'" "$out"
	else
		pass "$name"
	fi
}

# The state of a store: one line per file or directory under it, with its mode
# and, for files, its SHA-256; and the same for the KEK file beside it.
e2e_store_state() {
	local directory=${1%/}
	if [[ ! -e $directory ]]; then
		echo "(no store at $directory)"
		return 0
	fi
	(
		cd "$directory"
		find . -print0 | LC_ALL=C sort -z | while IFS= read -r -d '' path; do
			if [[ -L $path ]]; then
				printf 'link %s %s -> %s\n' "$(stat -c %a "$path")" "$path" "$(readlink "$path")"
			elif [[ -f $path && ! -r $path ]]; then
				printf 'file %s %s (unreadable)\n' "$(stat -c %a "$path")" "$path"
			elif [[ -f $path ]]; then
				printf 'file %s %s %s\n' "$(stat -c %a "$path")" "$path" "$(sha256sum <"$path" | cut -c1-64)"
			elif [[ -d $path ]]; then
				printf 'dir  %s %s\n' "$(stat -c %a "$path")" "$path"
			else
				printf 'other %s %s\n' "$(stat -c %a "$path")" "$path"
			fi
		done
	)
	if [[ -f $directory.kek ]]; then
		printf 'kek  %s %s\n' "$(stat -c %a "$directory.kek")" "$(sha256sum <"$directory.kek" | cut -c1-64)"
	fi
}

snapshot_store() {
	local directory=${1:-${LICENSOR_STORE:?snapshot_store needs a directory or LICENSOR_STORE}}
	e2e_store_state "$directory" >"$E2E_SNAPSHOT"
	[[ -s $E2E_SNAPSHOT ]]
}

assert_store_unchanged() {
	local name=$1
	local directory=${2:-${LICENSOR_STORE:?assert_store_unchanged needs a directory or LICENSOR_STORE}}
	local now="$E2E_TMP/.snapshot.now"
	e2e_store_state "$directory" >"$now"
	if [[ ! -s $E2E_SNAPSHOT ]]; then
		fail "$name: store unchanged" "no snapshot was taken"
	elif cmp -s "$E2E_SNAPSHOT" "$now"; then
		pass "$name: store unchanged"
	else
		local difference
		difference=$(diff "$E2E_SNAPSHOT" "$now" | head -20 | tr '\n' '|' || true)
		fail "$name: store unchanged" "differences (< before, > after): $difference"
	fi
}

# refuse CODE NAME COMMAND...: a refusal that must leave the store as it was.
refuse() {
	local code=$1 name=$2
	shift 2
	snapshot_store
	expect_fail "$code" "$name" "$@"
	assert_store_unchanged "$name"
}

check_eq() {
	local name=$1 expected=$2 actual=$3
	if [[ "$expected" == "$actual" ]]; then
		pass "$name"
	else
		fail "$name" "expected: '$expected'" "actual:   '$actual'"
	fi
}

check_match() {
	local name=$1 pattern=$2 text=$3
	if [[ $text =~ $pattern ]]; then
		pass "$name"
	else
		fail "$name" "expected to match: $pattern" "actual: '$(printf '%s' "$text" | head -c 600)'"
	fi
}

check_mode() {
	local name=$1 mode=$2 path=$3
	local actual
	actual=$(stat -c %a "$path" 2>/dev/null || echo "missing")
	check_eq "$name" "$mode" "$actual"
}

# json FILE EXPRESSION: evaluates EXPRESSION over d = the JSON in FILE ("-" is stdin).
json() {
	python3 -c '
import json, sys
source = sys.stdin if sys.argv[1] == "-" else open(sys.argv[1])
d = json.load(source)
value = eval(sys.argv[2], {"d": d, "len": len, "sorted": sorted, "set": set, "all": all, "any": any})
print(value if isinstance(value, str) else json.dumps(value))
' "$@"
}

finish() {
	E2E_FINISHED=1
	echo "$E2E_PASSED passed, $E2E_FAILED failed"
	if [[ $E2E_FAILED -gt 0 ]]; then
		exit 1
	fi
	exit 0
}

# ---- Self-test: `bash lib.sh` checks that every helper can pass and can fail. ----
e2e_self_test() {
	# Runs a helper in a subshell and reports "passed failed" of that one call.
	outcome() {
		(
			E2E_PASSED=0
			E2E_FAILED=0
			"$@" >/dev/null 2>&1 || true
			echo "$E2E_PASSED $E2E_FAILED"
		)
	}
	expect_outcome() {
		local name=$1 expected=$2
		shift 2
		check_eq "self-test: $name" "$expected" "$(outcome "$@")"
	}
	local fake="$E2E_TMP/fake-licensor"
	printf '#!/bin/sh\necho "licensor: $1: a sentence" >&2\nexit 1\n' >"$fake"
	printf '#!/bin/sh\necho "licensor: $1: first" >&2\necho "licensor: $1: second" >&2\nexit 1\n' >"$fake.two"
	printf '#!/bin/sh\nprintf "licensor: $1: no newline" >&2\nexit 1\n' >"$fake.nonl"
	chmod 700 "$fake" "$fake.two" "$fake.nonl"

	expect_outcome "check passes on exit 0" "1 0" check t true
	expect_outcome "check fails on exit 1" "0 1" check t false
	expect_outcome "expect_fail passes on the right code" "1 0" expect_fail IO t "$fake" IO
	expect_outcome "expect_fail fails on exit 0" "0 1" expect_fail IO t true
	expect_outcome "expect_fail fails on another code" "0 1" expect_fail IO t "$fake" STATE
	expect_outcome "expect_fail fails on a code prefix" "0 1" expect_fail IO t "$fake" IOX
	expect_outcome "expect_fail fails on two lines" "0 1" expect_fail IO t "$fake.two" IO
	expect_outcome "expect_fail fails without a newline" "0 1" expect_fail IO t "$fake.nonl" IO
	expect_outcome "expect_fail fails on an empty sentence" "0 1" expect_fail IO t sh -c 'echo "licensor: IO: " >&2; exit 1'
	expect_outcome "check_eq passes" "1 0" check_eq t a a
	expect_outcome "check_eq fails" "0 1" check_eq t a b
	expect_outcome "check_match passes" "1 0" check_match t '^a+$' aaa
	expect_outcome "check_match fails" "0 1" check_match t '^a+$' aab
	local store="$E2E_TMP/store"
	mkdir -m 700 "$store" "$store/tenants"
	echo one >"$store/world.xml"
	echo key >"$store.kek"
	chmod 600 "$store/world.xml" "$store.kek"
	expect_outcome "check_mode passes" "1 0" check_mode t 600 "$store/world.xml"
	expect_outcome "check_mode fails" "0 1" check_mode t 644 "$store/world.xml"
	snapshot_store "$store"
	expect_outcome "assert_store_unchanged passes" "1 0" assert_store_unchanged t "$store"
	echo two >"$store/world.xml"
	expect_outcome "assert_store_unchanged sees an edited file" "0 1" assert_store_unchanged t "$store"
	snapshot_store "$store"
	chmod 640 "$store/world.xml"
	expect_outcome "assert_store_unchanged sees a mode change" "0 1" assert_store_unchanged t "$store"
	snapshot_store "$store"
	: >"$store/lock"
	expect_outcome "assert_store_unchanged sees a new empty file" "0 1" assert_store_unchanged t "$store"
	snapshot_store "$store"
	rm "$store/lock"
	expect_outcome "assert_store_unchanged sees a removed file" "0 1" assert_store_unchanged t "$store"
	snapshot_store "$store"
	echo other >"$store.kek"
	expect_outcome "assert_store_unchanged sees the KEK file" "0 1" assert_store_unchanged t "$store"
	snapshot_store "$store"
	chmod 755 "$store/tenants"
	expect_outcome "assert_store_unchanged sees a directory mode" "0 1" assert_store_unchanged t "$store"
	LICENSOR_STORE=$store
	expect_outcome "refuse passes" "2 0" refuse IO t "$fake" IO
	expect_outcome "refuse fails when the store changes" "1 1" refuse IO t sh -c "echo x >>'$store/world.xml'; '$fake' IO"
	unset LICENSOR_STORE
	check_eq "self-test: json prints strings raw" "abc" "$(echo '{"a":"abc"}' | json - 'd["a"]')"
	check_eq "self-test: json prints booleans as JSON" "false" "$(echo '{"a":false}' | json - 'd["a"]')"
	check_eq "self-test: json prints numbers as JSON" "0.5" "$(echo '{"a":0.5}' | json - 'd["a"]')"
	check_eq "self-test: summary line when failing" "1 passed, 1 failed|1" \
		"$(bash -c ". '${BASH_SOURCE[0]}'; check a true >/dev/null; check b false >/dev/null; finish" | tail -1)|$(bash -c ". '${BASH_SOURCE[0]}'; check b false; finish" >/dev/null 2>&1 || echo $?)"
	check_eq "self-test: an early stop counts as a failure" "0 passed, 1 failed" \
		"$(bash -c ". '${BASH_SOURCE[0]}'; false; finish" 2>/dev/null | tail -1)"
	finish
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	e2e_self_test
fi

#!/usr/bin/env bash
# run_fuzzers.sh: builds licensor's libFuzzer targets with clang (ASan, UBSan,
# libFuzzer) straight from the sources, and runs each one for a bounded time
# from its seed corpus. Proves, within that budget, that no parser of
# untrusted input (PL, RAC, UL, AcquireLicense, HTTP requests) crashes, leaks, reads out
# of bounds, hits undefined behaviour or breaks its target's invariants.
# Exits 1 when any target found a crash (the input is kept as an artifact and
# printed in base64), 2 when the build fails.
#
# Usage: tests/fuzz/run_fuzzers.sh [target…]    (default: every fuzz_*.c)
# Environment:
#   FUZZ_SECONDS    seconds per target (default 20)
#   FUZZ_BUILD_DIR  objects, binaries, grown corpora, artifacts
#                   (default ${TMPDIR:-/tmp}/licensor-fuzz)
#   FUZZ_JOBS       parallel compiles (default: nproc)
#   CC              a clang with libFuzzer (default clang)
#   FUZZ_EXTRA_ARGS more libFuzzer flags, e.g. "-seed=1 -runs=100000"
# The seeds in tests/fuzz/corpus/<target>/ are only read: what the fuzzer
# finds goes to $FUZZ_BUILD_DIR/corpus/<target>/.
set -euo pipefail

FUZZ_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SOURCE_DIR=$(cd "$FUZZ_DIR/../.." && pwd)
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
BUILD_DIR=${FUZZ_BUILD_DIR:-${TMPDIR:-/tmp}/licensor-fuzz}
JOBS=${FUZZ_JOBS:-$(nproc)}
CC=${CC:-clang}
case $CC in *clang*) ;; *) CC=clang ;; esac

if ! command -v "$CC" >/dev/null; then
	echo "run_fuzzers: $CC not found: install the Debian package 'clang'" >&2
	exit 2
fi
MODULES="openssl libxml-2.0 liburcu-bp liburing p11-kit-1"
if ! pkg-config --exists $MODULES; then
	echo "run_fuzzers: pkg-config cannot find $MODULES (./setup test installs them)" >&2
	exit 2
fi

SANITIZE=(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
read -r -a PKG_CFLAGS <<<"$(pkg-config --cflags $MODULES)"
read -r -a PKG_LIBS <<<"$(pkg-config --libs $MODULES)"
CFLAGS=(-std=gnu17 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Wno-unused-parameter
	-I "$SOURCE_DIR/include" -I "$SOURCE_DIR" "${PKG_CFLAGS[@]}")

mkdir -p "$BUILD_DIR/objects" "$BUILD_DIR/bin" "$BUILD_DIR/artifacts"

# ---- build: the library sources once (instrumented for coverage), then each target ----
compile() { # SOURCE OBJECT [EXTRA_FLAG…]
	local source=$1 object=$2
	shift 2
	"$CC" "${CFLAGS[@]}" "${SANITIZE[@]}" -fsanitize=fuzzer-no-link "$@" -c "$source" -o "$object"
}

# io/: only the request framer has no io_uring loop around it to fuzz.
LIBRARY_SOURCES=("$SOURCE_DIR"/keyring/*.c "$SOURCE_DIR"/core/*.c "$SOURCE_DIR"/io/http_framing.c)
stamp="$BUILD_DIR/objects/.stamp"
newer=""
if [[ -e $stamp ]]; then
	newer=$(find "$SOURCE_DIR/keyring" "$SOURCE_DIR/core" "$SOURCE_DIR/io" "$SOURCE_DIR/include" -name '*.[ch]' \
		-newer "$stamp" | head -1 || true)
fi
objects=$(find "$BUILD_DIR/objects" -name '*.o' | wc -l)
if [[ ! -e $stamp || -n $newer || $objects -ne ${#LIBRARY_SOURCES[@]} ]]; then
	echo "run_fuzzers: compiling ${#LIBRARY_SOURCES[@]} library sources with $CC ($JOBS at a time)"
	rm -f "$BUILD_DIR"/objects/*.o "$stamp"
	touch "$stamp.next" # sources changed while compiling are compiled again next time
	failed=0
	for source in "${LIBRARY_SOURCES[@]}"; do
		name=$(basename "$(dirname "$source")")-$(basename "${source%.c}").o
		extra=()
		# liburcu-bp's inline read lock is less aligned than its type says (as in CMakeLists.txt).
		[[ $source == */keyring/snapshot.c ]] && extra=(-fno-sanitize=alignment)
		compile "$source" "$BUILD_DIR/objects/$name" "${extra[@]}" &
		while [[ $(jobs -rp | wc -l) -ge $JOBS ]]; do
			wait -n || failed=1
		done
	done
	for pid in $(jobs -p); do
		wait "$pid" || failed=1
	done
	if [[ $failed -ne 0 ]]; then
		echo "run_fuzzers: the library does not compile (if someone is editing it, retry in a minute)" >&2
		exit 2
	fi
	mv "$stamp.next" "$stamp"
fi

if [[ $# -gt 0 ]]; then
	TARGETS=("$@")
else
	TARGETS=()
	for source in "$FUZZ_DIR"/fuzz_*.c; do
		TARGETS+=("$(basename "${source%.c}")")
	done
fi

for target in "${TARGETS[@]}"; do
	echo "run_fuzzers: linking $target"
	if ! "$CC" "${CFLAGS[@]}" "${SANITIZE[@]}" -fsanitize=fuzzer "$FUZZ_DIR/$target.c" \
		"$BUILD_DIR"/objects/*.o "${PKG_LIBS[@]}" -lhttp_parser -lpthread -ldl -o "$BUILD_DIR/bin/$target"; then
		echo "run_fuzzers: $target does not build" >&2
		exit 2
	fi
done

# ---- run ----
read -r -a EXTRA <<<"${FUZZ_EXTRA_ARGS:-}"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
crashed=()
summary=()
for target in "${TARGETS[@]}"; do
	work="$BUILD_DIR/corpus/$target"
	seeds="$FUZZ_DIR/corpus/$target"
	log="$BUILD_DIR/$target.log"
	mkdir -p "$work" "$seeds"
	dictionary=()
	[[ -f $FUZZ_DIR/licensor.dict ]] && dictionary=(-dict="$FUZZ_DIR/licensor.dict")
	echo "run_fuzzers: $target for ${FUZZ_SECONDS}s (log: $log)"
	status=0
	"$BUILD_DIR/bin/$target" -max_total_time="$FUZZ_SECONDS" -max_len=65536 -rss_limit_mb=2048 \
		-timeout=5 -print_final_stats=1 -artifact_prefix="$BUILD_DIR/artifacts/$target-" \
		"${dictionary[@]}" "${EXTRA[@]}" "$work" "$seeds" >"$log" 2>&1 || status=$?
	# (each `|| true`: a log without the line is not a reason to stop under pipefail)
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1 || true)
	if [[ -z $runs ]]; then
		runs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#' || true)
	fi
	coverage=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}' || true)
	if [[ $status -ne 0 ]]; then
		crashed+=("$target")
		summary+=("$(printf '%-34s CRASH after %s runs' "$target" "${runs:-?}")")
		echo "run_fuzzers: $target FAILED (status $status); the end of its log:"
		grep -v '^#[0-9]' "$log" | tail -40 || true
		artifact=$(grep -o "Test unit written to .*" "$log" | tail -1 | sed 's/Test unit written to //' || true)
		if [[ -n $artifact && -f $artifact ]]; then
			echo "run_fuzzers: reproduce with $BUILD_DIR/bin/$target $artifact"
			echo "run_fuzzers: input ($(stat -c %s "$artifact") bytes) in base64:"
			base64 -w 76 "$artifact"
		fi
	else
		summary+=("$(printf '%-34s %10s runs in %ss, coverage %s' "$target" "${runs:-?}" "$FUZZ_SECONDS" \
			"${coverage:-?}")")
	fi
done

echo "run_fuzzers: summary"
printf '  %s\n' "${summary[@]}"
if [[ ${#crashed[@]} -gt 0 ]]; then
	echo "run_fuzzers: crashes in: ${crashed[*]}" >&2
	exit 1
fi

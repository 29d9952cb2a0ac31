# replay.sh: `licensor replay FILE` (DESIGN.md §6, docs/formats.md "Replay
# files") end to end. Request bodies built with the shell recipe of the
# README (one, three and two items, one body that is not XML, one item that
# has no rights) are written into a replay file with the recipe's printf/cat
# loop; the replay's JSON must count exactly the licenses, item errors and
# HTTP statuses those bodies give; --repeat 3 triples every count and, one
# body at a time, serves every repeat from the PL cache; a queue smaller than
# what is in flight gets OVERLOADED refusals that are held and retried, and
# nothing is lost; the store is not changed. Bad files (truncated, a bad or
# too big length, a missing '\n', a leading zero, an empty file) are refused
# with MALFORMED, naming the record and how many requests went before it.
#
# Needs LICENSOR_BIN; uses bash, coreutils, openssl, python3.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_require_binary

cd "$E2E_TMP"
unset LICENSOR_KEK_FILE LICENSOR_PASSPHRASE_FILE
export LICENSOR_ACTOR=e2e-replay
export LICENSOR_STORE="$E2E_TMP/store"
export LICENSOR_TEST_NOW=2026-11-23T17:00:00Z

# ---- a store, two users, three PLs ----
check "init" lic init
check "tenant add contoso" lic tenant add contoso
for user in bob carol; do
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out $user.pem 2>/dev/null
	openssl pkey -in $user.pem -pubout -out $user.pub.pem
	check "certify $user" lic certify contoso --principal $user@contoso.com --pubkey $user.pub.pem
	cp "$E2E_OUT" $user-rac.xml
done
check "publish pl-1 (bob: VIEW PRINT)" lic publish contoso --content-id doc-1 --owner alice@contoso.com \
	--grant 'bob@contoso.com:VIEW,PRINT'
cp "$E2E_OUT" pl-1.xml
check "publish pl-2 (anyone at contoso.com: VIEW)" lic publish contoso --content-id doc-2 \
	--owner alice@contoso.com --grant '*@contoso.com:VIEW'
cp "$E2E_OUT" pl-2.xml
check "publish pl-3 (dave only: bob and carol have no rights)" lic publish contoso --content-id doc-3 \
	--owner alice@contoso.com --grant 'dave@contoso.com:VIEW'
cp "$E2E_OUT" pl-3.xml

# ---- request bodies and a replay file, with the README's recipe ----
item() { # RAC PL
	printf '<Item>'
	sed '1{/^<?xml/d}' "$1"
	sed '1{/^<?xml/d}' "$2"
	printf '</Item>'
}
body() { # RAC PL [RAC PL ...]
	printf '<AcquireLicense xmlns="urn:licensor:v1">'
	while [[ $# -gt 0 ]]; do
		item "$1" "$2"
		shift 2
	done
	printf '</AcquireLicense>'
}
body bob-rac.xml pl-1.xml >body-1.xml                                         # 1 license
body bob-rac.xml pl-1.xml bob-rac.xml pl-2.xml bob-rac.xml pl-3.xml >body-2.xml # 2 licenses, NO_RIGHTS
body carol-rac.xml pl-2.xml carol-rac.xml pl-1.xml >body-3.xml                 # 1 license, NO_RIGHTS
printf 'not xml at all' >body-4.xml                                            # 400 MALFORMED
body bob-rac.xml pl-3.xml >body-5.xml                                         # NO_RIGHTS
for body in body-1.xml body-2.xml body-3.xml body-4.xml body-5.xml; do
	printf '%d\n' "$(wc -c <"$body")"
	cat "$body"
	printf '\n'
done >requests.replay

# ---- one pass: exact counts ----
snapshot_store
check "replay" lic replay requests.replay --workers 2
cp "$E2E_OUT" one.json
check_eq "stdout is one JSON object" "1" "$(wc -l <one.json)"
check_eq "records" "5" "$(json one.json 'd["records"]')"
check_eq "requests" "5" "$(json one.json 'd["requests"]')"
check_eq "licenses_issued" "4" "$(json one.json 'd["licenses_issued"]')"
check_eq "item_errors" "3" "$(json one.json 'd["item_errors"]')"
check_eq "requests_refused" "1" "$(json one.json 'd["requests_refused"]')"
check_eq "responses_by_status" '{"200": 4, "400": 1}' "$(json one.json 'd["responses_by_status"]')"
check_eq "errors_by_code" '{"MALFORMED": 1, "NO_RIGHTS": 3}' "$(json one.json 'd["errors_by_code"]')"
check_eq "rates are positive numbers" "true" \
	"$(json one.json 'd["seconds"] > 0 and d["licenses_per_s"] > 0 and d["requests_per_s"] > 0')"
check_eq "licenses_per_s is licenses over seconds" "true" \
	"$(json one.json 'abs(d["licenses_per_s"] - d["licenses_issued"] / d["seconds"]) <= 0.01 * d["licenses_per_s"] + 0.1')"
check_eq "the engine's counters are there" "true" \
	"$(json one.json 'all(k in d for k in ["pl_cache_hits", "pl_cache_misses", "private_key_operations"])')"
check_eq "nothing on stderr when it is not a terminal" "" "$(cat "$E2E_ERR")"
assert_store_unchanged "replay opens the store read-only"

# ---- --repeat 3, one body at a time: three times the counts, and the PL cache ----
check "replay --repeat 3 --in-flight 1" lic replay requests.replay --workers 2 --repeat 3 --in-flight 1
cp "$E2E_OUT" three.json
check_eq "requests tripled" "15" "$(json three.json 'd["requests"]')"
check_eq "licenses tripled" "12" "$(json three.json 'd["licenses_issued"]')"
check_eq "item errors tripled" "9" "$(json three.json 'd["item_errors"]')"
check_eq "statuses tripled" '{"200": 12, "400": 3}' "$(json three.json 'd["responses_by_status"]')"
# pl-1 and pl-2 are unwrapped once each (the first time they are seen); every
# other license is a cache hit, and costs its signature only.
check_eq "two PL cache misses" "2" "$(json three.json 'd["pl_cache_misses"]')"
check_eq "every other license hits the PL cache" "10" "$(json three.json 'd["pl_cache_hits"]')"
check_eq "private-key operations: 2 unwraps + 12 signatures" "14" \
	"$(json three.json 'd["private_key_operations"]')"
check_eq "never more than one in flight" "1" "$(json three.json 'd["max_in_flight_seen"]')"

check "replay --repeat 3 with everything in flight" lic replay requests.replay --workers 2 --repeat 3
check_eq "the same licenses with many in flight" "12 9 15" \
	"$(json "$E2E_OUT" '" ".join(str(d[k]) for k in ["licenses_issued", "item_errors", "requests"])')"

# ---- the README's recipe, as written there ----
if [[ -n ${LICENSOR_SOURCE_DIR:-} && -f $LICENSOR_SOURCE_DIR/README.md ]]; then
	recipe=$(python3 -c '
import re, sys
text = open(sys.argv[1]).read()
section = text[text.index("### Replay"):]
print(re.search(r"```sh\n(.*?)```", section, re.S).group(1))' "$LICENSOR_SOURCE_DIR/README.md")
	mkdir readme
	cp bob-rac.xml readme/rac.xml
	cp pl-1.xml pl-2.xml pl-3.xml readme/
	check "the README recipe runs" env B="$LICENSOR_BIN" bash -euo pipefail -c "cd readme; $recipe"
	check_eq "and its replay counts the licenses: 3 PLs, 3 passes" "9 6 3" \
		"$(json "$E2E_OUT" '" ".join(str(d[k]) for k in ["requests", "licenses_issued", "item_errors"])')"
else
	fail "the README recipe" "LICENSOR_SOURCE_DIR must name the source tree"
fi

# ---- a full queue: held and retried, nothing lost ----
for i in $(seq 1 30); do
	printf '%d\n' "$(wc -c <body-1.xml)"
	cat body-1.xml
	printf '\n'
done >thirty.replay
check "replay with a queue of 1 and 64 in flight" lic replay thirty.replay --workers 1 --queue 1 --in-flight 64
check_eq "every body answered" "30 30 0" \
	"$(json "$E2E_OUT" '" ".join(str(d[k]) for k in ["requests", "licenses_issued", "item_errors"])')"
check_eq "OVERLOADED refusals were retried" "true" "$(json "$E2E_OUT" 'd["overloaded_retries"] > 0')"

# ---- bad files ----
refused() { # NAME PATTERN FILE: MALFORMED, nothing on stdout, the sentence matches PATTERN
	local name=$1 pattern=$2 file=$3
	expect_fail MALFORMED "$name" lic replay "$file" --workers 1
	check_eq "$name: nothing on stdout" "" "$(cat "$E2E_OUT")"
	check_match "$name: the sentence" "$pattern" "$(cat "$E2E_ERR")"
}
size=$(wc -c <requests.replay)
head -c $((size - 10)) requests.replay >truncated.replay
refused "a truncated file" \
	"^licensor: MALFORMED: replay file record 5: the file ends after [0-9]+ of the [0-9]+ body bytes \(truncated\); 4 requests were submitted before it, none after$" \
	truncated.replay
head -c $((size - 1)) requests.replay >no-newline.replay
refused "no '\\n' after the last body" "replay file record 5: the file ends right after the [0-9]+-byte body, without" \
	no-newline.replay
{
	head -c "$(($(head -1 requests.replay | wc -c) + $(wc -c <body-1.xml) + 1))" requests.replay
	printf '12x\n'
	cat body-2.xml
	printf '\n'
} >bad-length.replay
refused "a length that is not a number" \
	"^licensor: MALFORMED: replay file record 2: the length line at byte [0-9]+ is not a decimal byte count \(it starts '12x'\); 1 request was submitted before it, none after$" \
	bad-length.replay
{
	printf '%d\n' "$(($(wc -c <body-1.xml) - 1))"
	cat body-1.xml
	printf '\n'
} >wrong-length.replay
refused "a length one byte short" "replay file record 1: the [0-9]+-byte body is followed by byte 0x3e, not" wrong-length.replay
printf '2000000\n' >too-big.replay
head -c 2000001 /dev/zero >>too-big.replay
refused "a length over 1 MiB" "replay file record 1: the length 2000000 at byte 0 is over the 1048576-byte limit" \
	too-big.replay
printf '123456789\nxx\n' >too-many-digits.replay
refused "a length of more than 7 digits" "replay file record 1: the length at byte 0 has more than 7 digits" \
	too-many-digits.replay
printf '014\nnot xml at all\n' >leading-zero.replay
refused "a leading zero" "the length '014' at byte 0 has a leading zero" leading-zero.replay
printf '14\r\nnot xml at all\r\n' >crlf.replay
refused "CR LF line ends" "is not a decimal byte count" crlf.replay
: >empty.replay
refused "an empty file" "^licensor: MALFORMED: replay file empty.replay is empty: it must hold at least one record" empty.replay

expect_fail IO "a file that does not exist" lic replay missing.replay
mkdir directory.replay
expect_fail IO "a directory" lic replay directory.replay
expect_fail USAGE "no file" lic replay
expect_fail USAGE "--repeat 0" lic replay requests.replay --repeat 0
expect_fail USAGE "--workers x" lic replay requests.replay --workers x

finish

# store_safety.sh: the promises of DESIGN.md §4 about the store itself, end to
# end: a wrong, loose or short KEK is refused before anything is read or
# written; passphrase stores; missing, unreadable and damaged stores and tenant
# files are refused with the right code and leave every byte as it was; the
# audit log's hash chain catches edited, removed, reordered and cut lines; and
# no key material (sealed keys, the KEK, the passphrase) ever shows in an
# output, an error message or the audit log.
#
# Needs LICENSOR_BIN; uses bash, coreutils, openssl and python3.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_require_binary

cd "$E2E_TMP"
unset LICENSOR_KEK_FILE LICENSOR_PASSPHRASE_FILE LICENSOR_TEST_NOW
export LICENSOR_ACTOR=e2e-safety
STORE="$E2E_TMP/store"
export LICENSOR_STORE="$STORE"

# Secrets that must never be printed: every sealed private key (base64, as in
# the tenant files) and every KEK (hex and base64) seen during the run.
SECRETS="$E2E_TMP/secrets"
: >"$SECRETS"
collect_sealed_keys() {
	local file
	for file in "$@"; do
		[[ -f $file ]] || continue
		sed -n 's/.*<SealedPrivateKey>\([^<]*\)<\/SealedPrivateKey>.*/\1/p' "$file" >>"$SECRETS"
	done
}
collect_key_file() {
	od -An -v -tx1 "$1" | tr -d ' \n' >>"$SECRETS"
	echo >>"$SECRETS"
	base64 -w0 "$1" >>"$SECRETS"
	echo >>"$SECRETS"
}
random_key_file() {
	head -c "$2" /dev/urandom >"$1"
	chmod 600 "$1"
}

# ---- a store with two tenants and a few versions -----------------------------------------

check "init" lic init --store "$STORE"
collect_key_file "$STORE.kek"

# A refusal on a store that no change has touched yet must not create anything
# either: the writers' lock file exists from init on.
refuse UNKNOWN_TENANT "refusal on a fresh store: revoke of an unknown tenant" lic revoke nobody --version 1 --yes
refuse UNKNOWN_TENANT "refusal on a fresh store: rekey of an unknown tenant" lic rekey nobody --immediate
refuse UNKNOWN_TENANT "refusal on a fresh store: keys list of an unknown tenant" lic keys list nobody

check "tenant add acme" lic tenant add acme
check "rekey acme --immediate" lic rekey acme --immediate
check "tenant add beta" lic tenant add beta
collect_sealed_keys "$STORE"/tenants/*.xml
check_eq "the tenant files hold three sealed private keys" 3 "$(cat "$STORE"/tenants/*.xml | grep -c '<SealedPrivateKey>')"
check "keys list acme works with the right KEK" lic keys list acme --json
check "audit verify passes on the untouched store" lic audit verify

# ---- wrong KEK ------------------------------------------------------------------------------

WRONG_KEK="$E2E_TMP/other.kek"
random_key_file "$WRONG_KEK" 32
collect_key_file "$WRONG_KEK"
COPY="$E2E_TMP/copy"
cp -a "$STORE" "$COPY"
export LICENSOR_STORE="$COPY"
refuse UNAUTHORIZED "wrong KEK (--kek-file) on a copy of the store: keys list" lic keys list acme --kek-file "$WRONG_KEK"
check_match "the wrong-KEK refusal names the check value" 'check value' "$(cat "$E2E_ERR")"
refuse UNAUTHORIZED "wrong KEK (--kek-file): rekey" lic rekey acme --immediate --kek-file "$WRONG_KEK"
refuse UNAUTHORIZED "wrong KEK (--kek-file): tenant add" lic tenant add gamma --kek-file "$WRONG_KEK"
refuse UNAUTHORIZED "wrong KEK (--kek-file): destroy" lic destroy acme --version 1 --yes --kek-file "$WRONG_KEK"
refuse UNAUTHORIZED "wrong KEK (--kek-file): tenant disable" lic tenant disable acme --kek-file "$WRONG_KEK"
refuse UNAUTHORIZED "wrong KEK (--kek-file): audit verify" lic audit verify --kek-file "$WRONG_KEK"
export LICENSOR_KEK_FILE="$WRONG_KEK"
refuse UNAUTHORIZED "wrong KEK (LICENSOR_KEK_FILE): keys list" lic keys list acme --json
check_match "... names the check value too" 'check value' "$(cat "$E2E_ERR")"
refuse UNAUTHORIZED "wrong KEK (LICENSOR_KEK_FILE): revoke" lic revoke acme --version 1
refuse UNAUTHORIZED "wrong KEK (LICENSOR_KEK_FILE): tenant list" lic tenant list
unset LICENSOR_KEK_FILE
check "the copy still opens with its own KEK" lic keys list acme --json
export LICENSOR_STORE="$STORE"
refuse UNAUTHORIZED "wrong KEK on the original store (--kek-file)" lic rekey beta --immediate --kek-file "$WRONG_KEK"
rm -rf "$COPY"

# ---- KEK file mode and length ----------------------------------------------------------------

LOOSE_KEK="$E2E_TMP/loose.kek"
cp "$STORE.kek" "$LOOSE_KEK"
chmod 644 "$LOOSE_KEK"
refuse IO "a KEK file of mode 0644 is refused" lic keys list acme --kek-file "$LOOSE_KEK"
check_match "... and the sentence says why" 'mode|readable' "$(cat "$E2E_ERR")"
refuse IO "a KEK file of mode 0644 is refused for a change too" lic rekey acme --immediate --kek-file "$LOOSE_KEK"
chmod 640 "$STORE.kek"
refuse IO "the store's own KEK file at mode 0640 is refused" lic keys list acme
chmod 600 "$STORE.kek"
SHORT_KEK="$E2E_TMP/short.kek"
LONG_KEK="$E2E_TMP/long.kek"
head -c 31 "$STORE.kek" >"$SHORT_KEK"
{ cat "$STORE.kek"; printf 'x'; } >"$LONG_KEK"
chmod 600 "$SHORT_KEK" "$LONG_KEK"
refuse IO "a KEK file of 31 bytes is refused" lic keys list acme --kek-file "$SHORT_KEK"
check_match "... and the sentence names the length" '32 bytes' "$(cat "$E2E_ERR")"
refuse IO "a KEK file of 33 bytes is refused" lic rekey acme --immediate --kek-file "$LONG_KEK"
refuse IO "a missing KEK file is refused" lic keys list acme --kek-file "$E2E_TMP/no-such.kek"
refuse IO "a directory as KEK file is refused" lic keys list acme --kek-file "$E2E_TMP"
refuse USAGE "a KEK file and a passphrase file together" lic keys list acme --kek-file "$STORE.kek" --passphrase-file "$SHORT_KEK"
refuse USAGE "a passphrase for a store that uses a KEK file" lic keys list acme --passphrase-file "$SHORT_KEK"
check "the store still opens with its KEK" lic keys list acme --json
# init with a bad KEK file refuses and leaves nothing behind.
expect_fail IO "init with a KEK file of 31 bytes" lic init --store "$E2E_TMP/new1" --kek-file "$SHORT_KEK"
check_eq "... creates no store directory" absent "$([[ -e $E2E_TMP/new1 ]] && echo present || echo absent)"
expect_fail IO "init with a KEK file of mode 0644" lic init --store "$E2E_TMP/new2" --kek-file "$LOOSE_KEK"
check_eq "... creates no store directory" absent "$([[ -e $E2E_TMP/new2 ]] && echo present || echo absent)"
check_mode "... and leaves the KEK file as it was" 644 "$LOOSE_KEK"
expect_fail IO "init with a missing passphrase file" lic init --store "$E2E_TMP/new3" --passphrase-file "$E2E_TMP/no-such-passphrase"
check_eq "... creates no store directory" absent "$([[ -e $E2E_TMP/new3 ]] && echo present || echo absent)"

# ---- a passphrase store ---------------------------------------------------------------------

PSTORE="$E2E_TMP/pstore"
PASSPHRASE_FILE="$E2E_TMP/passphrase"
WRONG_PASSPHRASE_FILE="$E2E_TMP/wrong-passphrase"
printf 'correct horse battery staple e2e\n' >"$PASSPHRASE_FILE"
printf 'incorrect horse battery staple e2e\n' >"$WRONG_PASSPHRASE_FILE"
chmod 600 "$PASSPHRASE_FILE" "$WRONG_PASSPHRASE_FILE"
echo "correct horse battery staple e2e" >>"$SECRETS"
check "init --passphrase-file" lic init --store "$PSTORE" --passphrase-file "$PASSPHRASE_FILE"
check_eq "a passphrase store has no KEK file beside it" absent "$([[ -e $PSTORE.kek ]] && echo present || echo absent)"
check_match "world.xml records a passphrase KEK" '<Kek Source="passphrase"' "$(cat "$PSTORE/world.xml")"
check_eq "world.xml does not contain the passphrase" 0 "$(grep -c 'horse' "$PSTORE/world.xml" || true)"
export LICENSOR_STORE="$PSTORE"
export LICENSOR_PASSPHRASE_FILE="$PASSPHRASE_FILE"
check "passphrase store: tenant add with LICENSOR_PASSPHRASE_FILE" lic tenant add pt
check "passphrase store: rekey" lic rekey pt --immediate
check "passphrase store: keys list" lic keys list pt --json
check_eq "passphrase store: two versions" 2 "$(json "$E2E_OUT" 'len(d)')"
check "passphrase store: audit verify" lic audit verify
collect_sealed_keys "$PSTORE"/tenants/*.xml
refuse UNAUTHORIZED "passphrase store: a wrong passphrase is refused" \
	env LICENSOR_PASSPHRASE_FILE="$WRONG_PASSPHRASE_FILE" "$LICENSOR_BIN" keys list pt
check_match "... naming the check value" 'check value' "$(cat "$E2E_ERR")"
refuse UNAUTHORIZED "passphrase store: a wrong passphrase is refused for a change" \
	lic rekey pt --immediate --passphrase-file "$WRONG_PASSPHRASE_FILE"
unset LICENSOR_PASSPHRASE_FILE
refuse USAGE "passphrase store: no passphrase given" lic keys list pt
refuse USAGE "passphrase store: no passphrase given, for a change" lic tenant disable pt
refuse USAGE "passphrase store: a KEK file instead of the passphrase" lic keys list pt --kek-file "$STORE.kek"
refuse IO "passphrase store: a missing passphrase file" lic keys list pt --passphrase-file "$E2E_TMP/no-such-passphrase"
check "passphrase store: --passphrase-file works too" lic keys list pt --passphrase-file "$PASSPHRASE_FILE"
export LICENSOR_STORE="$STORE"

# ---- missing, unreadable and damaged stores ------------------------------------------------------

expect_fail IO "a store that does not exist" lic keys list acme --store "$E2E_TMP/no-such-store"
check_match "... the sentence names it" 'no-such-store' "$(cat "$E2E_ERR")"
check_eq "... and nothing was created" absent "$([[ -e $E2E_TMP/no-such-store ]] && echo present || echo absent)"
expect_fail IO "a change in a store that does not exist" lic rekey acme --store "$E2E_TMP/no-such-store"
check_eq "... and nothing was created" absent "$([[ -e $E2E_TMP/no-such-store ]] && echo present || echo absent)"
mkdir -m 700 "$E2E_TMP/not-a-store"
snapshot_store "$E2E_TMP/not-a-store"
expect_fail IO "a directory without world.xml" lic tenant add x --store "$E2E_TMP/not-a-store"
check_match "... the sentence says world.xml is missing" 'world.xml' "$(cat "$E2E_ERR")"
assert_store_unchanged "a directory without world.xml" "$E2E_TMP/not-a-store"
: >"$E2E_TMP/a-file"
expect_fail IO "a regular file as the store" lic keys list acme --store "$E2E_TMP/a-file"
mkdir -m 700 "$E2E_TMP/dir-world" "$E2E_TMP/dir-world/world.xml"
expect_fail IO "a store whose world.xml cannot be read (a directory)" lic keys list acme --store "$E2E_TMP/dir-world"
if [[ $(id -u) -ne 0 ]]; then
	UNREADABLE="$E2E_TMP/unreadable"
	cp -a "$STORE" "$UNREADABLE"
	chmod 000 "$UNREADABLE/world.xml"
	snapshot_store "$UNREADABLE"
	expect_fail IO "a store whose world.xml is unreadable (mode 000)" lic keys list acme --store "$UNREADABLE"
	check_match "... the sentence names the file" 'world.xml' "$(cat "$E2E_ERR")"
	assert_store_unchanged "unreadable world.xml" "$UNREADABLE"
	chmod 600 "$UNREADABLE/world.xml"
else
	echo "skip unreadable world.xml (mode 000): running as root, who reads it anyway"
fi

# world.xml cut in the middle: MALFORMED, for readers and writers, and nothing written.
cp -a "$STORE" "$E2E_TMP/pristine"
WORLD_SIZE=$(stat -c %s "$STORE/world.xml")
truncate -s $((WORLD_SIZE / 2)) "$STORE/world.xml"
refuse MALFORMED "truncated world.xml: keys list" lic keys list acme
refuse MALFORMED "truncated world.xml: rekey" lic rekey acme --immediate
refuse MALFORMED "truncated world.xml: tenant add" lic tenant add gamma
refuse MALFORMED "truncated world.xml: revoke" lic revoke acme --version 1
refuse MALFORMED "truncated world.xml: audit verify" lic audit verify
refuse STATE "truncated world.xml: init does not overwrite it" lic init --store "$STORE"
truncate -s 0 "$STORE/world.xml"
refuse MALFORMED "empty world.xml: tenant list" lic tenant list
cp -p "$E2E_TMP/pristine/world.xml" "$STORE/world.xml"
sed -i 's/Format="1"/Format="7"/' "$STORE/world.xml"
refuse UNSUPPORTED_VERSION "world.xml of an unknown format" lic keys list acme
cp -p "$E2E_TMP/pristine/world.xml" "$STORE/world.xml"
check "the restored world.xml opens again" lic keys list acme --json

# A tenant file edited by hand: a KeyId that is not the hash of its public key.
KEY_ID=$(json "$E2E_OUT" 'd[0]["key_id"]')
FORGED_ID=$(printf '%s' "$KEY_ID" | tr '0-9a-f' '1-9a-f0')
sed -i "s/KeyId=\"$KEY_ID\"/KeyId=\"$FORGED_ID\"/" "$STORE/tenants/acme.xml"
check_match "the hand edit took" "KeyId=\"$FORGED_ID\"" "$(cat "$STORE/tenants/acme.xml")"
refuse MALFORMED "edited KeyId: keys list refuses the tenant file" lic keys list acme
check_match "... the sentence says which check failed" 'KeyId' "$(cat "$E2E_ERR")"
refuse MALFORMED "edited KeyId: rekey refuses it" lic rekey acme --immediate
refuse MALFORMED "edited KeyId: revoke refuses it" lic revoke acme --version 1
refuse MALFORMED "edited KeyId: keys pubkey refuses it" lic keys pubkey acme --version 1
check "the other tenant is not affected" lic keys list beta --json
cp -p "$E2E_TMP/pristine/tenants/acme.xml" "$STORE/tenants/acme.xml"
# A tenant file claiming two active versions without a rollout.
sed -i 's/State="retained"/State="active"/' "$STORE/tenants/acme.xml"
refuse MALFORMED "two active versions outside a rollout are refused" lic keys list acme
# A tenant file cut short.
cp -p "$E2E_TMP/pristine/tenants/acme.xml" "$STORE/tenants/acme.xml"
truncate -s 300 "$STORE/tenants/acme.xml"
refuse MALFORMED "a truncated tenant file is refused" lic destroy acme --version 1 --yes
cp -p "$E2E_TMP/pristine/tenants/acme.xml" "$STORE/tenants/acme.xml"
check "the restored tenant file opens again" lic keys list acme --json

# ---- audit log tampering ---------------------------------------------------------------------

check "one more change, so the log has five lines" lic tenant disable beta
check_eq "the audit log has five lines" 5 "$(wc -l <"$STORE/audit.log")"
cp -p "$STORE/audit.log" "$E2E_TMP/audit.log.orig"
cp -p "$STORE/audit.head" "$E2E_TMP/audit.head.orig"
restore_audit() {
	cp -p "$E2E_TMP/audit.log.orig" "$STORE/audit.log"
	cp -p "$E2E_TMP/audit.head.orig" "$STORE/audit.head"
}
# tamper NAME SED-SCRIPT: edits audit.log, checks that verify fails (and writes nothing), restores.
tamper() {
	local name=$1 script=$2
	sed -i "$script" "$STORE/audit.log"
	if cmp -s "$STORE/audit.log" "$E2E_TMP/audit.log.orig"; then
		fail "audit tampering ($name): the edit did not change audit.log"
	fi
	refuse MALFORMED "audit verify fails: $name" lic audit verify
	check_match "audit verify names the line ($name)" 'line [0-9]+' "$(cat "$E2E_ERR")"
	restore_audit
	check "audit verify passes again after restoring ($name)" lic audit verify
}
tamper "one line edited" '2s/"actor":"e2e-safety"/"actor":"e2e-mallory"/'
tamper "one character of a hash edited" '3s/"prev":"\(.\)/"prev":"X/'
tamper "a middle line removed" '3d'
tamper "two lines swapped" '2{h;d};3{G}'
tamper "the last line removed" '$d'
tamper "the first line removed" '1d'
tamper "a line duplicated" '4p'
tamper "a line forged at the end" '$p'
rm "$STORE/audit.head"
refuse MALFORMED "audit verify fails: audit.head removed" lic audit verify
restore_audit
echo "seq 5 sha256 $(printf '0%.0s' {1..64})" >"$STORE/audit.head"
refuse MALFORMED "audit verify fails: audit.head names another hash" lic audit verify
restore_audit
check "audit verify passes on the restored log" lic audit verify

# A change must not be made when its audit line cannot be written: with the last
# line cut from the log, a change is refused (MALFORMED) and writes nothing.
cp -a "$STORE" "$E2E_TMP/before-cut"
sed -i '$d' "$STORE/audit.log"
refuse MALFORMED "a change with lines cut from the audit log: tenant enable" lic tenant enable beta
check "tenant list after the refused enable" lic tenant list --json
check_eq "... beta is still disabled" true "$(json "$E2E_OUT" '[t["disabled"] for t in d if t["tenant"] == "beta"][0]')"
refuse MALFORMED "a change with lines cut from the audit log: rekey" lic rekey acme --immediate
refuse MALFORMED "a change with lines cut from the audit log: tenant add" lic tenant add gamma
check_eq "... no tenant file gamma.xml" absent "$([[ -e $STORE/tenants/gamma.xml ]] && echo present || echo absent)"
# Put the store back as it was before these three, whatever they did.
rm -rf "$STORE"
cp -a "$E2E_TMP/before-cut" "$STORE"
check "tenant enable beta" lic tenant enable beta
check "audit verify passes at the end" lic audit verify
collect_sealed_keys "$STORE"/tenants/*.xml

# ---- no key material anywhere it could leak ----------------------------------------------------

cat "$STORE/audit.log" "$PSTORE/audit.log" >"$E2E_TMP/audit-logs"
sort -u "$SECRETS" | grep -v '^$' >"$SECRETS.sorted"
check_eq "secrets collected: sealed keys of both stores, KEKs, passphrase" true \
	"$([[ $(wc -l <"$SECRETS.sorted") -ge 10 ]] && echo true || echo false)"
# Whole values, and their first 24 characters (a leak need not be the whole value).
cut -c1-24 "$SECRETS.sorted" >"$SECRETS.prefixes"
leaks() {
	grep -F -f "$SECRETS.sorted" "$1" | head -3 || true
	grep -F -f "$SECRETS.prefixes" "$1" | head -3 || true
}
check_eq "the collected output of every command is not empty" true \
	"$([[ $(wc -l <"$E2E_ALL_OUTPUT") -gt 100 ]] && echo true || echo false)"
check_eq "no sealed key, KEK or passphrase in any output or error message" "" "$(leaks "$E2E_ALL_OUTPUT")"
check_eq "no sealed key, KEK or passphrase in the audit logs" "" "$(leaks "$E2E_TMP/audit-logs")"
check_eq "no PEM private key in any output" "" "$(grep -F 'PRIVATE KEY' "$E2E_ALL_OUTPUT" || true)"
# The detector works: a sealed key pasted into a copy of the log is found.
{ cat "$E2E_TMP/audit-logs"; head -1 "$SECRETS.sorted"; } >"$E2E_TMP/audit-logs.leaky"
check_eq "the leak detector finds a planted secret" false "$([[ -z $(leaks "$E2E_TMP/audit-logs.leaky") ]] && echo true || echo false)"

# ---- review fixes: each of these changed the store before it was fixed ----
export LICENSOR_STORE="$E2E_TMP/review"
check "init a store for the review cases" lic init
check "tenant add acme" lic tenant add acme
snapshot_store "$LICENSOR_STORE"
LICENSOR_ACTOR=$'\xff' expect_fail MALFORMED "an actor that is not UTF-8 is refused before the change" \
	lic rekey acme --immediate
assert_store_unchanged "a refused audit line leaves the keyring as it was"
LICENSOR_TEST_NOW=-100 expect_fail MALFORMED "a clock before 1970 is refused before the change" \
	lic rekey acme --immediate
assert_store_unchanged "a refused clock leaves the keyring as it was"
LICENSOR_ACTOR="$(printf 'a%.0s' $(seq 1 126))é" check "a long actor is cut on a character boundary" \
	lic revoke acme --version 1 --yes
check "audit verify after the long actor" lic audit verify
expect_fail USAGE "an empty --store is refused, not taken as the default store" lic keys list acme --store ""
# A store that is only its world.xml is an empty store of the same world.
mkdir -m 700 "$E2E_TMP/rebuilt"
cp "$LICENSOR_STORE/world.xml" "$E2E_TMP/rebuilt/"
check "a world.xml alone lists no tenants" lic tenant list --store "$E2E_TMP/rebuilt" \
	--kek-file "$LICENSOR_STORE.kek"
check "and takes a new tenant" lic tenant add beta --store "$E2E_TMP/rebuilt" --kek-file "$LICENSOR_STORE.kek"
check_mode "its tenants/ is created 0700" 700 "$E2E_TMP/rebuilt/tenants"
check "no lock file is left in a store" test ! -e "$LICENSOR_STORE/lock"

finish

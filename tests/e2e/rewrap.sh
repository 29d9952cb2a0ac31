# rewrap.sh: `licensor rewrap` end to end (DESIGN.md §7): a tenant publishes
# 1000 PLs under version 1, re-keys to version 2, rewraps all 1000 into a
# directory, revokes version 1; the rewrapped PLs still give their original
# content keys through certify → acquire → open, the originals now give
# KEY_REVOKED, a second rewrap finds everything current, and each refusal
# (unknown tenant, another tenant's PL, a garbage file, a tampered PL, the
# input directory as --out) leaves both the store and the output directory
# as they were. Ends with `audit verify` and a look for content keys in
# everything the commands printed.
#
# Needs LICENSOR_BIN; uses bash, coreutils, openssl and python3.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_require_binary

cd "$E2E_TMP"
unset LICENSOR_KEK_FILE LICENSOR_PASSPHRASE_FILE
export LICENSOR_ACTOR=e2e-rewrap
export LICENSOR_STORE="$E2E_TMP/store"
export LICENSOR_TEST_NOW=2026-11-23T17:00:00Z

COUNT=${E2E_REWRAP_COUNT:-1000} # fewer only while working on this script
SAMPLE_EVERY=$((COUNT / 20))     # 20 PLs keep their content key for the open check

# key_id TENANT VERSION: the version's key id from `keys list --json`.
key_id() {
	lic keys list "$1" --json | json - "[v['key_id'] for v in d if v['version'] == $2][0]"
}

# The names, modes and sha256 of everything in out/ (one sha256sum for all:
# e2e_store_state forks per file, too slow for 1000 files).
out_state() {
	(cd out && find . -printf '%m %p\n' | LC_ALL=C sort && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
}

# refuse_rewrap CODE NAME ARGS...: a rewrap refused with CODE that changes
# neither the store nor the output directory out/.
refuse_rewrap() {
	local code=$1 name=$2
	shift 2
	out_state >out.before
	refuse "$code" "$name" lic rewrap "$@"
	out_state >out.after
	if cmp -s out.before out.after; then
		pass "$name: out/ unchanged"
	else
		fail "$name: out/ unchanged" "$(diff out.before out.after | head -5 | tr '\n' '|')"
	fi
}

check "init" lic init
check "tenant add contoso" lic tenant add contoso
check "tenant add fabrikam" lic tenant add fabrikam
V1=$(key_id contoso 1)
lic keys pubkey contoso --version 1 >contoso-v1.pub.pem

# ---- 1000 PLs under version 1 ----
# Publishing with --pubkey does not open the store: about 20 ms each here.
mkdir pl
start=$SECONDS
for i in $(seq 1 $COUNT); do
	extra=()
	if ((i % SAMPLE_EVERY == 0)); then
		extra=(--content-key-out "doc-$i.key")
	fi
	if ((i % 3 == 0)); then
		extra+=(--valid-until 2030-01-01T00:00:00Z --validity-days 7)
	fi
	lic publish contoso --pubkey contoso-v1.pub.pem --content-id "doc-$i" --owner alice@contoso.com \
		--grant 'bob@contoso.com:VIEW,PRINT' --grant '*@fabrikam.com:VIEW' "${extra[@]}" >"pl/doc-$i.xml"
done
echo "     published $COUNT PLs in $((SECONDS - start)) s"
check_eq "$COUNT PLs published" "$COUNT" "$(ls pl | wc -l)"
check_eq "all under version 1" "$COUNT" "$(grep -l "<KeyId>$V1</KeyId>" pl/*.xml | wc -l)"

check "rekey --immediate" lic rekey contoso --immediate
V2=$(key_id contoso 2)
check_match "version 2 has another key id" '^[0-9a-f]{32}$' "$V2"

# ---- refusals before the real run: nothing written, out/ does not appear ----
lic publish fabrikam --content-id theirs --owner eve@fabrikam.com >fabrikam.xml
echo 'not a license' >garbage.xml
# A PL whose policy was edited: it parses, but its content key no longer unwraps.
sed 's/Rights="VIEW PRINT"/Rights="VIEW PRINT EXPORT"/' pl/doc-7.xml >tampered.xml
check_eq "the tampered copy differs" 1 "$(cmp -s pl/doc-7.xml tampered.xml || echo 1)"
refuse UNKNOWN_TENANT "rewrap for an unknown tenant" lic rewrap nobody --out out pl/doc-1.xml
refuse USAGE "a PL of another tenant among them" lic rewrap contoso --out out pl/doc-1.xml fabrikam.xml
check_match "the refusal names the file" 'fabrikam\.xml' "$(cat "$E2E_ERR")"
refuse MALFORMED "a garbage file among them" lic rewrap contoso --out out pl/doc-1.xml pl/doc-2.xml garbage.xml
check_match "the refusal names the garbage file" 'garbage\.xml' "$(cat "$E2E_ERR")"
refuse PL_INTEGRITY "a tampered PL" lic rewrap contoso --out out pl/doc-1.xml tampered.xml
check_match "the refusal names the tampered file" 'tampered\.xml' "$(cat "$E2E_ERR")"
refuse USAGE "--out the inputs' own directory" lic rewrap contoso --out pl pl/doc-1.xml
refuse USAGE "no --out" lic rewrap contoso pl/doc-1.xml
refuse USAGE "no PL files" lic rewrap contoso --out out
check_eq "no refusal created out/" "no" "$([[ -e out ]] && echo yes || echo no)"
check_eq "no refusal touched the inputs" "$COUNT" "$(grep -l "<KeyId>$V1</KeyId>" pl/*.xml | wc -l)"

# ---- the rewrap ----
start=$SECONDS
check "rewrap all $COUNT" lic rewrap contoso --out out pl/*.xml
echo "     rewrapped $COUNT PLs in $((SECONDS - start)) s"
check_match "it reports the target" "$COUNT PLs in out, version 2 \\(key id $V2\\)" "$(cat "$E2E_OUT")"
check_match "it reports the count from version 1" "rewrapped from version 1: $COUNT" "$(cat "$E2E_OUT")"
check_match "nothing was already current" "already current: 0" "$(cat "$E2E_OUT")"
check_mode "out/ is created 0700" 700 out
check_eq "$COUNT files in out/, same names" "$(cd pl && ls)" "$(cd out && ls)"
check_eq "every output names version 2's key id" "$COUNT" "$(grep -l "<KeyId>$V2</KeyId>" out/*.xml | wc -l)"
check_eq "no output names version 1" "0" "$(grep -l "$V1" out/*.xml | wc -l || true)"
# Everything but the KeyId and the EnablingBits is byte for byte the same.
check_eq "only KeyId and EnablingBits changed" "$COUNT" "$(python3 - "$V1" "$V2" <<'EOF'
import os, re, sys
v1, v2 = sys.argv[1], sys.argv[2]
same = 0
for name in os.listdir("pl"):
    a, b = open("pl/" + name).read().strip(), open("out/" + name).read().strip()
    strip = lambda t: re.sub(r"<EnablingBits[^>]*>[^<]*</EnablingBits>", "", t)
    bits = lambda t: re.search(r"<EnablingBits[^>]*>([^<]*)<", t).group(1)
    if strip(a).replace("<KeyId>%s</KeyId>" % v1, "<KeyId>%s</KeyId>" % v2) == strip(b) and bits(a) != bits(b):
        same += 1
print(same)
EOF
)"
check_match "the inputs are untouched" "^$COUNT\$" "$(grep -l "<KeyId>$V1</KeyId>" pl/*.xml | wc -l)"

# ---- retire version 1 ----
check "revoke version 1" lic revoke contoso --version 1
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out bob.pem 2>/dev/null
openssl pkey -in bob.pem -pubout -out bob.pub.pem
check "certify bob" lic certify contoso --principal bob@contoso.com --pubkey bob.pub.pem
cp "$E2E_OUT" bob-rac.xml
opened=0
revoked=0
for i in $(seq $SAMPLE_EVERY $SAMPLE_EVERY $COUNT); do
	if run lic acquire --rac bob-rac.xml --pl "out/doc-$i.xml"; then
		cp "$E2E_OUT" ul.xml
		if run lic open --ul ul.xml --user-key bob.pem && [[ "$(cat "$E2E_OUT")" == "$(cat "doc-$i.key")" ]]; then
			opened=$((opened + 1))
		fi
	fi
	if ! run lic acquire --rac bob-rac.xml --pl "pl/doc-$i.xml" && grep -q '^licensor: KEY_REVOKED: ' "$E2E_ERR"; then
		revoked=$((revoked + 1))
	fi
done
check_eq "20 rewrapped PLs open to their original content keys" 20 "$opened"
check_eq "the same 20 originals are KEY_REVOKED" 20 "$revoked"

# ---- a second rewrap: all current, copied unchanged ----
check "rewrap the outputs again" lic rewrap contoso --out again out/*.xml
check_match "all already current" "already current: $COUNT" "$(cat "$E2E_OUT")"
check_eq "copied byte for byte" "" "$(diff -r out again | head -3)"
mkdir links
ln -s "$E2E_TMP/again/doc-1.xml" links/doc-1.xml
refuse USAGE "an input that is, through a link, its own output" lic rewrap contoso --out again links/doc-1.xml
refuse_rewrap KEY_REVOKED "a PL under the revoked version" contoso --out out pl/doc-1.xml
check_match "the refusal names the file" 'pl/doc-1\.xml' "$(cat "$E2E_ERR")"
refuse_rewrap UNKNOWN_TENANT "unknown tenant, out/ existing" nobody --out out again/doc-1.xml
refuse_rewrap USAGE "another tenant's PL, out/ existing" contoso --out out again/doc-1.xml fabrikam.xml
refuse_rewrap MALFORMED "garbage, out/ existing" contoso --out out again/doc-1.xml garbage.xml

# ---- --list and the audit log ----
printf 'again/doc-%d.xml\n' $(seq 1 10) >list.txt
check "rewrap --list" lic rewrap contoso --out listed --list list.txt
check_eq "10 from the list" 10 "$(ls listed | wc -l)"
check "audit verify" lic audit verify
check_eq "three rewrap events (the refusals wrote none)" 3 "$(grep -c '"action":"rewrap"' "$LICENSOR_STORE/audit.log")"
check_match "the first names the counts" "\"detail\":\"$COUNT PLs to version 2 \\(key id $V2\\): version 1 -> 2: $COUNT, already current: 0\"" \
	"$(grep '"action":"rewrap"' "$LICENSOR_STORE/audit.log" | head -1)"

# ---- no content key anywhere in what was printed or logged ----
# The open check printed the sample keys on purpose: look at rewrap's own output only.
check_eq "no content key in rewrap's output or the audit log" 0 "$(
	python3 - "$E2E_ALL_OUTPUT" "$LICENSOR_STORE/audit.log" doc-*.key <<'EOF'
import sys
output, audit, keys = open(sys.argv[1]).read(), open(sys.argv[2]).read(), sys.argv[3:]
# only the blocks of `licensor rewrap` commands
blocks = [b for b in output.split("\n$ ") if " rewrap " in b.split("\n", 1)[0] + " "]
text = "\n".join(blocks) + audit
print(sum(open(k).read().strip().lower() in text.lower() for k in keys))
EOF
)"

finish

# tpd.sh: the TPD exchange of DESIGN.md §7 end to end, between two stores A
# and B: in A a tenant with content under version 1, a `rekey --immediate`,
# content under version 2; B runs `tpd createkey`, A runs `export`, B runs
# `tpd unwrap` and `import`: both versions arrive retained, `activate` makes
# one active, and a user certified by B gets a UL for both old PLs that opens
# to the same content keys. Then the refusals (wrong password, a tampered TPD
# or ExportedTPD, files of another exchange, key ids B has already), each of
# which leaves B's store byte-for-byte as it was; file modes 0600; the audit
# events; and that no key material or password ever reaches stdout/stderr.
#
# Needs LICENSOR_BIN; uses bash, coreutils, openssl and python3.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_require_binary

cd "$E2E_TMP"
unset LICENSOR_KEK_FILE LICENSOR_PASSPHRASE_FILE
export LICENSOR_ACTOR=e2e-tpd
A="$E2E_TMP/A"
B="$E2E_TMP/B"
export LICENSOR_STORE="$B" # the importing side; A's commands name --store
export LICENSOR_TEST_NOW=2026-11-23T17:00:00Z

# guid_of PREFIX DIR: the GUID in the one file DIR/PREFIX<GUID>.*
guid_of() {
	local file
	file=$(ls "$2" | grep "^$1" | head -1)
	file=${file#"$1"}
	echo "${file%.*}"
}
# flip FILE ELEMENT: changes one base64 character inside the first ELEMENT.
flip() {
	python3 - "$1" "$2" <<'EOF'
import sys
path, element = sys.argv[1], sys.argv[2]
data = open(path).read()
at = data.index("<" + element + ">") + len(element) + 2 + 40
data = data[:at] + ("B" if data[at] == "A" else "A") + data[at + 1:]
open(path, "w").write(data)
EOF
}
key_ids() { # STORE TENANT: the key ids of every version, in order
	lic keys list "$2" --json --store "$1" | python3 -c 'import json,sys; print(" ".join(v["key_id"] for v in json.load(sys.stdin)))'
}

check "init A" lic init --store "$A"
check "init B" lic init --store "$B"
check "tenant add contoso in A" lic tenant add contoso --store "$A"

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out bob.pem 2>/dev/null
openssl pkey -in bob.pem -pubout -out bob.pub.pem

# ---- content under version 1, rekey, content under version 2 (store A) ----
check "publish doc-1 under v1" lic publish contoso --store "$A" --content-id doc-1 --owner alice@contoso.com \
	--grant 'bob@contoso.com:VIEW' --content-key-out doc-1.key
cp "$E2E_OUT" doc-1.pl.xml
check "rekey --immediate" lic rekey contoso --immediate --store "$A"
check "publish doc-2 under v2" lic publish contoso --store "$A" --content-id doc-2 --owner alice@contoso.com \
	--grant 'bob@contoso.com:VIEW' --content-key-out doc-2.key
cp "$E2E_OUT" doc-2.pl.xml
A_KEYS=$(key_ids "$A" contoso)

# ---- B: createkey ----
mkdir DIRB
check "B: tpd createkey --out DIRB" lic tpd createkey --out DIRB
G=$(guid_of PublicKey- DIRB)
check_match "the GUID is a lowercase UUID v4" '^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$' "$G"
check_eq "createkey prints the two paths" "DIRB/PublicKey-$G.txt DIRB/PrivateKey-$G.txt" "$(tr '\n' ' ' <"$E2E_OUT" | sed 's/ $//')"
check_mode "the private key file is 0600" 600 "DIRB/PrivateKey-$G.txt"
check_eq "the public key file holds its GUID" "Guid: $G" "$(head -1 "DIRB/PublicKey-$G.txt")"
check_eq "the private key file holds its GUID" "Guid: $G" "$(head -1 "DIRB/PrivateKey-$G.txt")"
check "the public key is RSA-3072, read by openssl" \
	bash -c "tail -n +2 DIRB/PublicKey-$G.txt | openssl pkey -pubin -noout -text | grep -q '3072 bit'"

# ---- A: export ----
mkdir DIRA
check "A: export contoso" lic export contoso --to "DIRB/PublicKey-$G.txt" --out DIRA --store "$A"
check_eq "export prints the TPD path first" "DIRA/TPD-$G.xml" "$(head -1 "$E2E_OUT")"
A_VERSIONS="version 1 key-id ${A_KEYS%% *} version 2 key-id ${A_KEYS##* }"
check_eq "then the number and key id of each exported version" "$A_VERSIONS" "$(tail -n +2 "$E2E_OUT" | tr '\n' ' ' | sed 's/ $//')"
check_mode "the TPD is 0600" 600 "DIRA/TPD-$G.xml"
check_match "the TPD names the exchange" "Guid=\"$G\"" "$(cat "DIRA/TPD-$G.xml")"
check_eq "the TPD holds both versions" 2 "$(grep -c '<Key ' "DIRA/TPD-$G.xml")"
check_match "A's audit log has the export, GUID and versions" \
	"\"action\":\"export\",\"tenant\":\"contoso\",\"detail\":\"guid $G; versions 1,2\"" "$(tail -1 "$A/audit.log")"
expect_fail IO "export does not overwrite a TPD" lic export contoso --to "DIRB/PublicKey-$G.txt" --out DIRA --store "$A"

# ---- B: unwrap, with refusals first ----
cp "DIRA/TPD-$G.xml" TPD-tampered.xml
mkdir tampered
cp "DIRA/TPD-$G.xml" "tampered/TPD-$G.xml"
flip "tampered/TPD-$G.xml" EncryptedPrivateKey
mkdir out-tampered
refuse MALFORMED "unwrap refuses a TPD with one byte changed" \
	lic tpd unwrap --key "DIRB/PrivateKey-$G.txt" --target "tampered/TPD-$G.xml" --out out-tampered
check_eq "... and writes nothing" "" "$(ls -A out-tampered)"
expect_fail USAGE "unwrap refuses a TPD under another exchange's name" \
	lic tpd unwrap --key "DIRB/PrivateKey-$G.txt" --target TPD-tampered.xml --out out-tampered

check "B: tpd unwrap" lic tpd unwrap --key "DIRB/PrivateKey-$G.txt" --target "DIRA/TPD-$G.xml" --out DIRB
check_eq "unwrap prints the two paths first" "DIRB/ExportedTPD-$G.xml DIRB/Password-$G.txt" "$(head -2 "$E2E_OUT" | tr '\n' ' ' | sed 's/ $//')"
check_eq "then the number and key id of each version, as export printed them" "$A_VERSIONS" "$(tail -n +3 "$E2E_OUT" | tr '\n' ' ' | sed 's/ $//')"
check_mode "the ExportedTPD is 0600" 600 "DIRB/ExportedTPD-$G.xml"
check_mode "the password file is 0600" 600 "DIRB/Password-$G.txt"
check_eq "the password file is one line" 1 "$(wc -l <"DIRB/Password-$G.txt")"
check_match "the line is GUID:password, 32 base64url characters (192 bits)" "^$G:[A-Za-z0-9_-]{32}\$" \
	"$(cat "DIRB/Password-$G.txt")"
PASSWORD=$(cut -d: -f2 "DIRB/Password-$G.txt")

# ---- a second exchange, for the wrong-GUID refusals ----
mkdir DIRC
check "B: a second createkey" lic tpd createkey --out DIRC
G2=$(guid_of PublicKey- DIRC)
check "A: a second export" lic export contoso --to "DIRC/PublicKey-$G2.txt" --out DIRC --store "$A"
check "B: a second unwrap" lic tpd unwrap --key "DIRC/PrivateKey-$G2.txt" --target "DIRC/TPD-$G2.xml" --out DIRC
refuse USAGE "unwrap refuses the TPD of another exchange" \
	lic tpd unwrap --key "DIRB/PrivateKey-$G.txt" --target "DIRC/TPD-$G2.xml" --out out-tampered
check_eq "... and writes nothing" "" "$(ls -A out-tampered)"

# ---- B: import refusals, each leaving B unchanged ----
mkdir wrong
printf '%s:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n' "$G" >"wrong/Password-$G.txt"
refuse UNAUTHORIZED "import with a wrong password" \
	lic import contoso --tpd "DIRB/ExportedTPD-$G.xml" --password-file "wrong/Password-$G.txt"
cp "DIRB/ExportedTPD-$G.xml" "tampered/ExportedTPD-$G.xml"
flip "tampered/ExportedTPD-$G.xml" EncryptedPrivateKey
refuse MALFORMED "import of an ExportedTPD with one byte changed" \
	lic import contoso --tpd "tampered/ExportedTPD-$G.xml" --password-file "DIRB/Password-$G.txt"
refuse USAGE "import with the password file of another exchange" \
	lic import contoso --tpd "DIRC/ExportedTPD-$G2.xml" --password-file "DIRB/Password-$G.txt"
mkdir renamed
cp "DIRC/ExportedTPD-$G2.xml" "renamed/ExportedTPD-$G.xml"
refuse USAGE "import of another exchange's TPD renamed to this GUID" \
	lic import contoso --tpd "renamed/ExportedTPD-$G.xml" --password-file "DIRB/Password-$G.txt"
cp "DIRC/Password-$G2.txt" "renamed/Password-$G.txt"
refuse USAGE "import with another exchange's password file renamed to this GUID" \
	lic import contoso --tpd "DIRB/ExportedTPD-$G.xml" --password-file "renamed/Password-$G.txt"
check_eq "B has no tenant yet" "" "$(ls -A "$B/tenants")"

# ---- B: import ----
check "B: import contoso" lic import contoso --tpd "DIRB/ExportedTPD-$G.xml" --password-file "DIRB/Password-$G.txt"
check_eq "import prints each version's new number, exported number and key id" \
	"version 1 (exported 1) key-id ${A_KEYS%% *} version 2 (exported 2) key-id ${A_KEYS##* }" \
	"$(grep '^version ' "$E2E_OUT" | tr '\n' ' ' | sed 's/ $//')"
check_match "and says to compare the key ids with the exporting side before activating" \
	"compare these key ids with \`licensor keys list contoso\` on the exporting side" "$(cat "$E2E_OUT")"
check_match "naming the version that was active there" "active one is version 2 here" "$(cat "$E2E_OUT")"
lic keys list contoso --json >keys.json
check_eq "B has both versions" 2 "$(json keys.json 'len(d)')"
check_eq "both are retained" "retained retained" "$(json keys.json '" ".join(v["state"] for v in d)')"
check_eq "with A's key ids, in order" "$A_KEYS" "$(key_ids "$B" contoso)"
check_eq "and origin managed" "managed managed" "$(json keys.json '" ".join(v["origin"] for v in d)')"
check_match "B's audit log has the import, GUID and versions" \
	"\"action\":\"import\",\"tenant\":\"contoso\",\"detail\":\"guid $G; created the tenant; versions 1 \\(exported 1\\),2 \\(exported 2\\)\"" \
	"$(tail -1 "$B/audit.log")"
check_mode "the tenant file is 0600" 600 "$B/tenants/contoso.xml"

refuse STATE "a second import of the same key ids" \
	lic import contoso --tpd "DIRB/ExportedTPD-$G.xml" --password-file "DIRB/Password-$G.txt"
refuse STATE "the other exchange's TPD holds the same key ids too" \
	lic import contoso --tpd "DIRC/ExportedTPD-$G2.xml" --password-file "DIRC/Password-$G2.txt"

check "activate version 2 in B" lic activate contoso --version 2
check_eq "version 2 is active" "retained active" "$(lic keys list contoso --json | python3 -c 'import json,sys; print(" ".join(v["state"] for v in json.load(sys.stdin)))')"

# ---- old content opens in B ----
check "certify bob in B" lic certify contoso --principal bob@contoso.com --pubkey bob.pub.pem
cp "$E2E_OUT" bob-rac.xml
for doc in doc-1 doc-2; do
	check "B: acquire $doc" lic acquire --rac bob-rac.xml --pl $doc.pl.xml
	cp "$E2E_OUT" $doc.ul.xml
	check "B: open $doc" lic open --ul $doc.ul.xml --user-key bob.pem
	check_eq "$doc opens to the content key A published" "$(cat $doc.key)" "$(cat "$E2E_OUT")"
done

# ---- audit and secrecy ----
check "audit verify A" lic audit verify --store "$A"
check "audit verify B" lic audit verify --store "$B"
check_eq "no private key in any audit line" 0 "$(cat "$A/audit.log" "$B/audit.log" | grep -c 'PRIVATE\|BEGIN' || true)"
check_eq "no PEM private key marker in any output" 0 "$(grep -c 'PRIVATE KEY' "$E2E_ALL_OUTPUT" || true)"
check_eq "the password is in no output" 0 "$(grep -cF -e "$PASSWORD" "$E2E_ALL_OUTPUT" || true)"
check_eq "the second password is in no output" 0 "$(grep -cF -e "$(cut -d: -f2 "DIRC/Password-$G2.txt")" "$E2E_ALL_OUTPUT" || true)"

finish

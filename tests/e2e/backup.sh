# backup.sh: `licensor backup` and `licensor restore` end to end (DESIGN.md §7,
# docs/backup.md). Store A holds two tenants (acme re-keyed, beta with a
# revoked version) and a PL; after `backup`:
#   (1) restore into A itself: nothing to change, tenant files untouched;
#   (2) rebuild: a new directory holding only a copy of A's world.xml, the KEK
#       given as a copy through --kek-file / LICENSOR_KEK_FILE: restore brings
#       back every tenant (`keys list --json` equal), and the old PL still gets
#       a UL that opens to the same content key;
#   (3) a store of another world refuses the backup and is left unchanged;
#   (4) a rekey after the backup: restore refuses, naming the new version, and
#       changes nothing; --force drops it and says so;
#   (5) a version destroyed after the backup stays destroyed, one revoked
#       after it stays revoked;
#   (6) a tampered or truncated backup is refused.
# A BYOK tenant comes back as its PKCS#11 URI, and restore says that the key
# must be in the token, with the PIN redacted. Also: the backup is 0600 and shows no tenant name or key id in the clear,
# no output holds key material, and `audit verify` passes with the backup and
# restore events logged.
#
# Needs LICENSOR_BIN; uses bash, coreutils, openssl, python3.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_require_binary

cd "$E2E_TMP"
unset LICENSOR_KEK_FILE LICENSOR_PASSPHRASE_FILE
export LICENSOR_ACTOR=e2e-backup
STORE="$E2E_TMP/store"
export LICENSOR_STORE="$STORE"

T0=2026-11-23T17:00:00Z
T1=2026-11-24T17:00:00Z
T2=2026-11-25T17:00:00Z
T3=2026-11-26T17:00:00Z
T4=2026-11-27T17:00:00Z
export LICENSOR_TEST_NOW=$T0

key_id() { # TENANT VERSION
	lic keys list "$1" --json | python3 -c 'import json,sys; print([v["key_id"] for v in json.load(sys.stdin) if v["version"] == '"$2"'][0])'
}
tenant_hashes() { # STORE
	(cd "$1/tenants" && sha256sum -- *.xml)
}

# ---- store A -------------------------------------------------------------------

check "init A" lic init
check "tenant add acme" lic tenant add acme
check "tenant add beta" lic tenant add beta
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out bob.pem 2>/dev/null
openssl pkey -in bob.pem -pubout -out bob.pub.pem
check "certify bob" lic certify acme --principal bob@acme.com --pubkey bob.pub.pem --days 60
cp "$E2E_OUT" bob-rac.xml
check "publish doc-1 under acme version 1" lic publish acme --content-id doc-1 --owner alice@acme.com \
	--grant 'bob@acme.com:VIEW' --content-key-out doc-1.key
cp "$E2E_OUT" doc-1.pl.xml

export LICENSOR_TEST_NOW=$T1
check "rekey acme" lic rekey acme --immediate
check "rekey beta" lic rekey beta --immediate
check "revoke beta version 1" lic revoke beta --version 1
check "publish doc-2 under acme version 2" lic publish acme --content-id doc-2 --owner alice@acme.com \
	--grant 'bob@acme.com:VIEW' --content-key-out doc-2.key
cp "$E2E_OUT" doc-2.pl.xml
# A BYOK tenant as the PKCS#11 code writes it: the version holds only its URI.
# (Written by hand here: the backup must carry it whatever made it.)
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 2>/dev/null | openssl pkey -pubout -outform DER >hsm.spki
python3 - "$STORE/tenants/hsm.xml" hsm.spki <<'EOF_PY'
import base64, hashlib, os, sys
spki = open(sys.argv[2], "rb").read()
key_id = hashlib.sha256(spki).hexdigest()[:32]
text = f"""<?xml version="1.0" encoding="UTF-8"?>
<Tenant xmlns="urn:licensor:v1" Format="1" Name="hsm" Disabled="false" CreatedAt="2026-11-24T17:00:00Z" Revision="1">
  <Version Number="1" KeyId="{key_id}" Algorithm="rsa-2048" Origin="byok" State="active" StateBeforeRevoke="active" Compromised="false" CreatedAt="2026-11-24T17:00:00Z" ActivatedAt="2026-11-24T17:00:00Z">
    <PublicKey>{base64.b64encode(spki).decode()}</PublicKey>
    <Pkcs11Uri>pkcs11:token=licensor;object=hsm-1?pin-value=s3cret-pin&amp;module-name=softhsm2</Pkcs11Uri>
  </Version>
</Tenant>
"""
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, text.encode())
os.close(fd)
EOF_PY
check "the BYOK tenant reads" lic keys list hsm --json
cp "$E2E_OUT" hsm.json
check_eq "its version is byok" byok "$(json hsm.json "d[0]['origin']")"
lic keys list acme --json >acme.json
lic keys list beta --json >beta.json
check_eq "beta version 1 is revoked" revoked "$(json beta.json "[v['state'] for v in d if v['version'] == 1][0]")"
WORLD_A=$(sed -n 's/.*<StoreId>\(.*\)<\/StoreId>.*/\1/p' "$STORE/world.xml")
check_match "A has a store id" '^[0-9a-f-]{36}$' "$WORLD_A"

# ---- backup --------------------------------------------------------------------

export LICENSOR_TEST_NOW=$T2
check "backup" lic backup --out "$E2E_TMP/a.backup"
check_match "backup says what it wrote" \
	"^backup of world $WORLD_A written to $E2E_TMP/a.backup: 3 tenants, 5 versions" "$(cat "$E2E_OUT")"
check_mode "the backup is 0600" 600 a.backup
check_match "line 1 is the plaintext header naming the world and the counts" \
	"^<BackupHeader xmlns=\"urn:licensor:v1\" Format=\"1\" StoreId=\"$WORLD_A\" CreatedAt=\"$T2\" Tenants=\"3\" Versions=\"5\"/>$" \
	"$(head -1 a.backup)"
check_eq "one line per record, then the digest" 6 "$(wc -l <a.backup)"
check_eq "the last line is the SHA-256 of everything before it" \
	"sha256 $(head -n -1 a.backup | sha256sum | cut -c1-64)" "$(tail -1 a.backup)"
V1=$(key_id acme 1)
# Searched in the header and digest lines as text and in every record after
# base64 decoding (grepping the base64 text itself for a short word like
# "hsm" matches by chance now and then). A 4-byte or longer needle in random
# ciphertext matches with odds under 1e-5 per backup.
cat >in-the-clear.py <<'PY'
import base64, sys
lines = open(sys.argv[1], "rb").read().split(b"\n")[:-1]
needles = [b"acme", b"beta", b"pkcs11:", sys.argv[2].encode()]
plain = lines[0] + b"\n" + lines[-1]
records = b"".join(base64.b64decode(line, validate=True) for line in lines[1:-1])
sys.exit(1 if any(n in plain or n in records for n in needles) else 0)
PY
check "no tenant name, key id or PKCS#11 URI in the clear" python3 in-the-clear.py a.backup "$V1"
expect_fail USAGE "backup needs --out" lic backup
refuse USAGE "backup into the store's tenants/ directory" lic backup --out "$STORE/tenants/x.xml"
refuse USAGE "backup over the store's world.xml" lic backup --out "$STORE/world.xml"
refuse USAGE "backup over the store's audit.log" lic backup --out "$STORE/audit.log"
refuse USAGE "backup over the store's audit.head" lic backup --out "$STORE/audit.head"
refuse USAGE "backup to a new file at the top of the store" lic backup --out "$STORE/new.backup"
check "no new file in the store" test ! -e "$STORE/new.backup"
expect_fail IO "backup into a missing directory" lic backup --out "$E2E_TMP/missing/x.backup"

# ---- (1) restore into the same store: nothing to change --------------------------

tenant_hashes "$STORE" >before.sha
check "restore into A itself" lic restore a.backup
check_match "every tenant unchanged" "tenant acme: unchanged.*tenant beta: unchanged.*tenant hsm: unchanged" "$(tr '\n' ' ' <"$E2E_OUT")"
check_eq "tenant files untouched" "$(cat before.sha)" "$(tenant_hashes "$STORE")"

# ---- (2) rebuild from world.xml alone --------------------------------------------

REBUILT="$E2E_TMP/rebuilt"
mkdir "$REBUILT"
cp "$STORE/world.xml" "$REBUILT/"
cp "$STORE.kek" "$E2E_TMP/copy.kek"
chmod 600 "$E2E_TMP/copy.kek"
check "restore into a directory holding only world.xml (--kek-file)" \
	lic restore a.backup --store "$REBUILT" --kek-file "$E2E_TMP/copy.kek"
check_match "it says both tenants were restored" "tenant acme: restored \(2 versions\).*tenant beta: restored" \
	"$(tr '\n' ' ' <"$E2E_OUT")"
check_mode "rebuilt store directory is 0700" 700 "$REBUILT"
check_mode "rebuilt tenants/ is 0700" 700 "$REBUILT/tenants"
check_mode "rebuilt tenant file is 0600" 600 "$REBUILT/tenants/acme.xml"
check_match "it says the BYOK key must be in the token, PIN redacted" \
	"tenant hsm version 1 is a PKCS#11 key \(pkcs11:token=licensor;object=hsm-1\?pin-value=\*\*\*&module-name=softhsm2\): the key itself must be in the token" \
	"$(cat "$E2E_OUT")"
check "the PIN is printed nowhere" bash -c "! grep -q s3cret-pin '$E2E_ALL_OUTPUT'"
export LICENSOR_KEK_FILE="$E2E_TMP/copy.kek"
check_eq "acme: keys list --json equals the original's" "$(cat acme.json)" \
	"$(lic keys list acme --json --store "$REBUILT")"
check_eq "beta: keys list --json equals the original's" "$(cat beta.json)" \
	"$(lic keys list beta --json --store "$REBUILT")"
check_eq "hsm: keys list --json equals the original's (the URI)" "$(cat hsm.json)" \
	"$(lic keys list hsm --json --store "$REBUILT")"
check "the rebuilt hsm tenant holds the URI, not a key" \
	grep -q '<Pkcs11Uri>pkcs11:token=licensor;object=hsm-1?pin-value=s3cret-pin&amp;module-name=softhsm2</Pkcs11Uri>' \
	"$REBUILT/tenants/hsm.xml"
check "the old PL (version 1) still gets a UL from the rebuilt store" \
	lic acquire --rac bob-rac.xml --pl doc-1.pl.xml --store "$REBUILT"
cp "$E2E_OUT" doc-1.ul.xml
check "open it" lic open --ul doc-1.ul.xml --user-key bob.pem
check_eq "same content key" "$(cat doc-1.key)" "$(cat "$E2E_OUT")"
check "the new PL (version 2) too" lic acquire --rac bob-rac.xml --pl doc-2.pl.xml --store "$REBUILT"
cp "$E2E_OUT" doc-2.ul.xml
check "open it" lic open --ul doc-2.ul.xml --user-key bob.pem
check_eq "same content key" "$(cat doc-2.key)" "$(cat "$E2E_OUT")"
check "audit verify on the rebuilt store" lic audit verify --store "$REBUILT"
check_eq "the rebuilt store's log holds the restore" 1 "$(grep -c '"action":"restore"' "$REBUILT/audit.log")"
unset LICENSOR_KEK_FILE

# ---- (3) another world ------------------------------------------------------------

OTHER="$E2E_TMP/other"
check "init another store" lic init --store "$OTHER"
check "tenant add there" lic tenant add acme --store "$OTHER"
WORLD_O=$(sed -n 's/.*<StoreId>\(.*\)<\/StoreId>.*/\1/p' "$OTHER/world.xml")
LICENSOR_STORE="$OTHER" refuse STATE "restore into a store of another world" lic restore a.backup
check_match "the refusal names both worlds" "world $WORLD_A.*world $WORLD_O" "$(cat "$E2E_ERR")"

# ---- (4) a rekey after the backup ---------------------------------------------------

export LICENSOR_TEST_NOW=$T3
check "rekey acme after the backup" lic rekey acme --immediate
V3=$(key_id acme 3)
refuse STATE "restore refuses to drop acme version 3" lic restore a.backup
check_match "the refusal names the version" "tenant acme version 3 \(key id $V3\)" "$(cat "$E2E_ERR")"
check_match "and says how to force it" "--force" "$(cat "$E2E_ERR")"
check "restore --force" lic restore a.backup --force
check_match "it says what it dropped" "dropped tenant acme version 3 \(key id $V3\)" "$(cat "$E2E_OUT")"
check_eq "acme is the backup's again" "$(cat acme.json)" "$(lic keys list acme --json)"

# ---- (5) a version destroyed after the backup -----------------------------------------

export LICENSOR_TEST_NOW=$T4
check "destroy acme version 1" lic destroy acme --version 1 --yes
check "restore --force" lic restore a.backup --force
check_match "it says the version stays destroyed" "tenant acme version 1 \(key id $V1\) stays destroyed" \
	"$(cat "$E2E_OUT")"
lic keys list acme --json >acme-now.json
check_eq "acme version 1 is still destroyed" destroyed "$(json acme-now.json "[v['state'] for v in d if v['version'] == 1][0]")"
check "no sealed key for version 1 in the tenant file" \
	python3 -c 'import re,sys; d=open(sys.argv[1]).read(); v=re.search(r"<Version Number=\"1\".*?</Version>", d, re.S).group(0); sys.exit("SealedPrivateKey" in v)' \
	"$STORE/tenants/acme.xml"
check "certify bob again (his RAC was signed by version 1)" lic certify acme --principal bob@acme.com \
	--pubkey bob.pub.pem
cp "$E2E_OUT" bob-rac-2.xml
expect_fail KEY_DESTROYED "the version 1 PL no longer opens" lic acquire --rac bob-rac-2.xml --pl doc-1.pl.xml
check "the version 2 PL does" lic acquire --rac bob-rac-2.xml --pl doc-2.pl.xml

# A revocation made after the backup is the later decision: it stands. A
# reinstate made after the backup does not undo the backup's revocation (only
# decisions that remove access are carried over; docs/backup.md).
T5=2026-11-28T17:00:00Z
export LICENSOR_TEST_NOW=$T5
check "revoke acme version 2 after the backup" lic revoke acme --version 2 --yes
check "reinstate beta version 1 after the backup" lic reinstate beta --version 1
check "restore" lic restore a.backup
check_match "it says acme version 2 stays revoked" "tenant acme version 2 \(key id [0-9a-f]{32}\) stays revoked" \
	"$(cat "$E2E_OUT")"
check_eq "acme version 2 is still revoked" revoked "$(lic keys list acme --json | json - "[v['state'] for v in d if v['version'] == 2][0]")"
check_eq "beta version 1 is revoked, as in the backup" revoked \
	"$(lic keys list beta --json | json - "[v['state'] for v in d if v['version'] == 1][0]")"

# ---- (6) tampered and truncated backups --------------------------------------------------

python3 -c 'import sys; d=bytearray(open(sys.argv[1],"rb").read()); d[len(d)//2]^=1; open(sys.argv[2],"wb").write(d)' a.backup tampered.backup
refuse MALFORMED "a tampered backup" lic restore tampered.backup
check_match "it is called damaged" "damaged" "$(cat "$E2E_ERR")"
head -n -1 a.backup >truncated.backup
refuse MALFORMED "a backup without its digest line" lic restore truncated.backup
refuse IO "a missing backup file" lic restore "$E2E_TMP/nothing.backup"
refuse USAGE "restore needs a file" lic restore

# ---- audit and secrecy ---------------------------------------------------------------------

check "audit verify on A" lic audit verify
check_eq "one backup event" 1 "$(grep -c '"action":"backup"' "$STORE/audit.log")"
check_eq "four restore events (the refused ones wrote none)" 4 "$(grep -c '"action":"restore"' "$STORE/audit.log")"
check_match "the backup event counts tenants and versions" '"action":"backup","detail":"3 tenants, 5 versions"' \
	"$(cat "$STORE/audit.log")"
# (check runs its command with stdin from /dev/null: the script goes in a file.)
cat >no-key-material.py <<'EOF'
import base64, re, sys
output = open(sys.argv[1]).read() + open(sys.argv[5]).read()
kek = open(sys.argv[2], "rb").read()
assert "PRIVATE KEY" not in output, "a PEM private key"
assert kek.hex() not in output and base64.b64encode(kek).decode() not in output, "the KEK"
for path in sys.argv[3:5]:
    for sealed in re.findall(r"<SealedPrivateKey>([^<]+)<", open(path).read()):
        assert sealed[:40] not in output, "a sealed private key"
EOF
check "no output holds key material (sealed keys, PEM private keys, the KEK)" python3 no-key-material.py \
	"$E2E_ALL_OUTPUT" "$STORE.kek" "$STORE/tenants/acme.xml" "$STORE/tenants/beta.xml" "$STORE/audit.log"

finish

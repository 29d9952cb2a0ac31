# keyring_cli.sh: the keyring commands of DESIGN.md §7b end to end: init,
# tenant add/list/disable/enable, keys list/pubkey, rekey and phased rollouts
# (with the clock moved through LICENSOR_TEST_NOW), revoke, reinstate,
# destroy, activate, the error codes of every refusal, and that every refusal
# leaves the store byte-for-byte as it was. Ends with `audit verify` and a
# count of the audit lines: one per change made here, plus store-init.
#
# Needs LICENSOR_BIN; uses bash, coreutils, openssl and python3.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_require_binary

cd "$E2E_TMP"
unset LICENSOR_KEK_FILE LICENSOR_PASSPHRASE_FILE
export LICENSOR_ACTOR=e2e-keyring
STORE="$E2E_TMP/store"
export LICENSOR_STORE="$STORE"

T0=2026-11-23T17:00:00Z
T5=2026-11-28T17:00:00Z   # T0 + 5 days
T10=2026-12-03T17:00:00Z  # T0 + 10 days
T11=2026-12-04T17:00:00Z  # T0 + 11 days
T12=2026-12-05T17:00:00Z  # T0 + 12 days
T20=2026-12-13T17:00:00Z  # T0 + 20 days
export LICENSOR_TEST_NOW=$T0

# Every successful change writes one audit line; CHANGES counts what we expect.
CHANGES=0
change() {
	CHANGES=$((CHANGES + 1))
	check "$@"
}

# The JSON view of a tenant's keyring, in keys.json.
keys_json() {
	lic keys list "$1" --json >keys.json
}
# state TENANT VERSION: the version's state as `keys list --json` shows it now.
state() {
	keys_json "$1" && json keys.json "[v['state'] for v in d if v['version'] == $2][0]"
}
# bits TENANT VERSION: the RSA modulus size of the version's public key, read by openssl.
bits() {
	lic keys pubkey "$1" --version "$2" | openssl pkey -pubin -noout -text | sed -n 's/^Public-Key: (\([0-9]*\) bit)$/\1/p'
}

# ---- init ------------------------------------------------------------------------

check "init creates a store" lic init --store "$STORE"
check_mode "store directory is 0700" 700 "$STORE"
check_mode "tenants/ is 0700" 700 "$STORE/tenants"
check_mode "world.xml is 0600" 600 "$STORE/world.xml"
check_mode "KEK file DIR.kek is created 0600 beside the store" 600 "$STORE.kek"
check_eq "KEK file holds 32 bytes" 32 "$(stat -c %s "$STORE.kek")"
check_match "world.xml records the KEK file by its absolute path" \
	"<Kek Source=\"file\" Path=\"$STORE.kek\"/>" "$(cat "$STORE/world.xml")"
check_eq "the tenants/ directory starts empty" "" "$(ls -A "$STORE/tenants")"
check_eq "init writes the store-init audit line" 1 "$(wc -l <"$STORE/audit.log")"
check_match "the first audit line is store-init" '"action":"store-init"' "$(head -1 "$STORE/audit.log")"

refuse STATE "init refuses an existing store" lic init --store "$STORE"
refuse STATE "init refuses an existing store (LICENSOR_STORE)" lic init
refuse USAGE "init takes no arguments" lic init extra --store "$STORE"

# ---- tenants ---------------------------------------------------------------------

change "tenant add acme" lic tenant add acme
check_mode "tenant file is 0600" 600 "$STORE/tenants/acme.xml"
check_match "tenant add names version 1 and its key id" \
	'^tenant acme added: version 1 \(rsa-2048, key id [0-9a-f]{32}\) is active' "$(cat "$E2E_OUT")"
refuse STATE "tenant add refuses an existing tenant" lic tenant add acme
refuse USAGE "tenant add refuses a bad name (punctuation)" lic tenant add 'bad!'
refuse USAGE "tenant add refuses a bad name (upper case)" lic tenant add Acme
refuse USAGE "tenant add refuses a bad name (path)" lic tenant add ../acme
refuse USAGE "tenant add refuses a bad name (leading dash)" lic tenant add -- -acme
refuse USAGE "tenant add refuses a bad name (empty)" lic tenant add ''
refuse UNSUPPORTED_VERSION "tenant add refuses rsa-1024" lic tenant add old --algorithm rsa-1024
refuse UNSUPPORTED_VERSION "tenant add refuses an unknown algorithm" lic tenant add old --algorithm rsa-512
refuse USAGE "tenant add refuses an unknown option" lic tenant add old --colour red
refuse USAGE "tenant refuses an unknown verb" lic tenant rename acme
refuse USAGE "unknown command" lic frobnicate
change "tenant add big --algorithm rsa-3072" lic tenant add big --algorithm rsa-3072
check_eq "rsa-3072 tenant: openssl reads a 3072-bit key" 3072 "$(bits big 1)"
check_eq "rsa-3072 tenant: keys list says rsa-3072" rsa-3072 "$(keys_json big && json keys.json 'd[0]["algorithm"]')"

check "tenant list --json" lic tenant list --json
cp "$E2E_OUT" tenants.json
check_eq "tenant list --json names every tenant, sorted" '["acme", "big"]' "$(json tenants.json '[t["tenant"] for t in d]')"
check_eq "tenant list --json: enabled, one version, signing version 1" '[false, 1, 1]' \
	"$(json tenants.json '[d[0]["disabled"], d[0]["versions"], d[0]["signing_version"]]')"
check "tenant list (text)" lic tenant list
check_match "tenant list (text) shows acme enabled" 'acme +enabled +1 +1' "$(cat "$E2E_OUT")"

# ---- keys list / pubkey --------------------------------------------------------------

check "keys list --json" lic keys list acme --json
cp "$E2E_OUT" keys.json
check_eq "keys list --json is an array of one version" 1 "$(json keys.json 'len(d)')"
check_eq "keys list --json has every documented field" true \
	"$(json keys.json 'all(k in d[0] for k in ["version","key_id","algorithm","origin","state","compromised","created_at"])')"
check_eq "version 1: number, algorithm, origin, state, compromised, created_at" \
	'[1, "rsa-2048", "managed", "active", false, "2026-11-23T17:00:00Z"]' \
	"$(json keys.json '[d[0][k] for k in ["version","algorithm","origin","state","compromised","created_at"]]')"
KEY_ID_1=$(json keys.json 'd[0]["key_id"]')
check_match "key_id is 32 lowercase hex" '^[0-9a-f]{32}$' "$KEY_ID_1"
check "keys pubkey --version 1" lic keys pubkey acme --version 1
cp "$E2E_OUT" acme-v1.pem
check_match "keys pubkey prints a PEM public key" '^-----BEGIN PUBLIC KEY-----' "$(head -1 acme-v1.pem)"
check "keys pubkey output parses with openssl" openssl pkey -pubin -in acme-v1.pem -noout
check_eq "keys pubkey: openssl reads a 2048-bit RSA key" 2048 "$(bits acme 1)"
SPKI_HASH=$(openssl pkey -pubin -in acme-v1.pem -outform DER | sha256sum | cut -c1-32)
check_eq "key_id = first 16 bytes of SHA-256(DER SPKI)" "$SPKI_HASH" "$KEY_ID_1"
check_match "tenant file records the same key id" "KeyId=\"$KEY_ID_1\"" "$(cat "$STORE/tenants/acme.xml")"
check "keys list (text)" lic keys list acme
check_match "keys list (text) shows version 1 active and signing" "^1 +$KEY_ID_1 +rsa-2048 +managed +active +signing" \
	"$(sed -n 3p "$E2E_OUT")"

refuse UNKNOWN_KEY "keys pubkey of a missing version" lic keys pubkey acme --version 9
refuse USAGE "keys pubkey without --version" lic keys pubkey acme
refuse USAGE "keys pubkey --version 0" lic keys pubkey acme --version 0
refuse USAGE "keys pubkey --version abc" lic keys pubkey acme --version abc
refuse UNKNOWN_TENANT "keys list of an unknown tenant" lic keys list nobody --json
refuse UNKNOWN_TENANT "keys pubkey of an unknown tenant" lic keys pubkey nobody --version 1
refuse USAGE "keys list of a bad tenant name" lic keys list ../acme
refuse USAGE "keys list with an unknown option" lic keys list acme --yaml
refuse USAGE "keys with an unknown verb" lic keys show acme

check "rollout status of a never re-keyed tenant" lic rollout status acme --json
check_eq "rollout status --json is {} for a never re-keyed tenant" "{}" "$(cat "$E2E_OUT")"
check_eq "... and that is a JSON object with no field" 0 "$(json "$E2E_OUT" 'len(d)')"
refuse UNKNOWN_TENANT "rollout status of an unknown tenant" lic rollout status nobody --json
refuse USAGE "rollout with an unknown verb" lic rollout start acme

# ---- rekey and phased rollout --------------------------------------------------------

refuse UNSUPPORTED_VERSION "rekey refuses rsa-1024" lic rekey acme --algorithm rsa-1024 --immediate
refuse USAGE "rekey --rollout 5x (bad unit)" lic rekey acme --rollout 5x
refuse USAGE "rekey --rollout 10 (no unit)" lic rekey acme --rollout 10
refuse USAGE "rekey --rollout d (no number)" lic rekey acme --rollout d
refuse USAGE "rekey --rollout -5d" lic rekey acme --rollout -5d
refuse USAGE "rekey --rollout and --immediate together" lic rekey acme --rollout 5d --immediate
refuse USAGE "rekey --reason bogus" lic rekey acme --reason bogus
refuse USAGE "rekey --reason compromised with a phased rollout" lic rekey acme --reason compromised --rollout 5d
refuse USAGE "rekey with an unknown option" lic rekey acme --frob
refuse USAGE "rekey of a bad tenant name" lic rekey 'Bad!'
refuse USAGE "rekey without a tenant" lic rekey
refuse UNKNOWN_TENANT "rekey of an unknown tenant" lic rekey nobody --immediate

change "rekey acme --rollout 10d at T" lic rekey acme --rollout 10d
check "rollout status --json at T" lic rollout status acme --json
cp "$E2E_OUT" rollout.json
check_eq "rollout status --json has every documented field" true \
	"$(json rollout.json 'all(k in d for k in ["from_version","to_version","started_at","duration_s","fraction","complete"])')"
check_eq "rollout at T: from 1 to 2, started T, 10 days, fraction 0, not complete" \
	'[1, 2, "2026-11-23T17:00:00Z", 864000, 0.0, false]' \
	"$(json rollout.json '[d[k] for k in ["from_version","to_version","started_at","duration_s","fraction","complete"]]')"
check_eq "during the rollout both versions are active" "active active" "$(state acme 1) $(state acme 2)"
KEY_ID_2=$(json keys.json '[v["key_id"] for v in d if v["version"] == 2][0]')
check_eq "version 2 has its own key id, hash of its SPKI" \
	"$(lic keys pubkey acme --version 2 | openssl pkey -pubin -outform DER | sha256sum | cut -c1-32)" "$KEY_ID_2"

export LICENSOR_TEST_NOW=$T5
check "rollout status --json at T+5d" lic rollout status acme --json
cp "$E2E_OUT" rollout.json
check_eq "at T+5d of a 10d rollout: fraction 0.5, not complete" "0.5 false" \
	"$(json rollout.json 'd["fraction"]') $(json rollout.json 'd["complete"]')"
refuse STATE "a second rekey during a running rollout is refused" lic rekey acme
refuse STATE "... also with its own --rollout" lic rekey acme --rollout 1d
check_eq "at T+5d version 1 is still active" active "$(state acme 1)"

export LICENSOR_TEST_NOW=$T10
check "rollout status --json at T+10d" lic rollout status acme --json
cp "$E2E_OUT" rollout.json
check_eq "at T+10d the rollout is complete, fraction 1" "true 1.0" \
	"$(json rollout.json 'd["complete"]') $(json rollout.json 'd["fraction"]')"
check_eq "at T+10d version 1 shows retained, version 2 active" "retained active" "$(state acme 1) $(state acme 2)"

# The next change to acme records the completed rollout as its own audit line.
CHANGES=$((CHANGES + 1)) # rollout-complete (1 → 2), noticed by the rekey below
change "rekey acme --immediate --algorithm rsa-3072 after the rollout completed" \
	lic rekey acme --immediate --algorithm rsa-3072
check_eq "rekey --algorithm rsa-3072: openssl reads a 3072-bit key" 3072 "$(bits acme 3)"
check_eq "after rekey --immediate: 1 retained, 2 retained, 3 active" "retained retained active" \
	"$(state acme 1) $(state acme 2) $(state acme 3)"
check_eq "the new version says rsa-3072" rsa-3072 "$(json keys.json '[v["algorithm"] for v in d if v["version"] == 3][0]')"
check "rollout status --json after --immediate" lic rollout status acme --json
cp "$E2E_OUT" rollout.json
check_eq "--immediate: from 2 to 3, duration 0, fraction 1, complete" '[2, 3, 0, 1.0, true]' \
	"$(json rollout.json '[d[k] for k in ["from_version","to_version","duration_s","fraction","complete"]]')"
check_match "the audit log has the rollout-complete line" '"action":"rollout-complete","tenant":"acme","version":2' \
	"$(cat "$STORE/audit.log")"

# --immediate during a running rollout completes it and starts the next.
change "rekey acme --rollout 4d at T+10d" lic rekey acme --rollout 4d
export LICENSOR_TEST_NOW=$T11
refuse STATE "rekey during the 4d rollout is refused" lic rekey acme
change "rekey acme --immediate during the running rollout" lic rekey acme --immediate
check_eq "3, 4 retained and 5 active" "retained retained active" "$(state acme 3) $(state acme 4) $(state acme 5)"
check "rollout status after --immediate over a running rollout" lic rollout status acme --json
check_eq "... from 4 to 5, complete" "[4, 5, true]" "$(json "$E2E_OUT" '[d["from_version"], d["to_version"], d["complete"]]')"

# Breach response: --reason compromised flags the old version.
change "rekey acme --reason compromised" lic rekey acme --reason compromised
keys_json acme
check_eq "version 5 is compromised and retained, 6 active and clean" '["retained", true, "active", false]' \
	"$(json keys.json '[d[4]["state"], d[4]["compromised"], d[5]["state"], d[5]["compromised"]]')"
check_eq "compromised: versions 1-4 are not flagged" '[false, false, false, false]' \
	"$(json keys.json '[v["compromised"] for v in d[:4]]')"
check_match "the audit line of the breach rekey carries the reason" '"action":"rekey","tenant":"acme","version":6,"reason":"compromised"' \
	"$(tail -1 "$STORE/audit.log")"
refuse STATE "activate of a compromised version is refused" lic activate acme --version 5

# ---- revoke / reinstate / destroy / activate ---------------------------------------------

change "tenant add life" lic tenant add life
refuse STATE "revoke of the only active version needs --yes" lic revoke life --version 1
change "revoke --yes of the only active version" lic revoke life --version 1 --yes
check_eq "version 1 is revoked" revoked "$(state life 1)"
check_match "revoke --yes warns that issuance has stopped" 'no active version' "$(cat "$E2E_OUT")"
refuse STATE "revoke of a revoked version" lic revoke life --version 1 --yes
refuse STATE "activate of a revoked version" lic activate life --version 1
change "reinstate version 1" lic reinstate life --version 1
check_eq "reinstate brings version 1 back to active" active "$(state life 1)"
refuse STATE "reinstate of an active version" lic reinstate life --version 1
refuse STATE "activate of the active version" lic activate life --version 1
refuse STATE "destroy of the active version (with --yes)" lic destroy life --version 1 --yes

change "rekey life --immediate" lic rekey life --immediate
check_eq "life: 1 retained, 2 active" "retained active" "$(state life 1) $(state life 2)"
refuse STATE "reinstate of a retained version" lic reinstate life --version 1
refuse STATE "destroy without --yes" lic destroy life --version 1
change "destroy --yes of retained version 1" lic destroy life --version 1 --yes
check_eq "version 1 is destroyed" destroyed "$(state life 1)"
check_eq "the destroyed version's SealedPrivateKey is gone from tenants/life.xml, version 2 keeps its own" \
	"1:0 2:1" \
	"$(python3 -c '
import sys, xml.etree.ElementTree as ET
ns = "{urn:licensor:v1}"
root = ET.parse(sys.argv[1]).getroot()
print(" ".join("%s:%d" % (v.get("Number"), len(v.findall(ns + "SealedPrivateKey"))) for v in root.findall(ns + "Version")))
' "$STORE/tenants/life.xml")"
check_eq "the destroyed version is marked destroyed in tenants/life.xml" destroyed \
	"$(python3 -c '
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
print(root.find("{urn:licensor:v1}Version[@Number=\"1\"]").get("State"))
' "$STORE/tenants/life.xml")"
refuse STATE "destroy twice" lic destroy life --version 1 --yes
refuse STATE "activate of a destroyed version" lic activate life --version 1
refuse STATE "revoke of a destroyed version" lic revoke life --version 1 --yes
refuse STATE "reinstate of a destroyed version" lic reinstate life --version 1

change "rekey life --immediate (version 3)" lic rekey life --immediate
change "activate retained version 2" lic activate life --version 2
check_eq "activate: version 2 active, the other active one (3) retained" "active retained" \
	"$(state life 2) $(state life 3)"
check "tenant list --json after activate" lic tenant list --json
check_eq "the signing version is the activated one" 2 "$(json "$E2E_OUT" '[t["signing_version"] for t in d if t["tenant"] == "life"][0]')"
change "revoke retained version 3 (no --yes needed)" lic revoke life --version 3
change "reinstate version 3" lic reinstate life --version 3
check_eq "a reinstated retained version is retained again, not active" "retained active" \
	"$(state life 3) $(state life 2)"

refuse UNKNOWN_KEY "revoke of a missing version" lic revoke life --version 99 --yes
refuse UNKNOWN_KEY "reinstate of a missing version" lic reinstate life --version 99
refuse UNKNOWN_KEY "destroy of a missing version" lic destroy life --version 99 --yes
refuse UNKNOWN_KEY "activate of a missing version" lic activate life --version 99
refuse USAGE "revoke without --version" lic revoke life
refuse USAGE "activate --version 0" lic activate life --version 0
refuse USAGE "activate --version 2x" lic activate life --version 2x
refuse USAGE "activate takes no --yes" lic activate life --version 3 --yes
refuse USAGE "revoke with an unknown option" lic revoke life --version 3 --force
refuse USAGE "destroy of a bad tenant name" lic destroy 'LIFE' --version 1 --yes
refuse UNKNOWN_TENANT "revoke of an unknown tenant" lic revoke nobody --version 1 --yes
refuse UNKNOWN_TENANT "reinstate of an unknown tenant" lic reinstate nobody --version 1
refuse UNKNOWN_TENANT "destroy of an unknown tenant" lic destroy nobody --version 1 --yes
refuse UNKNOWN_TENANT "activate of an unknown tenant" lic activate nobody --version 1

# ---- disable / enable ------------------------------------------------------------------

change "tenant disable life" lic tenant disable life
check "tenant list --json shows the tenant disabled" lic tenant list --json
check_eq "life is disabled, acme is not" "[true, false]" \
	"$(json "$E2E_OUT" '[[t["disabled"] for t in d if t["tenant"] == n][0] for n in ["life", "acme"]]')"
refuse TENANT_DISABLED "rekey of a disabled tenant" lic rekey life --immediate
refuse TENANT_DISABLED "revoke of a disabled tenant" lic revoke life --version 3
refuse TENANT_DISABLED "reinstate of a disabled tenant" lic reinstate life --version 3
refuse TENANT_DISABLED "destroy of a disabled tenant" lic destroy life --version 3 --yes
refuse TENANT_DISABLED "activate of a disabled tenant" lic activate life --version 3
refuse STATE "disable of a disabled tenant" lic tenant disable life
check "keys list of a disabled tenant still works" lic keys list life --json
check_eq "... and shows its three versions" 3 "$(json "$E2E_OUT" 'len(d)')"
check "keys list (text) of a disabled tenant" lic keys list life
check_match "... says DISABLED" 'DISABLED' "$(head -1 "$E2E_OUT")"
check "rollout status of a disabled tenant still works" lic rollout status life --json
change "tenant enable life" lic tenant enable life
refuse STATE "enable of an enabled tenant" lic tenant enable life
refuse UNKNOWN_TENANT "disable of an unknown tenant" lic tenant disable nobody
change "revoke works again after enable" lic revoke life --version 3
check_eq "version 3 revoked after enable" revoked "$(state life 3)"

# ---- a completed rollout is recorded by the next writer, whoever it is --------------------

change "rekey big --rollout 1d" lic rekey big --rollout 1d
export LICENSOR_TEST_NOW=$T12
CHANGES=$((CHANGES + 1)) # rollout-complete (1 → 2 of big), noticed by the revoke below
change "revoke of big's retained version 1 after its rollout completed" lic revoke big --version 1
check_eq "big: 1 revoked, 2 active" "revoked active" "$(state big 1) $(state big 2)"
export LICENSOR_TEST_NOW=$T20
check "rollout status much later is still complete" lic rollout status big --json
check_eq "... complete with fraction 1" "[true, 1.0]" "$(json "$E2E_OUT" '[d["complete"], d["fraction"]]')"

# ---- the audit log -----------------------------------------------------------------------

check "audit verify passes" lic audit verify
check_match "audit verify reports the line count" "verified: $((CHANGES + 1)) lines" "$(cat "$E2E_OUT")"
check_eq "audit.log has one line per change plus store-init" "$((CHANGES + 1))" "$(wc -l <"$STORE/audit.log")"
check_eq "every audit line is a JSON object with seq 1..N" true \
	"$(python3 -c '
import json, sys
lines = open(sys.argv[1]).read().splitlines()
print(json.dumps([json.loads(l)["seq"] for l in lines] == list(range(1, len(lines) + 1))))
' "$STORE/audit.log")"
check_eq "every audit line names the actor" "$((CHANGES + 1))" "$(grep -c '"actor":"e2e-keyring"' "$STORE/audit.log")"
check_eq "no refusal left a temporary file behind" "" "$(find "$STORE" -name '*.tmp*' -o -name '.*' -type f | head -5)"
check_eq "every store file is 0600" "" "$(find "$STORE" -type f ! -perm 600)"
check_eq "every store directory is 0700" "" "$(find "$STORE" -type d ! -perm 700)"

finish

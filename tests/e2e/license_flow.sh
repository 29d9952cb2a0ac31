# license_flow.sh: licenses end to end through the real binary (issue: the
# licenses piece of DESIGN.md §2, §3, §5): init → tenant → certify → publish →
# acquire → the UL passes `xmlsec1 --verify` with the tenant's public key →
# `licensor open` with the user's key prints the content key that
# `publish --content-key-out` wrote. Then every error code this path can
# produce, and the rollover promise: after `rekey --immediate` an old PL still
# gets a UL (signed by the new version), new PLs name the new version, a
# revoke gives KEY_REVOKED and a reinstate makes it work again.
#
# Needs LICENSOR_BIN; uses bash, coreutils, openssl, xmlsec1, python3.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_require_binary

cd "$E2E_TMP"
unset LICENSOR_KEK_FILE LICENSOR_PASSPHRASE_FILE
export LICENSOR_ACTOR=e2e-license
export LICENSOR_STORE="$E2E_TMP/store"
export LICENSOR_TEST_NOW=2026-11-23T17:00:00Z

# key id of a PL / the KeyName of a signed document
xml_text() { # FILE ELEMENT
	python3 -c 'import sys,re; d=open(sys.argv[1]).read(); m=re.search(r"<(?:\w+:)?"+sys.argv[2]+r"[^>]*>([^<]*)<", d); print(m.group(1) if m else "")' "$1" "$2"
}

check "init" lic init
check "tenant add contoso" lic tenant add contoso
check "tenant add fabrikam" lic tenant add fabrikam
lic keys pubkey contoso --version 1 >contoso-v1.pub.pem
lic keys pubkey fabrikam --version 1 >fabrikam-v1.pub.pem
V1=$(lic keys list contoso --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["key_id"])')

for user in bob carol; do
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out $user.pem 2>/dev/null
	openssl pkey -in $user.pem -pubout -out $user.pub.pem
done

# ---- the happy path ----
check "certify bob" lic certify contoso --principal Bob@Contoso.com --pubkey bob.pub.pem --days 31
cp "$E2E_OUT" bob-rac.xml
check "certify carol" lic certify contoso --principal carol@contoso.com --pubkey carol.pub.pem
cp "$E2E_OUT" carol-rac.xml
check "the RAC passes xmlsec1 --verify with the tenant key" \
	xmlsec1 --verify --pubkey-pem contoso-v1.pub.pem bob-rac.xml
check_eq "the RAC names its signing key" "$V1" "$(xml_text bob-rac.xml KeyName)"
check_eq "the RAC principal is lowercased" "bob@contoso.com" "$(xml_text bob-rac.xml Principal)"

check "publish doc-1" lic publish contoso --content-id doc-1 --owner alice@contoso.com \
	--grant 'bob@contoso.com:VIEW,PRINT' --grant '*@fabrikam.com:VIEW' --content-key-out doc-1.key
cp "$E2E_OUT" doc-1.pl.xml
check_mode "the content key file is 0600" 600 doc-1.key
check_eq "the PL names version 1" "$V1" "$(xml_text doc-1.pl.xml KeyId)"

check "acquire for bob" lic acquire --rac bob-rac.xml --pl doc-1.pl.xml
cp "$E2E_OUT" bob-ul.xml
check "the UL passes xmlsec1 --verify with the tenant key" \
	xmlsec1 --verify --pubkey-pem contoso-v1.pub.pem bob-ul.xml
expect_status_nonzero() { ! "$@" >/dev/null 2>&1; }
check "the UL does not verify with another tenant's key" \
	expect_status_nonzero xmlsec1 --verify --pubkey-pem fabrikam-v1.pub.pem bob-ul.xml
check_eq "bob's rights" "VIEW PRINT" "$(xml_text bob-ul.xml Rights)"
check_eq "the UL's principal" "bob@contoso.com" "$(xml_text bob-ul.xml Principal)"
check "open with bob's key" lic open --ul bob-ul.xml --user-key bob.pem
check_eq "open prints the content key publish wrote" "$(cat doc-1.key)" "$(cat "$E2E_OUT")"
expect_fail PL_INTEGRITY "open with carol's key" lic open --ul bob-ul.xml --user-key carol.pem
# NotAfter = min(now + 30 days (default validity), RAC NotAfter = now + 31 days)
check_eq "the UL's NotAfter is now + LicenseValidityDays" "2026-12-23T17:00:00Z" "$(xml_text bob-ul.xml NotAfter)"

# The owner gets every right.
check "certify alice" lic certify contoso --principal alice@contoso.com --pubkey carol.pub.pem
cp "$E2E_OUT" alice-rac.xml
check "acquire for the owner" lic acquire --rac alice-rac.xml --pl doc-1.pl.xml
check_eq "the owner holds OWNER and every right" \
	"VIEW EDIT PRINT EXPORT FORWARD REPLY EXTRACT VIEWRIGHTSDATA OWNER" "$(xml_text "$E2E_OUT" Rights)"

# Super-users get every right on every PL of the tenant.
check "certify the compliance officer" lic certify contoso --principal compliance@contoso.com --pubkey carol.pub.pem
cp "$E2E_OUT" compliance-rac.xml
expect_fail NO_RIGHTS "no grant, not yet a super-user" lic acquire --rac compliance-rac.xml --pl doc-1.pl.xml
check "superuser add" lic superuser add contoso Compliance@Contoso.com
check_eq "superuser list shows the normalized address" '["compliance@contoso.com"]' \
	"$(lic superuser list contoso --json)"
expect_fail STATE "adding the same super-user twice" lic superuser add contoso compliance@contoso.com
check "a super-user acquires" lic acquire --rac compliance-rac.xml --pl doc-1.pl.xml
check_eq "with every right" "VIEW EDIT PRINT EXPORT FORWARD REPLY EXTRACT VIEWRIGHTSDATA OWNER" \
	"$(xml_text "$E2E_OUT" Rights)"
check "superuser remove" lic superuser remove contoso compliance@contoso.com
expect_fail NO_RIGHTS "removed, no rights again" lic acquire --rac compliance-rac.xml --pl doc-1.pl.xml
expect_fail STATE "removing one who is not a super-user" lic superuser remove contoso nobody@contoso.com
expect_fail USAGE "a super-user must be an address" lic superuser add contoso '*@contoso.com'

# ---- error codes ----
expect_fail NO_RIGHTS "carol has no grant" lic acquire --rac carol-rac.xml --pl doc-1.pl.xml
check "certify a fabrikam user" lic certify fabrikam --principal dan@fabrikam.com --pubkey carol.pub.pem
cp "$E2E_OUT" fabrikam-rac.xml
expect_fail RAC_INVALID "a RAC of another tenant" lic acquire --rac fabrikam-rac.xml --pl doc-1.pl.xml
sed 's/bob@contoso.com/eve@contoso.com/' bob-rac.xml >forged-rac.xml
expect_fail RAC_INVALID "a RAC whose principal was changed" lic acquire --rac forged-rac.xml --pl doc-1.pl.xml
LICENSOR_TEST_NOW=2026-12-25T17:00:00Z expect_fail RAC_EXPIRED "a RAC past its NotAfter" \
	lic acquire --rac bob-rac.xml --pl doc-1.pl.xml
sed 's/doc-1/doc-2/' doc-1.pl.xml >tampered.pl.xml
expect_fail PL_INTEGRITY "a PL whose body was changed" lic acquire --rac bob-rac.xml --pl tampered.pl.xml
check "publish with a ContentValidUntil" lic publish contoso --content-id doc-3 --owner alice@contoso.com \
	--grant 'bob@contoso.com:VIEW' --valid-until 2026-11-24T00:00:00Z
cp "$E2E_OUT" doc-3.pl.xml
check "acquire before ContentValidUntil" lic acquire --rac bob-rac.xml --pl doc-3.pl.xml
check_eq "NotAfter is capped by ContentValidUntil" "2026-11-24T00:00:00Z" "$(xml_text "$E2E_OUT" NotAfter)"
LICENSOR_TEST_NOW=2026-11-25T00:00:00Z expect_fail PL_EXPIRED "acquire after ContentValidUntil" \
	lic acquire --rac bob-rac.xml --pl doc-3.pl.xml
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out stranger.pem 2>/dev/null
openssl pkey -in stranger.pem -pubout -out stranger.pub.pem
check "publish with a key the tenant never had" lic publish contoso --content-id doc-4 --owner alice@contoso.com \
	--grant 'bob@contoso.com:VIEW' --pubkey stranger.pub.pem
cp "$E2E_OUT" stranger.pl.xml
expect_fail UNKNOWN_KEY "a PL under an unknown key" lic acquire --rac bob-rac.xml --pl stranger.pl.xml
check "publish for a tenant that does not exist" lic publish ghost --content-id doc-5 --owner alice@contoso.com \
	--grant 'bob@contoso.com:VIEW' --pubkey stranger.pub.pem
cp "$E2E_OUT" ghost.pl.xml
expect_fail UNKNOWN_TENANT "a PL of an unknown tenant" lic acquire --rac bob-rac.xml --pl ghost.pl.xml
echo 'not xml' >garbage.xml
expect_fail MALFORMED "a PL that is not XML" lic acquire --rac bob-rac.xml --pl garbage.xml
sed 's/Version="1"/Version="2"/' doc-1.pl.xml >v2.pl.xml
expect_fail UNSUPPORTED_VERSION "a PL of an unknown Version" lic acquire --rac bob-rac.xml --pl v2.pl.xml
cat >entity.pl.xml <<'XML'
<?xml version="1.0"?>
<!DOCTYPE PublishingLicense [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<PublishingLicense xmlns="urn:licensor:v1" Version="1"><Body><Tenant>&secret;</Tenant></Body></PublishingLicense>
XML
expect_fail MALFORMED "an external entity is refused" lic acquire --rac bob-rac.xml --pl entity.pl.xml
check "no file content is echoed" bash -c "! grep -q root: '$E2E_ERR'"
check "tenant disable fabrikam" lic tenant disable fabrikam
check "publish to fabrikam with its key" lic publish fabrikam --content-id f-1 --owner dan@fabrikam.com \
	--pubkey fabrikam-v1.pub.pem
cp "$E2E_OUT" f-1.pl.xml
expect_fail TENANT_DISABLED "a disabled tenant issues nothing" lic acquire --rac fabrikam-rac.xml --pl f-1.pl.xml
check "tenant enable fabrikam" lic tenant enable fabrikam
check "then it issues again" lic acquire --rac fabrikam-rac.xml --pl f-1.pl.xml

# ---- the rollover promise ----
check "rekey --immediate" lic rekey contoso --immediate
lic keys pubkey contoso --version 2 >contoso-v2.pub.pem
V2=$(lic keys list contoso --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[1]["key_id"])')
check "an old PL still gets a UL" lic acquire --rac bob-rac.xml --pl doc-1.pl.xml
cp "$E2E_OUT" after-rekey-ul.xml
check_eq "signed by the new version" "$V2" "$(xml_text after-rekey-ul.xml KeyName)"
check "which xmlsec1 verifies with the new public key" \
	xmlsec1 --verify --pubkey-pem contoso-v2.pub.pem after-rekey-ul.xml
check "and the content key is the same" lic open --ul after-rekey-ul.xml --user-key bob.pem
check_eq "same content key after the rekey" "$(cat doc-1.key)" "$(cat "$E2E_OUT")"
check "publish after the rekey" lic publish contoso --content-id doc-6 --owner alice@contoso.com \
	--grant 'bob@contoso.com:VIEW'
check_eq "new PLs name the new version" "$V2" "$(xml_text "$E2E_OUT" KeyId)"
# A RAC signed by the new version, so that what is tested below is the PL's key.
check "certify bob under version 2" lic certify contoso --principal bob@contoso.com --pubkey bob.pub.pem
cp "$E2E_OUT" bob2-rac.xml
check_eq "the new RAC is signed by version 2" "$V2" "$(xml_text bob2-rac.xml KeyName)"
check "revoke version 1" lic revoke contoso --version 1
expect_fail KEY_REVOKED "an old PL after its version was revoked" lic acquire --rac bob2-rac.xml --pl doc-1.pl.xml
expect_fail RAC_INVALID "a RAC signed by a revoked version" lic acquire --rac bob-rac.xml --pl doc-1.pl.xml
check "reinstate version 1" lic reinstate contoso --version 1
check "the old PL works again" lic acquire --rac bob2-rac.xml --pl doc-1.pl.xml
check "and so does the RAC signed by version 1" lic acquire --rac bob-rac.xml --pl doc-1.pl.xml
check "revoke version 1 again" lic revoke contoso --version 1
check "destroy version 1" lic destroy contoso --version 1 --yes
expect_fail KEY_DESTROYED "an old PL after its version was destroyed" \
	lic acquire --rac bob2-rac.xml --pl doc-1.pl.xml

# ---- breach response: a compromised version vouches for nobody ----
check "publish under version 2" lic publish contoso --content-id doc-7 --owner alice@contoso.com \
	--grant 'bob@contoso.com:VIEW'
cp "$E2E_OUT" doc-7.pl.xml
check "rekey --immediate --reason compromised" lic rekey contoso --immediate --reason compromised
expect_fail RAC_INVALID "a RAC signed by the compromised version is refused (its key may sign anything now)" \
	lic acquire --rac bob2-rac.xml --pl doc-7.pl.xml
check "re-certify bob under version 3" lic certify contoso --principal bob@contoso.com --pubkey bob.pub.pem
cp "$E2E_OUT" bob3-rac.xml
check "content under the compromised version still opens" lic acquire --rac bob3-rac.xml --pl doc-7.pl.xml
cp "$E2E_OUT" doc-7-ul.xml
V3=$(lic keys list contoso --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[2]["key_id"])')
check_eq "signed by version 3" "$V3" "$(xml_text doc-7-ul.xml KeyName)"
check "audit verify" lic audit verify

finish

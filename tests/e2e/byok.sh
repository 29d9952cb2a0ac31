# byok.sh: bring your own key through PKCS#11 (DESIGN.md §1, §4, §7), end to
# end against SoftHSM2 with a token made in a temporary directory
# (SOFTHSM2_CONF) and keys generated inside it by `licensor pkcs11 keygen`:
#   - a BYOK tenant: certify, publish, acquire, the UL passes xmlsec1 --verify
#     with the token key's public half, open gives the published content key;
#   - rekey --byok to a second token key (old content still opens), then a
#     managed rekey; keys list shows origins; destroy of a BYOK version says
#     the key stays in the token;
#   - refusals that change nothing: a URI naming no object, a wrong PIN, a
#     token key that is not the recorded one, --byok with --algorithm;
#   - a token that goes away: acquire fails with INTERNAL and a sentence,
#     never a crash; the server logs the detail and answers a plain 500;
#   - init --pkcs11: a store whose KEK is wrapped by a token AES key opens
#     with the token and not without it;
#   - audit: the byok events carry the URI without the PIN.
#
# Needs LICENSOR_BIN, softhsm2 (/usr/lib/softhsm/libsofthsm2.so,
# softhsm2-util), xmlsec1, openssl, python3, curl.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_require_binary

MODULE=/usr/lib/softhsm/libsofthsm2.so
cd "$E2E_TMP"
unset LICENSOR_KEK_FILE LICENSOR_PASSPHRASE_FILE LICENSOR_PKCS11_MODULE
export LICENSOR_ACTOR=e2e-byok
export LICENSOR_STORE="$E2E_TMP/store"

mkdir -p tokens
cat >softhsm2.conf <<CONF
directories.tokendir = $E2E_TMP/tokens
objectstore.backend = file
log.level = ERROR
CONF
export SOFTHSM2_CONF="$E2E_TMP/softhsm2.conf"
check "a SoftHSM2 token in a temporary directory" \
	softhsm2-util --init-token --free --label licensor-e2e --so-pin 1234 --pin licensorpin
printf 'licensorpin\n' >pin.txt
chmod 600 pin.txt
TOKEN="pkcs11:token=licensor-e2e"
PIN="?pin-source=$E2E_TMP/pin.txt"

xml_text() { # FILE ELEMENT
	python3 -c 'import sys,re; d=open(sys.argv[1]).read(); m=re.search(r"<(?:\w+:)?"+sys.argv[2]+r"[^>]*>([^<]*)<", d); print(m.group(1) if m else "")' "$1" "$2"
}

check "keygen contoso-v1 in the token" \
	lic pkcs11 keygen "$TOKEN;object=contoso-v1$PIN" --rsa 2048 --pkcs11-module "$MODULE"
check "keygen contoso-v2 in the token" \
	lic pkcs11 keygen "$TOKEN;object=contoso-v2$PIN" --rsa 3072 --pkcs11-module "$MODULE"
check "keygen other in the token" \
	lic pkcs11 keygen "$TOKEN;object=other$PIN" --rsa 2048 --pkcs11-module "$MODULE"

check "init" lic init
check "tenant add --byok" lic tenant add contoso --byok "$TOKEN;object=contoso-v1$PIN" --pkcs11-module "$MODULE"
check_match "tenant add says the key stays in the token" "byok: the key stays in its token" "$(cat "$E2E_OUT")"
check "keys list --json" lic keys list contoso --json
cp "$E2E_OUT" keys1.json
check_eq "version 1 is byok" "byok" "$(json keys1.json 'd[0]["origin"]')"
check_eq "version 1 is active" "active" "$(json keys1.json 'd[0]["state"]')"
V1=$(json keys1.json 'd[0]["key_id"]')
check_match "the tenant file records the URI with the module, no private key" \
	"Pkcs11Uri>pkcs11:.*module-path" "$(cat store/tenants/contoso.xml)"
check "the tenant file holds no sealed key" \
	bash -c '! grep -q SealedPrivateKey store/tenants/contoso.xml'
lic keys pubkey contoso --version 1 >v1.pub.pem
check_eq "the recorded key id is the token key's" "$V1" \
	"$(openssl pkey -pubin -in v1.pub.pem -outform DER | sha256sum | cut -c1-32)"

# ---- licenses signed and unwrapped in the token ----
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out bob.pem 2>/dev/null
openssl pkey -in bob.pem -pubout -out bob.pub.pem
check "certify bob (signed in the token)" lic certify contoso --principal bob@contoso.com --pubkey bob.pub.pem
cp "$E2E_OUT" bob-rac.xml
check "the RAC passes xmlsec1 --verify" xmlsec1 --verify --pubkey-pem v1.pub.pem bob-rac.xml
check "publish doc-1" lic publish contoso --content-id doc-1 --owner alice@contoso.com \
	--grant 'bob@contoso.com:VIEW' --content-key-out doc-1.key
cp "$E2E_OUT" doc-1.pl.xml
check_eq "the PL names the token key" "$V1" "$(xml_text doc-1.pl.xml KeyId)"
check "acquire (unwrap and signature in the token)" lic acquire --rac bob-rac.xml --pl doc-1.pl.xml
cp "$E2E_OUT" ul-1.xml
check "the UL passes xmlsec1 --verify with the token key's public half" \
	xmlsec1 --verify --pubkey-pem v1.pub.pem ul-1.xml
check "open" lic open --ul ul-1.xml --user-key bob.pem
check_eq "open gives the published content key" "$(cat doc-1.key)" "$(cat "$E2E_OUT")"

# ---- refusals that change nothing ----
refuse UNKNOWN_KEY "a URI naming no object" lic tenant add fabrikam --byok "$TOKEN;object=missing$PIN"
printf 'wrongpin\n' >wrong-pin.txt
chmod 600 wrong-pin.txt
refuse INTERNAL "a wrong PIN" lic tenant add fabrikam --byok "$TOKEN;object=other?pin-source=$E2E_TMP/wrong-pin.txt"
check "the wrong PIN is not echoed" bash -c '! grep -q wrongpin "$1"' _ "$E2E_ERR"
refuse USAGE "a PIN in the URI would be stored: refused" lic tenant add fabrikam --byok "$TOKEN;object=other?pin-value=licensorpin"
check "the refusal does not echo the PIN" bash -c '! grep -q licensorpin "$1"' _ "$E2E_ERR"
refuse USAGE "init --pkcs11 with a PIN in the URI" lic init --store pin-store --pkcs11 "$TOKEN;object=store-kek?pin-value=licensorpin"
refuse USAGE "--byok with --algorithm" lic tenant add fabrikam --algorithm rsa-3072 --byok "$TOKEN;object=other$PIN"
refuse USAGE "a URI that is not pkcs11:" lic tenant add fabrikam --byok "file:///etc/passwd"
refuse USAGE "rekey --byok with --algorithm" lic rekey contoso --algorithm rsa-2048 --byok "$TOKEN;object=other$PIN"

# ---- rekey to a second token key, then to a managed key ----
check "rekey --byok --immediate" lic rekey contoso --byok "$TOKEN;object=contoso-v2$PIN" --immediate
check_match "rekey names the token key's algorithm" "rsa-3072, byok" "$(cat "$E2E_OUT")"
lic keys pubkey contoso --version 2 >v2.pub.pem
check "acquire the old PL after the rekey" lic acquire --rac bob-rac.xml --pl doc-1.pl.xml
cp "$E2E_OUT" ul-2.xml
check "signed by version 2 in the token" xmlsec1 --verify --pubkey-pem v2.pub.pem ul-2.xml
check "open the old content" lic open --ul ul-2.xml --user-key bob.pem
check_eq "old content opens" "$(cat doc-1.key)" "$(cat "$E2E_OUT")"
check "publish doc-2 (version 2)" lic publish contoso --content-id doc-2 --owner alice@contoso.com \
	--grant 'bob@contoso.com:VIEW' --content-key-out doc-2.key
cp "$E2E_OUT" doc-2.pl.xml
check "rekey to a managed key" lic rekey contoso --immediate
check "keys list" lic keys list contoso --json
cp "$E2E_OUT" keys3.json
check_eq "origins" "byok byok managed" "$(json keys3.json '" ".join(v["origin"] for v in d)')"
# Version 1, which signed bob's RAC, is about to be destroyed: certify again (version 3 signs).
check "certify bob again (managed signature)" lic certify contoso --principal bob@contoso.com --pubkey bob.pub.pem
cp "$E2E_OUT" bob-rac.xml
check "acquire doc-2 (unwrap in the token, signature managed)" lic acquire --rac bob-rac.xml --pl doc-2.pl.xml
cp "$E2E_OUT" ul-3.xml
check "open doc-2" lic open --ul ul-3.xml --user-key bob.pem
check_eq "doc-2 opens" "$(cat doc-2.key)" "$(cat "$E2E_OUT")"
# ---- rewrap: PLs of a BYOK version move to the managed version 3 (unwrapped in the token) ----
check "rewrap doc-2 (byok version 2) to version 3" lic rewrap contoso --out rewrapped doc-2.pl.xml
V3=$(json keys3.json 'd[2]["key_id"]')
check_eq "the rewrapped PL names version 3" "$V3" "$(xml_text rewrapped/doc-2.pl.xml KeyId)"
check "acquire the rewrapped PL" lic acquire --rac bob-rac.xml --pl rewrapped/doc-2.pl.xml
cp "$E2E_OUT" ul-4.xml
check "open the rewrapped PL's license" lic open --ul ul-4.xml --user-key bob.pem
check_eq "the rewrapped PL carries the same content key" "$(cat doc-2.key)" "$(cat "$E2E_OUT")"

# ---- custody: a BYOK key is never exported; a backup holds its reference ----
mkdir recipient
check "tpd createkey (the receiving side)" lic tpd createkey --out recipient
PUBLIC_KEY=$(ls recipient/PublicKey-*.txt)
refuse NOT_EXPORTABLE "export of a tenant with BYOK versions" lic export contoso --to "$PUBLIC_KEY" --out recipient
check_match "the refusal names a BYOK version" "version [12]" "$(cat "$E2E_ERR")"
check "no TPD was written" bash -c '! ls recipient/TPD-* 2>/dev/null'
check "backup" lic backup --out contoso.backup
mkdir rebuilt
cp store/world.xml rebuilt/
check "restore into a store rebuilt from world.xml" lic restore contoso.backup --store rebuilt --kek-file store.kek
check_match "restore says the BYOK key must be in the token" "must be in the token" "$(cat "$E2E_OUT")"
check "keys list of the rebuilt store" lic keys list contoso --json --store rebuilt --kek-file store.kek
check_eq "the rebuilt keyring has the same versions" "$(json keys3.json '[(v["key_id"], v["origin"], v["state"]) for v in d]')" \
	"$(json "$E2E_OUT" '[(v["key_id"], v["origin"], v["state"]) for v in d]')"
check "the rebuilt store unwraps in the token" lic acquire --rac bob-rac.xml --pl doc-2.pl.xml --store rebuilt --kek-file store.kek

check "destroy version 1 --yes" lic destroy contoso --version 1 --yes
check_match "destroy says the key stays in the token" "still in its token" "$(cat "$E2E_OUT")"
expect_fail KEY_DESTROYED "the destroyed BYOK version unwraps nothing" lic acquire --rac bob-rac.xml --pl doc-1.pl.xml

# ---- the token goes away: INTERNAL, never a crash ----
mv tokens tokens.away
mkdir tokens
expect_fail INTERNAL "acquire with the token gone" lic acquire --rac bob-rac.xml --pl doc-2.pl.xml
check_match "the sentence names the version and the token" "version 2 of contoso" "$(cat "$E2E_ERR")"

# The server: the detail goes to its log, the client gets a plain 500.
echo admin-token-for-the-byok-e2e-test >admin.token
chmod 600 admin.token
"$LICENSOR_BIN" serve --listen 127.0.0.1:0 --workers 1 --admin-token-file admin.token >serve.out 2>serve.err &
SERVER=$!
cleanup_server() { kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; }
trap 'exit_status=$?; cleanup_server; (exit $exit_status); e2e_on_exit' EXIT
for _ in $(seq 1 100); do grep -q 'serving http://127.0.0.1:' serve.out 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's|^licensor: serving \(http://127.0.0.1:[0-9]*\).*|\1|p' serve.out | head -1)
check_match "the server listens on loopback" "^http://127.0.0.1:[0-9]+$" "$URL"
{
	printf '<AcquireLicense xmlns="urn:licensor:v1"><Item>'
	sed '1{/^<?xml/d}' bob-rac.xml
	sed '1{/^<?xml/d}' doc-2.pl.xml
	printf '</Item></AcquireLicense>\n'
} >request.xml
STATUS=$(curl -s -o response.xml -w '%{http_code}' -H 'Content-Type: application/xml' --data-binary @request.xml "$URL/v1/licenses" || true)
check_match "the server answers (no crash)" "^(200|500)$" "$STATUS"
check_match "the item is INTERNAL with a plain sentence" "Code=\"INTERNAL\".*server log" "$(cat response.xml)"
check "the server is still alive" kill -0 "$SERVER"
check_match "the server log has the detail" "INTERNAL: the token key of version 2 of contoso is not available" "$(cat serve.err)"
cleanup_server
rm -rf tokens
mv tokens.away tokens
check "acquire works again with the token back" lic acquire --rac bob-rac.xml --pl doc-2.pl.xml

# ---- a store whose KEK is wrapped by a token AES key ----
check "keygen an AES-256 KEK key in the token" \
	lic pkcs11 keygen "$TOKEN;object=store-kek$PIN" --aes-256 --pkcs11-module "$MODULE"
check "init --pkcs11" lic init --store token-store --pkcs11 "$TOKEN;object=store-kek$PIN" --pkcs11-module "$MODULE"
check_match "world.xml names the token" 'Source="pkcs11"' "$(cat token-store/world.xml)"
check "no KEK file beside the token store" test ! -e token-store.kek
check "tenant add in the token store" lic tenant add fabrikam --store token-store
check "certify in the token store (KEK unwrapped by the token)" \
	lic certify fabrikam --store token-store --principal bob@fabrikam.com --pubkey bob.pub.pem
mv tokens tokens.away
mkdir tokens
refuse INTERNAL "the token store does not open without its token" lic tenant add northwind --store token-store
rm -rf tokens
mv tokens.away tokens

# ---- audit ----
check "audit verify" lic audit verify
check_match "tenant-add byok is audited with the URI" '"action":"tenant-add".*"reason":"byok".*byok rsa-2048 pkcs11:' "$(cat store/audit.log)"
check "no PIN value in the audit log" bash -c '! grep -q licensorpin store/audit.log'
finish

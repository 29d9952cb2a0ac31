# pkcs11_cli.sh: `licensor pkcs11 keygen` and `licensor pkcs11 show` end to
# end against a SoftHSM2 token made in the temporary directory: RSA and AES
# keys made in the token, the key id checked against openssl's reading of the
# public key, the module chosen by --pkcs11-module, LICENSOR_PKCS11_MODULE or
# the URI's module-path, pin-source files, and the error code of every
# refusal, with no PIN ever printed. Skips (passes) when SoftHSM2 is absent.
#
# Needs LICENSOR_BIN; uses bash, coreutils, openssl and softhsm2-util.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_require_binary

MODULE=/usr/lib/softhsm/libsofthsm2.so
if [[ ! -r $MODULE ]] || ! command -v softhsm2-util >/dev/null; then
	echo "SoftHSM2 is not installed: skipped"
	finish
fi

cd "$E2E_TMP"
unset LICENSOR_PKCS11_MODULE
mkdir -m 700 tokens
cat >softhsm2.conf <<EOF
directories.tokendir = $E2E_TMP/tokens
objectstore.backend = file
log.level = ERROR
EOF
export SOFTHSM2_CONF="$E2E_TMP/softhsm2.conf"
check "a SoftHSM2 token" softhsm2-util --init-token --free --label e2e-token --so-pin 1234 --pin e2epin
echo e2epin >pin
chmod 600 pin

TOKEN="pkcs11:token=e2e-token"
RSA_URI="$TOKEN;object=tenant-a-v1;id=%0a?pin-value=e2epin"

# ---- keygen ------------------------------------------------------------------------

check "keygen --rsa 2048" lic pkcs11 keygen "$RSA_URI" --rsa 2048 --pkcs11-module "$MODULE"
KEYGEN_OUT=$(cat "$E2E_OUT")
check_match "keygen prints the URI without its PIN" "uri: $TOKEN;object=tenant-a-v1;id=%0a"$'\n' "$KEYGEN_OUT"
check_eq "keygen prints no PIN" "" "$(grep -o e2epin <<<"$KEYGEN_OUT" || true)"
KEY_ID=$(sed -n 's/^key id: \([0-9a-f]\{32\}\)$/\1/p' <<<"$KEYGEN_OUT")
check_match "keygen prints a 32-hex-digit key id" '^[0-9a-f]{32}$' "$KEY_ID"

check "show --pem gives the public key" lic pkcs11 show "$RSA_URI" --pem --pkcs11-module "$MODULE"
cp "$E2E_OUT" public.pem
check "openssl reads the public key" openssl pkey -pubin -in public.pem -noout
check_eq "openssl sees a 2048-bit key" 2048 \
	"$(openssl pkey -pubin -in public.pem -noout -text | sed -n 's/^Public-Key: (\([0-9]*\) bit)$/\1/p')"
check_eq "the key id is SHA-256 of the SPKI DER, first 16 bytes" \
	"$(openssl pkey -pubin -in public.pem -outform DER | sha256sum | cut -c1-32)" "$KEY_ID"

# the module from the environment, the PIN from a file
export LICENSOR_PKCS11_MODULE=$MODULE
check "show through LICENSOR_PKCS11_MODULE and pin-source" \
	lic pkcs11 show "$TOKEN;object=tenant-a-v1?pin-source=$E2E_TMP/pin"
SHOW_OUT=$(cat "$E2E_OUT")
check_match "show: kind" $'kind: RSA private key\n' "$SHOW_OUT"
check_match "show: bits" $'bits: 2048\n' "$SHOW_OUT"
check_match "show: the same key id" "key id: $KEY_ID" "$SHOW_OUT"
check_match "show: SoftHSM2 2.6 runs OAEP as raw RSA in the token" "oaep: raw RSA in the token" "$SHOW_OUT"
unset LICENSOR_PKCS11_MODULE
check "show through the URI's module-path" \
	lic pkcs11 show "$TOKEN;object=tenant-a-v1?pin-source=file:$E2E_TMP/pin&module-path=$MODULE"
check_match "show: by module-path, the same key id" "key id: $KEY_ID" "$(cat "$E2E_OUT")"

check "keygen --aes-256" lic pkcs11 keygen "$TOKEN;object=store-kek?pin-value=e2epin" --aes-256 \
	--pkcs11-module "$MODULE"
check_match "keygen --aes-256 prints the URI" "uri: $TOKEN;object=store-kek\$" "$(cat "$E2E_OUT")"
check "show an AES key" lic pkcs11 show "$TOKEN;object=store-kek?pin-value=e2epin" --pkcs11-module "$MODULE"
check_match "show: AES kind" "kind: AES secret key" "$(cat "$E2E_OUT")"
check_match "show: AES size" "bits: 256" "$(cat "$E2E_OUT")"

# ---- refusals -------------------------------------------------------------------------

expect_fail STATE "keygen over an existing label" \
	lic pkcs11 keygen "$RSA_URI" --rsa 2048 --pkcs11-module "$MODULE"
check_eq "the refusal does not print the PIN" "" "$(grep -o e2epin "$E2E_ERR" || true)"
expect_fail INTERNAL "a wrong PIN" \
	lic pkcs11 show "$TOKEN;object=tenant-a-v1?pin-value=1111" --pkcs11-module "$MODULE"
check_match "a wrong PIN: the CKR name" "the token refused the PIN: CKR_PIN_INCORRECT" "$(cat "$E2E_ERR")"
check_eq "a wrong PIN is not printed" "" "$(grep -o 1111 "$E2E_ERR" || true)"
expect_fail UNKNOWN_KEY "an unknown object" \
	lic pkcs11 show "$TOKEN;object=nobody?pin-value=e2epin" --pkcs11-module "$MODULE"
expect_fail UNKNOWN_KEY "an unknown token" \
	lic pkcs11 show "pkcs11:token=elsewhere;object=tenant-a-v1?pin-value=e2epin" --pkcs11-module "$MODULE"
expect_fail IO "a missing PIN file" \
	lic pkcs11 show "$TOKEN;object=tenant-a-v1?pin-source=$E2E_TMP/no-pin" --pkcs11-module "$MODULE"
echo e2epin >loose-pin
chmod 644 loose-pin
expect_fail IO "a PIN file others can read" \
	lic pkcs11 show "$TOKEN;object=tenant-a-v1?pin-source=$E2E_TMP/loose-pin" --pkcs11-module "$MODULE"
check_match "a PIN file others can read: says chmod 600" "chmod 600" "$(cat "$E2E_ERR")"
head -c 300 /dev/zero | tr '\0' 7 >long-pin
chmod 600 long-pin
expect_fail IO "a PIN longer than 255 bytes" \
	lic pkcs11 show "$TOKEN;object=tenant-a-v1?pin-source=$E2E_TMP/long-pin" --pkcs11-module "$MODULE"
expect_fail USAGE "whitespace hiding a pin-value" \
	lic pkcs11 show "$TOKEN;object=tenant-a-v1; pin-value=e2epin" --pkcs11-module "$MODULE"
check_eq "whitespace hiding a pin-value: the PIN is not printed" "" "$(grep -o e2epin "$E2E_ERR" || true)"
expect_fail IO "a module that does not exist" \
	lic pkcs11 show "$RSA_URI" --pkcs11-module "$E2E_TMP/libnothing.so"
expect_fail USAGE "a relative module path" lic pkcs11 show "$RSA_URI" --pkcs11-module libsofthsm2.so
expect_fail USAGE "not a pkcs11: URI" lic pkcs11 show "file:/etc/passwd" --pkcs11-module "$MODULE"
expect_fail USAGE "a URI naming no object" lic pkcs11 show "$TOKEN?pin-value=e2epin" --pkcs11-module "$MODULE"
expect_fail USAGE "keygen with neither --rsa nor --aes-256" \
	lic pkcs11 keygen "$TOKEN;object=x?pin-value=e2epin" --pkcs11-module "$MODULE"
expect_fail USAGE "keygen with both" \
	lic pkcs11 keygen "$TOKEN;object=x?pin-value=e2epin" --rsa 2048 --aes-256 --pkcs11-module "$MODULE"
expect_fail USAGE "keygen --rsa 1024" \
	lic pkcs11 keygen "$TOKEN;object=x?pin-value=e2epin" --rsa 1024 --pkcs11-module "$MODULE"
expect_fail USAGE "keygen without object=" \
	lic pkcs11 keygen "$TOKEN;id=%01?pin-value=e2epin" --aes-256 --pkcs11-module "$MODULE"
expect_fail USAGE "an unknown pkcs11 command" lic pkcs11 destroy "$RSA_URI"
check "the refused keygens made nothing" lic pkcs11 show "$TOKEN;object=tenant-a-v1?pin-value=e2epin" \
	--pkcs11-module "$MODULE"
expect_fail UNKNOWN_KEY "no key x was made" \
	lic pkcs11 show "$TOKEN;object=x?pin-value=e2epin" --pkcs11-module "$MODULE"
check "pkcs11 --help" lic pkcs11 --help

finish

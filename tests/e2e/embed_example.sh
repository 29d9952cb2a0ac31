# embed_example.sh: the embedding example (examples/embed_async.c,
# docs/embedding.md) builds against an installed licensor exactly as the docs
# say (`cmake --install` into a prefix, then cc with pkg-config), and answers
# AcquireLicense requests through the asynchronous API: a request of two good
# items gets 200 and two ULs; a request with one good item and one whose
# principal has no rights gets 200, one UL and one Error Code="NO_RIGHTS"; a
# body that is not XML gets 400 MALFORMED. A UL cut out of a response verifies
# with xmlsec1 as its own document and opens to the content key publish wrote.
#
# Needs LICENSOR_BIN (its directory is the build directory to install from) and
# LICENSOR_SOURCE_DIR; uses bash, cmake, cc, pkg-config, openssl, xmlsec1, python3.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_require_binary

SOURCE_DIR=${LICENSOR_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
BUILD_DIR=$(cd "$(dirname "$LICENSOR_BIN")" && pwd)
PREFIX="$E2E_TMP/prefix"

cd "$E2E_TMP"
unset LICENSOR_KEK_FILE LICENSOR_PASSPHRASE_FILE LICENSOR_TEST_NOW # the example reads the real clock
export LICENSOR_ACTOR=e2e-embed
export LICENSOR_STORE="$E2E_TMP/store"

# ---- install, then build the example the way docs/embedding.md says ----
check "cmake --install into a temporary prefix" cmake --install "$BUILD_DIR" --prefix "$PREFIX"
PC_FILE=$(find "$PREFIX" -name licensor.pc -path '*/pkgconfig/*' | head -1)
check_match "the install holds licensor.pc" 'pkgconfig/licensor\.pc$' "$PC_FILE"
PKG_CONFIG_PATH=$(dirname "$PC_FILE")
export PKG_CONFIG_PATH
LIB_DIR=$(pkg-config --variable=libdir licensor 2>/dev/null || true)
check "the install holds the shared library" test -e "$LIB_DIR/liblicensor.so"
check "the install holds licensor.h" test -f "$PREFIX/include/licensor.h"
# A sanitizer build's library needs its runtime in the program too.
EXTRA_FLAGS=()
if grep -q '^LICENSOR_SANITIZE:BOOL=ON' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null; then
	EXTRA_FLAGS=('-fsanitize=address,undefined')
fi
read -r -a PC_FLAGS <<<"$(pkg-config --cflags --libs licensor)"
check "the example compiles warning-free against the installed header and library" \
	cc -std=c17 -Wall -Wextra -Wshadow -Werror "${EXTRA_FLAGS[@]}" "$SOURCE_DIR/examples/embed_async.c" \
	"${PC_FLAGS[@]}" -o embed_async

# ---- a store, users, RACs and PLs (as in license_flow.sh) ----
check "init" lic init
check "tenant add contoso" lic tenant add contoso
lic keys pubkey contoso --version 1 >contoso-v1.pub.pem
for user in bob carol; do
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out $user.pem 2>/dev/null
	openssl pkey -in $user.pem -pubout -out $user.pub.pem
	check "certify $user" lic certify contoso --principal $user@contoso.com --pubkey $user.pub.pem
	cp "$E2E_OUT" $user-rac.xml
done
check "publish doc-1 (bob may view and print)" lic publish contoso --content-id doc-1 --owner alice@contoso.com \
	--grant 'bob@contoso.com:VIEW,PRINT' --content-key-out doc-1.key
cp "$E2E_OUT" doc-1.pl.xml
check "publish doc-2 (anyone at contoso.com may view)" lic publish contoso --content-id doc-2 \
	--owner alice@contoso.com --grant '*@contoso.com:VIEW'
cp "$E2E_OUT" doc-2.pl.xml

# An AcquireLicense body: the RAC and PL documents of each item, pasted as
# they are (only their XML declarations dropped: the signature and the OAEP
# label cover their bytes).
without_declaration() { sed '1{/^<?xml/d}' "$1"; }
acquire_request() { # RAC PL [RAC PL]...
	printf '<AcquireLicense xmlns="urn:licensor:v1">'
	while [[ $# -ge 2 ]]; do
		printf '<Item>'
		without_declaration "$1"
		without_declaration "$2"
		printf '</Item>'
		shift 2
	done
	printf '</AcquireLicense>\n'
}
acquire_request bob-rac.xml doc-1.pl.xml carol-rac.xml doc-2.pl.xml >good.xml
acquire_request bob-rac.xml doc-1.pl.xml carol-rac.xml doc-1.pl.xml >mixed.xml
echo 'this is not XML' >garbage.xml

# ---- run the example ----
LD_LIBRARY_PATH="$LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
	check "embed_async answers the three requests" \
	timeout 60 ./embed_async --save "$LICENSOR_STORE" good.xml mixed.xml garbage.xml
cp "$E2E_OUT" example.out
line_for() { grep "^$1: " example.out || true; }
check_eq "two good items: 200, two ULs" "good.xml: HTTP 200, 2 UseLicense, 0 Error" "$(line_for good.xml)"
check_eq "a good item and one without rights: 200, one UL, one NO_RIGHTS" \
	"mixed.xml: HTTP 200, 1 UseLicense, 1 Error NO_RIGHTS" "$(line_for mixed.xml)"
check_eq "a body that is not XML: 400 MALFORMED" "garbage.xml: HTTP 400, 0 UseLicense, 1 Error MALFORMED" \
	"$(line_for garbage.xml)"
check_eq "the engine's counters" "licenses issued 3, items refused 1" \
	"$(grep -o '^licenses issued [0-9]*, items refused [0-9]*' example.out)"

# The saved responses, read with a real XML parser: one Result per Item, in order.
results() {
	python3 - "$1" <<'PY'
import sys, xml.etree.ElementTree as ET
ns = "{urn:licensor:v1}"
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == ns + "AcquireLicenseResponse", root.tag
out = []
for result in root:
    (child,) = list(result)
    name = child.tag[len(ns):]
    out.append(f'{result.get("Index")}:{name}' + (f':{child.get("Code")}' if name == "Error" else ""))
print(" ".join(out))
PY
}
check_eq "good.xml's response, parsed" "0:UseLicense 1:UseLicense" "$(results good.xml.response.xml)"
check_eq "mixed.xml's response, parsed" "0:UseLicense 1:Error:NO_RIGHTS" "$(results mixed.xml.response.xml)"

# A UL is verified as its own document: cut its bytes out of the response.
cut_use_license() { # RESPONSE OUT: the bytes of the first UseLicense element, as they are
	python3 -c '
import re, sys
data = open(sys.argv[1], "rb").read()
open(sys.argv[2], "wb").write(re.search(rb"<UseLicense[ >].*?</UseLicense>", data, re.S).group(0))
' "$1" "$2"
}
check "cut bob's UL out of mixed.xml's response" cut_use_license mixed.xml.response.xml bob-ul.xml
check "the UL cut out of the response passes xmlsec1 --verify" \
	xmlsec1 --verify --pubkey-pem contoso-v1.pub.pem bob-ul.xml
check "licensor open reads it with bob's key" lic open --ul bob-ul.xml --user-key bob.pem
check_eq "and finds the content key publish wrote" "$(cat doc-1.key)" "$(cat "$E2E_OUT")"

finish

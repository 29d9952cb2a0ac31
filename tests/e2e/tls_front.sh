# tls_front.sh: the nginx configuration of docs/nginx-licensor.conf in front of
# `licensor serve`, with a throw-away certificate, on loopback: a license over
# HTTPS (verified with xmlsec1), the admin endpoint through the proxy, and
# the proxy reusing its upstream connections (keep-alive).
#
# Needs LICENSOR_BIN; uses nginx (nginx-light), openssl, curl, xmlsec1, python3.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_require_binary
SOURCE_DIR=${LICENSOR_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}

cd "$E2E_TMP"
unset LICENSOR_KEK_FILE LICENSOR_PASSPHRASE_FILE LICENSOR_TEST_NOW
export LICENSOR_STORE="$E2E_TMP/store"
PIDS=()
# The script's exit status is carried through the cleanup to e2e_on_exit.
trap 'exit_status=$?; for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done; (exit $exit_status); e2e_on_exit' EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# licensor, on a fresh store (the embedded default)
"$LICENSOR_BIN" serve --listen 127.0.0.1:0 --workers 1 >serve.out 2>serve.err &
PIDS+=($!)
for _ in $(seq 100); do grep -q '^licensor: serving' serve.out 2>/dev/null && break; sleep 0.1; done
UPSTREAM=$(sed -n 's|^licensor: serving http://\([0-9.:]*\).*|\1|p' serve.out)
check_match "licensor is listening" '^127\.0\.0\.1:[0-9]+$' "$UPSTREAM"
TOKEN=$(cat "$E2E_TMP/store.admin-token")

# a throw-away certificate for 127.0.0.1, and nginx with the documented config
mkdir -p certs nginx/tmp
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
	-keyout certs/key.pem -out certs/cert.pem 2>/dev/null
TLS_PORT=$(free_port)
sed -e "s|LICENSOR_UPSTREAM|$UPSTREAM|" -e "s|TLS_PORT|$TLS_PORT|" -e "s|CERT_DIR|$E2E_TMP/certs|g" \
	"$SOURCE_DIR/docs/nginx-licensor.conf" >nginx/nginx.conf
check "nginx accepts the documented configuration" nginx -t -p "$E2E_TMP/nginx" -c "$E2E_TMP/nginx/nginx.conf"
nginx -p "$E2E_TMP/nginx" -c "$E2E_TMP/nginx/nginx.conf" 2>nginx.err &
PIDS+=($!)
for _ in $(seq 100); do curl -s --cacert certs/cert.pem "https://127.0.0.1:$TLS_PORT/healthz" >/dev/null && break; sleep 0.1; done
HTTPS="https://127.0.0.1:$TLS_PORT"

check "healthz over HTTPS" curl -sf --cacert certs/cert.pem "$HTTPS/healthz"
check_eq "healthz says ok" "ok" "$(cat "$E2E_OUT")"

# a user, a RAC through the proxy (admin token), a PL, a license over HTTPS
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out alice.pem 2>/dev/null
openssl pkey -in alice.pem -pubout -out alice.pub
check "certify through the proxy" curl -sf --cacert certs/cert.pem -o rac.xml -H "Authorization: Bearer $TOKEN" \
	--data-binary @alice.pub "$HTTPS/v1/tenants/demo/certify?principal=alice@example.com"
check "publishing key through the proxy" curl -sf --cacert certs/cert.pem -o demo.pub -D demo.headers \
	"$HTTPS/v1/tenants/demo/publishing-key?client=laptop-1"
check_match "it names its key version" 'X-Key-Version: 1' "$(cat demo.headers)"
check "publish" lic publish demo --pubkey demo.pub --content-id doc-1 --owner alice@example.com \
	--grant 'alice@example.com:VIEW' --content-key-out doc-1.key
cp "$E2E_OUT" pl.xml
{ printf '<AcquireLicense xmlns="urn:licensor:v1"><Item>'; sed '/^<?xml/d' rac.xml pl.xml; printf '</Item></AcquireLicense>'; } >request.xml
for i in 1 2 3 4 5; do
	curl -sf --cacert certs/cert.pem -o response-$i.xml -H 'Content-Type: application/xml' \
		--data-binary @request.xml "$HTTPS/v1/licenses" || true
done
check_match "a license over HTTPS" '<UseLicense' "$(cat response-1.xml)"
python3 -c '
import re, sys
ul = re.search(r"<UseLicense\b.*?</UseLicense>", open("response-1.xml").read(), re.S).group(0)
open("ul.xml", "w").write(ul)'
check "the UL passes xmlsec1 --verify" xmlsec1 --verify --pubkey-pem demo.pub ul.xml
check "licensor open reads it" lic open --ul ul.xml --user-key alice.pem
check_eq "the content key is the publisher's" "$(cat doc-1.key)" "$(tr -d '\n' <"$E2E_OUT")"

# nginx kept its upstream connections: 5 licenses and more over few connections
ACCEPTED=$(curl -s "http://$UPSTREAM/metrics" | sed -n 's/^licensor_http_connections_accepted_total \([0-9]*\)$/\1/p')
check_match "the proxy reuses upstream connections: at most 4 accepted (3 from nginx, 1 this scrape) for 9 requests" \
	'^[1-4]$' "$ACCEPTED"

kill -TERM "${PIDS[1]}" "${PIDS[0]}"
wait "${PIDS[0]}" || true
finish

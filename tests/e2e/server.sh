# server.sh: `licensor serve` end to end on loopback (DESIGN.md §6, issue: the
# server). Licenses over HTTP (checked with xmlsec1 and `licensor open`), a
# batch whose items fail differently, keep-alive, pipelining, 200 concurrent
# connections, bad HTTP (each refused with the right 4xx and the connection
# closed, while others are served), a one-byte-a-second client, overload (503
# with Retry-After, then recovery), a rekey and a revoke while under load (no
# failed request; the change visible from the next requests on), SIGHUP,
# SIGTERM with requests in flight (every one answered, exit 0), and the
# embedded default (a fresh store, the printed curl session run as printed).
#
# Every server listens on 127.0.0.1 port 0 (a free port it prints) and is
# stopped by the script; every client socket has a timeout.
# Needs LICENSOR_BIN; uses bash, openssl, xmlsec1, python3, curl.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_require_binary
HTTP_CLIENT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/http_client.py"

cd "$E2E_TMP"
unset LICENSOR_KEK_FILE LICENSOR_PASSPHRASE_FILE LICENSOR_TEST_NOW
export LICENSOR_ACTOR=e2e-server
export LICENSOR_STORE="$E2E_TMP/store"

SERVER_PIDS=()
stop_servers() {
	for pid in "${SERVER_PIDS[@]}"; do
		kill -9 "$pid" 2>/dev/null || true
	done
}
# The script's exit status is carried through the cleanup to e2e_on_exit.
trap 'exit_status=$?; stop_servers; (exit $exit_status); e2e_on_exit' EXIT

# start_server NAME ARGS...: starts `licensor serve`, waits for its URL; sets PORT and PID.
start_server() {
	local name=$1
	shift
	"$LICENSOR_BIN" serve --listen 127.0.0.1:0 "$@" >"$name.out" 2>"$name.err" &
	PID=$!
	SERVER_PIDS+=("$PID")
	echo "$PID" >"$name.pid"
	for _ in $(seq 100); do
		if grep -q '^licensor: serving http://' "$name.out" 2>/dev/null; then
			PORT=$(sed -n 's|^licensor: serving http://127.0.0.1:\([0-9]*\).*|\1|p' "$name.out")
			return 0
		fi
		kill -0 "$PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "server $name did not start:"
	cat "$name.out" "$name.err"
	return 1
}

# The use licenses of an AcquireLicenseResponse, one file each: ul-0.xml, …
split_response() { # FILE PREFIX
	python3 - "$1" "$2" <<'EOF'
import re, sys
body = open(sys.argv[1]).read()
for i, ul in enumerate(re.findall(r"<UseLicense\b.*?</UseLicense>", body, re.S)):
    if 'xmlns="urn:licensor:v1"' not in ul.split(">", 1)[0]:
        ul = ul.replace("<UseLicense", '<UseLicense xmlns="urn:licensor:v1"', 1)
    open(f"{sys.argv[2]}-{i}.xml", "w").write(ul)
EOF
}

codes_of() { # FILE: the item results, "UL" or the error code, space-separated
	python3 -c '
import re, sys
body = open(sys.argv[1]).read()
out = []
for r in re.findall(r"<Result[^>]*>(.*?)</Result>", body, re.S):
    m = re.search(r"Code=\"([A-Z_]+)\"", r)
    out.append("UL" if "<UseLicense" in r else (m.group(1) if m else "?"))
print(" ".join(out))' "$1"
}

acquire_body() { # RAC PL [RAC PL ...]: an AcquireLicense document
	printf '<AcquireLicense xmlns="urn:licensor:v1">'
	while [[ $# -gt 0 ]]; do
		printf '<Item>'
		sed '/^<?xml/d' "$1"
		sed '/^<?xml/d' "$2"
		printf '</Item>'
		shift 2
	done
	printf '</AcquireLicense>'
}

# ---- a store, a user, content ----
check "init" lic init
check "tenant add demo" lic tenant add demo
lic keys pubkey demo --version 1 >demo-v1.pub.pem
V1=$(lic keys list demo --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["key_id"])')
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out bob.pem 2>/dev/null
openssl pkey -in bob.pem -pubout -out bob.pub.pem
lic certify demo --principal bob@example.com --pubkey bob.pub.pem >bob-rac.xml
lic publish demo --content-id doc-1 --owner alice@example.com --grant 'bob@example.com:VIEW' \
	--content-key-out doc-1.key >doc-1.pl.xml
lic publish demo --content-id doc-2 --owner alice@example.com --grant 'carol@example.com:VIEW' >doc-2.pl.xml
sed 's/doc-1/doc-9/' doc-1.pl.xml >tampered.pl.xml
acquire_body bob-rac.xml doc-1.pl.xml >one.xml
acquire_body bob-rac.xml doc-1.pl.xml bob-rac.xml doc-2.pl.xml bob-rac.xml tampered.pl.xml >mixed.xml
python3 -c 'import sys; sys.stdout.write("<AcquireLicense xmlns=\"urn:licensor:v1\">" + "".join(
    "<Item>" + open("bob-rac.xml").read().split("?>",1)[-1] + open("doc-1.pl.xml").read().split("?>",1)[-1] + "</Item>"
    for _ in range(int(sys.argv[1]))) + "</AcquireLicense>")' 20 >twenty.xml
python3 -c 'import sys; d=sys.stdin.read(); i=d.index("<Item>"); j=d.rindex("</Item>")+7; sys.stdout.write(d[:i] + d[i:j]*5 + d[j:])' <twenty.xml >hundred.xml
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >token
chmod 600 token
TOKEN=$(cat token)

# ---- licenses over HTTP ----
check "start the server" start_server main --workers 2 --admin-token-file token --header-timeout 2s \
	--request-timeout 3s
URL="http://127.0.0.1:$PORT"
check "POST /v1/licenses (curl)" curl -sf -o one.response.xml -H 'Content-Type: application/xml' \
	--data-binary @one.xml "$URL/v1/licenses"
check_eq "one item, one use license" "UL" "$(codes_of one.response.xml)"
split_response one.response.xml ul
check "the UL over HTTP passes xmlsec1 --verify with the tenant key" \
	xmlsec1 --verify --pubkey-pem demo-v1.pub.pem ul-0.xml
check "licensor open reads the UL with bob's key" lic open --ul ul-0.xml --user-key bob.pem
check_eq "the content key is the publisher's" "$(cat doc-1.key)" "$(tr -d '\n' <"$E2E_OUT")"

check "a batch whose items fail differently" curl -sf -o mixed.response.xml --data-binary @mixed.xml \
	-H 'Content-Type: application/xml' "$URL/v1/licenses"
check_eq "each item its own result" "UL NO_RIGHTS PL_INTEGRITY" "$(codes_of mixed.response.xml)"

check "certify over HTTP with the admin token" curl -sf -o http-rac.xml -H "Authorization: Bearer $TOKEN" \
	--data-binary @bob.pub.pem "$URL/v1/tenants/demo/certify?principal=Bob@Example.com&days=7"
check "the HTTP RAC passes xmlsec1 --verify" xmlsec1 --verify --pubkey-pem demo-v1.pub.pem http-rac.xml
acquire_body http-rac.xml doc-1.pl.xml >via-http-rac.xml
curl -sf -o via-http-rac.response.xml -H "Content-Type: application/xml" --data-binary @via-http-rac.xml "$URL/v1/licenses"
check_eq "a license with the RAC made over HTTP" "UL" "$(codes_of via-http-rac.response.xml)"
check "certify with a bad days value is refused" \
	bash -c "[[ \$(curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer $TOKEN' --data-binary @bob.pub.pem '$URL/v1/tenants/demo/certify?principal=b@example.com&days=0') == 400 ]]"

# ---- HTTP framing, bad HTTP, admin token, metrics ----
check "protocol checks (python raw sockets)" python3 "$HTTP_CLIENT" protocol 127.0.0.1 "$PORT" one.xml "$TOKEN"
cat "$E2E_OUT"
check "one byte a second is cut off (header timeout 2s)" python3 "$HTTP_CLIENT" slowloris 127.0.0.1 "$PORT"
cat "$E2E_OUT"
check "a client that stops reading is cut off (request timeout 3s)" \
	python3 "$HTTP_CLIENT" stalled 127.0.0.1 "$PORT" hundred.xml 30
cat "$E2E_OUT"
check "200 concurrent connections" python3 "$HTTP_CLIENT" concurrent 127.0.0.1 "$PORT" one.xml 200
cat "$E2E_OUT"

# ---- SIGHUP reloads ----
before=$(curl -s "$URL/metrics" | sed -n 's/^licensor_keyring_reloads_total \([0-9]*\)$/\1/p')
kill -HUP "$PID"
reloaded=""
for _ in $(seq 50); do
	after=$(curl -s "$URL/metrics" | sed -n 's/^licensor_keyring_reloads_total \([0-9]*\)$/\1/p')
	if [[ -n $after && -n $before && $after -gt $before ]]; then reloaded=yes && break; fi
	sleep 0.1
done
check_eq "SIGHUP reloads the keyring (licensor_keyring_reloads_total grows)" "yes" "$reloaded"

# ---- rekey and revoke under load ----
# The load re-reads load-body.xml when it changes: after the rekey it becomes
# bob's RAC signed by version 2 (a RAC signed by a revoked version is not
# trusted) with the same PL of version 1.
cp one.xml load-body.xml
# The load runs until load.json.stop appears (at most 60 s). The times are
# taken when each command has returned (its change is committed), so a slow
# key generation on a loaded machine cannot empty the windows checked below.
python3 "$HTTP_CLIENT" load 127.0.0.1 "$PORT" load-body.xml 60 load.json &
LOAD_PID=$!
sleep 1.5
REKEY_START=$(python3 -c 'import time; print(time.time())')
check "rekey --immediate while under load" lic rekey demo --immediate
REKEY_AT=$(python3 -c 'import time; print(time.time())')
V2=$(lic keys list demo --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[1]["key_id"])')
lic certify demo --principal bob@example.com --pubkey bob.pub.pem >bob-v2-rac.xml
acquire_body bob-v2-rac.xml doc-1.pl.xml >load-body.next && mv load-body.next load-body.xml
sleep 2
REVOKE_START=$(python3 -c 'import time; print(time.time())')
check "revoke version 1 while under load" lic revoke demo --version 1 --yes
REVOKE_AT=$(python3 -c 'import time; print(time.time())')
sleep 2.5
touch load.json.stop
wait "$LOAD_PID"
python3 - load.json "$REKEY_START" "$REKEY_AT" "$REVOKE_START" "$REVOKE_AT" "$V1" "$V2" >load.verdict <<'EOF'
import json, sys
data = json.load(open(sys.argv[1]))
rekey_start, rekey_at, revoke_start, revoke_at = (float(value) for value in sys.argv[2:6])
v1, v2 = sys.argv[6], sys.argv[7]
records = data["records"]
bad_status = [r for r in records if r["status"] != 200]
before = [r for r in records if r["sent"] < rekey_start - 0.05]
between = [r for r in records if rekey_at + 1.0 < r["sent"] < revoke_start - 0.05]
after = [r for r in records if r["sent"] > revoke_at + 1.0]
print("requests", len(records))
print("connection_errors", len(data["errors"]))
print("non_200", len(bad_status))
print("before_ok", int(bool(before) and all(r["codes"] == ["UL"] and v1 in r["signers"] for r in before)))
print("between_ok", int(bool(between) and all(r["codes"] == ["UL"] and v2 in r["signers"] for r in between)))
print("after_ok", int(bool(after) and all(r["codes"] == ["KEY_REVOKED"] for r in after)))
print("only_known", int(all(r["codes"] in (["UL"], ["KEY_REVOKED"]) for r in records)))
import collections
print("codes_after_revoke", dict(collections.Counter(" ".join(r["codes"]) for r in after)))
EOF
cat load.verdict
verdict() { sed -n "s/^$1 //p" load.verdict; }
check_match "the load ran" '^[1-9][0-9]*$' "$(verdict requests)"
check_eq "no connection failed during rekey and revoke" "0" "$(verdict connection_errors)"
check_eq "every request answered 200 during rekey and revoke" "0" "$(verdict non_200)"
check_eq "before the rekey, licenses signed by version 1" "1" "$(verdict before_ok)"
check_eq "from 1 s after the rekey on, licenses signed by version 2" "1" "$(verdict between_ok)"
check_eq "from 1 s after the revoke on, content of version 1 is KEY_REVOKED" "1" "$(verdict after_ok)"
check_eq "nothing but licenses or KEY_REVOKED at any time" "1" "$(verdict only_known)"
check "reinstate version 1" lic reinstate demo --version 1
sleep 1.2

# ---- SIGTERM with requests in flight ----
check "SIGTERM with requests in flight" python3 "$HTTP_CLIENT" inflight 127.0.0.1 "$PORT" twenty.xml 12 main.pid
cat "$E2E_OUT"
status=0
wait "$PID" || status=$?
check_eq "the server exits 0 after SIGTERM" "0" "$status"
check_match "it says it stopped" 'licensor: stopped' "$(cat main.err)"

# ---- overload: a tiny queue, a burst ----
check "start a server with one worker and a queue of 2" start_server small --workers 1 --queue-max 2
check "overload: 503 with Retry-After, then recovery" python3 "$HTTP_CLIENT" overload 127.0.0.1 "$PORT" twenty.xml 24
cat "$E2E_OUT"
kill -TERM "$PID"
wait "$PID" || true

# ---- the embedded default: a store that does not exist yet ----
mkdir session
check "serve on a store that does not exist yet" start_server fresh --store "$E2E_TMP/fresh/licensor"
check_mode "the KEK file beside it is 0600" 600 "$E2E_TMP/fresh/licensor.kek"
check_mode "the admin token file is 0600" 600 "$E2E_TMP/fresh/licensor.admin-token"
check "the demo tenant exists" lic keys list demo --store "$E2E_TMP/fresh/licensor"
sed -n '/^Try it/,/^Stop with/p' fresh.out | sed '1d;$d' | sed 's/^  //' >session/session.sh
check_match "a curl session is printed" 'curl .*/v1/licenses' "$(cat session/session.sh)"
check "the printed session runs as printed" bash -c "cd session && set -euo pipefail && . ./session.sh"
mapfile -t keys < <(grep -oE '[0-9a-f]{64}' "$E2E_OUT")
check_eq "it prints the content key twice: opened from the license, as published" "2 ${keys[0]:-none}" \
	"${#keys[@]} ${keys[1]:-missing}"
kill -TERM "$PID"
wait "$PID" || true

finish

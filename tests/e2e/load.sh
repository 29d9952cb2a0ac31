# load.sh: licensor-load (bench/load/, DESIGN.md §8) against `licensor serve`
# on loopback, short and bounded.
#
# A fresh store (the embedded default: tenant demo and an admin token), a
# user certified over HTTP, two PLs, and a body list of two AcquireLicense
# documents (`@path` lines, one relative, one absolute). licensor-load runs
# 2 s at 200/s on 4 connections: the count must be rate × duration (± 10 %),
# with no error, the percentiles in order, its CPU use and the server's
# reported, and the run bounded. Then a pipelined run, --steps with the human
# table, a run against a closed port (exit 1, one line), and bad command lines
# (exit 2). Nothing is asserted about speed.
#
# Needs LICENSOR_BIN and LICENSOR_LOAD_BIN; uses bash, openssl, curl, python3.

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_require_binary
if [[ -z ${LICENSOR_LOAD_BIN:-} || ! -x $LICENSOR_LOAD_BIN ]]; then
	fail "LICENSOR_LOAD_BIN must name the licensor-load binary (got '${LICENSOR_LOAD_BIN:-}')"
	finish
fi

cd "$E2E_TMP"
unset LICENSOR_KEK_FILE LICENSOR_PASSPHRASE_FILE LICENSOR_TEST_NOW
export LICENSOR_STORE="$E2E_TMP/store"
SERVER_PID=""
# Stops the server, then hands e2e_on_exit the script's own exit status.
on_exit() {
	local status=$?
	if [[ -n $SERVER_PID ]]; then
		kill -9 "$SERVER_PID" 2>/dev/null || true
	fi
	(exit "$status")
	e2e_on_exit
}
trap on_exit EXIT

"$LICENSOR_BIN" serve --listen 127.0.0.1:0 --workers 2 >serve.out 2>serve.err &
SERVER_PID=$!
for _ in $(seq 100); do grep -q '^licensor: serving' serve.out 2>/dev/null && break; sleep 0.1; done
URL=$(sed -n 's|^licensor: serving \(http://[0-9.:]*\).*|\1|p' serve.out)
check_match "the server is listening" '^http://127\.0\.0\.1:[0-9]+$' "$URL"
TOKEN=$(cat "$E2E_TMP/store.admin-token")

# a user, a RAC, two PLs, two bodies and a list naming them
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out alice.pem 2>/dev/null
openssl pkey -in alice.pem -pubout -out alice.pub
check "certify" curl -sf -o rac.xml -H "Authorization: Bearer $TOKEN" --data-binary @alice.pub \
	"$URL/v1/tenants/demo/certify?principal=alice@example.com"
check "publishing key" curl -sf -o demo.pub "$URL/v1/tenants/demo/publishing-key?client=load"
mkdir bodies
for i in 1 2; do
	check "publish $i" lic publish demo --pubkey demo.pub --content-id "doc-$i" --owner alice@example.com \
		--grant 'alice@example.com:VIEW'
	cp "$E2E_OUT" "pl-$i.xml"
	{
		printf '<AcquireLicense xmlns="urn:licensor:v1"><Item>'
		sed '/^<?xml/d' rac.xml "pl-$i.xml"
		printf '</Item></AcquireLicense>'
	} >"bodies/request-$i.xml"
done
printf '@bodies/request-1.xml\n\n@%s/bodies/request-2.xml\n' "$E2E_TMP" >bodies.list
check "one body answers 200 over curl" curl -sf -o response.xml -H 'Content-Type: application/xml' \
	--data-binary @bodies/request-1.xml "$URL/v1/licenses"
check_match "with a license" '<UseLicense' "$(cat response.xml)"

# 2 s at 200/s on 4 connections, the body list
check "licensor-load runs" "$LICENSOR_LOAD_BIN" --url "$URL/v1/licenses" --body bodies.list --rate 200 \
	--duration 2 --connections 4 --server-pid "$SERVER_PID" --json
cp "$E2E_OUT" run.json
check_eq "offered_rate" "200.0" "$(json run.json 'str(round(d["offered_rate"], 1))')"
check_eq "offered 400 requests" "400" "$(json run.json 'd["offered"]')"
check_eq "count within 10 % of 400" "True" "$(json run.json 'str(360 <= d["count"] <= 440)')"
check_eq "achieved_rate within 10 % of 200" "True" "$(json run.json 'str(180 <= d["achieved_rate"] <= 220)')"
check_eq "no errors by status or connection" "{}" "$(json run.json 'd["errors"]')"
check_eq "error_count 0" "0" "$(json run.json 'd["error_count"]')"
check_eq "every offered request is counted once" "True" "$(json run.json 'str(d["offered"] == d["count"] + d["error_count"])')"
check_eq "every answer is a 200" "True" "$(json run.json 'str(d["ok"] == d["count"])')"
check_eq "percentiles in order p50 <= p90 <= p99 <= p999 <= max" "True" \
	"$(json run.json 'str(0 < d["p50_ms"] <= d["p90_ms"] <= d["p99_ms"] <= d["p999_ms"] <= d["max_ms"])')"
check_eq "its own CPU and the server's are reported" "True" \
	"$(json run.json 'str(d["load_cpu_s"] >= 0 and d["server_cpu_s"] > 0 and d["server_pid"] > 0)')"
check_eq "bounded: it stopped within the drain" "True" "$(json run.json 'str(2 <= d["elapsed_s"] < 4.5)')"

# pipelining, one connection, a single body file (the path defaults to /v1/licenses)
check "pipelined run (4 deep, 1 connection)" "$LICENSOR_LOAD_BIN" --url "$URL" --body bodies/request-2.xml \
	--rate 100 --duration 1 --connections 1 --pipeline 4 --json
cp "$E2E_OUT" pipelined.json
check_eq "pipelined: 100 offered, all answered 200" "100 100 0" \
	"$(json pipelined.json 'str(d["offered"]) + " " + str(d["ok"]) + " " + str(d["error_count"])')"

# --steps: a JSON array, one object per rate; and the human table
check "steps, JSON" "$LICENSOR_LOAD_BIN" --url "$URL" --body bodies/request-1.xml --steps 50,100 --duration 0.5 --json
check_eq "one object per step" "[50.0, 100.0] [25, 50]" \
	"$(json "$E2E_OUT" 'str([x["offered_rate"] for x in d]) + " " + str([x["offered"] for x in d])')"
check "steps, table" "$LICENSOR_LOAD_BIN" --url "$URL" --body bodies/request-1.xml --steps 50,100 --duration 0.5
check_eq "the table has a header and a row per step" "3" "$(wc -l <"$E2E_OUT")"

# SIGTERM the server; then a run against its closed port fails at connect
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || true
SERVER_PID=""
status=0
run "$LICENSOR_LOAD_BIN" --url "$URL" --body bodies.list --rate 10 --duration 1 --json || status=$?
check_eq "a closed port: exit 1" "1" "$status"
check_match "with one line on stderr" '^licensor-load: cannot connect to [^'$'\n'']*$' "$(cat "$E2E_ERR")"

status=0
run "$LICENSOR_LOAD_BIN" --url "ftp://x" --body bodies.list --rate 10 --duration 1 || status=$?
check_eq "a bad URL is a usage error" "2" "$status"
status=0
run "$LICENSOR_LOAD_BIN" --url "$URL" --body bodies.list --rate 0 --duration 1 || status=$?
check_eq "rate 0 is a usage error" "2" "$status"
finish

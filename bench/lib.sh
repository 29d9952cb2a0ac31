# bench/lib.sh: what bench/run and bench/server/run.sh share. Sourced, with
# LICENSOR (the binary), WORK (a scratch directory) and LICENSOR_STORE set.
#
#   bench_fixture ITEMS   a store with tenant "bench", a user key and its RAC,
#                         64 PLs, and $WORK/bodies.txt: 64 AcquireLicense
#                         bodies of ITEMS items each ($WORK/body-N.xml, PLs
#                         round robin), as the '@' lines licensor-load reads
#   start_server ARGS...  `licensor serve --workers 2 ARGS` on 127.0.0.1 port 0;
#                         sets SERVER_PID and URL
#   stop_server           SIGTERM, then waits for it

bench_fixture() {
	"$LICENSOR" init >/dev/null
	"$LICENSOR" tenant add bench >/dev/null
	openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/user.pem" 2>/dev/null
	openssl pkey -in "$WORK/user.pem" -pubout -out "$WORK/user.pub"
	"$LICENSOR" certify bench --principal user@example.com --pubkey "$WORK/user.pub" >"$WORK/rac.xml"
	for i in $(seq 64); do
		"$LICENSOR" publish bench --content-id "doc-$i" --owner owner@example.com \
			--grant 'user@example.com:VIEW' >"$WORK/pl-$i.xml"
	done
	python3 - "$WORK" "$1" <<'PY'
import sys
work, items = sys.argv[1], int(sys.argv[2])
strip = lambda text: text.split("?>", 1)[-1].replace("\n", "")
rac = strip(open(f"{work}/rac.xml").read())
pls = [strip(open(f"{work}/pl-{i}.xml").read()) for i in range(1, 65)]
with open(f"{work}/bodies.txt", "w") as index:
    for start in range(64):
        with open(f"{work}/body-{start}.xml", "w") as body:
            body.write('<AcquireLicense xmlns="urn:licensor:v1">' + "".join(
                f"<Item>{rac}{pls[(start + k) % 64]}</Item>" for k in range(items)) + "</AcquireLicense>")
        index.write(f"@body-{start}.xml\n")
PY
}

start_server() {
	"$LICENSOR" serve --listen 127.0.0.1:0 --workers 2 "$@" >"$WORK/serve.out" 2>"$WORK/serve.err" &
	SERVER_PID=$!
	for _ in $(seq 100); do
		grep -q '^licensor: serving' "$WORK/serve.out" 2>/dev/null && break
		sleep 0.1
	done
	URL=$(sed -n 's|^licensor: serving \(http://[0-9.:]*\).*|\1|p' "$WORK/serve.out")
	[[ -n $URL ]] || { cat "$WORK/serve.err" >&2; exit 1; }
}

stop_server() {
	kill -TERM "$SERVER_PID"
	wait "$SERVER_PID" || true
	SERVER_PID=""
}

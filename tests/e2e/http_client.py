"""http_client.py: raw-socket HTTP/1.1 checks against a running `licensor serve`.

Used by tests/e2e/server.sh. Every mode prints `ok   NAME` or `FAIL NAME: why`
lines and exits 1 when a check failed, so the calling script counts it. Only
loopback addresses are used; every socket has a timeout, so nothing hangs.

Modes:
  protocol  HOST PORT BODY TOKEN   framing, keep-alive, pipelining, bad HTTP,
                                   admin token, 100-continue, chunked bodies
  slowloris HOST PORT              one byte a second: closed by the header
                                   timeout while others are served
  stalled HOST PORT BODY SECONDS   16 pipelined requests never read: the
                                   server's send timeout closes the connection
  concurrent HOST PORT BODY N      N connections at once, each gets a license
  load HOST PORT BODY SECONDS OUT  keep-alive load from 8 connections (until OUT.stop exists) for
                                   SECONDS (BODY re-read when it changes);
                                   writes every request's time, status, item
                                   codes and signing key ids to OUT (JSON)
  overload HOST PORT BODY N        N simultaneous requests: expects some 503
                                   with Retry-After, then a 200 (recovery)
  inflight HOST PORT BODY N PIDFILE  N requests sent, SIGTERM to the server
                                   right after: every one answered with a 200
"""

import json
import os
import re
import signal
import socket
import sys
import threading
import time

FAILURES = 0


def report(ok, name, why=""):
    global FAILURES
    if ok:
        print(f"ok   {name}", flush=True)
    else:
        FAILURES += 1
        print(f"FAIL {name}: {why}", flush=True)


def connect(host, port, timeout=15):
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class Reader:
    """Reads HTTP/1.1 responses (Content-Length framed) from a socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        self.buffer += chunk

    def response(self):
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, headers, body

    def closed(self, timeout=5):
        """True when the peer closes the connection (EOF or reset) in time."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False


def post(path, body, extra=""):
    return (f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/xml\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def get(path, extra=""):
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode()


def item_codes(body):
    """Per Result: 'UL' for a use license, else the Error code."""
    codes = []
    for result in re.findall(rb"<Result[^>]*>(.*?)</Result>", body, re.S):
        if b"<UseLicense" in result:
            codes.append("UL")
        else:
            match = re.search(rb'Code="([A-Z_]+)"', result)
            codes.append(match.group(1).decode() if match else "?")
    return codes


def exchange(host, port, raw):
    sock = connect(host, port)
    try:
        sock.sendall(raw)
        return Reader(sock).response()
    finally:
        sock.close()


def expect_refused(host, port, name, raw, status):
    sock = connect(host, port)
    try:
        sock.sendall(raw)
        reader = Reader(sock)
        got, _, body = reader.response()
        report(got == status, f"{name}: {status}", f"got {got} {body[:120]!r}")
        report(reader.closed(), f"{name}: connection closed after the answer")
    except (EOFError, ConnectionResetError) as error:
        report(False, name, f"no answer: {error}")
    finally:
        sock.close()


def mode_protocol(host, port, body, token):
    status, headers, text = exchange(host, port, get("/healthz"))
    report(status == 200 and text == b"ok\n", "GET /healthz is 200 ok", f"{status} {text!r}")

    # keep-alive: three requests one after the other on one connection
    sock = connect(host, port)
    reader = Reader(sock)
    statuses = []
    for _ in range(3):
        sock.sendall(post("/v1/licenses", body))
        statuses.append(reader.response()[0])
    report(statuses == [200, 200, 200], "keep-alive: three licenses on one connection", str(statuses))
    sock.close()

    # pipelining: five requests in one write, answered in order
    sock = connect(host, port)
    reader = Reader(sock)
    sock.sendall(get("/healthz") + post("/v1/licenses", body) + get("/nowhere") + post("/v1/licenses", body)
                 + get("/healthz"))
    got = [reader.response() for _ in range(5)]
    report([g[0] for g in got] == [200, 200, 404, 200, 200], "pipelining: five answers in request order",
           str([g[0] for g in got]))
    report(b"AcquireLicenseResponse" in got[1][2] and b"AcquireLicenseResponse" in got[3][2],
           "pipelining: the license answers are AcquireLicenseResponses")
    sock.close()

    # many pipelined requests (over the per-connection bound): all answered, in order
    sock = connect(host, port)
    reader = Reader(sock)
    count = 40
    sock.sendall(b"".join(get(f"/healthz?n={i}") if i % 2 else post("/v1/licenses", body) for i in range(count)))
    got = [reader.response()[0] for _ in range(count)]
    report(got == [200] * count, f"{count} pipelined requests (more than the per-connection bound) all answered",
           str(got))
    sock.close()

    # pipelined requests beyond the per-connection bound, then a half-close:
    # every request that arrived is still answered
    sock = connect(host, port)
    reader = Reader(sock)
    sock.sendall(b"".join(get(f"/healthz?half={i}") for i in range(20)))
    sock.shutdown(socket.SHUT_WR)
    answered = 0
    try:
        while answered < 20 and reader.response()[0] == 200:
            answered += 1
    except (EOFError, ConnectionResetError):
        pass
    report(answered == 20, "20 pipelined requests then a half-close: all 20 answered", f"{answered}/20")
    report(reader.closed(), "then the server closes")
    sock.close()

    # HTTP/1.0 keep-alive is said when kept
    sock = connect(host, port)
    reader = Reader(sock)
    sock.sendall(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    status, headers, _ = reader.response()
    report(status == 200 and headers.get("connection", "").lower() == "keep-alive",
           "HTTP/1.0 with keep-alive: answered with Connection: keep-alive", f"{status} {headers}")
    sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
    report(reader.response()[0] == 200, "and the connection serves a second request")
    sock.close()

    # HTTP/1.0 and Connection: close end the connection after the answer
    for name, raw in (("HTTP/1.0", b"GET /healthz HTTP/1.0\r\n\r\n"),
                      ("Connection: close", get("/healthz", "Connection: close\r\n"))):
        sock = connect(host, port)
        sock.sendall(raw)
        reader = Reader(sock)
        status, headers, _ = reader.response()
        report(status == 200 and headers.get("connection", "").lower() == "close",
               f"{name}: answered with Connection: close", f"{status} {headers}")
        report(reader.closed(), f"{name}: the server closes the connection")
        sock.close()

    # Expect: 100-continue
    sock = connect(host, port)
    reader = Reader(sock)
    head = (f"POST /v1/licenses HTTP/1.1\r\nHost: t\r\nContent-Type: application/xml\r\n"
            f"Expect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    sock.sendall(head)
    status, _, _ = reader.response()
    report(status == 100, "Expect: 100-continue gets 100 Continue before the body", str(status))
    sock.sendall(body)
    status, _, text = reader.response()
    report(status == 200 and b"UseLicense" in text, "then the license", str(status))
    sock.close()

    # a chunked body
    chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(body[i:i + 700]), body[i:i + 700])
                      for i in range(0, len(body), 700)) + b"0\r\n\r\n"
    raw = (b"POST /v1/licenses HTTP/1.1\r\nHost: t\r\nContent-Type: application/xml\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n" + chunks)
    status, _, text = exchange(host, port, raw)
    report(status == 200 and b"UseLicense" in text, "a chunked body gets a license", str(status))

    # bad HTTP: the right 4xx, then the connection is closed
    expect_refused(host, port, "bad method", b"FOO / HTTP/1.1\r\nHost: t\r\n\r\n", 400)
    expect_refused(host, port, "bad Content-Length",
                   b"POST /v1/licenses HTTP/1.1\r\nHost: t\r\nContent-Length: 12x\r\n\r\n", 400)
    expect_refused(host, port, "two different Content-Lengths",
                   b"POST /v1/licenses HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
                   400)
    expect_refused(host, port, "duplicate equal Content-Lengths",
                   b"POST /v1/licenses HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
                   400)
    expect_refused(host, port, "Content-Length with Transfer-Encoding",
                   b"POST /v1/licenses HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400)
    expect_refused(host, port, "malformed chunk size",
                   b"POST /v1/licenses HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n", 400)
    expect_refused(host, port, "a 20 KiB header", b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: "
                   + b"a" * 20480 + b"\r\n\r\n", 413)
    expect_refused(host, port, "a 2 MiB body announced",
                   b"POST /v1/licenses HTTP/1.1\r\nHost: t\r\nContent-Length: 2097152\r\n\r\n", 413)
    expect_refused(host, port, "HTTP/2.0 request line", b"GET /healthz HTTP/2.0\r\nHost: t\r\n\r\n", 505)

    # wrong method, unknown endpoint, wrong media type: answered, connection kept
    sock = connect(host, port)
    reader = Reader(sock)
    sock.sendall(get("/v1/licenses"))
    status, headers, _ = reader.response()
    report(status == 405 and headers.get("allow") == "POST", "GET /v1/licenses is 405 with Allow: POST",
           f"{status} {headers}")
    sock.sendall(post("/v1/licenses", b"{}").replace(b"application/xml", b"application/json"))
    status, _, text = reader.response()
    report(status == 415, "a JSON body is 415", f"{status} {text!r}")
    sock.sendall(post("/v1/licenses", b"<AcquireLicense"))
    status, _, text = reader.response()
    report(status == 400 and b'Code="MALFORMED"' in text, "a broken document is 400 MALFORMED", f"{status} {text!r}")
    sock.sendall(get("/healthz"))
    report(reader.response()[0] == 200, "the connection still serves after those")
    sock.close()

    # admin endpoints
    status, headers, text = exchange(host, port, get("/v1/tenants/demo/keys"))
    report(status == 401 and b'Code="UNAUTHORIZED"' in text, "keys without the token: 401 UNAUTHORIZED", str(status))
    status, _, _ = exchange(host, port, get("/v1/tenants/demo/keys", "Authorization: Bearer " + "x" * len(token) + "\r\n"))
    report(status == 401, "keys with a wrong token of the right length: 401", str(status))
    status, _, text = exchange(host, port, get("/v1/tenants/demo/keys", f"Authorization: Bearer {token}\r\n"))
    try:
        versions = json.loads(text)
        report(status == 200 and versions[0]["version"] == 1 and "key_id" in versions[0],
               "keys with the token: the JSON of keys list --json", text[:200])
    except ValueError:
        report(False, "keys with the token: JSON", text[:200])
    status, _, _ = exchange(host, port, get("/v1/tenants/nobody/keys", f"Authorization: Bearer {token}\r\n"))
    report(status == 404, "keys of an unknown tenant: 404", str(status))
    status, _, _ = exchange(host, port, post("/v1/tenants/demo/certify?principal=x@example.com", b"junk"))
    report(status == 401, "certify without the token: 401", str(status))
    status, headers, text = exchange(host, port, get("/v1/tenants/demo/publishing-key?client=laptop%2D1"))
    report(status == 200 and text.startswith(b"-----BEGIN PUBLIC KEY-----") and "x-key-id" in headers
           and headers.get("x-key-version", "").isdigit(),
           "publishing-key: PEM with X-Key-Id and X-Key-Version", f"{status} {headers}")
    status, _, _ = exchange(host, port, get("/v1/tenants/demo/publishing-key?client=%zz"))
    report(status == 400, "publishing-key with bad percent-encoding: 400", str(status))

    status, _, text = exchange(host, port, get("/metrics"))
    names = set(re.findall(rb"^(licensor_[a-z_]+)", text, re.M))
    for wanted in (b"licensor_licenses_issued_total", b"licensor_http_connections_open",
                   b"licensor_http_request_duration_seconds_bucket", b"licensor_private_key_operations_total"):
        report(status == 200 and wanted in names, f"/metrics has {wanted.decode()}", str(sorted(names))[:300])


def mode_slowloris(host, port):
    slow = connect(host, port, timeout=30)
    started = time.monotonic()
    request = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 100
    answered_meanwhile = False
    closed = False
    for i in range(len(request)):
        try:
            slow.sendall(request[i:i + 1])
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        if i == 1:
            status, _, _ = exchange(host, port, get("/healthz"))
            answered_meanwhile = status == 200
        slow.settimeout(1.0)
        try:
            data = slow.recv(4096)
            if data == b"" or data.startswith(b"HTTP/1.1 408"):
                closed = True
                break
        except socket.timeout:
            pass
        except ConnectionResetError:
            closed = True
            break
        if time.monotonic() - started > 25:
            break
    elapsed = time.monotonic() - started
    report(answered_meanwhile, "another client is served while the slow one trickles")
    report(closed and elapsed < 20, "a client sending one byte a second is cut off by the header timeout",
           f"closed={closed} after {elapsed:.1f}s")


def metric(host, port, name):
    status, _, text = exchange(host, port, get("/metrics"))
    match = re.search(rb"^" + name.encode() + rb" (\d+)", text, re.M)
    return int(match.group(1)) if match else -1


def mode_stalled(host, port, body, limit_seconds):
    """A client that sends work and never reads the answers: closed by the
    server once its send makes no progress for the request timeout."""
    before = metric(host, port, "licensor_http_connections_timed_out_total")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(15)
    sock.connect((host, port))
    sock.sendall(post("/v1/licenses", body) * 16)
    started = time.monotonic()
    closed_by_timeout = False
    while time.monotonic() - started < limit_seconds:
        time.sleep(0.5)
        if metric(host, port, "licensor_http_connections_timed_out_total") > before:
            closed_by_timeout = True
            break
    elapsed = time.monotonic() - started
    report(closed_by_timeout, "a client that never reads its answers is closed by the send timeout",
           f"after {elapsed:.1f}s")
    sock.close()
    status, _, _ = exchange(host, port, get("/healthz"))
    report(status == 200, "the server still serves others")


def mode_concurrent(host, port, body, count):
    results = [None] * count
    barrier = threading.Barrier(count)
    sockets = [connect(host, port, timeout=60) for _ in range(count)]

    def one(index):
        try:
            barrier.wait()
            sockets[index].sendall(post("/v1/licenses", body))
            status, _, text = Reader(sockets[index]).response()
            results[index] = (status, item_codes(text))
        except Exception as error:  # reported below
            results[index] = (0, [repr(error)])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for sock in sockets:
        sock.close()
    good = sum(1 for status, codes in results if status == 200 and codes and all(c == "UL" for c in codes))
    report(good == count, f"{count} concurrent connections: every one gets its licenses",
           f"{good}/{count}; e.g. {[r for r in results if r[0] != 200][:3]}")


def mode_load(host, port, body_path, seconds, out):
    """Keep-alive load; records, per request, the time and the item codes.
    The body is read from body_path, again whenever the file changes. It stops
    after `seconds`, or earlier when the file OUT.stop appears."""
    body = open(body_path, "rb").read()
    stop = time.monotonic() + seconds
    records = []
    lock = threading.Lock()
    errors = []

    current = {"mtime": None, "body": body}

    def body_now():
        """The body file is re-read when it changes (the test swaps it with mv)."""
        mtime = os.stat(body_path).st_mtime_ns
        if mtime != current["mtime"]:
            current["body"], current["mtime"] = open(body_path, "rb").read(), mtime
        return current["body"]

    def worker():
        try:
            sock = connect(host, port)
            reader = Reader(sock)
            while time.monotonic() < stop and not os.path.exists(out + ".stop"):
                with lock:
                    payload = body_now()
                sent = time.time()
                sock.sendall(post("/v1/licenses", payload))
                status, _, text = reader.response()
                with lock:
                    records.append({"sent": sent, "status": status, "codes": item_codes(text),
                                    "signers": re.findall(r"<(?:\w+:)?KeyName>([0-9a-f]+)<", text.decode())})
            sock.close()
        except Exception as error:
            with lock:
                errors.append(repr(error))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with open(out, "w") as file:
        json.dump({"records": records, "errors": errors}, file)
    print(f"load: {len(records)} requests, {len(errors)} connection errors", flush=True)


def mode_overload(host, port, body, count):
    results = []
    lock = threading.Lock()
    barrier = threading.Barrier(count)

    def one():
        try:
            sock = connect(host, port, timeout=60)
            barrier.wait()
            sock.sendall(post("/v1/licenses", body))
            status, headers, _ = Reader(sock).response()
            sock.close()
            with lock:
                results.append((status, headers.get("retry-after")))
        except Exception as error:
            with lock:
                results.append((0, repr(error)))

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    overloaded = [r for r in results if r[0] == 503]
    report(len(overloaded) > 0 and all(r[1] == "1" for r in overloaded),
           "a full queue answers 503 with Retry-After: 1", str(sorted(set(results)))[:200])
    report(all(r[0] in (200, 503) for r in results), "every request got 200 or 503", str(sorted(set(results)))[:200])
    time.sleep(0.5)
    status, _, text = exchange(host, port, post("/v1/licenses", body))
    report(status == 200 and "UL" in item_codes(text), "after the burst, the next request gets its license",
           str(status))


def mode_inflight(host, port, body, count, pidfile):
    sockets = [connect(host, port, timeout=60) for _ in range(count)]
    for sock in sockets:
        sock.sendall(post("/v1/licenses", body))
    time.sleep(0.3)  # received by the server (the work takes longer than this)
    pid = int(open(pidfile).read())
    os.kill(pid, signal.SIGTERM)
    answered = 0
    for sock in sockets:
        try:
            status, _, text = Reader(sock).response()
            if status == 200 and item_codes(text) and all(c == "UL" for c in item_codes(text)):
                answered += 1
        except Exception:
            pass
        sock.close()
    report(answered == count, f"SIGTERM with {count} requests in flight: every one answered with its licenses",
           f"{answered}/{count}")
    try:
        connect(host, port, timeout=2).close()
        refused = False
    except OSError:
        refused = True
    report(refused, "after SIGTERM no new connection is accepted")


def main():
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    arguments = sys.argv[4:]
    if mode == "protocol":
        mode_protocol(host, port, open(arguments[0], "rb").read(), arguments[1])
    elif mode == "stalled":
        mode_stalled(host, port, open(arguments[0], "rb").read(), float(arguments[1]))
    elif mode == "slowloris":
        mode_slowloris(host, port)
    elif mode == "concurrent":
        mode_concurrent(host, port, open(arguments[0], "rb").read(), int(arguments[1]))
    elif mode == "load":
        mode_load(host, port, arguments[0], float(arguments[1]), arguments[2])
    elif mode == "overload":
        mode_overload(host, port, open(arguments[0], "rb").read(), int(arguments[1]))
    elif mode == "inflight":
        mode_inflight(host, port, open(arguments[0], "rb").read(), int(arguments[1]), arguments[2])
    else:
        print(f"unknown mode {mode}")
        return 2
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())

"""idle_connections.py: holds N idle keep-alive connections to a server on
loopback, each after one answered GET /healthz, until SECONDS pass or the
file STOP appears; prints "ready N" once they are all open.

  python3 idle_connections.py HOST PORT N SECONDS STOP
"""
import os
import resource
import selectors
import socket
import sys
import time

host, port, count, seconds, stop = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
request = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
sockets = []
deadline = time.monotonic() + seconds
for i in range(count):
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(request)
    sockets.append(s)
    if len(sockets) % 500 == 0:  # read the answers in groups, keep going
        for t in sockets[-500:]:
            if not t.recv(4096).startswith(b"HTTP/1.1 200"):
                sys.exit(f"bad answer on connection {i}")
for t in sockets[len(sockets) - len(sockets) % 500:]:
    t.recv(4096)
print(f"ready {len(sockets)}", flush=True)
while time.monotonic() < deadline and not os.path.exists(stop):
    time.sleep(0.2)
for s in sockets:
    s.close()

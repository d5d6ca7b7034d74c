#!/usr/bin/env python3
"""Opens N idle keep-alive connections to a server and holds them open.

Each connection sends one GET (Connection: keep-alive), reads the whole response, and then
stays open without sending anything. Prints "ready <n>" on stdout once every connection is
open, then holds them until killed (or for at most --hold seconds, default 600).

Used by benches/serve.sh to measure server memory with many idle connections.

    idle_conns.py HOST PORT PATH COUNT [--tls] [--hold=SECONDS]
"""

import socket
import ssl
import sys
import time


def read_response(sock):
    """Reads one HTTP/1.1 response with a Content-Length body; returns the status code."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed before the response headers")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed in the middle of the body")
        body += chunk
    return status


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    tls = "--tls" in sys.argv[1:]
    hold = 600.0
    for a in sys.argv[1:]:
        if a.startswith("--hold="):
            hold = float(a.split("=", 1)[1])
    if len(args) != 4:
        sys.exit(__doc__)
    host, port, path, count = args[0], int(args[1]), args[2], int(args[3])
    context = None
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["http/1.1"])
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "User-Agent: mirrorbox-bench\r\nConnection: keep-alive\r\n\r\n"
    ).encode()
    held = []
    for _ in range(count):
        sock = socket.create_connection((host, port), timeout=30)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname="localhost")
        sock.sendall(request)
        status = read_response(sock)
        if status != 200:
            sys.exit(f"unexpected status {status} from {host}:{port}{path}")
        held.append(sock)
    print(f"ready {len(held)}", flush=True)
    time.sleep(hold)  # the caller kills us once it has measured
    for sock in held:
        sock.close()


if __name__ == "__main__":
    main()

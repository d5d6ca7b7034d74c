#!/usr/bin/env python3
"""HTTP/1.1 clients that ask for a file and (almost) never read it.

Opens N connections, each with a small receive buffer, sends `GET PATH`, reads the first few
bytes of the answer, and then nothing more. Prints `ready` once every request has been sent and
answered, and holds the connections until killed or until --hold seconds have passed.

    slow_readers.py HOST PORT PATH --connections N [--hold SECONDS]
"""

import argparse
import socket
import time


def open_connection(host, port, path):
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    # A small receive window: the server's data piles up on its side, not ours.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, port))
    request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n"
    sock.sendall(request.encode())
    return sock


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("path")
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--hold", type=float, default=None, help="seconds (default: forever)")
    args = parser.parse_args()
    held = [open_connection(args.host, args.port, args.path) for _ in range(args.connections)]
    # The status line of each answer: the request arrived and the server is sending.
    for sock in held:
        sock.settimeout(30)
        if not sock.recv(12).startswith(b"HTTP/1.1"):
            raise SystemExit("unexpected answer")
    print("ready", flush=True)
    deadline = None if args.hold is None else time.monotonic() + args.hold
    while deadline is None or time.monotonic() < deadline:
        time.sleep(0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic())))
    for sock in held:
        sock.close()


if __name__ == "__main__":
    main()

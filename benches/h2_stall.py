#!/usr/bin/env python3
"""HTTP/2 clients that ask for a lot and read nothing.

Opens N connections and M streams on each, all for PATH, with the largest flow-control windows
HTTP/2 allows, so the server may send as much as it likes; then never reads another byte.
Prints `ready` once every stream has been opened, and holds the connections until killed or
until --hold seconds have passed.

    h2_stall.py HOST PORT PATH --connections N --streams M [--tls] [--hold SECONDS]

Needs the `h2` package.
"""

import argparse
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.settings

MAX_WINDOW = 2**31 - 1


def open_connection(host, port, path, streams, use_tls):
    sock = socket.create_connection((host, port))
    if use_tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.set_alpn_protocols(["h2"])
        sock = context.wrap_socket(sock, server_hostname=host)
        if sock.selected_alpn_protocol() != "h2":
            sys.exit("the server did not offer h2")
    conn = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    )
    conn.initiate_connection()
    conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: MAX_WINDOW})
    conn.increment_flow_control_window(MAX_WINDOW - 65535)
    authority = f"{host}:{port}"
    scheme = "https" if use_tls else "http"
    for _ in range(streams):
        stream_id = conn.get_next_available_stream_id()
        conn.send_headers(
            stream_id,
            [
                (":method", "GET"),
                (":scheme", scheme),
                (":authority", authority),
                (":path", path),
            ],
            end_stream=True,
        )
    sock.sendall(conn.data_to_send())
    return sock


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("path")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--streams", type=int, default=100)
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--hold", type=float, default=None, help="seconds (default: forever)")
    args = parser.parse_args()
    held = [
        open_connection(args.host, args.port, args.path, args.streams, args.tls)
        for _ in range(args.connections)
    ]
    print("ready", flush=True)
    deadline = None if args.hold is None else time.monotonic() + args.hold
    while deadline is None or time.monotonic() < deadline:
        time.sleep(0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic())))
    for sock in held:
        sock.close()


if __name__ == "__main__":
    main()

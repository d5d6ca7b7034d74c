#!/usr/bin/env python3
"""A TCP proxy that adds latency: every chunk is forwarded DELAY_MS after it arrived, in each
direction (so 10 ms gives a 20 ms round trip per request), keeping the order of the bytes and
without capping throughput.

Each direction of each connection keeps a queue of (due time, bytes): what arrives is stamped
and queued at once, and a timer writes out everything that is due and re-arms itself for the
next item. While one chunk waits, later ones keep arriving, so a stream moves at full speed,
only shifted in time (a sleep per chunk in a single loop would serialize the delays and
throttle the stream). A direction whose queue holds more than MAX_QUEUED bytes, or whose
receiving side's kernel buffer is full, stops reading until it drains (enough for more than
1 GB/s at 10 ms). A new connection costs a round trip as in TCP: the upstream connection is
opened 2 x DELAY_MS after the client's, and only then are the client's first bytes forwarded
(delayed as usual), so a first request takes two round trips.

Used by benches/sync.sh (when tc netem is not available), which prints the method it used.

    latency_proxy.py LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT DELAY_MS

Prints "ready" on stdout once listening; runs until killed.
"""

import asyncio
import collections
import socket
import sys

MAX_QUEUED = 32 * 1024 * 1024


class Direction:
    """Bytes from one transport to another, each chunk delayed."""

    def __init__(self, pair, loop, delay):
        self.pair = pair
        self.loop = loop
        self.delay = delay
        self.source = None  # transport read from
        self.sink = None  # transport written to (None until connected)
        self.queue = collections.deque()
        self.queued = 0
        self.timer = None
        self.eof = False
        self.closed = False
        self.sink_paused = False
        self.reading_paused = False

    def push(self, data):
        self.queue.append((self.loop.time() + self.delay, data))
        self.queued += len(data)
        self.arm()
        self.regulate()

    def push_eof(self):
        self.queue.append((self.loop.time() + self.delay, None))
        self.arm()

    def connected(self, sink):
        """The sink is there: what waited for it is due DELAY_MS from now at the earliest."""
        self.sink = sink
        earliest = self.loop.time() + self.delay
        self.queue = collections.deque((max(due, earliest), data) for due, data in self.queue)
        self.arm()

    def arm(self):
        if self.timer is None and self.queue and self.sink is not None:
            self.timer = self.loop.call_at(self.queue[0][0], self.flush)

    def flush(self):
        self.timer = None
        if self.closed:
            return
        now = self.loop.time()
        while self.queue and self.queue[0][0] <= now:
            _, data = self.queue.popleft()
            if data is None:
                self.eof = True
                if self.sink.can_write_eof():
                    self.sink.write_eof()
                    self.pair.maybe_close()
                else:
                    self.pair.close()
                return
            self.queued -= len(data)
            self.sink.write(data)
        self.arm()
        self.regulate()

    def regulate(self):
        """Stops reading while too much waits here or the sink is full; resumes after."""
        if self.source is None or self.closed:
            return
        full = self.queued > MAX_QUEUED or self.sink_paused
        if full and not self.reading_paused:
            self.reading_paused = True
            self.source.pause_reading()
        elif not full and self.reading_paused:
            self.reading_paused = False
            self.source.resume_reading()

    def close(self):
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class Side(asyncio.Protocol):
    """One end of a proxied connection: what it receives goes into `outgoing`."""

    def __init__(self, pair, outgoing, incoming):
        self.pair = pair
        self.outgoing = outgoing  # Direction fed by this side
        self.incoming = incoming  # Direction writing to this side
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.outgoing.source = transport
        self.incoming.connected(transport)

    def data_received(self, data):
        self.outgoing.push(data)

    def eof_received(self):
        self.outgoing.push_eof()
        return True  # keep the other half open

    def pause_writing(self):
        self.incoming.sink_paused = True
        self.incoming.regulate()

    def resume_writing(self):
        self.incoming.sink_paused = False
        self.incoming.regulate()

    def connection_lost(self, exc):
        self.pair.close()


class Pair:
    """A client connection and its upstream connection."""

    def __init__(self, loop, delay, host, port):
        self.loop = loop
        self.up = Direction(self, loop, delay)  # client -> upstream
        self.down = Direction(self, loop, delay)  # upstream -> client
        self.client = Side(self, self.up, self.down)
        self.upstream = Side(self, self.down, self.up)
        self.closed = False
        loop.call_later(2 * delay, lambda: asyncio.ensure_future(self.connect(host, port)))

    async def connect(self, host, port):
        if self.closed:
            return
        try:
            await self.loop.create_connection(lambda: self.upstream, host, port)
        except OSError:
            self.close()

    def maybe_close(self):
        if self.up.eof and self.down.eof:
            self.close()

    def close(self):
        if self.closed:
            return
        self.closed = True
        for direction in (self.up, self.down):
            direction.close()
        for side in (self.client, self.upstream):
            if side.transport is not None:
                side.transport.close()


async def main():
    if len(sys.argv) != 5:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    listen_port, host, port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    delay = float(sys.argv[4]) / 1000.0
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Pair(loop, delay, host, port).client, "127.0.0.1", listen_port, backlog=1024
    )
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass

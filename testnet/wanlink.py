#!/usr/bin/env python3
"""A shaped link between two network namespaces, in user space (testnet/wan.sh).

    wanlink.py NS_A TAP_A NS_B TAP_B --rate-kbit R --delay-ms D --loss P [--queue-ms Q]

wan.sh uses tc netem when the kernel has it (sch_netem); kernels built without it (the
Firecracker VMs this project runs on have tbf and htb but no netem) get this instead: two
persistent TAP devices, TAP_A in namespace NS_A and TAP_B in NS_B (made and configured by
wan.sh), and this process relaying Ethernet frames between them. Each direction is its own
link, like netem on both ends of a veth pair:

- loss: each frame is dropped with probability P (0.005 = 0.5 %), independently per
  direction (a round trip loses ~2P);
- rate: frames are serialised at R kbit/s (frame bytes, as tc counts them); a frame that
  would wait longer than Q ms (default 100) for the wire is dropped, like a router's tail
  drop;
- delay: every frame leaves D ms after it finished serialising (one way; RTT = 2D).

Order is kept (the delay is constant), so TCP sees no reordering. Runs until SIGTERM; wan.sh
stops it on `down`. Needs root (setns, /dev/net/tun). Python standard library only.
"""

import argparse
import collections
import ctypes
import errno
import fcntl
import os
import random
import selectors
import signal
import struct
import sys
import time

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
MAX_FRAME = 65536


def open_tap(netns: str, name: str) -> int:
    """Attaches to the persistent TAP device `name` in namespace `netns`."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/var/run/netns/{netns}", "rb") as f:
        if libc.setns(f.fileno(), CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {netns}: {os.strerror(err)}")
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


class Direction:
    """One way of the link: frames read from `src`, written to `dst`."""

    def __init__(self, src: int, dst: int, rate_bps: float, delay: float, loss: float, queue: float):
        self.src, self.dst = src, dst
        self.rate_bps, self.delay, self.loss, self.queue = rate_bps, delay, loss, queue
        self.wire_free_at = 0.0
        self.pending = collections.deque()  # (departure time, frame), in departure order
        self.stats = {"frames": 0, "bytes": 0, "lost": 0, "tail_dropped": 0, "write_dropped": 0}

    def read(self, now: float) -> None:
        for _ in range(256):
            try:
                frame = os.read(self.src, MAX_FRAME)
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EIO):  # EIO: the device is down
                    return
                raise
            if self.loss > 0 and random.random() < self.loss:
                self.stats["lost"] += 1
                continue
            start = max(now, self.wire_free_at)
            if start - now > self.queue:
                self.stats["tail_dropped"] += 1
                continue
            self.wire_free_at = start + len(frame) * 8 / self.rate_bps
            self.pending.append((self.wire_free_at + self.delay, frame))

    def flush(self, now: float) -> None:
        while self.pending and self.pending[0][0] <= now:
            _, frame = self.pending.popleft()
            try:
                os.write(self.dst, frame)
                self.stats["frames"] += 1
                self.stats["bytes"] += len(frame)
            except OSError:
                self.stats["write_dropped"] += 1

    def next_due(self):
        return self.pending[0][0] if self.pending else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("ns_a")
    p.add_argument("tap_a")
    p.add_argument("ns_b")
    p.add_argument("tap_b")
    p.add_argument("--rate-kbit", type=float, required=True)
    p.add_argument("--delay-ms", type=float, required=True)
    p.add_argument("--loss", type=float, default=0.0, help="probability per frame, 0-1")
    p.add_argument("--queue-ms", type=float, default=100.0)
    a = p.parse_args()
    if a.rate_kbit <= 0 or a.delay_ms < 0 or not 0 <= a.loss < 1 or a.queue_ms <= 0:
        p.error("need rate > 0, delay >= 0, 0 <= loss < 1, queue > 0")

    fd_a = open_tap(a.ns_a, a.tap_a)
    fd_b = open_tap(a.ns_b, a.tap_b)
    rate, delay, queue = a.rate_kbit * 1000, a.delay_ms / 1000, a.queue_ms / 1000
    ab = Direction(fd_a, fd_b, rate, delay, a.loss, queue)
    ba = Direction(fd_b, fd_a, rate, delay, a.loss, queue)

    stop = False

    def on_term(_sig, _frame):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    sel = selectors.DefaultSelector()
    sel.register(fd_a, selectors.EVENT_READ, ab)
    sel.register(fd_b, selectors.EVENT_READ, ba)
    print(f"wanlink {a.ns_a}/{a.tap_a} <-> {a.ns_b}/{a.tap_b}: {a.rate_kbit:g} kbit/s, "
          f"{a.delay_ms:g} ms each way, loss {a.loss:g}, queue {a.queue_ms:g} ms", flush=True)
    while not stop:
        now = time.monotonic()
        dues = [d for d in (ab.next_due(), ba.next_due()) if d is not None]
        timeout = max(0.0, min(dues) - now) if dues else 1.0
        try:
            events = sel.select(timeout)
        except InterruptedError:
            continue
        now = time.monotonic()
        for key, _ in events:
            key.data.read(now)
        ab.flush(now)
        ba.flush(now)
    print(f"wanlink stopped: {a.ns_a}->{a.ns_b} {ab.stats}, {a.ns_b}->{a.ns_a} {ba.stats}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

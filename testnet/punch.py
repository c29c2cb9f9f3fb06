#!/usr/bin/env python3
"""UDP hole punching across the WAN testnet's NATs, as a baseline (testnet/wan.sh punch).

    punch.py PREFIX [--attempts 20] [--window-ms 1000]

What DCUtR does over QUIC, done with bare UDP sockets so it measures the NATs and nothing
else: for each pair of home nodes (home1-home2: both endpoint-independent; home1-home3 and
home2-home3: one symmetric), each attempt opens a fresh socket in each home namespace, asks a
"STUN" socket in pub1's namespace for its public address (the rendezvous), then both sides
send to each other's learned address every 20 ms for the window; the attempt succeeds when
each side receives the other's datagram. One process does it all: a socket belongs to the
network namespace its creator was in when it was made (setns before each socket).

Prints one JSON object: per pair the NAT types, attempts, successes and the first attempt's
mapped addresses. Needs root. Python standard library only.
"""

import argparse
import ctypes
import json
import os
import select
import socket
import sys
import time

CLONE_NEWNET = 0x40000000
PUB1 = ("198.18.0.11", 3478)
NAT = {"home1": "endpoint-independent", "home2": "endpoint-independent", "home3": "symmetric"}
libc = ctypes.CDLL(None, use_errno=True)


def enter(ns: str) -> None:
    with open(f"/var/run/netns/{ns}", "rb") as f:
        if libc.setns(f.fileno(), CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {ns}: {os.strerror(err)}")


def udp_in(ns: str, bind: tuple) -> socket.socket:
    enter(ns)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(bind)
    s.setblocking(False)
    return s


def recv_until(sock: socket.socket, deadline: float):
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        if select.select([sock], [], [], left)[0]:
            try:
                return sock.recvfrom(2048)
            except BlockingIOError:
                continue


def mapped(sock: socket.socket, stun: socket.socket) -> tuple:
    """The address `sock` shows to pub1 (asks up to 10 times: the link may lose one)."""
    for _ in range(10):
        sock.sendto(b"stun", PUB1)
        got = recv_until(stun, time.monotonic() + 0.2)
        if got:
            stun.sendto(f"{got[1][0]}:{got[1][1]}".encode(), got[1])
            reply = recv_until(sock, time.monotonic() + 0.2)
            if reply:
                host, port = reply[0].decode().split(":")
                return host, int(port)
    raise RuntimeError("no answer from the rendezvous on pub1")


def attempt(prefix: str, a: str, b: str, stun: socket.socket, window: float) -> dict:
    sa = udp_in(f"{prefix}-{a}", ("0.0.0.0", 0))
    sb = udp_in(f"{prefix}-{b}", ("0.0.0.0", 0))
    try:
        ma, mb = mapped(sa, stun), mapped(sb, stun)
        got_a = got_b = False
        end = time.monotonic() + window
        while time.monotonic() < end and not (got_a and got_b):
            sa.sendto(b"punch from " + a.encode(), mb)
            sb.sendto(b"punch from " + b.encode(), ma)
            tick = time.monotonic() + 0.02
            while time.monotonic() < tick:
                ready = select.select([sa, sb], [], [], max(0.0, tick - time.monotonic()))[0]
                for s in ready:
                    try:
                        data, _ = s.recvfrom(2048)
                    except BlockingIOError:
                        continue
                    if s is sa and data.startswith(b"punch from " + b.encode()):
                        got_a = True
                    if s is sb and data.startswith(b"punch from " + a.encode()):
                        got_b = True
        return {"ok": got_a and got_b, "a_seen_as": f"{ma[0]}:{ma[1]}", "b_seen_as": f"{mb[0]}:{mb[1]}",
                "a_got": got_a, "b_got": got_b}
    finally:
        sa.close()
        sb.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("prefix")
    p.add_argument("--attempts", type=int, default=20)
    p.add_argument("--window-ms", type=float, default=1000)
    a = p.parse_args()
    stun = udp_in(f"{a.prefix}-pub1", PUB1)
    out = {"attempts_per_pair": a.attempts, "window_ms": a.window_ms, "pairs": []}
    for x, y in (("home1", "home2"), ("home1", "home3"), ("home2", "home3")):
        results = [attempt(a.prefix, x, y, stun, a.window_ms / 1000) for _ in range(a.attempts)]
        out["pairs"].append({
            "pair": f"{x}-{y}",
            "nat": f"{NAT[x]} / {NAT[y]}",
            "successes": sum(r["ok"] for r in results),
            "attempts": len(results),
            "first": results[0],
        })
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

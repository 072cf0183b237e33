"""Generate a large, realistic nginx↔upstream keepalive capture, and its ground truth.

    python benchmarks/gen.py --packets 1000000 --out benchmarks/data/keepalive-1m.pcap [--seed 1]
        [--format pcap|pcapng] [--linktype EN10MB|LINUX_SLL2] [--concurrency N]
        [--ports 32768-60999]

Writes ``OUT`` and ``OUT.truth.json``. The traffic is seeded and deterministic (same arguments,
same bytes). One nginx host, 10.0.0.1, keeps a pool of keepalive connections open to four
upstreams, 10.0.1.1-10.0.1.4 port 8080:

- ephemeral ports are handed out sequentially from the range and wrap, so later connections reuse
  4-tuples (with a new ISN); some ISNs sit just below 2**32 so sequence numbers wrap;
- every connection opens with a full handshake (except the pool already open when the capture
  starts, which is seen mid-stream), then carries 1-200 exchanges: GET mostly, some POST with a
  small body, some HEAD; responses mostly a few hundred bytes of JSON, some up to ~48 KB,
  Content-Length or chunked, in MSS-sized segments; pure ACKs where Linux sends them (every second
  full segment, delayed ACKs after 40 ms); a few requests and responses in 10,000 retransmitted;
- nginx closes most connections (its FIN first); the upstream closes some after an idle second,
  some after a ``Connection: close`` response (10.0.1.4 allows 100 requests per connection), and a
  few connections end in a RST from either side;
- a few requests cross the upstream's idle-timeout FIN (sent just before or just after it): they
  get no response; nginx retries a lost GET or HEAD within a millisecond, on a new connection or on
  another open one, and never a POST;
- a few SYNs are never answered (retransmitted at +1 s and +3 s);
- ~1% of the packets are unrelated: a PostgreSQL connection (port 5432), DNS over UDP, ARP.

Packets are built from byte templates with ``struct`` (IP and TCP checksums are zero, as on a
capture with checksum offload) and written by a second thread in large writes: ~200k packets
per second (10M packets, ~4.4 GB, in under a minute). The truth file states what every analysis
of the capture must find: counts of connection attempts, who closed them, requests, responses,
lost requests, retries, connect failures, retransmissions, and the packets a reader must skip,
by reason.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import queue
import random
import struct
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

MSS = 1448
NGINX = bytes([10, 0, 0, 1])
UPSTREAMS = [bytes([10, 0, 1, k]) for k in (1, 2, 3, 4)]
UPSTREAM_PORT = 8080
# The upstream that answers its 100th request on a connection with "Connection: close".
MAX_REQUESTS = {3: 100}
PG_HOST, PG_PORT, PG_CLIENT_PORT = bytes([10, 0, 2, 5]), 5432, 41022
DNS_HOST = bytes([10, 0, 0, 53])
NGINX_MAC = bytes.fromhex("525400a1b2c3")
GATEWAY_MAC = bytes.fromhex("525400d4e5f6")
HOSTS = ("api.internal", "api.internal", "api.internal", "static.internal", "search.internal")
RESOURCES = ("items", "users", "orders", "carts", "search", "assets", "feeds")

LINKTYPES = {"EN10MB": 1, "LINUX_SLL2": 276}

US = 1
MS = 1000 * US
SEC = 1000 * MS
DELAYED_ACK = 40 * MS
RTO = 204 * MS
IDLE_TIMEOUT = 1 * SEC  # the upstream's keepalive timeout
START_US = 1_732_406_400 * SEC  # 2024-11-24 00:00:00 UTC

# Most packets any one action may add; the run stops taking actions this far from the target.
MARGIN = 150

# How a connection ends, and how often (the rest of the pool is open when the capture ends).
ENDINGS = (
    ("client_fin", 0.80),
    ("server_idle", 0.07),
    ("race", 0.035),
    ("conn_close", 0.06),
    ("client_rst", 0.0175),
    ("server_rst", 0.0175),
)
CONNECT_FAIL = 0.004

# Data-offset word of the TCP header: 32 bytes with timestamps, 40 for a SYN's options.
_OFF_DATA = 8 << 12
_OFF_SYN = 10 << 12
# After the link header and b"\x45\x00": IP total length and id; the 14 constant bytes of the IP
# header and the two ports (18 bytes); seq, ack, offset+flags, window; checksum and urgent (zero);
# the timestamp option (NOP NOP TS 10) and its two values.
_DATA = struct.Struct("!HH18sIIHH4xIII")
_SYN = struct.Struct("!HH18sIIHH4x8sII4s")
_SYN_OPTS_HEAD = bytes.fromhex("020405b40402080a")  # MSS 1460, SACK permitted, TS
_SYN_OPTS_TAIL = bytes.fromhex("01030307")  # NOP, window scale 7
_TS_OPT = 0x0101080A
_STATUS_LINES = {
    code: b"HTTP/1.1 %d \r\nContent-Type: application/json\r\n" % code
    for code in (200, 201, 304, 404)
}
_UDP = struct.Struct("!HH6sH4s4sHHHH")
_PCAP_REC = struct.Struct("<IIII")
_EPB = struct.Struct("<IIIIIII")


def _link_header(linktype: int, outgoing: bool, proto: int = 0x0800) -> bytes:
    src, dst = (NGINX_MAC, GATEWAY_MAC) if outgoing else (GATEWAY_MAC, NGINX_MAC)
    if linktype == 1:
        return dst + src + struct.pack("!H", proto)
    # LINUX_SLL2: protocol, reserved, interface index, ARPHRD_ETHER, packet type, address.
    return struct.pack("!HHIHBB", proto, 0, 2, 1, 4 if outgoing else 0, 6) + src + b"\0\0"


@dataclass
class Truth:
    """What the generator put in the capture, counted as it was written."""

    packets: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    upstream_segments: int = 0
    connections: int = 0
    partial_connections: int = 0
    closed_by: Counter[str] = field(default_factory=Counter)
    closed_with_rst: int = 0
    server_close_reasons: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    responses: int = 0
    methods: Counter[str] = field(default_factory=Counter)
    chunked_responses: int = 0
    connection_close_responses: int = 0
    retransmissions: int = 0
    lost_requests: list[dict[str, Any]] = field(default_factory=list)
    retries: list[dict[str, Any]] = field(default_factory=list)
    connect_failures: list[dict[str, Any]] = field(default_factory=list)
    reused_tuples: int = 0
    seq_wraps: int = 0


class Conn:
    """One connection attempt: its 4-tuple, both sides' sequence state, and its plan."""

    __slots__ = (
        "busy_until",
        "count",
        "cpre",
        "cseq",
        "ending",
        "idx",
        "ipid_c",
        "ipid_s",
        "last_t",
        "left",
        "next_delay",
        "next_kind",
        "open",
        "port",
        "spre",
        "sseq",
        "ts_c",
        "ts_s",
        "up",
        "version",
    )

    def __init__(self, port: int, up: int, cpre: tuple[bytes, bytes], spre: tuple[bytes, bytes]):
        self.port = port
        self.up = up
        self.cpre = cpre  # (link header + b"\x45\x00", the 18 constant bytes) nginx → upstream
        self.spre = spre
        self.cseq = 0
        self.sseq = 0
        self.ipid_c = 0
        self.ipid_s = 0
        self.ts_c = 0
        self.ts_s = 0
        self.last_t = 0
        self.busy_until = 0
        self.count = 0  # exchanges so far
        self.left = 0  # exchanges still planned
        self.ending = "client_fin"
        self.open = False
        self.idx = -1  # position in Generator.pool while open
        self.version = 0
        self.next_kind = ""
        self.next_delay = 0


class Generator:
    """A discrete-event simulation of nginx's upstream keepalive pool, written as packets.

    Two heaps: ``actions`` (a connection's next exchange or close, a new connection) in time
    order, and ``pkts``, the packets those actions scheduled, already encoded. Before each action,
    every packet due by its time is written, so the file's timestamps never go back; an action
    schedules all packets of one exchange (or close) at once, each connection's packets in order.
    The truth is counted as packets are scheduled, and every scheduled packet is written.
    """

    def __init__(
        self,
        packets: int,
        seed: int,
        linktype: int,
        concurrency: int,
        ports: tuple[int, int],
        pcapng: bool = False,
        profile: str = "mixed",
    ) -> None:
        self.target = packets
        self.small = profile == "small"
        self.pcapng = pcapng
        self.record = self._pcapng_block if pcapng else self._pcap_record
        self.rng = random.Random(seed)
        rnd = self.rng.random
        # random.randrange and choice cost ~0.5 µs a call; these ~0.1 µs
        self.ri: Callable[[int, int], int] = lambda a, b: a + int(rnd() * (b - a))
        self.pick: Callable[[Sequence[Any]], Any] = lambda seq: seq[int(rnd() * len(seq))]
        self.rnd = rnd
        # server think times in µs, lognormal: ~2 ms median, a tail to seconds
        self.think = [min(int(self.rng.lognormvariate(7.6, 1.1)), 3 * SEC) for _ in range(4096)]
        self.req_tails = [
            b"X-Real-IP: 203.0.113.%d\r\nX-Forwarded-For: 203.0.113.%d\r\n"
            b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\r\n"
            b"Accept: application/json\r\n" % (self.ri(1, 255), self.ri(1, 255))
            for _ in range(256)
        ]
        self.linktype = linktype
        self.concurrency = concurrency
        self.port_lo, self.port_hi = ports
        span = self.port_hi - self.port_lo + 1
        # Start near the top of the range so the allocator wraps early.
        self.next_port = self.port_hi - self.ri(0, min(span, 2000))
        self.port_free_at: dict[int, int] = {}
        self.tuples_used: set[tuple[int, int]] = set()
        self.pkts: list[tuple[int, int, bytes]] = []
        self.actions: list[tuple[int, int, str, Conn | None, int]] = []
        self.counter = itertools.count()
        self.pool: list[Conn] = []  # open connections
        self.conns: list[Conn] = []
        self.truth = Truth()
        self.reqno = 0
        self.dns_id = 0
        self.link_out = _link_header(linktype, True)
        self.link_in = _link_header(linktype, False)
        self.fill = bytes(
            self.rng.choice(b"abcdefghijklmnopqrstuvwxyz0123456789{}:, ") for _ in range(1 << 16)
        )
        self.pg_seq = [self.rng.getrandbits(32), self.rng.getrandbits(32)]
        self.pg_pre = (
            self._prefix(PG_HOST, PG_CLIENT_PORT, PG_PORT, True),
            self._prefix(PG_HOST, PG_CLIENT_PORT, PG_PORT, False),
        )

    # --- packet building -------------------------------------------------------------------

    def _prefix(self, peer: bytes, cport: int, sport: int, outgoing: bool) -> tuple[bytes, bytes]:
        src, dst = (NGINX, peer) if outgoing else (peer, NGINX)
        ports = struct.pack("!HH", cport, sport) if outgoing else struct.pack("!HH", sport, cport)
        ttl = 64
        const = struct.pack("!HBBH", 0x4000, ttl, 6, 0) + src + dst + ports
        link = self.link_out if outgoing else self.link_in
        return link + b"\x45\x00", const

    def _pcap_record(self, t: int, frame: bytes) -> bytes:
        n = len(frame)
        return _PCAP_REC.pack(t // SEC, t % SEC, n, n) + frame

    def _pcapng_block(self, t: int, frame: bytes) -> bytes:
        n = len(frame)
        pad = (4 - n) & 3
        total = 32 + n + pad
        return b"".join(
            (
                _EPB.pack(6, total, 0, t >> 32, t & 0xFFFFFFFF, n, n),
                frame,
                bytes(pad),
                struct.pack("<I", total),
            )
        )

    def _push(self, t: int, frame: bytes) -> None:
        heapq.heappush(self.pkts, (t, next(self.counter), self.record(t, frame)))

    def send(
        self,
        c: Conn,
        t: int,
        client: bool,
        flags: int,
        payload: bytes = b"",
        ack: int | None = None,
    ) -> int:
        """Schedule one segment of ``c`` at ``t`` (never before the connection's last one)."""
        if t < c.last_t:
            t = c.last_t
        c.last_t = t
        n = len(payload)
        ms = t // MS
        if client:
            pre, const = c.cpre
            seq = c.cseq
            c.cseq = seq + n + (1 if flags & (SYN | FIN) else 0)
            if ack is None:
                ack = c.sseq
            ipid = c.ipid_c = (c.ipid_c + 1) & 0xFFFF
            tsval = (ms + c.ts_c) & 0xFFFFFFFF
            tsecr = (ms + c.ts_s) & 0xFFFFFFFF
        else:
            pre, const = c.spre
            seq = c.sseq
            c.sseq = seq + n + (1 if flags & (SYN | FIN) else 0)
            if ack is None:
                ack = c.cseq
            ipid = c.ipid_s = (c.ipid_s + 1) & 0xFFFF
            tsval = (ms + c.ts_s) & 0xFFFFFFFF
            tsecr = (ms + c.ts_c) & 0xFFFFFFFF
        if not flags & ACK:
            ack = tsecr = 0
        if flags & SYN:
            head = _SYN.pack(
                60 + n,
                ipid,
                const,
                seq & 0xFFFFFFFF,
                ack & 0xFFFFFFFF,
                _OFF_SYN | flags,
                64240 if client else 65160,
                _SYN_OPTS_HEAD,
                tsval,
                tsecr,
                _SYN_OPTS_TAIL,
            )
            self._push(t, pre + head + payload)
            return t
        head = _DATA.pack(
            52 + n,
            ipid,
            const,
            seq & 0xFFFFFFFF,
            ack & 0xFFFFFFFF,
            _OFF_DATA | flags,
            502,
            _TS_OPT,
            tsval,
            tsecr,
        )
        if self.pcapng:
            self._push(t, pre + head + payload)
            return t
        m = len(pre) + 50 + n  # pre ends with the first two bytes of the IP header
        rec = b"".join((_PCAP_REC.pack(t // SEC, t % SEC, m, m), pre, head, payload))
        heapq.heappush(self.pkts, (t, next(self.counter), rec))
        return t

    def resend(
        self, c: Conn, t: int, client: bool, flags: int, seq: int, ack: int, payload: bytes
    ) -> int:
        """A retransmission: an earlier segment's seq, ack and bytes again."""
        if t < c.last_t:
            t = c.last_t
        c.last_t = t
        pre, const = c.cpre if client else c.spre
        if client:
            c.ipid_c += 1
            ipid, tsval, tsecr = c.ipid_c, t // MS + c.ts_c, t // MS + c.ts_s
        else:
            c.ipid_s += 1
            ipid, tsval, tsecr = c.ipid_s, t // MS + c.ts_s, t // MS + c.ts_c
        head = _DATA.pack(
            52 + len(payload),
            ipid & 0xFFFF,
            const,
            seq & 0xFFFFFFFF,
            ack & 0xFFFFFFFF,
            _OFF_DATA | flags,
            502,
            _TS_OPT,
            tsval & 0xFFFFFFFF,
            tsecr & 0xFFFFFFFF,
        )
        self._push(t, pre + head + payload)
        self.truth.retransmissions += 1
        return t

    def noise(self, t: int, r: float | None = None) -> None:
        """One unrelated packet: PostgreSQL (another TCP port), DNS (UDP) or ARP (not IP)."""
        if r is None:
            r = self.rng.random()
        if r < 0.7:
            out = self.rng.random() < 0.5
            pre, const = self.pg_pre[0 if out else 1]
            size = self.pick((0, 0, 12, 57, 230, 611))
            k = 0 if out else 1
            seq, ack = self.pg_seq[k], self.pg_seq[1 - k]
            self.pg_seq[k] += size
            head = _DATA.pack(
                52 + size,
                self.rng.getrandbits(16),
                const,
                seq & 0xFFFFFFFF,
                ack & 0xFFFFFFFF,
                _OFF_DATA | ACK | (PSH if size else 0),
                1024,
                _TS_OPT,
                t // MS & 0xFFFFFFFF,
                t // MS & 0xFFFFFFFF,
            )
            self._push(t, pre + head + self.fill[:size])
            self.truth.skipped["other_ports"] += 1
        elif r < 0.95:
            query = self.rng.random() < 0.5
            if query:
                self.dns_id = (self.dns_id + 1) & 0xFFFF
            qname = b"\x03api\x08internal\x00\x00\x01\x00\x01"
            if query:  # id, flags (recursion desired), one question
                body = struct.pack("!HHHHHH", self.dns_id, 0x0100, 1, 0, 0, 0) + qname
            else:  # the answer: one A record
                body = struct.pack("!HHHHHH", self.dns_id, 0x8180, 1, 1, 0, 0) + qname
                body += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x1e\x00\x04\x0a\x00\x01\x01"
            src, dst = (NGINX, DNS_HOST) if query else (DNS_HOST, NGINX)
            sp, dp = (53124, 53) if query else (53, 53124)
            link = self.link_out if query else self.link_in
            udp = _UDP.pack(
                0x4500,
                28 + len(body),
                b"\x00\x00\x40\x00\x40\x11",
                0,
                src,
                dst,
                sp,
                dp,
                8 + len(body),
                0,
            )
            self._push(t, link + udp + body)
            self.truth.skipped["non_tcp"] += 1
        else:
            arp = bytes.fromhex("0001080006040001") + NGINX_MAC + NGINX + bytes(6) + DNS_HOST
            if self.linktype == 1:
                link = b"\xff" * 6 + NGINX_MAC + b"\x08\x06"
            else:
                link = _link_header(self.linktype, True, 0x0806)
            self._push(t, link + arp)
            self.truth.skipped["non_ip"] += 1

    # --- scheduling ------------------------------------------------------------------------

    def schedule(self, t: int, kind: str, c: Conn | None) -> None:
        heapq.heappush(self.actions, (t, next(self.counter), kind, c, c.version if c else 0))

    def plan_next(self, c: Conn, kind: str, delay: int) -> None:
        c.next_kind, c.next_delay = kind, delay
        c.version += 1
        self.schedule(c.busy_until + delay, kind, c)

    def new_conn(self, t: int) -> Conn:
        span = self.port_hi - self.port_lo + 1
        for _ in range(span):
            port = self.next_port
            self.next_port = self.port_lo if port >= self.port_hi else port + 1
            if self.port_free_at.get(port, 0) <= t:
                break
        else:
            raise SystemExit("gen.py: every port in --ports is in use; widen the range")
        up = self.ri(0, len(UPSTREAMS))
        self.port_free_at[port] = 1 << 62
        if (port, up) in self.tuples_used:
            self.truth.reused_tuples += 1
        self.tuples_used.add((port, up))
        c = Conn(
            port,
            up,
            self._prefix(UPSTREAMS[up], port, UPSTREAM_PORT, True),
            self._prefix(UPSTREAMS[up], port, UPSTREAM_PORT, False),
        )
        rng = self.rng
        wrap = rng.random() < 0.03
        c.cseq = (1 << 32) - self.ri(1, 200_000) if wrap else rng.getrandbits(32)
        c.sseq = (1 << 32) - self.ri(1, 200_000) if rng.random() < 0.03 else rng.getrandbits(32)
        c.ts_c = rng.getrandbits(32)
        c.ts_s = rng.getrandbits(32)
        c.ipid_c = rng.getrandbits(16)
        c.ipid_s = rng.getrandbits(16)
        c.last_t = t
        r = rng.random()
        if r < 0.3:
            c.left = self.ri(1, 5 + 1)
        elif r < 0.85:
            c.left = self.ri(6, 60 + 1)
        else:
            c.left = self.ri(61, 200 + 1)
        x = rng.random()
        for name, weight in ENDINGS:
            if x < weight:
                c.ending = name
                break
            x -= weight
        self.truth.connections += 1
        self.conns.append(c)
        return c

    def opened(self, c: Conn) -> None:
        c.open = True
        c.idx = len(self.pool)
        self.pool.append(c)

    def release(self, c: Conn) -> None:
        if c.open:
            last = self.pool.pop()
            if last is not c:
                self.pool[c.idx] = last
                last.idx = c.idx
        c.open = False
        c.version += 1
        self.port_free_at[c.port] = c.last_t + 1

    def gap(self) -> int:
        """Idle time between two exchanges on one connection."""
        rng = self.rng
        r = rng.random()
        if r < 0.6:
            return self.ri(100 * US, 20 * MS)
        if r < 0.95:
            return self.ri(20 * MS, 300 * MS)
        return self.ri(300 * MS, 800 * MS)

    # --- traffic -----------------------------------------------------------------------------

    def handshake(self, c: Conn, t: int) -> int:
        rtt = self.rtt(c)
        self.send(c, t, True, SYN)
        self.send(c, t + rtt, False, SYN | ACK)
        t = self.send(c, t + rtt + self.ri(3, 15), True, ACK)
        self.opened(c)
        return t + self.ri(2, 20)

    def rtt(self, c: Conn) -> int:
        return (60, 110, 180, 420)[c.up] + self.ri(0, 40)

    def request(self, method: str | None = None) -> tuple[str, str, str, bytes]:
        rnd = self.rnd
        if method is None:
            r = rnd()
            method = "GET" if r < 0.8 else "POST" if r < 0.95 else "HEAD"
        self.reqno += 1
        target = f"/api/v1/{RESOURCES[int(rnd() * len(RESOURCES))]}/{self.reqno}"
        if rnd() < 0.3:
            target += f"?page={1 + int(rnd() * 8)}&limit=50"
        host = HOSTS[int(rnd() * len(HOSTS))]
        head = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n".encode()
        tail = b"" if self.small else self.req_tails[int(rnd() * len(self.req_tails))]
        if method != "POST":
            return method, target, host, head + tail + b"\r\n"
        n = self.ri(20, 120) if self.small else self.ri(20, 600)
        body = b'{"q":"' + self.fill[: n - 8] + b'"}'
        clen = b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        return method, target, host, head + tail + clen + body

    def response(self, method: str, close: bool) -> bytes:
        rnd = self.rnd
        r = rnd()
        status = 200
        if r < 0.05:
            status = 404
        elif r < 0.08 and method == "GET":
            status = 304
        elif r < 0.09 and method == "POST":
            status = 201
        s = rnd()
        if self.small:  # an API answering a few bytes to a few hundred
            size = 2 + int(rnd() * 200)
        elif s < 0.8:  # most API answers are a few hundred bytes of JSON
            size = 40 + int(rnd() * 460)
        elif s < 0.97:
            size = 500 + int(rnd() * 2500)
        elif s < 0.997:
            size = 3000 + int(rnd() * 12000)
        else:
            size = 15000 + int(rnd() * 33000)
        no_body = method == "HEAD" or status == 304
        chunked = not no_body and rnd() < 0.15
        head = _STATUS_LINES[status]
        if chunked:
            head += b"Transfer-Encoding: chunked\r\n"
            self.truth.chunked_responses += 1
        elif status != 304:
            head += b"Content-Length: %d\r\n" % size
        if close:
            head += b"Date: Sun, 24 Nov 2024 10:00:00 GMT\r\nConnection: close\r\n\r\n"
            self.truth.connection_close_responses += 1
        else:
            head += b"Date: Sun, 24 Nov 2024 10:00:00 GMT\r\nKeep-Alive: timeout=1\r\n\r\n"
        if no_body:
            return head
        start = self.ri(0, len(self.fill) - size)
        body = self.fill[start : start + size]
        if not chunked:
            return head + body
        parts = [head]
        pos = 0
        while pos < size:
            n = min(size - pos, self.pick((512, 2048, 4096, 8192)))
            parts.append(b"%x\r\n" % n + body[pos : pos + n] + b"\r\n")
            pos += n
        parts.append(b"0\r\n\r\n")
        return b"".join(parts)

    def exchange(self, c: Conn, t: int, req: tuple[str, str, str, bytes] | None = None) -> bool:
        """One request and its response, from ``t``. True if the response closed the connection."""
        rng = self.rng
        method, _target, _host, data = req if req is not None else self.request()
        c.count += 1
        limit = MAX_REQUESTS.get(c.up)
        close = (c.left == 1 and c.ending == "conn_close" and req is None) or (
            limit is not None and c.count >= limit
        )
        rtt = self.rtt(c)
        if rng.random() < 0.045:
            self.noise(t)
        seq0, ack0 = c.cseq, c.sseq
        t = self.send(c, t, True, PSH | ACK, data)
        self.truth.requests += 1
        self.truth.methods[method] += 1
        if rng.random() < 0.0008:  # lost on the way out: the kernel sends it again after its RTO
            t = self.resend(c, t + RTO + self.ri(0, 3 * MS), True, PSH | ACK, seq0, ack0, data)
        think = self.think[int(rng.random() * 4096)]
        if think > DELAYED_ACK:
            self.send(c, t + rtt // 2 + DELAYED_ACK, False, ACK)
        ts = t + rtt + think
        body = self.response(method, close)
        self.truth.responses += 1
        n = len(body)
        last_seq, last_ack, last_payload = c.sseq, c.cseq, body
        if n <= MSS:  # most answers: one segment, acknowledged later (delayed ACK)
            self.send(c, ts, False, PSH | ACK, body)
            unacked = 1
        else:
            segs = (n + MSS - 1) // MSS
            unacked = 0
            for i in range(segs):
                part = body[i * MSS : (i + 1) * MSS]
                last_seq, last_ack, last_payload = c.sseq, c.cseq, part
                ts = self.send(c, ts, False, (PSH | ACK) if i == segs - 1 else ACK, part)
                unacked += 1
                if unacked == 2:  # Linux acknowledges every second full segment at once
                    self.send(c, ts + self.ri(4, 20), True, ACK)
                    unacked = 0
                ts += self.ri(2, 14)
        end = c.last_t
        if close:
            # Tomcat closes right after a Connection: close response; nginx follows.
            tf = self.send(c, end + self.ri(20, 80), False, FIN | ACK)
            self.send(c, tf + self.ri(5, 15), True, ACK)
            tc = self.send(c, tf + self.ri(30, 120), True, FIN | ACK)
            self.send(c, tc + rtt, False, ACK)
            self.truth.closed_by["server"] += 1
            self.truth.server_close_reasons["connection_close"] += 1
            c.busy_until = c.last_t
            return True
        if rng.random() < 0.0005:  # the ACK was lost: the upstream sends its last segment again
            ts = self.resend(c, end + RTO, False, PSH | ACK, last_seq, last_ack, last_payload)
            self.send(c, ts + self.ri(4, 20), True, ACK)
            unacked = 0
        c.busy_until = c.last_t
        if unacked:
            c.busy_until += DELAYED_ACK  # the delayed ACK, or the next request, acknowledges it
        return False

    def after_exchange(self, c: Conn, t: int) -> None:
        c.left -= 1
        if c.left > 0:
            delay = self.gap()
            if delay > DELAYED_ACK and c.busy_until > c.last_t:
                self.send(c, c.busy_until, True, ACK)
            elif c.busy_until > c.last_t:
                c.busy_until = c.last_t
            self.plan_next(c, "exchange", delay)
            return
        if c.busy_until > c.last_t:
            self.send(c, c.busy_until, True, ACK)
        ending = c.ending
        if ending in ("server_idle", "race"):
            delay = IDLE_TIMEOUT + self.ri(0, 4 * MS)
        else:
            delay = self.gap()
        self.plan_next(c, ending, delay)

    def close(self, c: Conn, t: int, how: str) -> None:
        rtt = self.rtt(c)
        truth = self.truth
        if how in ("client_fin", "conn_close"):  # conn_close: the plan was cut short by a retry
            tf = self.send(c, t, True, FIN | ACK)
            ts = self.send(c, tf + rtt + self.ri(30, 300), False, FIN | ACK)
            self.send(c, ts + self.ri(5, 20), True, ACK)
            truth.closed_by["client"] += 1
        elif how == "server_idle":
            tf = self.send(c, t, False, FIN | ACK)
            self.send(c, tf + self.ri(5, 15), True, ACK)
            tc = self.send(c, tf + self.ri(20, 100), True, FIN | ACK)
            self.send(c, tc + rtt, False, ACK)
            truth.closed_by["server"] += 1
            truth.server_close_reasons["idle_timeout"] += 1
        elif how == "client_rst":
            self.send(c, t, True, RST | ACK)
            truth.closed_by["client"] += 1
            truth.closed_with_rst += 1
        elif how == "server_rst":
            self.send(c, t, False, RST | ACK)
            truth.closed_by["server"] += 1
            truth.closed_with_rst += 1
            truth.server_close_reasons["reset"] += 1
        self.release(c)
        self.respawn(c.last_t)

    def race(self, c: Conn, t_fin: int) -> None:
        """The upstream's idle timer fires while nginx sends a request on the connection."""
        rng = self.rng
        rtt = self.rtt(c)
        truth = self.truth
        method, target, host, data = req = self.request()
        ahead = rng.random() < 0.4  # the request leaves before the FIN arrives
        if ahead:
            t_req = t_fin - self.ri(10, 200)
            if t_req < c.last_t:
                t_req = c.last_t
                t_fin = t_req + self.ri(10, 200)
            ack_before = c.cseq
            self.send(c, t_req, True, PSH | ACK, data)
            self.send(c, t_fin, False, FIN | ACK, ack=ack_before)  # sent before the data arrived
            self.send(c, t_fin + self.ri(3, 10), True, ACK)
            seen = t_fin
        else:
            self.send(c, t_fin, False, FIN | ACK)
            t_req = self.send(c, t_fin + self.ri(5, 300), True, PSH | ACK, data)
            seen = t_req
        truth.requests += 1
        truth.methods[method] += 1
        # nginx reads the EOF: logs "upstream prematurely closed connection", closes, and passes
        # the request to the next upstream; the upstream's kernel answers the data with a RST.
        t_close = self.send(c, seen + self.ri(15, 60), True, FIN | ACK)
        self.send(c, t_req + rtt, False, RST)
        truth.closed_by["server"] += 1
        truth.server_close_reasons["request_in_flight"] += 1
        label = f"{method} {target}"
        retry = method in ("GET", "HEAD")
        truth.lost_requests.append(
            {"request": label, "host": host, "client_port": c.port, "retried": retry}
        )
        self.release(c)
        if not retry:
            self.respawn(c.last_t)
            return
        t_retry = t_close + self.ri(5, 400)
        other = self.pick_idle(t_retry) if rng.random() < 0.4 else None
        if other is None:
            n = self.new_conn(t_retry)
            t = self.handshake(n, t_retry)
            truth.retries.append({"request": label, "new_connection": True, "client_port": n.port})
            self.run_exchange(n, t, req)
            return
        truth.retries.append({"request": label, "new_connection": False, "client_port": other.port})
        self.respawn(c.last_t)
        delay = other.next_delay
        if self.exchange(other, t_retry, req):  # its max requests reached: the upstream closed it
            self.release(other)
            self.respawn(other.last_t)
            return
        if other.busy_until > other.last_t:
            self.send(other, other.busy_until, True, ACK)
        # the exchange postponed the next one on this connection, by the same idle time
        self.plan_next(other, "exchange", delay)

    def pick_idle(self, t: int) -> Conn | None:
        """An open connection with nothing in flight, that nginx could take from its cache."""
        pool = self.pool
        for _ in range(8):
            if not pool:
                return None
            c = pool[self.ri(0, len(pool))]
            if c.busy_until < t and c.last_t < t and c.next_kind == "exchange":
                return c
        return None

    def run_exchange(self, c: Conn, t: int, req: tuple[str, str, str, bytes] | None = None) -> None:
        if self.exchange(c, t, req):
            self.release(c)
            self.respawn(c.last_t)
        else:
            self.after_exchange(c, t)

    def respawn(self, t: int) -> None:
        self.schedule(t + self.ri(100, 50 * MS), "open", None)

    def open(self, t: int) -> None:
        rng = self.rng
        if rng.random() < CONNECT_FAIL:
            c = self.new_conn(t)
            # never answered: Linux sends the SYN again after 1 s and 3 s; nginx gives up at 4 s
            for dt in (0, 1 * SEC, 3 * SEC):
                c.cseq -= 1 if dt else 0
                self.send(c, t + dt, True, SYN)
            c.last_t = t + 4 * SEC
            self.truth.connect_failures.append({"client_port": c.port, "syns": 3})
            self.truth.closed_by["none"] += 1
            self.release(c)
            t += self.ri(100, 2 * MS)
        c = self.new_conn(t)
        t = self.handshake(c, t)
        self.run_exchange(c, t)

    def start(self) -> None:
        """The pool already open when the capture starts: seen mid-stream, no handshake."""
        for _ in range(self.concurrency):
            c = self.new_conn(START_US)
            self.opened(c)
            self.truth.partial_connections += 1
            c.busy_until = START_US + self.ri(0, 200 * MS)
            c.last_t = START_US
            self.plan_next(c, "exchange", 0)

    def step(self, t: int, kind: str, c: Conn | None) -> None:
        if c is None:
            self.open(t)
        elif kind == "exchange":
            self.run_exchange(c, t)
        elif kind == "race":
            self.race(c, t)
        else:
            self.close(c, t, kind)

    # --- output ------------------------------------------------------------------------------

    def run(self, out: BinaryIO) -> None:
        if self.pcapng:
            out.write(struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28))
            # interface description: link type, snaplen, option if_tsresol = 6 (microseconds)
            idb = struct.pack("<HHIHHB3xHH", self.linktype, 0, 262144, 9, 1, 6, 0, 0)
            n = 12 + len(idb)
            out.write(struct.pack("<II", 1, n) + idb + struct.pack("<I", n))
        else:
            out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, self.linktype))
        self.start()
        # A thread writes while this one generates: the write system calls release the GIL.
        chunks: queue.Queue[list[bytes] | None] = queue.Queue(maxsize=4)

        def writer() -> None:
            while (chunk := chunks.get()) is not None:
                out.write(b"".join(chunk))

        thread = threading.Thread(target=writer, name="gen-writer")
        thread.start()
        try:
            self._run(chunks)
        finally:
            chunks.put(None)
            thread.join()

    def _run(self, chunks: queue.Queue[list[bytes] | None]) -> None:
        buf: list[bytes] = []
        written = 0
        pkts, actions = self.pkts, self.actions
        pop = heapq.heappop
        limit = self.target - MARGIN
        while actions:
            t, _, kind, c, version = pop(actions)
            if c is not None and version != c.version:
                continue
            while pkts and pkts[0][0] <= t:
                buf.append(pop(pkts)[2])
                written += 1
            if len(buf) > 16384:
                chunks.put(buf)
                buf = []
            if written + len(pkts) >= limit:
                break
            self.step(t, kind, c)
        last = START_US
        while pkts:
            last, _, data = pop(pkts)
            buf.append(data)
            written += 1
        if written > self.target:
            raise SystemExit(f"gen.py: wrote {written} packets, more than {self.target}")
        while written < self.target:  # top up with DNS, so the count is exact
            last += self.ri(50, 2000)
            self.noise(last, 0.8)
            buf.append(pop(pkts)[2])
            written += 1
        chunks.put(buf)
        truth = self.truth
        truth.packets = written
        truth.upstream_segments = written - sum(truth.skipped.values())
        truth.closed_by["none"] += sum(1 for c in self.conns if c.open)
        truth.seq_wraps = sum(1 for c in self.conns if c.cseq >> 32 or c.sseq >> 32)


def truth_json(g: Generator, seed: int, fmt: str, linktype: str) -> dict[str, Any]:
    t = g.truth
    d = asdict(t)
    return {
        "generator": {
            "packets": g.target,
            "seed": seed,
            "format": fmt,
            "linktype": linktype,
            "concurrency": g.concurrency,
            "ports": f"{g.port_lo}-{g.port_hi}",
            "upstream_port": UPSTREAM_PORT,
            "profile": "small" if g.small else "mixed",
        },
        "packets": t.packets,
        "skipped": dict(sorted(t.skipped.items())),
        "upstream_segments": t.upstream_segments,
        "connections": t.connections,
        "partial_connections": t.partial_connections,
        "closed_by": {k: t.closed_by[k] for k in ("client", "server", "none")},
        "closed_with_rst": t.closed_with_rst,
        "server_close_reasons": dict(sorted(t.server_close_reasons.items())),
        "requests": t.requests,
        "responses": t.responses,
        "unanswered_requests": len(t.lost_requests),
        "methods": dict(sorted(t.methods.items())),
        "chunked_responses": t.chunked_responses,
        "connection_close_responses": t.connection_close_responses,
        "retransmissions": t.retransmissions,
        "reused_tuples": t.reused_tuples,
        "seq_wrapped_connections": t.seq_wraps,
        "connect_failures": d["connect_failures"],
        "lost_requests": d["lost_requests"],
        "retries": d["retries"],
    }


def generate(
    out: Path,
    packets: int,
    *,
    seed: int = 1,
    fmt: str = "pcap",
    linktype: str = "EN10MB",
    concurrency: int | None = None,
    ports: tuple[int, int] = (32768, 60999),
    profile: str = "mixed",
) -> dict[str, Any]:
    """Write the capture to ``out`` and its truth to ``out.truth.json``; return the truth.

    ``profile``: ``mixed`` (the default) has browser-like request headers and responses from a
    few bytes to ~48 KB, ~465 bytes a packet; ``small`` has nginx's bare proxied requests and
    answers of up to 200 bytes, ~200 bytes a packet: a busy API.
    """
    if packets < MARGIN * 2:
        raise ValueError(f"packets must be at least {MARGIN * 2}")
    if fmt not in ("pcap", "pcapng"):
        raise ValueError(f"format must be pcap or pcapng, not {fmt!r}")
    if profile not in ("mixed", "small"):
        raise ValueError(f"profile must be mixed or small, not {profile!r}")
    g = Generator(
        packets,
        seed,
        LINKTYPES[linktype],
        concurrency or max(20, min(2000, packets // 500)),
        ports,
        pcapng=fmt == "pcapng",
        profile=profile,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb", buffering=0) as f:
        g.run(f)
    truth = truth_json(g, seed, fmt, linktype)
    truth_path = out.with_name(out.name + ".truth.json")
    truth_path.write_text(json.dumps(truth, indent=1) + "\n")
    return truth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--format", choices=("pcap", "pcapng"), default="pcap")
    parser.add_argument("--linktype", choices=tuple(LINKTYPES), default="EN10MB")
    parser.add_argument(
        "--profile",
        choices=("mixed", "small"),
        default="mixed",
        help="mixed: responses up to ~48 KB, ~465 B a packet; small: up to 200 B, ~200 B a packet",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        help="keepalive connections open at once (default: packets/500, within 20-2000)",
    )
    parser.add_argument(
        "--ports", default="32768-60999", help="nginx's ephemeral port range, LO-HI"
    )
    args = parser.parse_args(argv)
    lo, _, hi = args.ports.partition("-")
    t0 = time.perf_counter()
    try:
        truth = generate(
            args.out,
            args.packets,
            seed=args.seed,
            fmt=args.format,
            linktype=args.linktype,
            concurrency=args.concurrency,
            ports=(int(lo), int(hi)),
            profile=args.profile,
        )
    except ValueError as e:
        parser.error(str(e))
    seconds = time.perf_counter() - t0
    mib = args.out.stat().st_size / (1 << 20)
    print(
        f"{args.out}: {truth['packets']:,} packets, {mib:,.1f} MiB, {truth['connections']:,} "
        f"connections, in {seconds:.1f} s ({truth['packets'] / seconds:,.0f} packets/s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

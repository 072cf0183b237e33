"""Captures from the cloud: the nginx↔upstream packets inside the tunnels traffic mirroring and
PPP links put them in — VXLAN (AWS VPC traffic mirroring), Geneve, GRE, ERSPAN, PPPoE. The
connections, closers and findings are the ones the bare packets give; the addresses are the
inner packet's. The Python reference reads the same tunnels and agrees.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest

from pcapkit import analyze
from tests import craft, reference
from tests.conversation import MS, T0, Conv, get, ok

SEC = 1_000_000_000


def race() -> list[tuple[int, bytes]]:
    """A GET lost to the upstream's idle close and retried on a new connection."""
    a = Conv(40000).handshake(T0).exchange(T0 + 1 * MS, get("/a"), ok())
    t = T0 + 1003 * MS
    a.send("c", t, get("/lost")).fin("s", t + 200_000).fin("c", t + 300_000)
    b = Conv(40002).handshake(t + 400_000).exchange(t + 500_000, get("/lost"), ok())
    return sorted([*a.packets, *b.packets], key=lambda p: p[0])


def udp(dport: int, body: bytes) -> bytes:
    return struct.pack("!HHHH", 50000, dport, 8 + len(body), 0) + body


def vxlan(l3: bytes) -> bytes:
    inner = craft.frame(l3)
    return craft.ipv4("172.31.0.1", "172.31.0.2", 17, udp(4789, b"\x08\0\0\0\0\0\x01\0" + inner))


def geneve(l3: bytes) -> bytes:
    option = b"\x01\x02\x03\x01" + b"\0" * 4  # one 8-byte option: opt len 2 (words)
    header = struct.pack("!BBH", 2, 0, 0x6558) + b"\0\0\x01\0" + option
    return craft.ipv4("172.31.0.1", "172.31.0.2", 17, udp(6081, header + craft.frame(l3)))


def gre(l3: bytes) -> bytes:
    return craft.ipv4("10.9.0.1", "10.9.0.2", 47, struct.pack("!HH", 0, 0x0800) + l3)


def gre_keyed(l3: bytes) -> bytes:
    # key and sequence number present: 8 more bytes
    header = struct.pack("!HHII", 0x3000, 0x0800, 7, 1)
    return craft.ipv4("10.9.0.1", "10.9.0.2", 47, header + l3)


def erspan2(l3: bytes) -> bytes:
    header = struct.pack("!HHI", 0x1000, 0x88BE, 1) + b"\x10\x01\0\0\0\0\0\0"
    return craft.ipv4("10.9.0.1", "10.9.0.2", 47, header + craft.frame(l3))


def over_ipv6_gre(l3: bytes) -> bytes:
    return craft.ipv6("fd00::1", "fd00::2", 47, struct.pack("!HH", 0, 0x0800) + l3)


def pppoe(l3: bytes) -> bytes:
    session = struct.pack("!BBHHH", 0x11, 0, 0x0001, len(l3) + 2, 0x0021)
    return craft.ETH_DST + craft.ETH_SRC + b"\x88\x64" + session + l3


WRAPS: dict[str, tuple[Callable[[bytes], bytes], bool]] = {
    "vxlan": (vxlan, False),
    "geneve": (geneve, False),
    "gre": (gre, False),
    "gre-keyed": (gre_keyed, False),
    "erspan2": (erspan2, False),
    "gre-over-ipv6": (over_ipv6_gre, False),
    "pppoe": (pppoe, True),
}


@pytest.mark.parametrize("name", sorted(WRAPS))
def test_tunnelled_packets_are_the_bare_ones(tmp_path: Path, name: str) -> None:
    wrap, framed = WRAPS[name]
    packets = race()
    bare = tmp_path / "bare.pcap"
    craft.write_pcap(bare, packets)
    wrapped = tmp_path / f"{name}.pcap"
    craft.write_pcap(wrapped, [(t, wrap(p)) for t, p in packets], framed=framed)
    want, got = analyze(bare), analyze(wrapped)
    assert got.connections == want.connections
    assert [(f.type, f.connection) for f in got.findings] == [
        (f.type, f.connection) for f in want.findings
    ]
    assert {f.type for f in got.findings} >= {"request_lost_to_fin", "retry"}
    assert got.capture.upstream_segments == len(packets)
    assert reference.analyze(wrapped).connections == got.connections


def test_other_udp_is_still_not_tcp(tmp_path: Path) -> None:
    packets = race()
    dns = craft.ipv4("10.0.0.1", "10.0.0.53", 17, udp(53, b"\0" * 12))
    path = tmp_path / "dns.pcap"
    craft.write_pcap(path, [*packets, (packets[-1][0] + 1, dns)])
    a = analyze(path)
    assert dict(a.capture.skipped) == {"non_tcp": 1}

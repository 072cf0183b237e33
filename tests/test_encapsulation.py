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

from pcapkit import Analysis, analyze
from pcapkit.errors import NoUpstreamTrafficError
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


def ipip(l3: bytes) -> bytes:
    return craft.ipv4("10.9.0.1", "10.9.0.2", 4, l3)


def six_in_four(l3: bytes) -> bytes:
    v6 = race_v6_of(l3)
    return craft.ipv4("10.9.0.1", "10.9.0.2", 41, v6)


def race_v6_of(l3: bytes) -> bytes:
    """The same TCP segment over IPv6: nginx at fd00::1, the upstream (port 8080) at fd00::2."""
    ihl = (l3[0] & 0x0F) * 4
    to_upstream = struct.unpack_from("!H", l3, ihl + 2)[0] == 8080
    src, dst = ("fd00::1", "fd00::2") if to_upstream else ("fd00::2", "fd00::1")
    return craft.ipv6(src, dst, 6, l3[ihl:])


def fragments(l3: bytes, size: int, *, reverse: bool = False) -> list[bytes]:
    """An IPv4 packet cut into fragments of ``size`` payload bytes (a multiple of 8)."""
    ihl = (l3[0] & 0x0F) * 4
    head, body = bytearray(l3[:ihl]), l3[ihl:]
    out = []
    for off in range(0, len(body), size):
        piece = body[off : off + size]
        more = off + size < len(body)
        h = bytearray(head)
        h[2:4] = struct.pack("!H", ihl + len(piece))
        h[6:8] = struct.pack("!H", (0x2000 if more else 0) | (off // 8))
        out.append(bytes(h) + piece)
    return out[::-1] if reverse else out


def v6_fragments(l3: bytes, size: int) -> list[bytes]:
    """An IPv6 packet (no extension headers) cut into fragments of ``size`` payload bytes."""
    head, body, nxt = bytearray(l3[:40]), l3[40:], l3[6]
    out = []
    for off in range(0, len(body), size):
        piece = body[off : off + size]
        more = off + size < len(body)
        h = bytearray(head)
        h[4:6] = struct.pack("!H", 8 + len(piece))
        h[6] = 44
        frag = struct.pack("!BBHI", nxt, 0, off | int(more), 0xBEEF)
        out.append(bytes(h) + frag + piece)
    return out


def test_ip_in_ip_and_ipv6_in_ip_are_read(tmp_path: Path) -> None:
    packets = race()
    bare = tmp_path / "bare.pcap"
    craft.write_pcap(bare, packets)
    want = analyze(bare)
    for name, wrap in (("ipip", ipip), ("6in4", six_in_four)):
        path = tmp_path / f"{name}.pcap"
        craft.write_pcap(path, [(t, wrap(p)) for t, p in packets])
        got = analyze(path)
        assert [(f.type, f.connection) for f in got.findings] == [
            (f.type, f.connection) for f in want.findings
        ]
        assert got.capture.upstream_segments == len(packets)
        assert reference.analyze(path).connections == got.connections
    assert analyze(tmp_path / "6in4.pcap").connections[0].client.startswith("[fd00::")


def shape(a: Analysis) -> list[tuple[object, ...]]:
    """What a connection is, without packet numbers (fragments add records)."""
    return [
        (
            c.client,
            c.state,
            c.history,
            c.closed_by,
            c.client_bytes,
            c.server_bytes,
            [(r.method, r.target, r.status, r.sent_at_ns, r.responded_at_ns) for r in c.requests],
            [(e.type, e.side, e.time_ns) for e in c.events],
        )
        for c in a.connections
    ]


def test_fragmented_packets_are_put_back_together(tmp_path: Path) -> None:
    packets = race()
    bare = tmp_path / "bare.pcap"
    craft.write_pcap(bare, packets)
    want = analyze(bare)
    cut: list[tuple[int, bytes]] = []
    for k, (t, p) in enumerate(packets):
        # every data packet in 16-byte pieces, every other one written last piece first
        parts = fragments(p, 16, reverse=k % 2 == 1) if len(p) > 60 else [p]
        cut += [(t, part) for part in parts]
    path = tmp_path / "fragments.pcap"
    craft.write_pcap(path, cut)
    got = analyze(path)
    assert shape(got) == shape(want)
    assert [(f.type, f.connection) for f in got.findings] == [
        (f.type, f.connection) for f in want.findings
    ]
    joined = len(cut) - len(packets)
    assert dict(got.capture.skipped) == {"ip_fragment_reassembled": joined}
    assert got.capture.packets == got.capture.upstream_segments + got.capture.skipped_total
    assert reference.analyze(path).connections == got.connections


def test_fragmented_tunnel_packets_are_put_back_together(tmp_path: Path) -> None:
    # VXLAN around a full-size frame is larger than the path's MTU: the outer packets fragment
    packets = race()
    bare = tmp_path / "bare.pcap"
    craft.write_pcap(bare, packets)
    cut = [(t, part) for t, p in packets for part in fragments(vxlan(p), 48)]
    path = tmp_path / "vxlan-fragments.pcap"
    craft.write_pcap(path, cut)
    got = analyze(path)
    assert shape(got) == shape(analyze(bare))
    assert reference.analyze(path).connections == got.connections


def test_ipv6_fragments_are_put_back_together(tmp_path: Path) -> None:
    packets = [(t, race_v6_of(p)) for t, p in race()]
    bare = tmp_path / "bare6.pcap"
    craft.write_pcap(bare, packets)
    cut = [(t, part) for t, p in packets for part in v6_fragments(p, 24)]
    path = tmp_path / "fragments6.pcap"
    craft.write_pcap(path, cut)
    got = analyze(path)
    assert shape(got) == shape(analyze(bare))
    assert {f.type for f in got.findings} >= {"request_lost_to_fin", "retry"}
    assert reference.analyze(path).connections == got.connections


def test_a_fragment_whose_datagram_never_completes_is_counted(tmp_path: Path) -> None:
    packets = race()
    first = fragments(packets[3][1], 16)[0]  # the first piece of a request, alone
    path = tmp_path / "lone.pcap"
    craft.write_pcap(path, [*packets, (packets[-1][0] + 1, first)])
    assert dict(analyze(path).capture.skipped) == {"ip_fragment": 1}


@pytest.mark.parametrize(
    ("wrap", "named"),
    [
        (
            lambda l3: craft.ipv4("10.9.0.1", "10.9.0.2", 47, struct.pack("!HH", 0, 0x880B) + l3),
            "GRE",
        ),
        (lambda l3: craft.ipv4("10.9.0.1", "10.9.0.2", 17, udp(2152, bytes(8) + l3)), "GTP-U"),
        (lambda l3: craft.ipv4("10.9.0.1", "10.9.0.2", 50, bytes(8) + l3), "IPsec ESP"),
    ],
)
def test_a_tunnel_not_read_is_named(
    tmp_path: Path, wrap: Callable[[bytes], bytes], named: str
) -> None:
    path = tmp_path / "tunnel.pcap"
    craft.write_pcap(path, [(t, wrap(p)) for t, p in race()])
    with pytest.raises(NoUpstreamTrafficError, match=f"TCP inside {named}.* is not read"):
        analyze(path)

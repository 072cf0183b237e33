"""Link layers, IP and TCP decoding: every supported framing, and every way a packet is skipped."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import dpkt
import pytest

from tests.craft import (
    ETH_DST,
    ETH_SRC,
    Row,
    frame,
    ipv4,
    ipv6,
    ipv6_extension,
    read_segments,
    tcp,
    tcp_flags,
    tcp_segment,
    write_pcap,
)
from tests.oracle.flows import ACK, FIN, PSH, RST, SYN

TS = 1_700_000_000_123_456_000
V4 = ("10.0.0.1", "10.0.0.2")
V6 = ("2001:db8::1", "2001:db8::2")


def _one(
    path: Path, l3: bytes, *, linktype: str | int = "EN10MB"
) -> tuple[list[Row], dict[str, int], int]:
    write_pcap(path, [(TS, l3)], linktype=linktype)
    rows, info = read_segments(path)
    assert info.packets == 1
    return rows, dict(info.skipped), info.tcp_segments


@pytest.mark.parametrize("linktype", ["EN10MB", "LINUX_SLL", "LINUX_SLL2", "RAW", "NULL", "LOOP"])
@pytest.mark.parametrize("family", [V4, V6])
def test_each_link_type_carries_both_ip_versions(
    tmp_path: Path, linktype: str, family: tuple[str, str]
) -> None:
    pkt = tcp(*family, 40000, 8080, seq=11, ack=22, flags="PA", payload=b"GET / HTTP/1.1\r\n")
    write_pcap(tmp_path / "c.pcap", [(TS, pkt)], linktype=linktype)
    rows, info = read_segments(tmp_path / "c.pcap")
    assert info.link_types == [linktype]
    assert len(rows) == 1
    row = rows[0]
    assert (row.src, row.dst, row.sport, row.dport) == (*family, 40000, 8080)
    assert (row.seq, row.ack, row.flags) == (11, 22, PSH | ACK)
    assert row.payload == b"GET / HTTP/1.1\r\n"
    assert row.payload_len == 16
    assert row.ip_version == (6 if ":" in family[0] else 4)


@pytest.mark.parametrize(("linktype", "family"), [("IPV4", V4), ("IPV6", V6)])
def test_fixed_family_link_types(tmp_path: Path, linktype: str, family: tuple[str, str]) -> None:
    rows, skipped, _ = _one(tmp_path / "c.pcap", tcp(*family, 1, 2), linktype=linktype)
    assert len(rows) == 1
    assert not skipped


@pytest.mark.parametrize("number", [12, 14, 101])
def test_every_dlt_raw_number(tmp_path: Path, number: int) -> None:
    write_pcap(tmp_path / "c.pcap", [(TS, tcp(*V6, 1, 2))], linktype=number)
    rows, info = read_segments(tmp_path / "c.pcap")
    assert len(rows) == 1
    assert info.link_types == ["RAW"]


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("family", [V4, V6])
def test_null_address_family_in_either_byte_order(
    tmp_path: Path, order: str, family: tuple[str, str]
) -> None:
    data = frame(tcp(*family, 1, 2), "NULL", null_byte_order=order)
    write_pcap(tmp_path / "c.pcap", [(TS, data)], linktype="NULL", framed=True)
    rows, _ = read_segments(tmp_path / "c.pcap")
    assert len(rows) == 1


@pytest.mark.parametrize("af", [24, 28, 30])
def test_null_accepts_every_bsd_ipv6_value(tmp_path: Path, af: int) -> None:
    data = struct.pack("<I", af) + tcp(*V6, 1, 2)
    write_pcap(tmp_path / "c.pcap", [(TS, data)], linktype="NULL", framed=True)
    assert len(read_segments(tmp_path / "c.pcap")[0]) == 1


@pytest.mark.parametrize(
    ("vlan", "tpids"),
    [
        ((10,), (0x8100,)),  # 802.1Q
        ((10,), (0x88A8,)),  # 802.1ad alone
        ((100, 10), (0x88A8, 0x8100)),  # QinQ
        ((100, 10), (0x9100, 0x8100)),  # pre-standard QinQ
        ((7, 8, 9), (0x88A8, 0x8100, 0x8100)),  # more than two: still vectorized
    ],
)
@pytest.mark.parametrize("family", [V4, V6])
def test_vlan_tags_are_stepped_over(
    tmp_path: Path, vlan: tuple[int, ...], tpids: tuple[int, ...], family: tuple[str, str]
) -> None:
    data = frame(tcp(*family, 1, 2, payload=b"x"), vlan=vlan, tpids=tpids)
    plain = frame(tcp(*family, 1, 2), "EN10MB")
    write_pcap(tmp_path / "c.pcap", [(TS, plain), (TS, data)], framed=True)
    rows, info = read_segments(tmp_path / "c.pcap")
    assert [r.payload for r in rows] == [b"", b"x"]
    assert info.tcp_segments == 2


def test_vlan_tag_cut_by_snaplen_is_truncated(tmp_path: Path) -> None:
    data = frame(tcp(*V4, 1, 2), vlan=(1, 2))
    write_pcap(tmp_path / "c.pcap", [(TS, data[:16])], framed=True)
    rows, info = read_segments(tmp_path / "c.pcap")
    assert rows == []
    assert info.skipped == {"truncated": 1}


def test_sll_outgoing_and_incoming(tmp_path: Path) -> None:
    pkts = [
        frame(tcp(*V4, 1, 2), "LINUX_SLL2", outgoing=True),
        frame(tcp(*V4, 2, 1), "LINUX_SLL2"),
    ]
    write_pcap(tmp_path / "c.pcap", [(TS, p) for p in pkts], linktype="LINUX_SLL2", framed=True)
    rows, _ = read_segments(tmp_path / "c.pcap")
    assert [r.sport for r in rows] == [1, 2]


def test_ipv4_header_options(tmp_path: Path) -> None:
    seg = tcp_segment(5, 6, flags="PA", payload=b"hello")
    pkt = ipv4(*V4, 6, seg, options=b"\x94\x04\x00\x00" + b"\x01" * 8)  # router alert + NOPs
    rows, skipped, _ = _one(tmp_path / "c.pcap", pkt)
    assert not skipped
    assert rows[0].payload == b"hello"


@pytest.mark.parametrize("chain", [(0,), (43,), (60,), (0, 43, 60)])
def test_ipv6_extension_headers_are_walked(tmp_path: Path, chain: tuple[int, ...]) -> None:
    pkt = tcp(*V6, 1, 2, flags="PA", payload=b"abc", ipv6_extensions=chain)
    rows, skipped, _ = _one(tmp_path / "c.pcap", pkt)
    assert not skipped
    assert rows[0].payload == b"abc"
    assert rows[0].payload_len == 3


def test_ipv6_fragment_header_is_a_fragment(tmp_path: Path) -> None:
    frag = struct.pack("!BBHI", 6, 0, 1, 0x1234)  # offset 0, M flag set
    pkt = ipv6(*V6, 44, frag + tcp_segment(1, 2))
    assert _one(tmp_path / "c.pcap", pkt)[1] == {"ip_fragment": 1}
    pkt = ipv6(*V6, 0, ipv6_extension(44) + frag + tcp_segment(1, 2))
    assert _one(tmp_path / "d.pcap", pkt)[1] == {"ip_fragment": 1}


def test_ipv6_extension_chain_cut_short_is_truncated(tmp_path: Path) -> None:
    pkt = ipv6(*V6, 0, ipv6_extension(6, length_units=3) + tcp_segment(1, 2))
    write_pcap(tmp_path / "c.pcap", [(TS, pkt)], snaplen=14 + 40 + 16)
    assert read_segments(tmp_path / "c.pcap")[1].skipped == {"truncated": 1}


@pytest.mark.parametrize("family", [V4, V6])
def test_snaplen_64_keeps_true_payload_length(tmp_path: Path, family: tuple[str, str]) -> None:
    """`tcpdump -s 64`: TCP options cut off, fixed header present: still a segment."""
    payload = b"x" * 1000
    pkt = tcp(*family, 1, 2, flags="PA", payload=payload, options=True)
    snap = 64 if family is V4 else 14 + 40 + 20
    write_pcap(tmp_path / "c.pcap", [(TS, pkt)], snaplen=snap)
    (row,), info = read_segments(tmp_path / "c.pcap")
    assert info.tcp_segments == 1
    assert row.payload_len == 1000
    assert row.payload == b""


def test_snaplen_cut_inside_payload(tmp_path: Path) -> None:
    pkt = tcp(*V4, 1, 2, flags="PA", payload=bytes(range(100)))
    write_pcap(tmp_path / "c.pcap", [(TS, pkt)], snaplen=14 + 20 + 20 + 30)
    (row,), _ = read_segments(tmp_path / "c.pcap")
    assert (row.payload_len, len(row.payload)) == (100, 30)
    assert row.payload == bytes(range(30))


@pytest.mark.parametrize("snap", [14 + 19, 14 + 20 + 19, 14 + 10])
def test_cut_before_end_of_fixed_tcp_header_is_truncated(tmp_path: Path, snap: int) -> None:
    write_pcap(tmp_path / "c.pcap", [(TS, tcp(*V4, 1, 2))], snaplen=snap)
    assert read_segments(tmp_path / "c.pcap")[1].skipped == {"truncated": 1}


def test_cut_inside_ipv4_options_is_truncated(tmp_path: Path) -> None:
    pkt = ipv4(*V4, 6, tcp_segment(1, 2), options=b"\x01" * 20)
    write_pcap(tmp_path / "c.pcap", [(TS, pkt)], snaplen=14 + 30)
    assert read_segments(tmp_path / "c.pcap")[1].skipped == {"truncated": 1}


def test_ethernet_padding_is_not_payload(tmp_path: Path) -> None:
    data = frame(tcp(*V4, 1, 2)) + b"\xee" * 6  # padded to the 60-byte minimum
    write_pcap(tmp_path / "c.pcap", [(TS, data)], framed=True)
    (row,), _ = read_segments(tmp_path / "c.pcap")
    assert (row.payload_len, row.payload) == (0, b"")


def test_tso_total_length_zero_uses_captured_length(tmp_path: Path) -> None:
    pkt = ipv4(*V4, 6, tcp_segment(1, 2, flags="PA", payload=b"y" * 3000), total_length=0)
    rows, skipped, _ = _one(tmp_path / "c.pcap", pkt)
    assert not skipped
    assert rows[0].payload_len == 3000


@pytest.mark.parametrize(
    ("l3", "reason"),
    [
        (ipv4(*V4, 6, tcp_segment(1, 2), total_length=30), "malformed"),  # < IHL + 20
        (ipv4(*V4, 6, tcp_segment(1, 2), ihl=4), "malformed"),
        (ipv4(*V4, 6, tcp_segment(1, 2, data_offset=4)), "malformed"),
        (ipv4(*V4, 6, tcp_segment(1, 2, data_offset=15)), "malformed"),  # options past IP end
        (ipv6(*V6, 6, tcp_segment(1, 2), payload_length=12), "malformed"),
        (ipv4(*V4, 6, tcp_segment(1, 2), flags_frag=0x2000), "ip_fragment"),  # MF
        (ipv4(*V4, 6, tcp_segment(1, 2), flags_frag=0x0010), "ip_fragment"),  # offset
        (ipv4(*V4, 17, struct.pack("!HHHH", 53, 53, 8, 0)), "non_tcp"),
        (ipv4(*V4, 1, b"\x08\x00\x00\x00\x00\x00\x00\x00"), "non_tcp"),
        (ipv6(*V6, 58, b"\x80\x00\x00\x00\x00\x00\x00\x00"), "non_tcp"),
        (ipv6(*V6, 59, b""), "non_tcp"),
        # a UDP fragment may carry a tunnel: kept for reassembly; alone, it never completes
        (ipv4(*V4, 17, bytes(8), flags_frag=0x2000), "ip_fragment"),
        (ipv4(*V4, 50, bytes(16)), "esp"),  # IPsec ESP: encrypted
        (ipv4(*V4, 47, struct.pack("!HH", 0, 0x880B) + bytes(8)), "gre_not_read"),  # PPTP
        (ipv4(*V4, 17, struct.pack("!HHHH", 1, 2152, 16, 0) + bytes(8)), "udp_tunnel_not_read"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_skip_reasons(tmp_path: Path, l3: bytes, reason: str) -> None:
    rows, skipped, segments = _one(tmp_path / "c.pcap", l3)
    assert rows == []
    assert skipped == {reason: 1}
    assert segments == 0


def test_wrong_version_nibble(tmp_path: Path) -> None:
    pkt = bytearray(tcp(*V4, 1, 2))
    pkt[0] = 0x55
    assert _one(tmp_path / "a.pcap", bytes(pkt))[1] == {"malformed": 1}
    assert _one(tmp_path / "b.pcap", bytes(pkt), linktype="RAW")[1] == {"malformed": 1}


@pytest.mark.parametrize("ethertype", [0x0806, 0x8864, 0x8847, 0x0030])
def test_non_ip_ethertypes(tmp_path: Path, ethertype: int) -> None:
    data = frame(bytes(28), ethertype=ethertype)
    write_pcap(tmp_path / "c.pcap", [(TS, data)], framed=True)
    assert read_segments(tmp_path / "c.pcap")[1].skipped == {"non_ip": 1}


def test_empty_records_are_truncated(tmp_path: Path) -> None:
    for linktype in ("EN10MB", "RAW", "NULL", "LINUX_SLL2"):
        path = tmp_path / f"{linktype}.pcap"
        write_pcap(path, [(TS, b"")], linktype=linktype, framed=True)
        assert read_segments(path)[1].skipped == {"truncated": 1}, linktype


def _mixed_capture() -> list[tuple[int, bytes]]:
    """Every kind of packet, framed for Ethernet (some with VLAN tags)."""
    out: list[bytes] = []
    for k in range(40):
        fam = V4 if k % 2 else V6
        flags = ["S", "SA", "A", "PA", "FA", "R", "RA"][k % 7]
        payload = bytes([65 + k % 26]) * (k * 7 % 50) if "P" in flags else b""
        pkt = tcp(*fam, 30000 + k, 8080, seq=k * 1000, ack=k, flags=flags, payload=payload)
        out.append(frame(pkt, vlan=(k,) if k % 5 == 0 else ()))
        if k % 6 == 0:
            out.append(frame(ipv4(*V4, 17, struct.pack("!HHHH", 1, 2, 8, 0))))
        if k % 7 == 0:
            out.append(ETH_DST + ETH_SRC + b"\x08\x06" + bytes(28))
        if k % 9 == 0:
            out.append(frame(ipv4(*V4, 6, tcp_segment(1, 2), flags_frag=0x2000)))
        if k % 8 == 0:
            out.append(frame(tcp(*V6, 5, 6, flags="PA", payload=b"ext", ipv6_extensions=(0,))))
    return [(TS + i * 1000, d) for i, d in enumerate(out)]


def test_packet_invariant_on_a_mixed_capture(tmp_path: Path) -> None:
    packets = _mixed_capture()
    write_pcap(tmp_path / "m.pcap", packets, framed=True, snaplen=70)
    rows, info = read_segments(tmp_path / "m.pcap")
    assert info.packets == len(packets)
    assert info.packets == info.tcp_segments + sum(info.skipped.values())
    assert len(rows) == info.tcp_segments
    assert set(info.skipped) >= {"non_ip", "non_tcp", "ip_fragment", "truncated"}
    assert [r.frame for r in rows] == sorted(r.frame for r in rows)


def test_fields_agree_with_dpkt(tmp_path: Path) -> None:
    packets = _mixed_capture()
    write_pcap(tmp_path / "m.pcap", packets, framed=True)
    rows, _ = read_segments(tmp_path / "m.pcap")
    expected = []
    with (tmp_path / "m.pcap").open("rb") as f:
        for number, (ts, buf) in enumerate(dpkt.pcap.Reader(f), start=1):
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if not isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6):
                continue
            if isinstance(ip, dpkt.ip.IP) and (ip.mf or ip.offset):
                continue
            seg = ip.data
            if not isinstance(seg, dpkt.tcp.TCP):
                continue
            assert round(ts * 1e6) == (TS + (number - 1) * 1000) // 1000
            family = socket.AF_INET if isinstance(ip, dpkt.ip.IP) else socket.AF_INET6
            expected.append(
                (
                    number,
                    socket.inet_ntop(family, ip.src),
                    socket.inet_ntop(family, ip.dst),
                    seg.sport,
                    seg.dport,
                    seg.seq,
                    seg.ack,
                    seg.flags & 0x3F,
                    seg.win,
                    bytes(seg.data),
                )
            )
    got = [
        (r.frame, r.src, r.dst, r.sport, r.dport, r.seq, r.ack, r.flags, r.window, r.payload)
        for r in rows
    ]
    assert got == expected
    assert len(got) > 40


def test_flag_bits_match_scapy_letters(tmp_path: Path) -> None:
    letters = ["S", "SA", "A", "PA", "FA", "R", "RA", "FPA", "SEC"]
    pkts = [(TS, tcp(*V4, 1, 2, flags=f)) for f in letters]
    write_pcap(tmp_path / "c.pcap", pkts)
    rows, _ = read_segments(tmp_path / "c.pcap")
    assert [r.flags for r in rows] == [tcp_flags(f) & 0x3F for f in letters]
    assert rows[0].flags == SYN
    assert rows[4].flags == FIN | ACK
    assert rows[5].flags == RST


def test_addresses_and_endpoints(tmp_path: Path) -> None:
    pkts = [
        (TS, tcp("192.168.1.10", "8.8.8.8", 5, 6)),
        (TS, tcp("fe80::1", "::ffff:1.2.3.4", 7, 8)),
    ]
    write_pcap(tmp_path / "c.pcap", pkts)
    rows, _ = read_segments(tmp_path / "c.pcap")
    assert [(r.ip_version, r.src, r.dst) for r in rows] == [
        (4, "192.168.1.10", "8.8.8.8"),
        (6, "fe80::1", "::ffff:102:304"),  # a v6 packet's address is shown as v6
    ]

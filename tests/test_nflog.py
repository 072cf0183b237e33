"""Linux NFLOG captures (``tcpdump -i nflog:GROUP``, link type 239).

A real one (``fixtures/nflog/``: the same traffic captured at once through NFLOG and on ``lo``,
made by ``fixtures/nflog/make.py`` with an nftables ``log group`` rule in a network namespace)
and crafted ones, byte for byte as libpcap documents LINKTYPE_NFLOG:

- a 4-byte header: the address family (``AF_INET`` 2, ``AF_INET6`` 10), the version (0), the
  resource id (the NFLOG group, big-endian);
- then attributes (TLVs): a 2-byte length (the 4-byte attribute header included), a 2-byte type
  (its top two bits are netlink flags), both in the byte order of the host that wrote the file
  (the pcap header's byte order), then the value, padded to a multiple of 4 bytes;
- ``NFULA_PAYLOAD`` (type 9) holds the packet from its IP header on.
"""

from __future__ import annotations

import struct
from pathlib import Path

import dpkt
import pytest

from pcapkit import analyze
from pcapkit._core import read_segments
from pcapkit.report.json_report import analysis_dict
from tests.craft import write_pcap

FIXTURES = Path(__file__).parent.parent / "fixtures"
RACE = FIXTURES / "idle-race-get" / "capture.pcap"

NFULA_PACKET_HDR = 1
NFULA_PAYLOAD = 9
NFULA_PREFIX = 10


def tlv(kind: int, value: bytes, order: str) -> bytes:
    head = struct.pack(order + "HH", 4 + len(value), kind)
    return head + value + bytes(-len(value) % 4)


def nflog(ip: bytes, order: str, *, family: int = 2, payload_kind: int = NFULA_PAYLOAD) -> bytes:
    """One NFLOG record: header, a packet header and a prefix attribute, then the payload."""
    return (
        struct.pack("!BBH", family, 0, 13)
        + tlv(NFULA_PACKET_HDR, struct.pack("!HBx", 0x0800, 3), order)
        + tlv(NFULA_PREFIX, b"kaflow\x00", order)
        + tlv(payload_kind, ip, order)
    )


def race_packets() -> list[tuple[int, bytes]]:
    """The real race fixture's packets, without their Ethernet headers."""
    with RACE.open("rb") as f:
        return [(round(ts * 1e6) * 1000, bytes(frame)[14:]) for ts, frame in dpkt.pcap.Reader(f)]


def body(path: Path) -> dict[str, object]:
    d = analysis_dict(analyze(path))
    d.pop("capture")
    d.pop("generator")
    return d


def test_a_real_nflog_capture_equals_the_same_traffic_on_lo() -> None:
    got = analyze(FIXTURES / "nflog" / "nflog.pcap")
    lo = analyze(FIXTURES / "nflog" / "lo.pcap")
    assert got.capture.link_types == ("NFLOG",) and got.capture.skipped == ()
    assert got.summary == lo.summary and got.summary.connections == 2
    for a, b in zip(got.connections, lo.connections, strict=True):
        assert (a.closed_by, a.history, a.packets) == (b.closed_by, b.history, b.packets)
        assert [r.label for r in a.requests] == [r.label for r in b.requests]
        assert [(e.type, e.side, e.status) for e in a.events] == [
            (e.type, e.side, e.status) for e in b.events
        ]
    assert [f.type for f in got.findings] == ["server_initiated_close"]


@pytest.mark.parametrize("big_endian", [False, True], ids=["little-endian", "big-endian"])
def test_crafted_nflog_is_the_ethernet_capture(tmp_path: Path, big_endian: bool) -> None:
    order = ">" if big_endian else "<"
    path = tmp_path / "nflog.pcap"
    records = [(ts, nflog(ip, order)) for ts, ip in race_packets()]
    write_pcap(path, records, linktype=239, framed=True, big_endian=big_endian)
    assert body(path) == body(RACE)


def test_nflog_packets_that_are_not_tcp_are_counted_by_reason(tmp_path: Path) -> None:
    (ts, ip), *_ = race_packets()
    short = struct.pack("!BBH", 2, 0, 13) + struct.pack("<HH", 2, NFULA_PAYLOAD) + ip
    records = [
        (ts, nflog(ip, "<", family=7)),  # not IPv4 or IPv6
        (ts, nflog(ip, "<", payload_kind=NFULA_PREFIX)),  # no packet logged
        (ts, short),  # an attribute shorter than its own header
        (ts, nflog(ip, "<")),
    ]
    path = tmp_path / "odd.pcap"
    write_pcap(path, records, linktype=239, framed=True)
    segments, facts = read_segments(str(path))
    assert dict(facts.skipped) == {"non_ip": 1, "truncated": 1, "malformed": 1}
    assert segments.frame == [4] and facts.link_types == ["NFLOG"]


def test_nflog_cut_by_the_snaplen_keeps_the_headers(tmp_path: Path) -> None:
    """The snaplen cuts the payload attribute short: its length still says the packet's."""
    packets = race_packets()
    path = tmp_path / "snap.pcap"
    records = [(ts, nflog(ip, "<")) for ts, ip in packets]
    write_pcap(path, records, linktype=239, framed=True, snaplen=4 + 8 + 12 + 4 + 60)
    segments, facts = read_segments(str(path))
    assert facts.skipped == [] and len(segments.frame) == len(packets)
    full, _ = read_segments(str(RACE))
    assert segments.payload_len == full.payload_len
    assert all(len(p) <= 20 for p in segments.payload)

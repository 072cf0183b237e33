"""File formats and the record walk: pcap variants, pcapng blocks, gzip, window boundaries."""

from __future__ import annotations

import gzip
import os
import random
import struct
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.craft import (
    Row,
    frame,
    pcap_bytes,
    pcapng_block,
    pcapng_bytes,
    pcapng_epb,
    pcapng_idb,
    pcapng_shb,
    pcapng_spb,
    read_segments,
    tcp,
    ts_units,
    write_pcap,
    write_pcapng,
)

TS = 1_700_000_000_123_456_789
V4 = ("10.0.0.1", "10.0.0.2")
V6 = ("2001:db8::1", "2001:db8::2")


def _packets(count: int, *, seed: int = 1, start: int = TS) -> list[tuple[int, bytes]]:
    rng = random.Random(seed)
    out = []
    ts = start
    for k in range(count):
        fam = V6 if rng.random() < 0.3 else V4
        payload = bytes(rng.randrange(256) for _ in range(rng.choice([0, 0, 1, 30, 200, 1400])))
        flags = "PA" if payload else rng.choice(["A", "S", "SA", "FA"])
        pkt = tcp(*fam, 1024 + k % 50000, 8080, seq=k, ack=2 * k, flags=flags, payload=payload)
        ts += rng.randrange(1, 5_000_000)
        out.append((ts, pkt))
    return out


def _key(rows: list[Row]) -> list[tuple[int, int, int, int, int, bytes]]:
    return [(r.frame, r.ts_ns, r.sport, r.seq, r.payload_len, r.payload) for r in rows]


@pytest.mark.parametrize("big_endian", [False, True])
@pytest.mark.parametrize("nanosecond", [False, True])
def test_pcap_variants(tmp_path: Path, nanosecond: bool, big_endian: bool) -> None:
    packets = _packets(20)
    path = tmp_path / "c.pcap"
    write_pcap(path, packets, nanosecond=nanosecond, big_endian=big_endian)
    rows, info = read_segments(path)
    assert info.format == "pcap"
    assert info.ts_resolution_ns == (1 if nanosecond else 1000)
    expected_ts = [ts if nanosecond else ts // 1000 * 1000 for ts, _ in packets]
    assert [r.ts_ns for r in rows] == expected_ts
    assert [r.seq for r in rows] == list(range(20))
    assert info.first_ts_ns == expected_ts[0]
    assert info.last_ts_ns == expected_ts[-1]
    assert info.bytes_read == path.stat().st_size
    assert info.truncated_at_offset is None
    assert info.warnings == []


def test_kuznetzov_modified_pcap(tmp_path: Path) -> None:
    packets = _packets(10)
    write_pcap(tmp_path / "m.pcap", packets, modified=True)
    write_pcap(tmp_path / "p.pcap", packets)
    assert _key(read_segments(tmp_path / "m.pcap")[0]) == _key(
        read_segments(tmp_path / "p.pcap")[0]
    )


def test_pcap_link_type_field_upper_bits_ignored(tmp_path: Path) -> None:
    data = bytearray(pcap_bytes(_packets(2)))
    struct.pack_into("<I", data, 20, 1 | (0x1 << 26) | (4 << 28))  # FCS-length bits set
    (tmp_path / "c.pcap").write_bytes(bytes(data))
    assert len(read_segments(tmp_path / "c.pcap")[0]) == 2


def test_pcapng_two_interfaces_different_link_types_and_resolutions(tmp_path: Path) -> None:
    interfaces = [("EN10MB", 6), ("LINUX_SLL2", 9)]
    packets = [(k % 2, TS + k * 1_000_001, tcp(*V4, 1000 + k, 80, seq=k)) for k in range(10)]
    write_pcapng(tmp_path / "c.pcapng", interfaces, packets)
    rows, info = read_segments(tmp_path / "c.pcapng")
    assert info.format == "pcapng"
    assert info.link_types == ["EN10MB", "LINUX_SLL2"]
    assert info.ts_resolution_ns == 1000  # of the first interface
    expected = [ts // 1000 * 1000 if iface == 0 else ts for iface, ts, _ in packets]
    assert [r.ts_ns for r in rows] == expected
    assert [r.seq for r in rows] == list(range(10))


def test_pcapng_big_endian(tmp_path: Path) -> None:
    packets = [(0, ts, pkt) for ts, pkt in _packets(15)]
    write_pcapng(tmp_path / "be.pcapng", [("EN10MB", 9)], packets, big_endian=True)
    write_pcapng(tmp_path / "le.pcapng", [("EN10MB", 9)], packets)
    be, info = read_segments(tmp_path / "be.pcapng")
    assert _key(be) == _key(read_segments(tmp_path / "le.pcapng")[0])
    assert [r.ts_ns for r in be] == [ts for _, ts, _ in packets]
    assert info.packets == 15


@pytest.mark.parametrize("k", [10, 20, 30, 33])
def test_pcapng_power_of_two_resolution(tmp_path: Path, k: int) -> None:
    packets = [(0, TS + j * 123_456_789, tcp(*V4, 1, 2, seq=j)) for j in range(5)]
    write_pcapng(tmp_path / "c.pcapng", [("RAW", 0x80 | k)], packets)
    rows, info = read_segments(tmp_path / "c.pcapng")
    for row, (_, ts, _) in zip(rows, packets, strict=True):
        units = ts_units(ts, 0x80 | k)
        assert row.ts_ns == (units >> k) * 10**9 + ((units & ((1 << k) - 1)) * 10**9 >> k)
        assert abs(row.ts_ns - ts) <= (10**9 >> k) + 1  # two floors
    assert info.ts_resolution_ns == max(1, round(10**9 / 2**k))


@pytest.mark.parametrize("exponent", [0, 3, 6, 9, 12])
def test_pcapng_decimal_resolutions(tmp_path: Path, exponent: int) -> None:
    ts = TS if exponent <= 9 else 86_400 * 10**9 + 123_456_789  # picoseconds overflow 64 bits
    write_pcapng(tmp_path / "c.pcapng", [("RAW", exponent)], [(0, ts, tcp(*V4, 1, 2))])
    rows, _ = read_segments(tmp_path / "c.pcapng")
    step = 10 ** max(0, 9 - exponent)
    assert rows[0].ts_ns == ts // step * step


def test_pcapng_tsoffset(tmp_path: Path) -> None:
    packets = [(0, TS, tcp(*V4, 1, 2))]
    write_pcapng(tmp_path / "c.pcapng", [("EN10MB", 9)], packets, tsoffsets=[1_600_000_000])
    assert read_segments(tmp_path / "c.pcapng")[0][0].ts_ns == TS


def test_pcapng_simple_packet_blocks_take_previous_timestamp(tmp_path: Path) -> None:
    blocks = [pcapng_shb(), pcapng_idb("EN10MB", 9)]
    blocks.append(pcapng_epb(0, TS, frame(tcp(*V4, 1, 2, seq=1))))
    blocks += [pcapng_spb(frame(tcp(*V4, 1, 2, seq=s))) for s in (2, 3)]
    blocks.append(pcapng_epb(0, TS + 5, frame(tcp(*V4, 1, 2, seq=4))))
    blocks.append(pcapng_spb(frame(tcp(*V4, 1, 2, seq=5))))
    (tmp_path / "c.pcapng").write_bytes(b"".join(blocks))
    rows, info = read_segments(tmp_path / "c.pcapng")
    assert [(r.seq, r.ts_ns) for r in rows] == [
        (1, TS),
        (2, TS),
        (3, TS),
        (4, TS + 5),
        (5, TS + 5),
    ]
    assert info.packets == 5


def test_pcapng_simple_packet_blocks_only(tmp_path: Path) -> None:
    packets = [(0, 0, tcp(*V6, 1, 2, seq=s, flags="PA", payload=b"z" * s)) for s in range(1, 8)]
    write_pcapng(tmp_path / "c.pcapng", [("EN10MB", 6)], packets, block="spb", snaplen=80)
    rows, info = read_segments(tmp_path / "c.pcapng")
    assert [r.seq for r in rows] == list(range(1, 8))
    assert [r.payload_len for r in rows] == list(range(1, 8))
    assert [len(r.payload) for r in rows] == [min(s, 80 - 74) for s in range(1, 8)]
    assert info.packets == 7


@pytest.mark.parametrize("big_endian", [False, True])
def test_pcapng_obsolete_packet_blocks(tmp_path: Path, big_endian: bool) -> None:
    interfaces = [("EN10MB", 6), ("RAW", 9)]
    packets = [(k % 2, TS + k, tcp(*V4, 1, 2, seq=k)) for k in range(6)]
    write_pcapng(tmp_path / "c.pcapng", interfaces, packets, block="pb", big_endian=big_endian)
    rows, info = read_segments(tmp_path / "c.pcapng")
    assert [r.seq for r in rows] == list(range(6))
    assert [r.ts_ns for r in rows] == [
        (TS + k) // 1000 * 1000 if k % 2 == 0 else TS + k for k in range(6)
    ]
    assert info.link_types == ["EN10MB", "RAW"]


def test_pcapng_several_sections_with_their_own_byte_order(tmp_path: Path) -> None:
    first = pcapng_bytes([("EN10MB", 6)], [(0, TS, tcp(*V4, 1, 2, seq=1))])
    second = pcapng_bytes(
        [("LINUX_SLL2", 9)], [(0, TS + 7, tcp(*V6, 1, 2, seq=2))], big_endian=True
    )
    (tmp_path / "c.pcapng").write_bytes(first + second)
    rows, info = read_segments(tmp_path / "c.pcapng")
    assert [(r.seq, r.ts_ns) for r in rows] == [(1, TS // 1000 * 1000), (2, TS + 7)]
    assert info.link_types == ["EN10MB", "LINUX_SLL2"]


def test_pcapng_other_blocks_are_skipped(tmp_path: Path) -> None:
    blocks = [pcapng_shb(), pcapng_block(0x0BAD, b"custom" * 3)]
    blocks.append(pcapng_idb("EN10MB", 6))
    blocks.append(pcapng_block(4, b"\x01\x00\x08\x00" + bytes(8) + b"\x00\x00\x00\x00"))  # NRB
    blocks.append(pcapng_epb(0, TS // 1000, frame(tcp(*V4, 1, 2))))
    blocks.append(pcapng_block(0x0A, b"TLSK" + bytes(12)))  # decryption secrets
    blocks.append(pcapng_block(5, bytes(12)))  # interface statistics
    (tmp_path / "c.pcapng").write_bytes(b"".join(blocks))
    rows, info = read_segments(tmp_path / "c.pcapng")
    assert len(rows) == 1
    assert info.packets == 1


def test_pcapng_unsupported_interface_is_counted(tmp_path: Path) -> None:
    interfaces: list[tuple[str | int, int]] = [("EN10MB", 6), (105, 6)]
    packets = [(0, TS, tcp(*V4, 1, 2)), (1, TS, b"\x08\x02" + bytes(30)), (0, TS, tcp(*V4, 3, 4))]
    write_pcapng(tmp_path / "c.pcapng", interfaces, packets)
    rows, info = read_segments(tmp_path / "c.pcapng")
    assert [r.sport for r in rows] == [1, 3]
    assert info.skipped == {"unsupported_link_type": 1}
    assert info.link_types == ["EN10MB", "IEEE802_11"]


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_gzip_is_read_transparently(tmp_path: Path, kind: str) -> None:
    packets = _packets(30)
    if kind == "pcap":
        data = pcap_bytes(packets)
    else:
        data = pcapng_bytes([("EN10MB", 9)], [(0, ts, p) for ts, p in packets])
    (tmp_path / "plain").write_bytes(data)
    (tmp_path / "c.gz").write_bytes(gzip.compress(data))
    rows, info = read_segments(tmp_path / "c.gz", window_bytes=1000)
    assert info.format == f"{kind} (gzip)"
    assert _key(rows) == _key(read_segments(tmp_path / "plain")[0])
    assert info.bytes_read == len(data)
    assert info.warnings == []


@pytest.mark.parametrize("window", [1, 17, 100, 333, 1500, 4096])
@pytest.mark.parametrize("kind", ["pcap", "pcapng", "gzip"])
def test_tiny_windows_lose_and_duplicate_nothing(tmp_path: Path, window: int, kind: str) -> None:
    packets = _packets(60, seed=window)
    if kind == "pcapng":
        data = pcapng_bytes(
            [("EN10MB", 9), ("LINUX_SLL", 6)], [(k % 2, ts, p) for k, (ts, p) in enumerate(packets)]
        )
    else:
        data = pcap_bytes(packets)
    if kind == "gzip":
        data = gzip.compress(data)
    path = tmp_path / "c"
    path.write_bytes(data)
    rows, info = read_segments(path, window_bytes=window)
    whole, _ = read_segments(path)
    assert _key(rows) == _key(whole)
    assert [r.frame for r in rows] == list(range(1, 61))
    assert info.packets == 60


def _big_capture(count: int, seed: int) -> list[tuple[int, bytes]]:
    """Many small frames, so windows hold enough records for the parallel walk."""
    rng = random.Random(seed)
    templates = [frame(tcp(*V4, 1000 + k, 8080, flags="A", seq=k)) for k in range(20)]
    templates += [
        frame(tcp(*V6, 2000 + k, 8080, flags="PA", payload=b"q" * k * 37)) for k in range(20)
    ]
    return [(TS + k * 1000, rng.choice(templates)) for k in range(count)]


@pytest.mark.parametrize(
    "clock",
    [
        "steady",
        "crosses-2**16-seconds",  # the top half of the seconds changes inside a window
        "jumps-days",  # guesses stop matching for the rest of the capture
    ],
)
@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_clock_oddities_read_the_same_in_any_window(tmp_path: Path, kind: str, clock: str) -> None:
    packets = _big_capture(6000, seed=3)
    if clock == "crosses-2**16-seconds":
        base = (TS // 10**9 >> 16 << 16) + (1 << 16) - 1
        packets = [(base * 10**9 + k * 500_000, p) for k, (_, p) in enumerate(packets)]
    elif clock == "jumps-days":
        packets = [(ts + (k > 2500) * 86400 * 10**9 * 5, p) for k, (ts, p) in enumerate(packets)]
    path = tmp_path / "c"
    if kind == "pcap":
        write_pcap(path, packets, framed=True)
    else:
        data = pcapng_bytes([("RAW", 9)], [(0, ts, p[14:]) for ts, p in packets])
        path.write_bytes(data)
    whole, info = read_segments(path)
    windows, _ = read_segments(path, window_bytes=200_000)
    assert _key(whole) == _key(windows)
    assert len(whole) == 6000 == info.packets
    unit = 1000 if kind == "pcap" else 1  # craft's pcap is in microseconds
    assert [r.ts_ns for r in whole] == [ts // unit * unit for ts, _ in packets]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(0, 1600), min_size=1, max_size=400),
    window=st.integers(1, 70_000),
    pcapng=st.booleans(),
)
def test_any_window_reads_the_same(sizes: list[int], window: int, pcapng: bool) -> None:
    packets = [
        (TS + i, tcp(*V4, 1, 2, seq=i, flags="PA", payload=bytes(n))) for i, n in enumerate(sizes)
    ]
    if pcapng:
        data = pcapng_bytes([("EN10MB", 9)], [(0, ts, p) for ts, p in packets])
    else:
        data = pcap_bytes(packets, nanosecond=True)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c"
        path.write_bytes(data)
        rows, info = read_segments(path, window_bytes=window)
    assert [r.seq for r in rows] == list(range(len(sizes)))
    assert [r.payload_len for r in rows] == sizes
    assert [r.ts_ns for r in rows] == [ts for ts, _ in packets]
    assert info.packets == info.tcp_segments == len(sizes)


@pytest.mark.parametrize("compressed", [False, True])
def test_reads_from_a_pipe(tmp_path: Path, compressed: bool) -> None:
    """`kaflow <(zcat capture.pcap.gz)`: no seeking, windows carried over instead."""
    data = pcap_bytes(_packets(300))
    (tmp_path / "plain.pcap").write_bytes(data)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    def feed() -> None:
        with fifo.open("wb") as f:
            f.write(gzip.compress(data) if compressed else data)

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        rows, info = read_segments(fifo, window_bytes=5000)
    finally:
        writer.join()
    assert _key(rows) == _key(read_segments(tmp_path / "plain.pcap")[0])
    assert info.bytes_read == len(data)

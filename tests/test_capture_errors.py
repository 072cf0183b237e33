"""Bad input: every way a file can fail is one of our errors with a one-line message, never a
traceback; damage after some packets is a warning, and the packets before it are kept."""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pcapkit import _core
from pcapkit.errors import (
    CompressedCaptureError,
    EmptyCaptureError,
    InputError,
    KaflowError,
    MalformedCaptureError,
    NotACaptureError,
    UnsupportedLinkTypeError,
)
from tests import craft
from tests.craft import (
    frame,
    ipv4,
    pcap_bytes,
    pcapng_bytes,
    pcapng_epb,
    pcapng_idb,
    pcapng_shb,
    read_segments,
    tcp,
    tcp_segment,
    write_pcap,
    write_pcapng,
)

TS = 1_700_000_000_000_000_000
V4 = ("10.0.0.1", "10.0.0.2")


def _fails(path: Path, error: type[KaflowError], *words: str) -> str:
    """Open and read ``path``; it must raise ``error`` with a one-line message naming it."""
    with pytest.raises(error) as caught:
        read_segments(path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message
    for word in words:
        assert word in message
    return message


def _packets(count: int) -> list[tuple[int, bytes]]:
    return [
        (TS + k * 1000, tcp(*V4, 1, 2, seq=k, flags="PA", payload=b"p" * k)) for k in range(count)
    ]


def test_missing_file(tmp_path: Path) -> None:
    _fails(tmp_path / "nope.pcap", InputError, "no such file")


def test_directory(tmp_path: Path) -> None:
    _fails(tmp_path, InputError, "directory")


def test_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "secret.pcap"
    write_pcap(path, _packets(1))
    said = craft.said_when_unreadable(path)
    assert said.startswith("InputError: secret.pcap")
    assert said.endswith("permission denied")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")
    _fails(path, EmptyCaptureError, "empty")


def test_header_only_pcap(tmp_path: Path) -> None:
    path = tmp_path / "h.pcap"
    write_pcap(path, [])
    _fails(path, EmptyCaptureError, "no packets")


def test_header_only_pcapng_and_gzip(tmp_path: Path) -> None:
    path = tmp_path / "h.pcapng"
    write_pcapng(path, [("EN10MB", 6)], [])
    _fails(path, EmptyCaptureError, "no packets")
    gz = tmp_path / "h.pcap.gz"
    gz.write_bytes(gzip.compress(pcap_bytes([])))
    _fails(gz, EmptyCaptureError, "no packets")


@pytest.mark.parametrize(
    ("compress", "name", "command"),
    [
        (lzma.compress, "xz", "xz -dk"),
        (bz2.compress, "bzip2", "bunzip2"),
        (lambda d: b"\x28\xb5\x2f\xfd" + d, "zstd", "zstd -d"),
        (lambda d: b"PK\x03\x04" + d, "zip", "unzip"),
    ],
)
def test_compressed_wrappers_are_named(
    tmp_path: Path, compress: object, name: str, command: str
) -> None:
    path = tmp_path / f"c.pcap.{name}"
    path.write_bytes(compress(pcap_bytes(_packets(3))))  # type: ignore[operator]
    _fails(path, CompressedCaptureError, name, command)


@pytest.mark.parametrize(
    ("content", "looks_like"),
    [
        (
            b"12:01:02.123456 IP 10.0.0.1.40000 > 10.0.0.2.8080: Flags [S], seq 1, length 0\n",
            "tcpdump's printed output",
        ),
        (
            b"reading from file x.pcap, link-type EN10MB (Ethernet)\n"
            b"1700000000.123456 IP 10.0.0.1.1 > 10.0.0.2.2: Flags [.]\n",
            "tcpdump's printed output",
        ),
        (b'[{"_index": "packets", "_source": {"layers": {}}}]', "JSON"),
        (b'{"ts":1700000000.1,"uid":"C1","id.orig_h":"10.0.0.1"}\n', "JSON"),
        (b"<!DOCTYPE html><html><body>Not found</body></html>", "HTML"),
        (b"#separator \\x09\n#set_separator\t,\n#path\tconn\n", "Zeek log"),
        (b"<?xml version='1.0'?><pdml></pdml>", "XML"),
        (b"hello, world\n", "text"),
        (bytes(range(256)) * 4, "binary"),
        (b"\x7fELF\x02\x01\x01" + bytes(100), "executable"),
        (b"snoop\x00\x00\x00" + bytes(100), "snoop"),
    ],
)
def test_not_a_capture_says_what_it_looks_like(
    tmp_path: Path, content: bytes, looks_like: str
) -> None:
    path = tmp_path / "x.txt"
    path.write_bytes(content)
    message = _fails(path, NotACaptureError, looks_like, "tcpdump -w")
    assert message.startswith(f"{path} is not a pcap or pcapng capture")


def test_errors_are_raised_by_the_constructor(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_bytes(b"GET / HTTP/1.1\r\n")
    with pytest.raises(NotACaptureError):
        _core.Scan([str(path)], [8080])


def test_unsupported_link_type_pcap(tmp_path: Path) -> None:
    path = tmp_path / "wifi.pcap"
    write_pcap(path, [(TS, bytes(40))], linktype=105, framed=True)
    message = _fails(path, UnsupportedLinkTypeError, "link type 105 (IEEE802_11)", "EN10MB")
    assert "LINUX_SLL2" in message
    with pytest.raises(UnsupportedLinkTypeError):
        _core.Scan([str(path)], [8080])


def test_unknown_link_type_number_is_named_by_number(tmp_path: Path) -> None:
    path = tmp_path / "odd.pcap"
    write_pcap(path, [(TS, bytes(40))], linktype=4242, framed=True)
    _fails(path, UnsupportedLinkTypeError, "4242 (LINKTYPE_4242)")


def test_pcapng_with_only_unsupported_interfaces(tmp_path: Path) -> None:
    path = tmp_path / "usb.pcapng"
    write_pcapng(path, [(220, 6), (105, 6)], [(0, TS, bytes(64)), (1, TS, bytes(30))])
    _fails(path, UnsupportedLinkTypeError, "220 (USB_LINUX_MMAPPED)", "105 (IEEE802_11)")


@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
@pytest.mark.parametrize("cut", [1, 8, 15, 30])
def test_capture_ending_mid_record_keeps_what_came_before(
    tmp_path: Path, kind: str, cut: int
) -> None:
    if kind == "pcap":
        data = pcap_bytes(_packets(10))
    else:
        data = pcapng_bytes([("EN10MB", 6)], [(0, ts, p) for ts, p in _packets(10)])
    whole = tmp_path / "whole"
    whole.write_bytes(data)
    full, _ = read_segments(whole)
    path = tmp_path / "killed"
    path.write_bytes(data[:-cut])
    rows, info = read_segments(path, window_bytes=100)
    assert rows == full[:9]
    assert info.packets == 9
    assert info.truncated_at_offset is not None
    assert info.truncated_at_offset < len(data) - cut
    (warning,) = info.warnings
    assert "mid-record" in warning
    assert f"byte {info.truncated_at_offset:,}" in warning
    assert "9 packets" in warning
    assert info.bytes_read == len(data) - cut


def test_cut_inside_the_first_record(tmp_path: Path) -> None:
    path = tmp_path / "killed.pcap"
    path.write_bytes(pcap_bytes(_packets(1))[:30])
    _fails(path, EmptyCaptureError, "mid-record at byte 24")


def test_cut_gzip_stream_keeps_what_came_before(tmp_path: Path) -> None:
    data = gzip.compress(pcap_bytes(_packets(400)))
    path = tmp_path / "cut.pcap.gz"
    path.write_bytes(data[: len(data) * 3 // 4])
    rows, info = read_segments(path, window_bytes=2000)
    assert 0 < info.packets < 400
    assert [r.seq for r in rows] == list(range(info.packets))
    assert info.truncated_at_offset is not None
    assert "gzip" in info.warnings[0]


def test_damaged_gzip_header(tmp_path: Path) -> None:
    path = tmp_path / "bad.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage-not-deflate" + bytes(20))
    _fails(path, MalformedCaptureError, "gzip")


@pytest.mark.parametrize("caplen", [0xFFFFFFFF, 300 << 20, 262144 * 4 + 1])
def test_absurd_record_length_is_refused_midway(tmp_path: Path, caplen: int) -> None:
    data = bytearray(pcap_bytes(_packets(5)))
    good = len(pcap_bytes(_packets(3)))
    struct.pack_into("<I", data, good + 8, caplen)  # the 4th record's caplen
    path = tmp_path / "corrupt.pcap"
    path.write_bytes(bytes(data))
    rows, info = read_segments(path)
    assert [r.seq for r in rows] == [0, 1, 2]
    assert info.truncated_at_offset == good
    assert f"{caplen:,}" in info.warnings[0]
    assert "corrupt" in info.warnings[0]


def test_absurd_first_record_is_malformed(tmp_path: Path) -> None:
    data = bytearray(pcap_bytes(_packets(2)))
    struct.pack_into("<I", data, 24 + 8, 0x7FFFFFFF)
    path = tmp_path / "corrupt.pcap"
    path.write_bytes(bytes(data))
    _fails(path, MalformedCaptureError, "first record")


def test_snaplen_scales_the_record_limit(tmp_path: Path) -> None:
    # A TSO send seen on the sending host: one 1.2 MB "packet", IP total length 0.
    seg = tcp_segment(1, 2, flags="PA", payload=b"j" * 1_200_000)
    write_pcap(tmp_path / "ok.pcap", [(TS, ipv4(*V4, 6, seg, total_length=0))], snaplen=2_000_000)
    rows, _ = read_segments(tmp_path / "ok.pcap", window_bytes=1000)
    assert rows[0].payload_len == 1_200_000
    assert len(rows[0].payload) == 1_200_000


def _pcapng(*blocks: bytes) -> bytes:
    return pcapng_shb() + pcapng_idb("EN10MB", 6) + b"".join(blocks)


def _epb(k: int) -> bytes:
    return pcapng_epb(0, TS // 1000 + k, frame(tcp(*V4, 1, 2, seq=k)))


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[:4] + struct.pack("<I", 13) + b[8:],  # not a multiple of 4
        lambda b: b[:4] + struct.pack("<I", 8) + b[8:],  # shorter than any block
        lambda b: b[:4] + struct.pack("<I", 0) + b[8:],  # zero: would never advance
        lambda b: b[:4] + struct.pack("<I", 0xFFFFFFF0) + b[8:],  # absurd
        lambda b: b[:-4] + struct.pack("<I", 999),  # trailing length disagrees
        lambda b: b[:20] + struct.pack("<I", 0xFFFFFF) + b[24:],  # caplen beyond the block
        lambda b: b[:8] + struct.pack("<I", 9) + b[12:],  # no such interface
    ],
)
def test_pcapng_damaged_block_stops_with_a_warning(tmp_path: Path, damage: object) -> None:
    bad = damage(_epb(2))  # type: ignore[operator]
    path = tmp_path / "corrupt.pcapng"
    path.write_bytes(_pcapng(_epb(0), _epb(1), bad, _epb(3)))
    rows, info = read_segments(path)
    assert [r.seq for r in rows] == [0, 1]
    assert info.truncated_at_offset == len(_pcapng(_epb(0), _epb(1)))
    assert len(info.warnings) == 1
    assert "corrupt" in info.warnings[0]


def test_pcapng_damaged_first_block_is_malformed(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.pcapng"
    path.write_bytes(_pcapng(_epb(0)[:4] + struct.pack("<I", 14) + _epb(0)[8:]))
    _fails(path, MalformedCaptureError, "first record")


def test_pcapng_broken_section_header(tmp_path: Path) -> None:
    path = tmp_path / "bad.pcapng"
    path.write_bytes(b"\x0a\x0d\x0d\x0a" + struct.pack("<I", 28) + b"XXXX" + bytes(16))
    _fails(path, MalformedCaptureError, "Section Header Block")


def test_pcap_header_cut_short(tmp_path: Path) -> None:
    path = tmp_path / "short.pcap"
    path.write_bytes(pcap_bytes([])[:10])
    _fails(path, MalformedCaptureError, "10 of 24 bytes")


def test_the_packet_invariant_holds_on_damaged_captures(tmp_path: Path) -> None:
    data = bytearray(pcap_bytes(_packets(50)))
    for at in range(40, len(data), 97):
        data[at] ^= 0xFF
    path = tmp_path / "noisy.pcap"
    path.write_bytes(bytes(data))
    try:
        _, info = read_segments(path)
    except KaflowError:
        return
    assert info.packets == info.tcp_segments + sum(info.skipped.values())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=3000),
    prefix=st.sampled_from(["pcap", "pcapng", "none", "gzip"]),
    window=st.sampled_from([7, 64, 1000, 1 << 20]),
)
def test_any_bytes_give_segments_or_our_own_error(data: bytes, prefix: str, window: int) -> None:
    """h11's invariant: whatever the input, it parses or raises the library's own error."""
    if prefix == "pcap":
        data = pcap_bytes([]) + data
    elif prefix == "pcapng":
        data = pcapng_shb() + pcapng_idb("EN10MB", 6) + data
    elif prefix == "gzip":
        data = gzip.compress(pcap_bytes([]) + data)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz"
        path.write_bytes(data)
        try:
            _, info = read_segments(path, window_bytes=window)
        except KaflowError as e:
            assert "\n" not in str(e)
            return
    assert info.packets == info.tcp_segments + sum(info.skipped.values())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), max_size=6),
    pcapng=st.booleans(),
)
def test_damaged_real_captures_never_crash(flips: list[tuple[int, int]], pcapng: bool) -> None:
    packets = _packets(40)
    if pcapng:
        data = bytearray(
            pcapng_bytes(
                [("EN10MB", 9), ("LINUX_SLL2", 6)],
                [(k % 2, ts, p) for k, (ts, p) in enumerate(packets)],
            )
        )
    else:
        data = bytearray(pcap_bytes(packets, vlan=(5,)))
    for at, xor in flips:
        data[at % len(data)] ^= xor
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz"
        path.write_bytes(bytes(data))
        try:
            _, info = read_segments(path, window_bytes=500)
        except KaflowError:
            return
    assert info.packets == info.tcp_segments + sum(info.skipped.values())

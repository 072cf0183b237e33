"""Bounded memory on hostile input: what a file claims is never allocated on its word, and what
kaflow keeps follows the connections open at once, not the size of the file.

Peaks are the peak RSS of a fresh Python process doing the work, less that of one that only
imports kaflow: the core allocates outside Python's view, so nothing short of the process's own
count would do.
"""

from __future__ import annotations

import gzip
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from pcapkit.errors import MalformedCaptureError
from tests import craft
from tests.conversation import MS, T0, Conv, ok

SEC = 1_000_000_000
MB = 1 << 20
_RECORD = 16 + 14 + 20 + 20 + 1400  # record header + Ethernet + IPv4 + TCP + payload


_CHILD = """
import resource, sys
from pcapkit import _core, analyze
kind, path = sys.argv[1], sys.argv[2]
if kind == "read":
    _core.read_segments(path)
elif kind == "scan":  # reading and counting alone: no traffic is on port 1
    for _ in _core.Scan([path], [1]):
        pass
elif kind == "analyze":
    analyze(path)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _rss_kib(kind: str, path: Path) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, kind, str(path)], capture_output=True, text=True
    )
    return int(done.stdout.split()[-1])


def peak(kind: str, path: Path) -> float:
    """MiB of peak RSS that reading (``read``), reading alone (``scan``) or analyzing
    (``analyze``) ``path`` takes in a fresh process, beyond importing kaflow."""
    return (_rss_kib(kind, path) - _rss_kib("none", path)) / 1024


def _big_capture(claim: int, at_packet: int, packets: int = 4000) -> bytes:
    """``packets`` full-size segments (5.8 MB, more than one 4 MiB read window), the record of
    packet ``at_packet`` claiming ``claim`` bytes."""
    payload = b"x" * 1400
    pk = [
        (T0 + k, craft.tcp("10.0.0.1", "10.0.0.2", 1, 8080, payload=payload))
        for k in range(packets)
    ]
    data = bytearray(craft.pcap_bytes(pk, snaplen=0xFFFFFFFF))
    struct.pack_into("<I", data, 24 + at_packet * _RECORD + 8, claim)
    return bytes(data)


def _read_all(path: Path) -> list[str]:
    return craft.read_segments(path)[1].warnings


@pytest.mark.parametrize("wrap", ["plain", "gzip"])
def test_a_2gb_record_claim_is_refused_not_allocated(tmp_path: Path, wrap: str) -> None:
    data = _big_capture(2 << 30, at_packet=3500)
    path = tmp_path / "c.pcap"
    path.write_bytes(gzip.compress(data, 1) if wrap == "gzip" else data)
    (warning,) = _read_all(path)
    assert "claims a 2,147,483,648-byte packet" in warning
    assert "analyzed the 3,500 packets before it" in warning
    mib = peak("read", path)
    assert mib < 32, f"peak {mib:.0f} MiB"


def test_a_2gb_pcapng_block_is_refused_not_allocated(tmp_path: Path) -> None:
    pkt = craft.frame(craft.tcp("10.0.0.1", "10.0.0.2", 1, 8080))
    body = craft.pcapng_epb(0, 1, pkt)
    bad = body[:4] + struct.pack("<I", 2 << 30) + body[8:]
    path = tmp_path / "c.pcapng"
    path.write_bytes(craft.pcapng_shb() + craft.pcapng_idb("EN10MB") + body + bad)
    (warning,) = _read_all(path)
    assert "2,147,483,648" in warning and "corrupt" in warning
    mib = peak("read", path)
    assert mib < 32, f"peak {mib:.0f} MiB"


@pytest.mark.parametrize("wrap", ["plain", "gzip"])
def test_a_huge_but_plausible_claim_reads_only_what_is_there(tmp_path: Path, wrap: str) -> None:
    """256 MiB is the most a record may claim: accepted, and the file simply ends inside it."""
    data = _big_capture(256 << 20, at_packet=3500)
    path = tmp_path / "c.pcap"
    path.write_bytes(gzip.compress(data, 1) if wrap == "gzip" else data)
    (warning,) = _read_all(path)
    assert "ends mid-record" in warning and "3,500 packets" in warning
    mib = peak("read", path)
    assert mib < 32, f"peak {mib:.0f} MiB"


def test_a_2gb_first_record_is_malformed(tmp_path: Path) -> None:
    path = tmp_path / "c.pcap"
    path.write_bytes(_big_capture(2 << 30, at_packet=0, packets=3))
    with pytest.raises(MalformedCaptureError, match="first record"):
        _read_all(path)


def _connections(tmp_path: Path, *, one_way: bool, n: int = 120, body: int = 100_000) -> Path:
    """``n`` connections one after the other (20 s apart), each sending ``body`` bytes upstream.

    ``one_way``: only nginx's side is in the capture (the upstream's packets never show up:
    asymmetric routing, a capture filter on one direction), so no connection is ever seen to
    close on both sides.
    """
    packets: list[tuple[int, bytes]] = []
    for k in range(n):
        t = T0 + k * 20 * SEC
        c = Conv(20_000 + k)
        if one_way:
            c.syn(t)
        else:
            c.handshake(t)
        for j in range(0, body, 1400):
            piece = b"b" * min(1400, body - j)
            c._pkt("c", t + MS + j, "PA", piece)
            c.nxt["c"] += len(piece)
        if not one_way:
            c.send("s", t + 3 * MS, ok())
        c.fin("c", t + 4 * MS)
        if not one_way:
            c.fin("s", t + 5 * MS)
        packets += c.packets
    path = tmp_path / "many.pcap"
    craft.write_pcap(path, sorted(packets, key=lambda p: p[0]))
    return path


def _analyze_beyond_reading(path: Path) -> float:
    """MiB that analyze() needs beyond what reading the file alone needs.

    With 120 connections of 100 KB one after the other (a 12 MiB file), at most one is open at
    a time: keeping the small results of all of them costs a few MiB, keeping their payloads
    costs about the file size (15-20 MiB today)."""
    return peak("analyze", path) - peak("scan", path)


def _growth(tmp_path: Path, *, one_way: bool) -> tuple[float, float, float]:
    """Extra memory for a capture and for one four times larger, and the smaller file's size."""
    (tmp_path / "small").mkdir()
    (tmp_path / "large").mkdir()
    small = _connections(tmp_path / "small", one_way=one_way, n=120)
    large = _connections(tmp_path / "large", one_way=one_way, n=480)
    return _analyze_beyond_reading(small), _analyze_beyond_reading(large), small.stat().st_size / MB


def test_memory_follows_open_connections_not_the_file(tmp_path: Path) -> None:
    """A constant for the read window and the copies of one batch, nothing per connection."""
    small, large, size = _growth(tmp_path, one_way=False)
    assert large - small < 2, f"{small:.1f} MiB extra for {size:.0f} MiB, {large:.1f} for 4x"
    assert small < size, f"{small:.1f} MiB beyond reading a {size:.0f} MiB file"


def test_direction_whose_peer_never_shows_up_is_not_buffered_to_the_end(tmp_path: Path) -> None:
    """Connections never seen to close are finished after IDLE_FINISH_NS of silence."""
    small, large, size = _growth(tmp_path, one_way=True)
    assert large - small < 2, f"{small:.1f} MiB extra for {size:.0f} MiB, {large:.1f} for 4x"
    assert small < size, f"{small:.1f} MiB beyond reading a {size:.0f} MiB file"

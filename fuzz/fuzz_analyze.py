"""Fuzz target: any bytes through the capture reader and the whole ``pcapkit.analyze`` pipeline.

The contract under test (``docs/robustness.md``): whatever the file holds, ``analyze`` returns an
:class:`~pcapkit.model.Analysis` or raises the package's own :class:`~pcapkit.errors.KaflowError`
with a one-line message, in bounded time and memory, and the capture summary accounts for every
packet (``packets == upstream_segments + skipped_total``). Anything else is a finding.

Two ways to run it, from the repository root::

    # a plain loop of random mutations of the fixtures (no extra dependency)
    python fuzz/fuzz_analyze.py --iterations 20000 --seed 1
    python fuzz/fuzz_analyze.py --seconds 600

    # coverage-guided, with atheris (pip install atheris); extra arguments go to libFuzzer
    python fuzz/fuzz_analyze.py -max_total_time=600 -timeout=20 [CORPUS_DIR]

Inputs start from the real captures under ``fixtures/`` and are mutated both blindly (bit flips,
interesting integers, cuts, inserts, gzip wrapping) and with knowledge of the format: records are
reordered, duplicated, dropped, cut short, given lying lengths or timestamps, and their TCP
sequence numbers, flags and payloads are rewritten (TLS, garbage, pipelined or broken HTTP). A
crashing input is saved under ``--artifacts`` (default ``fuzz/crashes``) with its traceback;
replay one with ``python fuzz/fuzz_analyze.py --replay FILE``.

Memory under atheris: the process grows by a few KiB per input (measured: +280 MB over 40,000
inputs with ``pcapkit`` instrumented, flat without instrumentation and flat when the same inputs
are replayed in a plain loop), which is atheris' coverage instrumentation, not kaflow. So the
atheris mode defaults to ``-rss_limit_mb=6144``; kaflow's own memory is watched per input by the
plain loop (its peak RSS is reported, and a peak above ``--rss-limit-mb`` is a finding).
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import io
import random
import resource
import signal
import struct
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # fuzz this checkout, installed or not

PORT = 8080
SEED_GLOBS = ("fixtures/*/capture.pcap", "fixtures/formats/*.pcap", "fixtures/formats/*.pcapng")

# ------------------------------------------------------------------------------------------------
# Seeds and the structure of a capture
# ------------------------------------------------------------------------------------------------

_PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 16),
    b"\xa1\xb2\xc3\xd4": (">", 16),
    b"\x4d\x3c\xb2\xa1": ("<", 16),
    b"\xa1\xb2\x3c\x4d": (">", 16),
    b"\x34\xcd\xb2\xa1": ("<", 24),
    b"\xa1\xb2\xcd\x34": (">", 24),
}
_PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
# Bytes before the IP header, by link type (the ones the fixtures use).
_LINK_HEADER = {1: 14, 113: 16, 276: 20, 101: 0, 228: 0, 229: 0, 0: 4, 108: 4}

INTERESTING_32 = (
    0,
    1,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0xFFFF,
    0x10000,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFE,
    0xFFFFFFFF,
    2 << 30,  # "a 2 GB packet"
    256 << 20,
    (256 << 20) + 1,
    262144,
    262145,
    1 << 20,
)
PAYLOADS = (
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /p HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    b"POST /p HTTP/1.1\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
    b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello",
    b"HTTP/1.0 204 No Content\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32),  # TLS ClientHello
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00",
    b"\x00",
    b"G",
    b"GET /" + b"a" * 70000,
    b"\r\n\r\n",
    b"HTTP/",
)


def seed_files() -> list[Path]:
    files: set[Path] = set()
    for pattern in SEED_GLOBS:
        files.update(ROOT.glob(pattern))
    return sorted(files)


@dataclass
class Pcap:
    """A classic pcap split into its parts, so records can be mutated and written back."""

    order: str
    header: bytes
    rec_len: int
    link: int
    records: list[tuple[bytes, bytes]]  # (record header, data)
    tail: bytes = b""

    def dump(self, *, fix_lengths: bool = True) -> bytes:
        out = [self.header]
        for rec, data in self.records:
            if fix_lengths:
                secs, frac, _, orig = struct.unpack_from(self.order + "IIII", rec)
                rec = struct.pack(self.order + "IIII", secs, frac, len(data), max(orig, len(data)))
                rec += b"\x00" * (self.rec_len - 16)
            out.append(rec)
            out.append(data)
        out.append(self.tail)
        return b"".join(out)


def parse_pcap(data: bytes) -> Pcap | None:
    kind = _PCAP_MAGICS.get(data[:4])
    if kind is None or len(data) < 24:
        return None
    order, rec_len = kind
    (link,) = struct.unpack_from(order + "I", data, 20)
    records: list[tuple[bytes, bytes]] = []
    off = 24
    while off + rec_len <= len(data):
        (caplen,) = struct.unpack_from(order + "I", data, off + 8)
        end = off + rec_len + caplen
        if end > len(data):
            break
        records.append((data[off : off + rec_len], data[off + rec_len : end]))
        off = end
    return Pcap(order, data[:24], rec_len, link & 0x03FFFFFF, records, data[off:])


def parse_pcapng(data: bytes) -> list[bytes] | None:
    """The blocks of a pcapng file (little-endian sections only), or None."""
    if not data.startswith(_PCAPNG_SHB) or data[8:12] != b"\x4d\x3c\x2b\x1a":
        return None
    blocks: list[bytes] = []
    off = 0
    while off + 12 <= len(data):
        (blen,) = struct.unpack_from("<I", data, off + 4)
        if blen < 12 or off + blen > len(data):
            break
        blocks.append(data[off : off + blen])
        off += blen
    return blocks


def tcp_layout(frame: bytes, link: int) -> tuple[int, int, int] | None:
    """(IP header offset, TCP header offset, payload offset) of an IPv4/IPv6 TCP frame, or None."""
    ip = _LINK_HEADER.get(link)
    if ip is None or len(frame) < ip + 20:
        return None
    version = frame[ip] >> 4
    if version == 4:
        tcp = ip + (frame[ip] & 15) * 4
        if frame[ip + 9] != 6:
            return None
    elif version == 6 and len(frame) >= ip + 40 and frame[ip + 6] == 6:
        tcp = ip + 40
    else:
        return None
    if len(frame) < tcp + 20:
        return None
    start = tcp + (frame[tcp + 12] >> 4) * 4
    if start < tcp + 20 or start > len(frame):
        return None
    return ip, tcp, start


def set_payload(frame: bytes, link: int, payload: bytes) -> bytes:
    """The frame with its TCP payload replaced and the IP length fixed."""
    layout = tcp_layout(frame, link)
    if layout is None:
        return frame
    ip, _, start = layout
    out = bytearray(frame[:start] + payload)
    if out[ip] >> 4 == 4:
        struct.pack_into("!H", out, ip + 2, min(len(out) - ip, 0xFFFF))
    else:
        struct.pack_into("!H", out, ip + 4, min(len(out) - ip - 40, 0xFFFF))
    return bytes(out)


# ------------------------------------------------------------------------------------------------
# Mutations
# ------------------------------------------------------------------------------------------------

Mutation = Callable[[random.Random, bytes, list[bytes]], bytes]


def _flip(rng: random.Random, data: bytes, _seeds: list[bytes]) -> bytes:
    if not data:
        return bytes([rng.randrange(256)])
    out = bytearray(data)
    for _i in range(rng.choice((1, 1, 2, 4, 16))):
        at = rng.randrange(len(out))
        out[at] ^= 1 << rng.randrange(8) if rng.random() < 0.7 else rng.randrange(1, 256)
    return bytes(out)


def _int32(rng: random.Random, data: bytes, _seeds: list[bytes]) -> bytes:
    if len(data) < 4:
        return data
    out = bytearray(data)
    at = rng.randrange(len(out) - 3)
    value = rng.choice(INTERESTING_32)
    struct.pack_into(rng.choice("<>") + "I", out, at, value & 0xFFFFFFFF)
    return bytes(out)


def _cut(rng: random.Random, data: bytes, _seeds: list[bytes]) -> bytes:
    return data[: rng.randrange(len(data) + 1)]


def _cut_tail(rng: random.Random, data: bytes, _seeds: list[bytes]) -> bytes:
    """What a killed tcpdump leaves: the file minus a few bytes."""
    return data[: max(0, len(data) - rng.randrange(1, 64))]


def _insert(rng: random.Random, data: bytes, _seeds: list[bytes]) -> bytes:
    at = rng.randrange(len(data) + 1)
    junk = rng.randbytes(rng.choice((1, 4, 16, 100)))
    return data[:at] + junk + data[at:]


def _delete(rng: random.Random, data: bytes, _seeds: list[bytes]) -> bytes:
    if not data:
        return data
    at = rng.randrange(len(data))
    return data[:at] + data[at + rng.randrange(1, 64) :]


def _gzip(rng: random.Random, data: bytes, _seeds: list[bytes]) -> bytes:
    packed = gzip.compress(data, compresslevel=1, mtime=0)
    return packed[: rng.randrange(len(packed) + 1)] if rng.random() < 0.3 else packed


def _random(rng: random.Random, data: bytes, _seeds: list[bytes]) -> bytes:
    head = rng.choice((b"", data[:24], data[:4], b"\x1f\x8b", _PCAPNG_SHB))
    return head + rng.randbytes(rng.randrange(0, 2000))


def _records(mutate: Callable[[random.Random, Pcap, list[bytes]], bool]) -> Mutation:
    """Lift a record-level mutation to bytes (a no-op on files that are not classic pcap)."""

    def run(rng: random.Random, data: bytes, seeds: list[bytes]) -> bytes:
        cap = parse_pcap(data)
        if cap is None or not cap.records:
            return _pcapng_blocks(rng, data, seeds)
        fix = mutate(rng, cap, seeds)
        return cap.dump(fix_lengths=fix)

    run.__name__ = mutate.__name__
    return run


def _reorder(rng: random.Random, cap: Pcap, _seeds: list[bytes]) -> bool:
    r = cap.records
    i, j = rng.randrange(len(r)), rng.randrange(len(r))
    if rng.random() < 0.5:
        r[i], r[j] = r[j], r[i]
    else:
        lo, hi = min(i, j), max(i, j) + 1
        r[lo:hi] = r[lo:hi][::-1]
    return True


def _duplicate(rng: random.Random, cap: Pcap, _seeds: list[bytes]) -> bool:
    i = rng.randrange(len(cap.records))
    times = rng.choice((1, 1, 2, 50, 500))
    cap.records[i + 1 : i + 1] = [cap.records[i]] * times
    return True


def _drop(rng: random.Random, cap: Pcap, _seeds: list[bytes]) -> bool:
    for _i in range(rng.choice((1, 1, 3))):
        if cap.records:
            del cap.records[rng.randrange(len(cap.records))]
    return True


def _snap(rng: random.Random, cap: Pcap, _seeds: list[bytes]) -> bool:
    """Cut one record's data short, as a snaplen does (the original length stays)."""
    i = rng.randrange(len(cap.records))
    rec, data = cap.records[i]
    cap.records[i] = (rec, data[: rng.randrange(len(data) + 1)])
    return True


def _lying_header(rng: random.Random, cap: Pcap, _seeds: list[bytes]) -> bool:
    """A record header whose caplen or length lies (a corrupt file, or a 2 GB claim)."""
    i = rng.randrange(len(cap.records))
    rec, data = cap.records[i]
    out = bytearray(rec)
    struct.pack_into(cap.order + "I", out, rng.choice((8, 12)), rng.choice(INTERESTING_32))
    cap.records[i] = (bytes(out), data)
    return False


def _timestamps(rng: random.Random, cap: Pcap, _seeds: list[bytes]) -> bool:
    i = rng.randrange(len(cap.records))
    rec, data = cap.records[i]
    secs, frac = struct.unpack_from(cap.order + "II", rec)
    choice = rng.random()
    if choice < 0.4:
        secs = (secs + rng.choice((-1, -10, 1, 3600))) & 0xFFFFFFFF  # out of order
    elif choice < 0.7:
        frac = rng.choice((0, 999_999, 1_000_000, 999_999_999, 0xFFFFFFFF))
    else:
        secs = rng.choice((0, 0xFFFFFFFF, 0x7FFFFFFF))
    cap.records[i] = (struct.pack(cap.order + "II", secs, frac) + rec[8:], data)
    return True


def _tcp_fields(rng: random.Random, cap: Pcap, _seeds: list[bytes]) -> bool:
    """Rewrite a TCP header field: sequence number, ack, flags, data offset or ports."""
    i = rng.randrange(len(cap.records))
    rec, data = cap.records[i]
    layout = tcp_layout(data, cap.link)
    if layout is None:
        return True
    _, tcp, _ = layout
    out = bytearray(data)
    what = rng.randrange(5)
    if what == 0:
        (seq,) = struct.unpack_from("!I", out, tcp + 4)
        delta = rng.choice((1, -1, 1 << 31, -(1 << 31), rng.randrange(1 << 32)))
        struct.pack_into("!I", out, tcp + 4, (seq + delta) & 0xFFFFFFFF)
    elif what == 1:
        struct.pack_into("!I", out, tcp + 8, rng.randrange(1 << 32))
    elif what == 2:
        out[tcp + 13] = rng.choice((0x02, 0x12, 0x04, 0x14, 0x01, 0x11, 0x03, 0x07, 0x3F, 0))
    elif what == 3:
        out[tcp + 12] = rng.randrange(16) << 4
    else:
        struct.pack_into("!H", out, tcp + rng.choice((0, 2)), rng.choice((8080, 0, 65535, 80)))
    cap.records[i] = (rec, bytes(out))
    return True


def _payload(rng: random.Random, cap: Pcap, _seeds: list[bytes]) -> bool:
    """Give one segment another payload: TLS, HTTP/2, garbage, pipelined or broken HTTP."""
    i = rng.randrange(len(cap.records))
    rec, data = cap.records[i]
    payload = rng.choice(PAYLOADS) if rng.random() < 0.8 else rng.randbytes(rng.randrange(200))
    cap.records[i] = (rec, set_payload(data, cap.link, payload))
    return True


def _tiny_segments(rng: random.Random, cap: Pcap, _seeds: list[bytes]) -> bool:
    """Split one data segment into one-byte segments (a flood of tiny segments)."""
    i = rng.randrange(len(cap.records))
    rec, data = cap.records[i]
    layout = tcp_layout(data, cap.link)
    if layout is None or layout[2] >= len(data):
        return True
    _, tcp, start = layout
    (seq,) = struct.unpack_from("!I", data, tcp + 4)
    pieces = []
    for k, byte in enumerate(data[start:]):
        seg = bytearray(set_payload(data, cap.link, bytes([byte])))
        struct.pack_into("!I", seg, tcp + 4, (seq + k) & 0xFFFFFFFF)
        pieces.append((rec, bytes(seg)))
    cap.records[i : i + 1] = pieces
    return True


def _splice(rng: random.Random, cap: Pcap, seeds: list[bytes]) -> bool:
    other = parse_pcap(rng.choice(seeds))
    if other is not None and other.records:
        k = rng.randrange(len(other.records))
        at = rng.randrange(len(cap.records) + 1)
        cap.records[at:at] = other.records[k : k + rng.randrange(1, 20)]
    return True


def _pcapng_blocks(rng: random.Random, data: bytes, _seeds: list[bytes]) -> bytes:
    """Block-level mutations of a pcapng file: reorder, duplicate, drop, lying lengths."""
    blocks = parse_pcapng(data)
    if not blocks or len(blocks) < 3:
        return _flip(rng, data, [])
    i = rng.randrange(2, len(blocks))  # keep the section header and first interface
    what = rng.randrange(6)
    if what == 0:
        j = rng.randrange(2, len(blocks))
        blocks[i], blocks[j] = blocks[j], blocks[i]
    elif what == 1:
        blocks[i + 1 : i + 1] = [blocks[i]] * rng.choice((1, 20))
    elif what == 2:
        del blocks[i]
    elif what == 3:
        b = bytearray(blocks[i])
        at = rng.choice([a for a in (4, 20, 24, len(b) - 4) if a + 4 <= len(b)])
        struct.pack_into("<I", b, at, rng.choice(INTERESTING_32))
        blocks[i] = bytes(b)
    elif what == 4 and blocks[i][:4] == b"\x06\x00\x00\x00" and len(blocks[i]) >= 20:
        # an Enhanced Packet Block's 64-bit timestamp: far future, zero, all ones
        b = bytearray(blocks[i])
        ts = rng.choice((0, 1, (1 << 64) - 1, 1 << 63, rng.randrange(1 << 64)))
        struct.pack_into("<II", b, 12, ts >> 32, ts & 0xFFFFFFFF)
        blocks[i] = bytes(b)
    else:
        blocks[1] = _idb(rng, blocks[1])
    return b"".join(blocks)


def _idb(rng: random.Random, block: bytes) -> bytes:
    """An Interface Description Block with odd if_tsresol / if_tsoffset / snaplen options."""
    if len(block) < 20 or block[:4] != b"\x01\x00\x00\x00":
        return block
    link, snaplen = struct.unpack_from("<H2xI", block, 8)
    if rng.random() < 0.3:
        snaplen = rng.choice(INTERESTING_32)
    options = b""
    if rng.random() < 0.7:
        options += struct.pack(
            "<HHB3x",
            9,
            1,
            rng.choice((0, 3, 6, 9, 12, 18, 19, 127, 0x80, 0x80 | 33, 0x80 | 62, 0xFF)),
        )
    if rng.random() < 0.5:
        offset = rng.choice((1, -1, 1 << 32, (1 << 32) + 1, 1 << 62, -(1 << 63), (1 << 63) - 1))
        options += struct.pack("<HHq", 14, 8, offset)
    options += struct.pack("<HH", 0, 0)
    body = struct.pack("<HHI", link, 0, snaplen) + options
    return struct.pack("<II", 1, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


MUTATIONS: tuple[Mutation, ...] = (
    _flip,
    _flip,
    _int32,
    _cut,
    _cut_tail,
    _insert,
    _delete,
    _gzip,
    _random,
    _records(_reorder),
    _records(_reorder),
    _records(_duplicate),
    _records(_drop),
    _records(_snap),
    _records(_lying_header),
    _records(_timestamps),
    _records(_tcp_fields),
    _records(_tcp_fields),
    _records(_payload),
    _records(_payload),
    _records(_tiny_segments),
    _records(_splice),
)


def mutate(rng: random.Random, data: bytes, seeds: list[bytes], rounds: int | None = None) -> bytes:
    """One fuzz input: ``data`` after one to a few random mutations (gzip, if any, last)."""
    wrap = False
    for _ in range(rounds if rounds is not None else rng.choice((1, 1, 2, 3, 5))):
        m = rng.choice(MUTATIONS)
        if m is _gzip:
            wrap = True
            continue
        data = m(rng, data, seeds)
        if len(data) > 8 << 20:  # keep inputs small enough to run many
            data = data[: 8 << 20]
    return _gzip(rng, data, seeds) if wrap else data


# ------------------------------------------------------------------------------------------------
# The target
# ------------------------------------------------------------------------------------------------


class Hang(Exception):
    """An input took longer than the per-input time limit."""


class Violation(AssertionError):
    """An input broke the contract without raising (a wrong count, a two-line error...)."""


@dataclass
class Target:
    """Runs inputs through the reader and ``analyze`` in one reused temporary file."""

    workdir: Path
    outcomes: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.path = self.workdir / "input.pcap"
        self._modules()

    def _modules(self) -> None:
        self.analysis = importlib.import_module("pcapkit.analysis")
        self.errors = importlib.import_module("pcapkit.errors")
        self.core = importlib.import_module("pcapkit._core")
        self.json_report = importlib.import_module("pcapkit.report.json_report")
        self.report = importlib.import_module("pcapkit.report")

    def __call__(self, data: bytes, *, window: int = 4 << 20) -> str:
        """Run one input; returns what came out ("Analysis" or an error class name)."""
        self.path.write_bytes(data)
        outcome = self._analyze()
        self._read(window)
        self.outcomes[outcome] += 1
        return outcome

    def _analyze(self) -> str:
        kaflow_error: type[Exception] = self.errors.KaflowError
        try:
            a = self.analysis.analyze(self.path, PORT)
        except kaflow_error as e:
            message = str(e)
            if not message or "\n" in message:
                raise Violation(
                    f"{type(e).__name__} without a one-line message: {message!r}"
                ) from e
            return type(e).__name__
        cap = a.capture
        if cap.packets != cap.upstream_segments + cap.skipped_total:
            raise Violation(
                f"packets {cap.packets} != upstream {cap.upstream_segments} + skipped "
                f"{cap.skipped_total} ({dict(cap.skipped)})"
            )
        if len(a.connections) > cap.upstream_segments:
            raise Violation("more connections than upstream segments")
        for c in a.connections:
            if c.closed_by is None and c.close is not None:
                raise Violation(f"connection {c.id} has a close kind but no closer")
        self.json_report.analysis_dict(a)
        options = self.report.ReportOptions(connections="all", limit=1000)
        self.report.reporter("table").render(a, io.StringIO(), options)
        self.report.reporter("csv").render(a, io.StringIO(), options)
        return "Analysis"

    def _read(self, window: int) -> None:
        """The core's capture stage alone, with a random window size: it must agree on the
        packet count."""
        kaflow_error: type[Exception] = self.errors.KaflowError
        try:
            segments, info = self.core.read_segments(str(self.path), window)
        except kaflow_error:
            return
        if info.packets != info.tcp_segments + sum(n for _, n in info.skipped):
            raise Violation(f"reader: packets {info.packets} != segments + skipped")
        if len(segments.frame) != info.tcp_segments:
            raise Violation("reader: segments and tcp_segments disagree")


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    def alarm(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"no result after {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------------------------------------
# Driver: the plain loop
# ------------------------------------------------------------------------------------------------


@dataclass
class Stats:
    iterations: int = 0
    crashes: int = 0
    harness_errors: int = 0
    slow: int = 0
    slowest_s: float = 0.0
    elapsed_s: float = 0.0
    peak_rss_mb: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    findings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        rate = self.iterations / self.elapsed_s if self.elapsed_s else 0.0
        lines = [
            f"iterations: {self.iterations:,} in {self.elapsed_s:,.1f} s ({rate:,.0f}/s)",
            f"crashes: {self.crashes}; slow inputs: {self.slow}; "
            f"harness errors: {self.harness_errors}",
            f"slowest input: {self.slowest_s:.3f} s; peak RSS: {self.peak_rss_mb:,.0f} MB",
            "outcomes: " + ", ".join(f"{k} {v:,}" for k, v in self.outcomes.most_common()),
        ]
        lines += [f"  finding: {f}" for f in self.findings]
        return "\n".join(lines)


def run_loop(
    *,
    iterations: int | None = None,
    seconds: float | None = None,
    seed: int = 0,
    artifacts: Path | None = None,
    per_input_s: float = 20.0,
    slow_s: float = 5.0,
    rss_limit_mb: float = 2048.0,
    log: Callable[[str], None] | None = None,
) -> Stats:
    """Mutate the fixtures at random and run each input; stop after ``iterations`` or
    ``seconds`` (whichever comes first). Crashing inputs go to ``artifacts``."""
    rng = random.Random(seed)
    seeds = [p.read_bytes() for p in seed_files()]
    seeds.append(gzip.compress(seeds[0], mtime=0))
    stats = Stats()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="kaflow-fuzz-") as tmp:
        target = Target(Path(tmp))
        while True:
            if iterations is not None and stats.iterations >= iterations:
                break
            if seconds is not None and time.monotonic() - start >= seconds:
                break
            try:
                data = mutate(rng, rng.choice(seeds), seeds)
            except Exception as e:  # a bug of the harness, not of kaflow: say so, go on
                stats.harness_errors += 1
                if stats.harness_errors <= 3:
                    stats.findings.append(f"harness error (not kaflow): {e!r}")
                stats.iterations += 1
                continue
            window = rng.choice((64, 1000, 4096, 1 << 16, 4 << 20))
            t0 = time.monotonic()
            try:
                with time_limit(per_input_s):
                    target(data, window=window)
            except Exception as e:
                stats.crashes += 1
                stats.findings.append(_save(artifacts, data, e, stats.iterations))
            took = time.monotonic() - t0
            stats.slowest_s = max(stats.slowest_s, took)
            if took > slow_s:  # not a crash, but time must stay bounded: keep it to look at
                stats.slow += 1
                stats.findings.append(
                    _save(artifacts, data, Hang(f"{took:.1f} s"), stats.iterations)
                )
            stats.iterations += 1
            rss = peak_rss_mb()
            if rss > rss_limit_mb and rss > stats.peak_rss_mb:
                stats.findings.append(f"peak RSS {rss:,.0f} MB after iteration {stats.iterations}")
            stats.peak_rss_mb = max(stats.peak_rss_mb, rss)
            if log is not None and stats.iterations % 1000 == 0:
                elapsed = time.monotonic() - start
                log(f"#{stats.iterations:,}  {elapsed:,.0f} s  crashes {stats.crashes}")
        stats.outcomes = target.outcomes
    stats.elapsed_s = time.monotonic() - start
    return stats


def _save(artifacts: Path | None, data: bytes, error: BaseException, iteration: int) -> str:
    what = f"{type(error).__name__}: {error}".splitlines()[0][:200]
    if artifacts is None:
        return f"iteration {iteration}: {what}"
    artifacts.mkdir(parents=True, exist_ok=True)
    kind = "slow" if isinstance(error, Hang) and "after" not in str(error) else "crash"
    name = f"{kind}-{iteration:08d}-{type(error).__name__}"
    (artifacts / f"{name}.bin").write_bytes(data)
    tb = "".join(traceback.format_exception(error))
    (artifacts / f"{name}.txt").write_text(tb, encoding="utf-8")
    return f"iteration {iteration}: {what} -> {artifacts / name}.bin"


def replay(path: Path) -> int:
    with tempfile.TemporaryDirectory(prefix="kaflow-fuzz-") as tmp:
        target = Target(Path(tmp))
        for window in (4 << 20, 64):
            print(f"window {window}: {target(path.read_bytes(), window=window)}")
    return 0


# ------------------------------------------------------------------------------------------------
# Driver: atheris (libFuzzer)
# ------------------------------------------------------------------------------------------------


def run_atheris(argv: list[str]) -> None:
    try:
        atheris: Any = importlib.import_module("atheris")
    except ImportError:
        sys.exit(
            "atheris is not installed: `pip install atheris`, or run the plain loop with "
            "--iterations N"
        )
    seeds = [p.read_bytes() for p in seed_files()]
    corpus = [a for a in argv[1:] if not a.startswith("-")]
    if not corpus:  # start from the fixtures, in a scratch corpus libFuzzer may grow
        scratch = Path(tempfile.mkdtemp(prefix="kaflow-corpus-"))
        for k, data in enumerate(seeds):
            (scratch / f"seed-{k}").write_bytes(data)
        argv = [*argv, str(scratch)]
    if not any(a.startswith("-rss_limit_mb=") for a in argv):
        argv = [*argv, "-rss_limit_mb=6144"]  # the instrumentation's own growth, see above
    with atheris.instrument_imports(include=["pcapkit"]):
        importlib.import_module("pcapkit.analysis")
        importlib.import_module("pcapkit.report.json_report")
        importlib.import_module("pcapkit.report")
    workdir = Path(tempfile.mkdtemp(prefix="kaflow-fuzz-"))
    target = Target(workdir)

    def test_one_input(data: bytes) -> None:
        target(data, window=64 if data[-1:] == b"\x00" else 4 << 20)

    def custom_mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if rng.random() < 0.5:
            out: bytes = atheris.Mutate(data, max_size)
            return out
        return mutate(rng, data, seeds)[:max_size]

    atheris.Setup(argv, test_one_input, custom_mutator=custom_mutator)
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv if argv is None else argv
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog="Without --iterations, --seconds or --replay, runs under atheris; "
        "unknown arguments go to libFuzzer.",
    )
    parser.add_argument("--iterations", type=int, help="plain loop: this many inputs")
    parser.add_argument("--seconds", type=float, help="plain loop: for this long")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--artifacts", type=Path, default=ROOT / "fuzz" / "crashes")
    parser.add_argument("--per-input-seconds", type=float, default=20.0)
    parser.add_argument("--rss-limit-mb", type=float, default=2048.0)
    parser.add_argument("--slow-seconds", type=float, default=5.0, help="save inputs slower")
    parser.add_argument("--replay", type=Path, help="run one saved input and print the outcome")
    args, rest = parser.parse_known_args(argv[1:])
    if args.replay is not None:
        return replay(args.replay)
    if args.iterations is None and args.seconds is None:
        run_atheris([argv[0], *rest])
        return 0
    stats = run_loop(
        iterations=args.iterations,
        seconds=args.seconds,
        seed=args.seed,
        artifacts=args.artifacts,
        per_input_s=args.per_input_seconds,
        rss_limit_mb=args.rss_limit_mb,
        slow_s=args.slow_seconds,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    print(stats.summary())
    return 1 if stats.crashes else 0


if __name__ == "__main__":
    sys.exit(main())

"""Open a capture file, recognise what it is, and walk its records a window at a time.

A capture is untrusted input: it may be empty, compressed, not a capture at all, cut short by a
killed tcpdump, or corrupt. Each of those becomes one of :mod:`pcapkit.errors` with a one-line
message naming the file, or, when the damage comes after some packets, a warning in
:attr:`CaptureInfo.warnings` and the packets before it. Nothing here raises ``OSError``,
``ValueError`` or ``struct.error`` because of what a file contains.

Speed: the file is read in windows of a few MiB (never whole). The record walk looks sequential
(each record's length says where the next one starts), but :func:`_chase` walks a window as a few
hundred chains at once, one numpy step per record of the longest chain, from guessed record starts
that are only accepted when the walk lands on them; a plain Python loop (one ``unpack_from`` and
one ``append`` per record) remains for small windows and odd files. Validation of the record
headers, timestamps and all header decoding are then numpy operations over the whole window.
"""

from __future__ import annotations

import array
import gzip
import io
import os
import re
import stat
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, BinaryIO, Final

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import as_strided

from pcapkit.errors import (
    CompressedCaptureError,
    EmptyCaptureError,
    InputError,
    MalformedCaptureError,
    NotACaptureError,
    UnsupportedLinkTypeError,
)

from .decode import PAD, REASONS, decode
from .linktypes import SUPPORTED, link_type_name, unsupported_message
from .types import I64, U8, U64, CaptureInfo, SegmentBatch

#: No record may claim more than this, whatever the snaplen says: refused, never allocated.
MAX_RECORD_BYTES: Final = 256 << 20
# A record may exceed the snaplen (some writers ignore it), but not by this much.
_SNAPLEN_SLACK: Final = 4
_SNAPLEN_FLOOR: Final = 262144
_HEAD_BYTES: Final = 4096
_PADDING: Final = bytes(PAD)
_NS: Final = 1_000_000_000
# The parallel record walk: one guessed record start per _SPACING bytes, searched for in the first
# _SYNC_SPAN bytes after it; only for windows of at least _PARALLEL_MIN bytes.
_SPACING: Final = 4096
_SYNC_SPAN: Final = 512
_PARALLEL_MIN: Final = 1 << 16
_MAX_STEPS: Final = 512

# First four bytes of a classic pcap -> (byte order, ns per timestamp fraction unit, record header).
_PCAP_MAGICS: Final[dict[bytes, tuple[str, int, int]]] = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000, 16),
    b"\xa1\xb2\xc3\xd4": (">", 1000, 16),
    b"\x4d\x3c\xb2\xa1": ("<", 1, 16),
    b"\xa1\xb2\x3c\x4d": (">", 1, 16),
    # Kuznetzov's patched libpcap: 8 more bytes per record (ifindex, protocol, pkt_type, pad).
    b"\x34\xcd\xb2\xa1": ("<", 1000, 24),
    b"\xa1\xb2\xcd\x34": (">", 1000, 24),
}
_PCAPNG_SHB: Final = 0x0A0D0D0A
_PCAPNG_BOM: Final[dict[bytes, str]] = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}
_PCAPNG_IDB: Final = 1
_PCAPNG_PB: Final = 2  # obsolete Packet Block
_PCAPNG_SPB: Final = 3
_PCAPNG_EPB: Final = 6
_PCAPNG_PACKETS: Final = frozenset((_PCAPNG_PB, _PCAPNG_SPB, _PCAPNG_EPB))
_OPT_TSRESOL: Final = 9
_OPT_TSOFFSET: Final = 14
# if_tsoffset beyond this many seconds (~136 years) is corruption, and would overflow int64 ns.
_MAX_TSOFFSET_S: Final = 1 << 32
_I64_MAX: Final = (1 << 63) - 1

# Compressed wrappers we refuse: magic -> (what it is, the command that undoes it; {} = the path).
_COMPRESSED: Final[tuple[tuple[bytes, str, str], ...]] = (
    (b"\xfd7zXZ\x00", "xz-compressed", "xz -dk {}"),
    (b"BZh", "bzip2-compressed", "bunzip2 -k {}"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", "zstd -d {}"),
    (b"\x04\x22\x4d\x18", "lz4-compressed", "lz4 -d {}"),
    (b"PK\x03\x04", "a zip archive", "unzip {}"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "7z x {}"),
)
_GZIP_MAGIC: Final = b"\x1f\x8b"

_TCPDUMP_TEXT = re.compile(
    rb"^(\d{2}:\d{2}:\d{2}\.\d{6,9}|\d{9,10}\.\d{6,9}|\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d+) "
    rb"(IP6? |ARP|[A-Za-z0-9_.-]+ (In|Out|P|B|M) |\S+ > )|^reading from file ",
    re.MULTILINE,
)


@dataclass(slots=True)
class _Records:
    """Where the packets of one window are, and what the record headers say about them."""

    start: I64  # offset of the link-layer header in the window
    caplen: I64
    ts_ns: I64
    link: int | I64  # one link type for all, or one per packet

    def __len__(self) -> int:
        return int(self.start.size)


@dataclass(slots=True)
class _Walk:
    """What one pass over a window found."""

    records: list[_Records] = field(default_factory=list)
    consumed: int = 0  # bytes of the window fully used; the rest starts an incomplete record
    need: int = 0  # bytes (from ``consumed``) the next record needs, when known
    bad_at: int | None = None  # window offset of a record whose header is not believable
    bad_why: str = ""


class _Replay:
    """A pipe's first bytes (already read to recognise the file) followed by the rest of it."""

    def __init__(self, head: bytes, raw: BinaryIO) -> None:
        self._head = head
        self._raw = raw

    def read(self, n: int = -1) -> bytes:
        if not self._head:
            return self._raw.read(n)
        if n < 0:
            data, self._head = self._head + self._raw.read(), b""
            return data
        data, self._head = self._head[:n], self._head[n:]
        return data

    def seek(self, offset: int, /) -> int:
        raise io.UnsupportedOperation("a pipe cannot seek")


class _Source:
    """Hands out the capture in windows that each start at a record boundary.

    A window holds :data:`PAD` readable bytes beyond the ``n`` it offers for records (the start
    of the next window, or zeros at the end of the file), so fixed-size header reads need no
    bounds checks. A plain file is simply read again from the first unconsumed byte, so the
    unfinished record at the end of a window is not copied around; a gzip stream or a pipe
    cannot seek, so there the unconsumed bytes are carried into the next window. Read failures
    end the stream with :attr:`error` set instead of raising.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        try:
            self._seekable = raw.seekable()
        except OSError:
            self._seekable = False
        self._gzip: gzip.GzipFile | None = None
        self._carry = b""  # when streaming: bytes read but not yet consumed
        self.window = 4 << 20
        self.offset = 0  # capture offset of the current window's first byte
        self.eof = False
        self.leftover = 0  # at the end: bytes after the last whole record
        self.error: str | None = None

    @property
    def _streaming(self) -> bool:
        return self._gzip is not None or not self._seekable

    def head(self) -> bytes:
        """The first bytes of the file, for recognising it."""
        self._carry = self._read(_HEAD_BYTES)
        return self._carry

    def decompress(self) -> bytes:
        """From here on read through gzip; returns the first decompressed bytes."""
        if self._seekable:
            self._raw.seek(0)
            self._gzip = gzip.GzipFile(fileobj=self._raw, mode="rb")
        else:
            self._gzip = gzip.GzipFile(fileobj=_Replay(self._carry, self._raw), mode="rb")
        return self.head()

    def disk_position(self) -> int:
        """How far into the file on disk reading has got (compressed bytes for gzip)."""
        try:
            return self._raw.tell() if self._seekable else 0
        except OSError:
            return 0

    def start_at(self, offset: int) -> None:
        self.offset = offset
        self._carry = self._carry[offset:] if self._streaming else b""

    def next(self, need: int) -> tuple[bytes, int] | None:
        """The next window and how many of its bytes hold records; None at the end."""
        if self.eof:
            return None
        want = max(self.window, need)
        if not self._streaming:
            try:
                self._raw.seek(self.offset)
            except OSError as e:
                self.error = f"read error ({e.strerror or e})"
            buf = self._read(want + PAD)
            if len(buf) == want + PAD:
                return buf, want
            self.eof = True
            return (buf + _PADDING, len(buf)) if buf else None
        asked = max(want - len(self._carry), 0)
        chunk = self._read(asked) if asked else b""
        self.eof = len(chunk) < asked
        n = len(self._carry) + len(chunk)
        if not n:
            return None
        return b"".join((self._carry, chunk, _PADDING)), n

    def advance(self, buf: bytes, n: int, consumed: int) -> None:
        """``consumed`` bytes of the window were whole records; the next window starts after."""
        self.offset += consumed
        if self._streaming:
            self._carry = buf[consumed:n]
        if self.eof:
            self.leftover = n - consumed

    def _read(self, n: int) -> bytes:
        if self.error is not None:
            return b""
        # read1 in a loop: a damaged or cut gzip stream still yields what came before the damage.
        read = self._raw.read if self._gzip is None else self._gzip.read1
        parts: list[bytes] = []
        got = 0
        while got < n:
            try:
                part = read(n - got)
            except (OSError, EOFError, zlib.error) as e:
                what = "the gzip stream is damaged or cut short" if self._gzip else "read error"
                self.error = f"{what} ({e})"
                break
            if not part:
                break
            parts.append(part)
            got += len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self) -> None:
        if self._gzip is not None:
            self._gzip.close()
        self._raw.close()


def _guesses(field: npt.NDArray[Any], n: int, values: tuple[int, ...]) -> I64:
    """One guessed record start shortly after each multiple of :data:`_SPACING`.

    ``field`` is a stride-1 view of the window (one item per byte offset) of a header field that
    every record carries with one of a few ``values`` (the top half of the timestamp, the block
    type); the guess is the first offset in each searched span where it matches.
    """
    rows = (n - _SYNC_SPAN - PAD) // _SPACING
    if rows < 2:
        return np.empty(0, np.int64)
    spans = as_strided(
        field[_SPACING:],
        shape=(rows, _SYNC_SPAN),
        strides=(_SPACING * field.strides[0], field.strides[0]),
    )
    hit = spans == values[0]
    for value in values[1:]:
        hit |= spans == value
    first = hit.argmax(axis=1)
    found = hit[np.arange(rows), first]
    points: I64 = ((np.flatnonzero(found) + 1) * _SPACING + first[found]).astype(np.int64)
    return points


def _chase(
    lengths: npt.NDArray[np.unsignedinteger[Any]],
    add: int,
    starts: I64,
    end: int,
    step: Callable[[int], int],
) -> I64:
    """Offsets of every record before ``end``, following the chain from ``starts[0]``.

    The record walk is sequential, but it need not be one walk: each of ``starts`` begins a chain
    (``next = pos + add + lengths[pos]``) and all chains advance together, one numpy step per
    record of the longest chain. ``starts[0]`` is a known record start; any other start is only a
    guess, accepted when the chain before it lands exactly on it, which makes it a real record
    start by induction. Where a guess is not landed on, or a chain is still running when most
    have finished, the rest is walked in Python with ``step``. So the result is exactly what one
    sequential walk from ``starts[0]`` finds; the guesses only decide how fast.
    """
    m = starts.size
    limits = np.append(starts[1:], end)
    walked = np.empty((_MAX_STEPS + 1, m), np.int64)
    walked[0] = starts
    steps = 0
    while steps < _MAX_STEPS:
        for row in range(steps, steps + 8):
            pos = walked[row + 1]
            np.add(walked[row], lengths[walked[row]], out=pos)
            if add:
                pos += add
            np.minimum(pos, end, out=pos)
        steps += 8
        running = int(np.count_nonzero(pos < limits))
        # A numpy step costs what ~25 records of the Python loop do: leave stragglers (chains
        # behind sparse guesses, a clock jump, damage) to the loop.
        if not running or (steps >= 128 and running * 32 <= m):
            break
    walked = walked[: steps + 1]
    inside = walked < limits
    inside[-1] = False  # a chain still running resumes from its last position, by hand
    landing = walked[inside.sum(axis=0), np.arange(m)]
    agree = np.append(landing[:-1] == starts[1:], landing[-1] >= end)
    if agree.all():
        found: I64 = walked.T[inside.T]
        return found
    # In file order: runs of chains that were landed on, and what lies between them, by hand.
    pieces: list[I64] = []
    chains = walked.T
    within = inside.T
    j = 0
    while True:
        wrong = np.flatnonzero(~agree[j:])
        last_good = m - 1 if not wrong.size else j + int(wrong[0])
        pieces.append(chains[j : last_good + 1][within[j : last_good + 1]])
        if not wrong.size:
            break
        by_hand: list[int] = []
        off = int(landing[last_good])
        k = last_good + 1
        while k < m:
            target = int(starts[k])
            while off < target:
                by_hand.append(off)
                off = step(off)
            if off == target:
                break
            k += 1  # walked past a wrong guess: try the next one
        if k >= m:
            while off < end:
                by_hand.append(off)
                off = step(off)
        pieces.append(np.array(by_hand, np.int64))
        if k >= m:
            break
        j = k
    found = np.concatenate(pieces)
    return found


class _PcapWalker:
    """Record walk for classic pcap: one link type, one timestamp unit, fixed record headers."""

    def __init__(self, order: str, frac_ns: int, rec_len: int, link: int, snaplen: int) -> None:
        self._order = order
        self._caplen_at = struct.Struct(order + "8xI").unpack_from
        self._u4 = np.dtype(order + "u4")
        self._frac_ns = frac_ns
        self._frac_limit = _NS // frac_ns
        self._rec_len = rec_len
        self._link = link
        self.limit = min(MAX_RECORD_BYTES, max(snaplen, _SNAPLEN_FLOOR) * _SNAPLEN_SLACK)

    def walk(self, buf: bytes, n: int) -> _Walk:
        b = np.frombuffer(buf, np.uint8)
        o = self._offsets_in_parallel(buf, b, n) if n >= _PARALLEL_MIN else None
        if o is None:
            o = self._offsets_in_sequence(buf, n)
        walk = _Walk()
        if not o.size:
            return walk
        rec_len = self._rec_len
        rows = np.ndarray((b.size - 15,), np.dtype((np.void, 16)), buffer=b, strides=(1,))
        hdr = rows[o].view(self._u4).reshape(-1, 4)
        caplen = hdr[:, 2].astype(np.int64)
        bad = caplen > self.limit
        if bad.any():
            k = int(np.argmax(bad))
            walk.bad_at = walk.consumed = int(o[k])
            walk.bad_why = self._too_long(int(caplen[k]))
            o, hdr, caplen = o[:k], hdr[:k], caplen[:k]
        else:
            next_off = int(o[-1]) + rec_len + int(caplen[-1])
            if next_off > n:  # the last record runs past the window: keep it for the next one
                walk.consumed = int(o[-1])
                walk.need = next_off - walk.consumed
                o, hdr, caplen = o[:-1], hdr[:-1], caplen[:-1]
            else:
                walk.consumed = next_off
        ts = hdr[:, 0].astype(np.int64) * _NS + hdr[:, 1].astype(np.int64) * self._frac_ns
        walk.records.append(_Records(o + rec_len, caplen, ts, self._link))
        return walk

    def _offsets_in_sequence(self, buf: bytes, n: int) -> I64:
        caplen_at = self._caplen_at
        rec_len = self._rec_len
        offsets = array.array("q")
        append = offsets.append
        off = 0
        last = n - rec_len
        # The hot loop: everything else about a record is read afterwards, vectorized.
        while off <= last:
            append(off)
            off += rec_len + caplen_at(buf, off)[0]
        return np.frombuffer(offsets, np.int64)

    def _offsets_in_parallel(self, buf: bytes, b: U8, n: int) -> I64 | None:
        rec_len = self._rec_len
        u4 = np.ndarray((b.size - 3,), self._u4, buffer=b, strides=(1,))
        # Records within 18 hours share the top half of the seconds. Past a change of it (once
        # every 18 hours of capture) there are no guesses and the rest is walked by hand.
        top = int(u4[0]) >> 16
        u2 = np.ndarray((b.size - 3,), np.dtype(self._order + "u2"), buffer=b, strides=(1,))
        points = _guesses(u2[2:] if self._order == "<" else u2, n, (top,))
        if not points.size:
            return None

        def plausible(p: I64) -> tuple[npt.NDArray[np.bool_], I64]:
            ok = p <= n - rec_len
            p = np.minimum(p, n)
            caplen = u4[p + 8].astype(np.int64)
            ok &= (u4[p] >> 16) - top <= 1  # unsigned: top or top + 1 (after a boundary)
            ok &= u4[p + 4] < self._frac_limit
            ok &= caplen <= u4[p + 12]
            ok &= caplen <= self.limit
            return ok, p + rec_len + caplen

        # A guess must look like a record header, and so must the two records it points to.
        ok, nxt = plausible(points)
        ok1, nxt = plausible(nxt)
        ok &= ok1 & plausible(nxt)[0]
        if not ok.any():
            return None
        starts = np.concatenate((np.zeros(1, np.int64), points[ok]))
        lengths = np.ndarray((b.size - 11,), self._u4, buffer=b, offset=8, strides=(1,))
        caplen_at = self._caplen_at

        def step(off: int) -> int:
            return off + rec_len + int(caplen_at(buf, off)[0])

        return _chase(lengths, rec_len, starts, n - rec_len + 1, step)

    def _too_long(self, caplen: int) -> str:
        return f"claims a {caplen:,}-byte packet (the limit is {self.limit:,})"


@dataclass(slots=True)
class _Interface:
    link: int
    snaplen: int
    tsresol: int = 6  # the exponent of the if_tsresol option
    binary: bool = False  # 2**-tsresol instead of 10**-tsresol
    offset_ns: int = 0

    @property
    def resolution_ns(self) -> int:
        if self.binary:
            return max(1, round(_NS / (1 << self.tsresol)))
        return int(10 ** (9 - self.tsresol)) if self.tsresol <= 9 else 1

    def to_ns(self, raw: U64) -> I64:
        """Exact integer conversion of raw 64-bit timestamps in this interface's unit (no float)."""
        ns: I64
        if self.binary:
            k = self.tsresol
            secs = (raw >> np.uint64(k)).astype(np.int64)
            frac = raw & np.uint64((1 << k) - 1)
            if k > 33:  # keep frac * 1e9 inside 64 bits; sub-nanosecond bits carry nothing
                frac >>= np.uint64(k - 33)
                k = 33
            ns = secs * _NS + ((frac * np.uint64(_NS)) >> np.uint64(k)).astype(np.int64)
        elif self.tsresol <= 9:
            ns = raw.astype(np.int64) * int(10 ** (9 - self.tsresol))
        else:
            ns = (raw // np.uint64(10 ** (self.tsresol - 9))).astype(np.int64)
        return ns + self.offset_ns if self.offset_ns else ns

    @property
    def max_raw(self) -> int:
        """The largest raw timestamp whose nanoseconds (offset included) fit in an int64.

        A bigger one is corruption (an EPB's 64-bit timestamp reaches 584 years in nanosecond
        units, far more in coarser ones) and would wrap around silently in numpy.
        """
        budget = _I64_MAX - max(self.offset_ns, 0)
        if self.binary:
            return min((budget // _NS - 1) << self.tsresol, (1 << 64) - 1)
        if self.tsresol <= 9:
            return budget // int(10 ** (9 - self.tsresol))
        return min(budget * int(10 ** (self.tsresol - 9)), (1 << 64) - 1)


class _Section:
    """Byte order and interfaces: both are per section, and a file may hold several."""

    __slots__ = ("header", "interfaces", "order")

    def __init__(self, order: str) -> None:
        self.order = order
        self.header = struct.Struct(order + "II").unpack_from
        self.interfaces: list[_Interface] = []


class _PcapngWalker:
    """Block walk for pcapng.

    Windows of nothing but packet blocks (all but the first, in practice) go through
    :func:`_chase`; a window with section or interface blocks is walked in Python, packet blocks
    in a tight loop and everything else one block at a time, since those change how the packet
    blocks after them are read (byte order, link type, timestamp unit).
    """

    def __init__(self) -> None:
        self._section = _Section("<")
        self._last_ts = 0  # a Simple Packet Block has no timestamp: it inherits this
        self._max_snaplen = 0
        self.interfaces_seen: list[_Interface] = []

    @property
    def caplen_limit(self) -> int:
        return min(MAX_RECORD_BYTES, max(self._max_snaplen, _SNAPLEN_FLOOR) * _SNAPLEN_SLACK)

    def walk(self, buf: bytes, n: int) -> _Walk:
        if n >= _PARALLEL_MIN and self._section.interfaces:
            fast = self._walk_in_parallel(buf, n)
            if fast is not None:
                return fast
        walk = _Walk()
        offsets = array.array("q")
        append = offsets.append
        off = 0
        while True:
            section = self._section
            header = section.header
            first = len(offsets)
            last = n - 8
            # The hot loop: only packet blocks, and only their type and length.
            while off <= last:
                btype, blen = header(buf, off)
                if btype in _PCAPNG_PACKETS and blen >= 16:
                    append(off)
                    off += blen
                else:
                    break
            incomplete = off > n
            if incomplete:
                off = offsets.pop()
            if len(offsets) > first:
                run = np.frombuffer(offsets[first:], np.int64)
                if not self._take_run(buf, run, section, walk):
                    return walk
            walk.consumed = off
            if off > last:
                return walk
            btype, blen = header(buf, off)
            if btype == _PCAPNG_SHB:
                if off + 12 > n:
                    return walk
                order = _PCAPNG_BOM.get(buf[off + 8 : off + 12])
                if order is None:
                    walk.bad_at = off
                    walk.bad_why = "is a Section Header Block without a valid byte-order magic"
                    return walk
                (blen,) = struct.unpack_from(order + "I", buf, off + 4)
            if blen < 12 or blen % 4 or blen > MAX_RECORD_BYTES:
                walk.bad_at = off
                walk.bad_why = f"is a block of type {btype:#x} claiming length {blen:,}"
                return walk
            if incomplete and btype in _PCAPNG_PACKETS and blen - 16 > self.caplen_limit:
                walk.bad_at = off
                walk.bad_why = f"is a packet block claiming length {blen:,}"
                return walk
            if off + blen > n:
                walk.need = blen
                return walk
            if btype == _PCAPNG_SHB:
                self._section = _Section(_PCAPNG_BOM[buf[off + 8 : off + 12]])
            elif btype == _PCAPNG_IDB:
                why = self._add_interface(buf, off, blen)
                if why:
                    walk.bad_at = off
                    walk.bad_why = why
                    return walk
            elif btype in _PCAPNG_PACKETS:  # too short to be one (the loop above took the rest)
                walk.bad_at = off
                walk.bad_why = f"is a packet block of only {blen} bytes"
                return walk
            off += blen
            walk.consumed = off

    def _add_interface(self, buf: bytes, off: int, blen: int) -> str:
        order = self._section.order
        if blen < 20:
            return f"is an Interface Description Block of only {blen} bytes"
        link, snaplen = struct.unpack_from(order + "H2xI", buf, off + 8)
        iface = _Interface(link, snaplen)
        p = off + 16
        end = off + blen - 4
        while p + 4 <= end:
            code, length = struct.unpack_from(order + "HH", buf, p)
            if code == 0:
                break
            value = p + 4
            if value + length > end:
                return "is an Interface Description Block whose options overrun it"
            if code == _OPT_TSRESOL and length >= 1:
                v = buf[value]
                iface.binary = bool(v & 0x80)
                iface.tsresol = v & 0x7F
                if iface.tsresol > (62 if iface.binary else 18):
                    base = 2 if iface.binary else 10
                    return f"declares a timestamp resolution of {base}^-{iface.tsresol}"
            elif code == _OPT_TSOFFSET and length >= 8:
                (seconds,) = struct.unpack_from(order + "q", buf, value)
                if abs(seconds) > _MAX_TSOFFSET_S:
                    return f"declares a timestamp offset of {seconds:,} seconds"
                iface.offset_ns = seconds * _NS
            p = value + (length + 3) // 4 * 4
        self._section.interfaces.append(iface)
        self.interfaces_seen.append(iface)
        self._max_snaplen = max(self._max_snaplen, snaplen)
        return ""

    def _walk_in_parallel(self, buf: bytes, n: int) -> _Walk | None:
        """The window's blocks found by :func:`_chase`; None if it holds anything but packets."""
        section = self._section
        u4t = np.dtype(section.order + "u4")
        b = np.frombuffer(buf, np.uint8)
        u4 = np.ndarray((b.size - 3,), u4t, buffer=b, strides=(1,))
        points = _guesses(u4, n, (_PCAPNG_EPB,))
        if not points.size:
            return None

        def plausible(p: I64) -> tuple[npt.NDArray[np.bool_], I64]:
            ok = p <= n - 32
            p = np.minimum(p, n - 32)
            blen = u4[p + 4].astype(np.int64)
            ok &= u4[p] == _PCAPNG_EPB
            ok &= (blen % 4 == 0) & (blen >= 32) & (p + blen <= n)
            ok &= u4[np.minimum(p + blen - 4, n)] == blen  # the trailing copy of the length
            return ok, p + blen

        # A guess must look like an Enhanced Packet Block, and so must the block after it.
        ok, nxt = plausible(points)
        ok &= plausible(nxt)[0]
        if not ok.any():
            return None
        starts = np.concatenate((np.zeros(1, np.int64), points[ok]))
        lengths = np.ndarray((b.size - 7,), u4t, buffer=b, offset=4, strides=(1,))
        header = section.header

        def step(off: int) -> int:
            return off + max(12, int(header(buf, off)[1]))

        o = _chase(lengths, 0, starts, n - 7, step)
        if not o.size:
            return None
        btype = u4[o]
        if not ((btype == _PCAPNG_EPB) | (btype == _PCAPNG_SPB) | (btype == _PCAPNG_PB)).all():
            return None  # interface or section blocks: the sequential walk deals with those
        walk = _Walk()
        last = int(o[-1])
        blen = int(u4[last + 4])
        if last + blen > n:
            if blen < 16 or blen % 4 or blen - 16 > self.caplen_limit:
                return None  # let the sequential walk name the damage
            walk.consumed = last
            walk.need = blen
            o = o[:-1]
        else:
            walk.consumed = last + blen
        if o.size:
            self._take_run(buf, o, section, walk)
        return walk

    def _take_run(self, buf: bytes, o: I64, section: _Section, walk: _Walk) -> bool:
        """Check a run of packet blocks all at once and turn it into records; False on damage."""
        b = np.frombuffer(buf, np.uint8)
        u4 = np.dtype(section.order + "u4")
        rows = np.ndarray((b.size - 27,), np.dtype((np.void, 28)), buffer=b, strides=(1,))
        hdr = rows[o].view(u4).reshape(-1, 7)
        btype = hdr[:, 0]
        blen = hdr[:, 1].astype(np.int64)
        unaligned = np.ndarray((b.size - 3,), u4, buffer=b, strides=(1,))
        spb = btype == _PCAPNG_SPB
        ifaces = section.interfaces
        if btype.max() == _PCAPNG_EPB and btype.min() == _PCAPNG_EPB:
            iface = hdr[:, 2].astype(np.int64)
            caplen = hdr[:, 5].astype(np.int64)
        else:
            iface = hdr[:, 2].astype(np.int64)
            pb = btype == _PCAPNG_PB
            # The obsolete Packet Block has a 16-bit interface id followed by a drops counter.
            iface[pb] = (iface[pb] & 0xFFFF) if section.order == "<" else (iface[pb] >> 16)
            iface[spb] = 0
            caplen = hdr[:, 5].astype(np.int64)
            spb_cap = np.minimum(hdr[:, 2].astype(np.int64), blen - 16)
            if ifaces and ifaces[0].snaplen:
                spb_cap = np.minimum(spb_cap, ifaces[0].snaplen)
            caplen[spb] = spb_cap[spb]
        body = np.where(spb, blen - 16, blen - 32)
        bad = (blen % 4 != 0) | (unaligned[o + blen - 4] != blen) | (body < 0)
        bad |= (caplen > body) | (caplen > self.caplen_limit) | (iface >= len(ifaces))
        raw = (hdr[:, 3].astype(np.uint64) << np.uint64(32)) | hdr[:, 4]
        late = np.zeros(o.size, np.bool_)
        if ifaces:  # a timestamp nanoseconds cannot hold (Simple Packet Blocks have none)
            limits = np.array([i.max_raw for i in ifaces], np.uint64)
            late = ~spb & ~bad & (raw > limits[np.minimum(iface, len(ifaces) - 1)])
            bad |= late
        if bad.any():
            k = int(np.argmax(bad))
            walk.bad_at = int(o[k])
            walk.bad_why = (
                f"is a packet block with a timestamp ({int(raw[k]):,} units of interface "
                f"{int(iface[k])}) beyond what nanoseconds since 1970 can hold (the year 2262)"
                if late[k]
                else f"is a packet block (length {int(blen[k]):,}, captured length "
                f"{int(caplen[k]):,}, interface {int(iface[k])}) that contradicts itself"
            )
            walk.consumed = walk.bad_at
            o, hdr, iface, caplen, spb = o[:k], hdr[:k], iface[:k], caplen[:k], spb[:k]
            raw = raw[:k]
            if not o.size:
                return False
        link: int | I64
        if len(ifaces) == 1 or not (iface != iface[0]).any():
            only = ifaces[int(iface[0])]
            ts = only.to_ns(raw)
            link = only.link
        else:
            ts = np.empty(o.size, np.int64)
            links = np.array([i.link for i in ifaces], np.int64)
            link = links[iface]
            for i in np.unique(iface).tolist():
                rows_i = iface == i
                ts[rows_i] = ifaces[i].to_ns(raw[rows_i])
        if spb.any():
            # Simple Packet Blocks carry no timestamp: each takes the previous packet's.
            src = np.where(spb, -1, np.arange(o.size))
            np.maximum.accumulate(src, out=src)
            ts = np.where(src >= 0, ts[np.maximum(src, 0)], self._last_ts)
        self._last_ts = int(ts[-1])
        start = o + np.where(spb, 12, 28)
        walk.records.append(_Records(start, caplen, ts, link))
        return walk.bad_at is None


def _open(path: str) -> BinaryIO:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read it ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{path} is a directory, not a capture file")
    try:
        return open(path, "rb")
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read it ({e.strerror or e})") from None


def _looks_like(head: bytes) -> str:
    """A guess at what a non-capture file is, for the error message."""
    if head.startswith(b"\x7fELF"):
        return "an executable program (ELF)"
    if head.startswith(b"snoop\x00"):
        return "a Solaris snoop capture — convert it with `editcap -F pcap`"
    if head.startswith(b"GMBU"):
        return "a Microsoft Network Monitor capture — convert it with `editcap -F pcap`"
    if head[257:262] == b"ustar":
        return "a tar archive — extract the capture from it"
    if head.startswith(b"%PDF"):
        return "a PDF document"
    sample = head[:2048]
    printable = sum(1 for c in sample if c in (9, 10, 13) or 32 <= c < 127 or c >= 0x80)
    if b"\x00" in sample or printable < 0.95 * len(sample):
        return "binary data of an unknown kind"
    text = sample.lstrip(b"\xef\xbb\xbf \t\r\n")
    lower = text[:64].lower()
    if text.startswith(b"#separator"):
        return "a Zeek log"
    if text.startswith((b"{", b"[")):
        return "JSON"
    if lower.startswith((b"<!doctype html", b"<html")):
        return "an HTML page — a download link that served a web page?"
    if text.startswith(b"<"):
        return "XML"
    if _TCPDUMP_TEXT.search(sample):
        return "text — tcpdump's printed output?"
    return "text"


def _compressed(path: str, head: bytes) -> CompressedCaptureError | None:
    for magic, what, command in _COMPRESSED:
        if head.startswith(magic):
            return CompressedCaptureError(
                f"{path} is {what}; decompress it first: `{command.format(path)}`"
            )
    return None


class CaptureReader:
    """A single pass over one capture file, as :class:`SegmentBatch` windows.

    The constructor opens the file and checks its header, so a bad path or a file that is not a
    capture fails before any work starts. :attr:`info` grows while iterating and is complete once
    iteration ends; the file is closed then (or by :meth:`close` / ``with``).
    """

    info: CaptureInfo

    def __init__(self, path: str | os.PathLike[str], *, window_bytes: int = 4 << 20) -> None:
        if window_bytes < 1:
            raise ValueError(f"window_bytes must be positive, not {window_bytes}")
        self._path = os.fspath(path)
        self._window = window_bytes
        self._started = False
        self._walker: _PcapWalker | _PcapngWalker
        raw = _open(self._path)
        try:
            self._size = os.fstat(raw.fileno()).st_size
            self._source = self._recognise(raw)
        except BaseException:
            raw.close()
            raise

    def progress(self) -> tuple[int, int]:
        """(bytes of the file on disk read so far, its size): for a progress bar.

        Counted on disk, so a gzip-compressed capture reaches 100% when its last compressed byte
        is read; (0, 0) for a pipe, whose size is unknown.
        """
        return min(self._source.disk_position(), self._size), self._size

    def _recognise(self, raw: BinaryIO) -> _Source:
        path = self._path
        source = _Source(raw)
        head = source.head()
        if source.error:
            raise InputError(f"{path}: {source.error}")
        if not head:
            raise EmptyCaptureError(
                f"{path} is empty (0 bytes): tcpdump wrote nothing to it (killed before its first "
                "flush? use `tcpdump -U -w FILE` and stop it with Ctrl-C)"
            )
        suffix = ""
        if head.startswith(_GZIP_MAGIC):
            head = source.decompress()
            if not head:
                why = source.error or "it holds nothing"
                raise (MalformedCaptureError if source.error else EmptyCaptureError)(
                    f"{path} is gzip-compressed but {why}"
                )
            suffix = " (gzip)"
        refusal = _compressed(path, head)
        if refusal is not None:
            raise refusal
        magic = head[:4]
        if magic in _PCAP_MAGICS:
            self._start_pcap(head, suffix, raw if not suffix else None)
            source.start_at(24)
        elif magic == _PCAPNG_SHB.to_bytes(4, "little"):
            self._start_pcapng(head, suffix)
            source.start_at(0)
        else:
            raise NotACaptureError(
                f"{path} is not a pcap or pcapng capture (it looks like {_looks_like(head)}); "
                "capture with `tcpdump -w FILE`"
            )
        source.window = self._window
        return source

    def _start_pcap(self, head: bytes, suffix: str, raw: BinaryIO | None) -> None:
        path = self._path
        if len(head) < 24:
            raise MalformedCaptureError(
                f"{path}: the pcap file header is cut short ({len(head)} of 24 bytes)"
            )
        order, frac_ns, rec_len = _PCAP_MAGICS[head[:4]]
        snaplen, link_field = struct.unpack_from(order + "II", head, 16)
        link = link_field & 0x03FFFFFF  # the top bits may carry FCS information
        self.info = CaptureInfo(
            path=path,
            format="pcap" + suffix,
            link_types=[link_type_name(link)],
            ts_resolution_ns=frac_ns,
        )
        if link not in SUPPORTED:
            raise UnsupportedLinkTypeError(unsupported_message(path, [link]))
        if raw is not None and len(head) == 24 and os.fstat(raw.fileno()).st_size == 24:
            raise EmptyCaptureError(
                f"{path} has a pcap header but no packets (nothing matched the filter, or "
                "tcpdump was killed before it flushed: use `tcpdump -U -w FILE`)"
            )
        self._walker = _PcapWalker(order, frac_ns, rec_len, link, snaplen)

    def _start_pcapng(self, head: bytes, suffix: str) -> None:
        path = self._path
        if len(head) < 28 or head[8:12] not in _PCAPNG_BOM:
            raise MalformedCaptureError(
                f"{path} starts like a pcapng file but its Section Header Block is broken"
            )
        self.info = CaptureInfo(path=path, format="pcapng" + suffix)
        self._walker = _PcapngWalker()

    def __iter__(self) -> Iterator[SegmentBatch]:
        if self._started:
            raise RuntimeError(f"{self._path} is already being read: a CaptureReader is one pass")
        self._started = True
        return self._batches()

    def _batches(self) -> Iterator[SegmentBatch]:
        try:
            yield from self._read_all()
        finally:
            self.close()

    def _read_all(self) -> Iterator[SegmentBatch]:
        info = self.info
        source = self._source
        walker = self._walker
        need = 0
        while (window := source.next(need)) is not None:
            buf, n = window
            walk = walker.walk(buf, n)
            if isinstance(walker, _PcapngWalker):
                self._note_interfaces(walker)
            info.bytes_read = source.offset + (
                walk.consumed if walk.bad_at is None else walk.bad_at
            )
            for records in walk.records:
                if len(records):
                    batch = self._decode(buf, records)
                    if len(batch):
                        yield batch
            if walk.bad_at is not None:
                self._refuse(source.offset + walk.bad_at, walk.bad_why)
                return
            source.advance(buf, n, walk.consumed)
            need = walk.need
            if not walk.consumed and need <= n:
                need = 2 * n + 64  # not even one record header fits: look further
        info.bytes_read += source.leftover
        if source.leftover or source.error:
            self._cut_short(source)
        if info.packets == 0:
            raise EmptyCaptureError(f"{self._path} holds no packets ({info.format} headers only)")
        unsupported = info.skipped.get("unsupported_link_type", 0)
        if unsupported == info.packets and isinstance(walker, _PcapngWalker):
            links = [i.link for i in walker.interfaces_seen if i.link not in SUPPORTED]
            raise UnsupportedLinkTypeError(unsupported_message(self._path, links))

    def _cut_short(self, source: _Source) -> None:
        """The capture ends inside a record (or its gzip stream breaks): keep what came before."""
        info = self.info
        at = source.offset
        info.truncated_at_offset = at
        if source.error:
            where = " of the decompressed data" if info.format.endswith("(gzip)") else ""
            why = f"{source.error} at byte {at:,}{where}"
            hint = ""
        else:
            why = f"the capture ends mid-record at byte {at:,}"
            hint = " (tcpdump killed?)"
        if info.packets == 0:
            raise EmptyCaptureError(
                f"{self._path} holds no complete packet: {why}{hint}; capture with "
                "`tcpdump -U -w FILE` and stop it with Ctrl-C"
            )
        info.warnings.append(f"{why}{hint}; analyzed the {info.packets:,} packets before it")

    def _decode(self, buf: bytes, records: _Records) -> SegmentBatch:
        info = self.info
        m = len(records)
        frame = np.arange(info.packets + 1, info.packets + m + 1, dtype=np.int64)
        batch, counts = decode(
            buf, frame, records.ts_ns, records.start, records.caplen, records.link
        )
        info.packets += m
        info.tcp_segments += len(batch)
        for code, count in enumerate(counts.tolist()):
            if code and count:
                info.skipped[REASONS[code]] += count
        lo = int(records.ts_ns.min())
        hi = int(records.ts_ns.max())
        info.first_ts_ns = lo if info.first_ts_ns is None else min(info.first_ts_ns, lo)
        info.last_ts_ns = hi if info.last_ts_ns is None else max(info.last_ts_ns, hi)
        if not self._source._streaming:
            batch = replace(batch, file_base=self._source.offset)
        return batch

    @property
    def rereadable(self) -> str | None:
        """The file's path if payloads can be read back from it later (plain file on disk)."""
        return None if self._source._streaming else os.fspath(self._path)

    def _note_interfaces(self, walker: _PcapngWalker) -> None:
        info = self.info
        seen = walker.interfaces_seen
        if seen and not info.link_types:
            info.ts_resolution_ns = seen[0].resolution_ns
        for iface in seen:
            name = link_type_name(iface.link)
            if name not in info.link_types:
                info.link_types.append(name)

    def _refuse(self, offset: int, why: str) -> None:
        """Stop at a record header that cannot be true: an error if no packet came before it."""
        info = self.info
        info.truncated_at_offset = offset
        if info.packets == 0:
            raise MalformedCaptureError(
                f"{self._path}: the first record (at byte {offset:,}) {why}; the file is corrupt"
            )
        info.warnings.append(
            f"the record at byte {offset:,} {why}: the capture is corrupt from there; "
            f"analyzed the {info.packets:,} packets before it"
        )

    def close(self) -> None:
        """Release the file; safe to call more than once."""
        source = getattr(self, "_source", None)
        if source is not None:
            source.close()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_capture(path: str | os.PathLike[str], *, window_bytes: int = 4 << 20) -> CaptureReader:
    """Open a pcap or pcapng file (optionally gzip-compressed) for one pass of reading."""
    return CaptureReader(path, window_bytes=window_bytes)

"""The values that leave the capture stage: columnar TCP segments and what was read.

The reader never builds an object per packet: it hands the next stage one :class:`SegmentBatch`
per window of the file, a set of equal-length numpy columns. Python-level work downstream is then
per connection or per HTTP message, not per packet.

Addresses are carried as two unsigned 64-bit halves of a 16-byte IPv6 address; IPv4 addresses are
IPv4-mapped (``::ffff:a.b.c.d``), so one key type serves both families and ``ip_version`` says how
to print it.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

# TCP flag bits as they sit in the 13th byte of the TCP header.
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20

U8 = npt.NDArray[np.uint8]
U16 = npt.NDArray[np.uint16]
U32 = npt.NDArray[np.uint32]
U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]

_V4_MAPPED_HI = np.uint64(0)
_V4_MAPPED_LO_PREFIX = 0xFFFF << 32


@dataclass(frozen=True, slots=True)
class SegmentBatch:
    """TCP segments from one window of a capture, one row per packet, in file order.

    ``data`` is the window's raw bytes; payload bytes of row ``i`` are
    ``data[payload_off[i] : payload_off[i] + captured_len[i]]``. ``payload_len`` comes from the IP
    header, so it is the true length even when a snaplen cut the packet (``captured_len`` is then
    smaller). Consumers copy what they keep: the window is released after the batch is processed.
    ``file_base`` is where ``data`` starts in the capture file when the file is plain (not
    compressed, not a pipe): a payload can then be read back later from ``file_base +
    payload_off`` instead of being copied and held (see :class:`pcapkit.capture.FileBytes`).
    """

    frame: I64  # 1-based packet number in the file (counts every record, TCP or not)
    ts_ns: I64  # capture timestamp, integer nanoseconds since the epoch
    ip_version: U8  # 4 or 6
    src_hi: U64
    src_lo: U64
    dst_hi: U64
    dst_lo: U64
    sport: U16
    dport: U16
    seq: U32
    ack: U32
    flags: U8  # FIN/SYN/RST/PSH/ACK/URG bits
    window: U16  # raw (unscaled) receive window
    payload_len: U32  # TCP payload length per the IP header
    captured_len: U32  # payload bytes actually present in the capture
    payload_off: I64  # offset of the first payload byte in ``data``
    data: bytes
    file_base: int | None = None  # file offset of data[0]; None for gzip or a pipe

    def __len__(self) -> int:
        return int(self.frame.shape[0])

    def take(self, rows: npt.NDArray[np.bool_]) -> SegmentBatch:
        """The rows where ``rows`` is True, sharing the window."""
        cols = {f: getattr(self, f)[rows] for f in _COLUMNS}
        return SegmentBatch(**cols, data=self.data, file_base=self.file_base)

    def payload(self, i: int) -> bytes:
        """The captured payload bytes of row ``i`` (possibly fewer than ``payload_len``)."""
        off = int(self.payload_off[i])
        return self.data[off : off + int(self.captured_len[i])]


@dataclass(slots=True)
class CaptureInfo:
    """What the reader saw of the file as a whole; filled in while batches are read.

    ``skipped`` counts packets that did not become segments, by reason, so nothing is dropped
    silently: ``non_ip``, ``non_tcp``, ``ip_fragment``, ``truncated`` (cut before the end of the TCP
    header), ``malformed`` (header fields that contradict themselves), ``unsupported_link_type``.
    """

    path: str
    format: str  # "pcap" or "pcapng"
    link_types: list[str] = field(default_factory=list)  # names, e.g. "EN10MB", "LINUX_SLL2"
    ts_resolution_ns: int = 1000  # of the first interface; pcapng may differ per interface
    packets: int = 0  # every packet record read
    tcp_segments: int = 0  # packets that became rows of a SegmentBatch
    skipped: Counter[str] = field(default_factory=Counter)
    bytes_read: int = 0
    first_ts_ns: int | None = None
    last_ts_ns: int | None = None
    # Set when the file ends inside a record (a killed tcpdump): where reading stopped.
    truncated_at_offset: int | None = None
    warnings: list[str] = field(default_factory=list)


def format_ip(hi: int, lo: int, version: int) -> str:
    """Print an address stored as two 64-bit halves the way users write it."""
    value = (int(hi) << 64) | int(lo)
    if version == 4:
        return str(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    return str(ipaddress.IPv6Address(value))


def format_endpoint(hi: int, lo: int, version: int, port: int) -> str:
    """``ip:port`` for IPv4, ``[ip]:port`` for IPv6 (as in URLs and nginx's logs)."""
    ip = format_ip(hi, lo, version)
    return f"[{ip}]:{port}" if version == 6 else f"{ip}:{port}"


_COLUMNS = (
    "frame",
    "ts_ns",
    "ip_version",
    "src_hi",
    "src_lo",
    "dst_hi",
    "dst_lo",
    "sport",
    "dport",
    "seq",
    "ack",
    "flags",
    "window",
    "payload_len",
    "captured_len",
    "payload_off",
)

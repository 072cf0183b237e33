"""Build packets and capture files byte by byte, so every header field is under the test's control.

Everything is written with ``struct`` (no scapy), so a test can also build what no well-behaved
tool would write: contradictory lengths, cut records, odd link types.

    pkt = tcp("10.0.0.1", "10.0.0.2", 40000, 8080, flags="PA", payload=b"GET / HTTP/1.1\\r\\n")
    write_pcap(tmp_path / "a.pcap", [(1_700_000_000_000_000_000, pkt)], linktype="LINUX_SLL2")
    rows, info = read_segments(tmp_path / "a.pcap")
"""

from __future__ import annotations

import ipaddress
import os
import struct
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from pcapkit import _core

LINKTYPE_NUMBERS: dict[str, int] = {
    "NULL": 0,
    "EN10MB": 1,
    "RAW": 101,
    "LOOP": 108,
    "LINUX_SLL": 113,
    "IPV4": 228,
    "IPV6": 229,
    "LINUX_SLL2": 276,
}

_FLAG_LETTERS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20, "E": 0x40}
_FLAG_LETTERS["C"] = 0x80
# MSS 1460, SACK permitted, timestamps, NOP, window scale 7: what Linux puts on a SYN (20 bytes).
_SYN_OPTIONS = bytes.fromhex("020405b4") + bytes.fromhex("0402") + bytes.fromhex("080a")
_SYN_OPTIONS += struct.pack("!II", 123456, 0) + bytes.fromhex("01030307")

ETH_DST = bytes.fromhex("020000000002")
ETH_SRC = bytes.fromhex("020000000001")


def tcp_flags(flags: str) -> int:
    """Scapy's flag letters ("S", "SA", "PA", ...) as the TCP header byte."""
    value = 0
    for letter in flags:
        value |= _FLAG_LETTERS[letter]
    return value


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def tcp_segment(
    sport: int,
    dport: int,
    *,
    seq: int = 0,
    ack: int = 0,
    flags: str | int = "A",
    payload: bytes = b"",
    window: int = 65535,
    options: bytes = b"",
    data_offset: int | None = None,
    pseudo_header: bytes = b"",
) -> bytes:
    """A TCP header plus payload; ``data_offset`` overrides the header-length field (in words)."""
    if len(options) % 4:
        options += b"\x01" * (4 - len(options) % 4)
    doff = data_offset if data_offset is not None else 5 + len(options) // 4
    bits = flags if isinstance(flags, int) else tcp_flags(flags)
    header = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, doff << 4, bits, window, 0, 0)
    segment = header + options + payload
    csum = _checksum(pseudo_header + segment) if pseudo_header else 0
    return segment[:16] + struct.pack("!H", csum) + segment[18:]


def ipv4(
    src: str,
    dst: str,
    proto: int,
    body: bytes,
    *,
    ident: int = 1,
    flags_frag: int = 0x4000,
    ttl: int = 64,
    options: bytes = b"",
    total_length: int | None = None,
    ihl: int | None = None,
) -> bytes:
    """An IPv4 packet; ``flags_frag`` is the 16-bit flags+fragment-offset field (0x4000 = DF)."""
    if len(options) % 4:
        options += b"\x00" * (4 - len(options) % 4)
    words = ihl if ihl is not None else 5 + len(options) // 4
    total = total_length if total_length is not None else 20 + len(options) + len(body)
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | words,
        0,
        total,
        ident,
        flags_frag,
        ttl,
        proto,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    header += options
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + body


def ipv6(
    src: str,
    dst: str,
    next_header: int,
    body: bytes,
    *,
    hop_limit: int = 64,
    payload_length: int | None = None,
) -> bytes:
    """An IPv6 packet; ``body`` starts with whatever ``next_header`` says (extension or L4)."""
    plen = payload_length if payload_length is not None else len(body)
    header = struct.pack(
        "!IHBB16s16s",
        0x60000000,
        plen,
        next_header,
        hop_limit,
        ipaddress.IPv6Address(src).packed,
        ipaddress.IPv6Address(dst).packed,
    )
    return header + body


def ipv6_extension(next_header: int, *, length_units: int = 0) -> bytes:
    """A hop-by-hop / routing / destination-options header of (1 + length_units) * 8 bytes."""
    size = (1 + length_units) * 8
    body = bytes([next_header, length_units]) + b"\x01" + bytes([size - 4]) + bytes(size - 4)
    return body[:size]


def tcp(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    *,
    seq: int = 0,
    ack: int = 0,
    flags: str = "A",
    payload: bytes = b"",
    window: int = 65535,
    options: bool = False,
    ipv6_extensions: Sequence[int] = (),
) -> bytes:
    """An IPv4 or IPv6 TCP packet (by address family), with valid checksums.

    ``options`` adds the 20 bytes of options Linux sends on a SYN; ``ipv6_extensions`` puts
    extension headers (by next-header number: 0, 43, 60) between the IPv6 header and TCP.
    """
    opts = _SYN_OPTIONS if options else b""
    src_ip = ipaddress.ip_address(src)
    dst_ip = ipaddress.ip_address(dst)
    seg_len = 20 + len(opts) + len(payload)
    if src_ip.version == 4:
        pseudo = src_ip.packed + dst_ip.packed + struct.pack("!BBH", 0, 6, seg_len)
    else:
        pseudo = src_ip.packed + dst_ip.packed + struct.pack("!IxxxB", seg_len, 6)
    segment = tcp_segment(
        sport,
        dport,
        seq=seq,
        ack=ack,
        flags=flags,
        payload=payload,
        window=window,
        options=opts,
        pseudo_header=pseudo,
    )
    if src_ip.version == 4:
        return ipv4(src, dst, 6, segment)
    chain = [*ipv6_extensions, 6]
    body = segment
    for following in reversed(chain[1:]):
        body = ipv6_extension(following) + body
    return ipv6(src, dst, chain[0], body)


def frame(
    l3: bytes,
    linktype: str | int = "EN10MB",
    *,
    vlan: tuple[int, ...] = (),
    tpids: tuple[int, ...] | None = None,
    ethertype: int | None = None,
    null_byte_order: str = "<",
    outgoing: bool = False,
) -> bytes:
    """Wrap an IP packet (or any L3 payload, with ``ethertype``) in a link-layer header.

    VLAN tags are written outermost first; with two or more the outer one uses 802.1ad (0x88a8)
    like a QinQ switch, unless ``tpids`` says otherwise. Unknown link types (numbers) are returned
    unwrapped.
    """
    version = l3[0] >> 4 if l3 else 4
    proto = ethertype if ethertype is not None else (0x86DD if version == 6 else 0x0800)
    name = linktype if isinstance(linktype, str) else _name_of(linktype)
    if name == "EN10MB":
        if tpids is None:
            tpids = (0x88A8,) + (0x8100,) * (len(vlan) - 1) if len(vlan) > 1 else (0x8100,)
        tags = b"".join(
            struct.pack("!HH", tpid, vid) for tpid, vid in zip(tpids, vlan, strict=False)
        )
        return ETH_DST + ETH_SRC + tags + struct.pack("!H", proto) + l3
    if name == "LINUX_SLL":
        return struct.pack("!HHH8sH", 4 if outgoing else 0, 1, 6, ETH_SRC, proto) + l3
    if name == "LINUX_SLL2":
        return struct.pack("!HHIHBB8s", proto, 0, 2, 1, 4 if outgoing else 0, 6, ETH_SRC) + l3
    if name == "NULL":
        af = 30 if version == 6 else 2  # macOS values
        return struct.pack(null_byte_order + "I", af) + l3
    if name == "LOOP":
        return struct.pack("!I", 24 if version == 6 else 2) + l3
    return l3


def _name_of(number: int) -> str:
    for name, value in LINKTYPE_NUMBERS.items():
        if value == number:
            return name
    return ""


def _linktype_number(linktype: str | int) -> int:
    return linktype if isinstance(linktype, int) else LINKTYPE_NUMBERS[linktype]


def pcap_bytes(
    packets: Sequence[tuple[int, bytes]],
    *,
    linktype: str | int = "EN10MB",
    nanosecond: bool = False,
    big_endian: bool = False,
    snaplen: int = 262144,
    vlan: tuple[int, ...] = (),
    framed: bool = False,
    modified: bool = False,
) -> bytes:
    """A whole classic pcap file in memory (see :func:`write_pcap`)."""
    order = ">" if big_endian else "<"
    magic = 0xA1B2CD34 if modified else (0xA1B23C4D if nanosecond else 0xA1B2C3D4)
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, _linktype_number(linktype))]
    for ts_ns, l3 in packets:
        data = l3 if framed else frame(l3, linktype, vlan=vlan)
        caplen = min(len(data), snaplen)
        secs, rest = divmod(ts_ns, 1_000_000_000)
        frac = rest if nanosecond else rest // 1000
        out.append(struct.pack(order + "IIII", secs, frac, caplen, len(data)))
        if modified:
            out.append(struct.pack(order + "IHBx", 1, 0x0800, 0))
        out.append(data[:caplen])
    return b"".join(out)


def write_pcap(
    path: str | os.PathLike[str],
    packets: Sequence[tuple[int, bytes]],
    *,
    linktype: str | int = "EN10MB",
    nanosecond: bool = False,
    big_endian: bool = False,
    snaplen: int = 262144,
    vlan: tuple[int, ...] = (),
    framed: bool = False,
    modified: bool = False,
) -> None:
    """Write ``(ts_ns, l3_packet)`` records framed for ``linktype``; caplen = min(len, snaplen).

    ``framed`` writes the packets as given (already link-layer frames); ``modified`` writes
    Kuznetzov's 24-byte record headers (magic a1b2cd34).
    """
    with open(path, "wb") as f:
        f.write(
            pcap_bytes(
                packets,
                linktype=linktype,
                nanosecond=nanosecond,
                big_endian=big_endian,
                snaplen=snaplen,
                vlan=vlan,
                framed=framed,
                modified=modified,
            )
        )


def pcapng_block(block_type: int, body: bytes, *, order: str = "<") -> bytes:
    """Any pcapng block: type, total length, body padded to 4 bytes, total length again."""
    body += b"\x00" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack(order + "II", block_type, length) + body + struct.pack(order + "I", length)


def pcapng_shb(*, order: str = "<") -> bytes:
    return pcapng_block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1), order=order)


def pcapng_idb(
    linktype: str | int,
    tsresol: int = 6,
    *,
    snaplen: int = 262144,
    tsoffset: int = 0,
    order: str = "<",
) -> bytes:
    """An Interface Description Block; ``tsresol`` is the raw option byte (0x80 | k for 2^-k)."""
    options = b""
    if tsresol != 6:
        options += struct.pack(order + "HHB3x", 9, 1, tsresol)
    if tsoffset:
        options += struct.pack(order + "HHq", 14, 8, tsoffset)
    if options:
        options += struct.pack(order + "HH", 0, 0)
    body = struct.pack(order + "HHI", _linktype_number(linktype), 0, snaplen) + options
    return pcapng_block(1, body, order=order)


def ts_units(ts_ns: int, tsresol: int, tsoffset: int = 0) -> int:
    """A nanosecond timestamp in an interface's units (what an EPB stores)."""
    ts_ns -= tsoffset * 1_000_000_000
    if tsresol & 0x80:
        return (ts_ns << (tsresol & 0x7F)) // 1_000_000_000
    if tsresol <= 9:
        return ts_ns // int(10 ** (9 - tsresol))
    return ts_ns * int(10 ** (tsresol - 9))


def pcapng_epb(
    interface: int, ts: int, data: bytes, *, snaplen: int = 262144, order: str = "<"
) -> bytes:
    """An Enhanced Packet Block; ``ts`` is already in the interface's units."""
    caplen = min(len(data), snaplen)
    head = struct.pack(order + "IIIII", interface, ts >> 32, ts & 0xFFFFFFFF, caplen, len(data))
    return pcapng_block(6, head + data[:caplen], order=order)


def pcapng_pb(interface: int, ts: int, data: bytes, *, order: str = "<") -> bytes:
    """An obsolete Packet Block (type 2): 16-bit interface id, 16-bit drops count."""
    drops = 7  # nonzero, so a reader that takes 32 bits for the interface id gets it wrong
    head = struct.pack(
        order + "HHIIII", interface, drops, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data)
    )
    return pcapng_block(2, head + data, order=order)


def pcapng_spb(data: bytes, *, snaplen: int = 262144, order: str = "<") -> bytes:
    """A Simple Packet Block: original length and data only (no interface, no timestamp)."""
    return pcapng_block(3, struct.pack(order + "I", len(data)) + data[:snaplen], order=order)


def pcapng_bytes(
    interfaces: Sequence[tuple[str | int, int]],
    packets: Sequence[tuple[int, int, bytes]],
    *,
    big_endian: bool = False,
    snaplen: int = 262144,
    block: str = "epb",
    tsoffsets: Sequence[int] = (),
) -> bytes:
    """A whole single-section pcapng file in memory (see :func:`write_pcapng`)."""
    order = ">" if big_endian else "<"
    out = [pcapng_shb(order=order)]
    for k, (linktype, tsresol) in enumerate(interfaces):
        offset = tsoffsets[k] if k < len(tsoffsets) else 0
        out.append(pcapng_idb(linktype, tsresol, snaplen=snaplen, tsoffset=offset, order=order))
    for iface, ts_ns, l3 in packets:
        linktype, tsresol = interfaces[iface]
        offset = tsoffsets[iface] if iface < len(tsoffsets) else 0
        data = frame(l3, linktype)
        ts = ts_units(ts_ns, tsresol, offset)
        if block == "spb":
            out.append(pcapng_spb(data, snaplen=snaplen, order=order))
        elif block == "pb":
            out.append(pcapng_pb(iface, ts, data, order=order))
        else:
            out.append(pcapng_epb(iface, ts, data, snaplen=snaplen, order=order))
    return b"".join(out)


def write_pcapng(
    path: str | os.PathLike[str],
    interfaces: Sequence[tuple[str | int, int]],
    packets: Sequence[tuple[int, int, bytes]],
    *,
    big_endian: bool = False,
    snaplen: int = 262144,
    block: str = "epb",
    tsoffsets: Sequence[int] = (),
) -> None:
    """Write a pcapng file: ``interfaces`` are (link type, if_tsresol byte: 6, 9, 0x80|k ...);
    ``packets`` are (interface index, ts_ns, l3_packet), framed for their interface's link type.

    ``block`` picks the packet block type: "epb" (default), "spb" (Simple Packet Blocks: no
    timestamp, interface 0) or "pb" (the obsolete Packet Block). ``tsoffsets`` sets if_tsoffset
    (seconds) per interface.
    """
    with open(path, "wb") as f:
        f.write(
            pcapng_bytes(
                interfaces,
                packets,
                big_endian=big_endian,
                snaplen=snaplen,
                block=block,
                tsoffsets=tsoffsets,
            )
        )


class Row(NamedTuple):
    """One decoded segment as plain Python values, for comparing in tests."""

    frame: int
    ts_ns: int
    ip_version: int
    src: str
    dst: str
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    payload_len: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Info:
    """What the core's capture stage read of a file, as the tests look at it."""

    format: str
    link_types: list[str]
    ts_resolution_ns: int
    packets: int
    tcp_segments: int
    skipped: Counter[str]
    bytes_read: int
    first_ts_ns: int | None
    last_ts_ns: int | None
    truncated_at_offset: int | None
    warnings: list[str]


def read_segments(
    path: str | os.PathLike[str], *, window_bytes: int = 4 << 20
) -> tuple[list[Row], Info]:
    """Read a capture to the end with the core's capture stage alone: every segment as a
    :class:`Row`, and what was read."""
    seg, facts = _core.read_segments(os.fspath(path), window_bytes)
    rows = [
        Row(*r)
        for r in zip(
            seg.frame,
            seg.ts_ns,
            seg.ip_version,
            seg.src,
            seg.dst,
            seg.sport,
            seg.dport,
            seg.seq,
            seg.ack,
            seg.flags,
            seg.window,
            seg.payload_len,
            seg.payload,
            strict=True,
        )
    ]
    info = Info(
        format=facts.format,
        link_types=list(facts.link_types),
        ts_resolution_ns=facts.ts_resolution_ns,
        packets=facts.packets,
        tcp_segments=facts.tcp_segments,
        skipped=Counter(dict(facts.skipped)),
        bytes_read=facts.bytes_read,
        first_ts_ns=facts.first_ts_ns,
        last_ts_ns=facts.last_ts_ns,
        truncated_at_offset=facts.truncated_at_offset,
        warnings=list(facts.warnings),
    )
    return rows, info


def said_when_unreadable(path: Path) -> str:
    """What ``analyze()`` raises for ``path`` with its permissions removed, as ``Name: message``.

    Root reads anything, so as root the analysis runs in a child process without the two
    capabilities that override file modes (``setpriv``), where the open really fails.
    """
    path.chmod(0)
    code = (
        "import sys\n"
        "from pcapkit import analyze\n"
        "from pcapkit.errors import KaflowError\n"
        "try:\n"
        "    analyze(sys.argv[1])\n"
        "except KaflowError as e:\n"
        "    print(f'{type(e).__name__}: {e}')\n"
    )
    cmd = [sys.executable, "-c", code, path.name]
    if os.geteuid() == 0:
        cmd = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *cmd]
    done = subprocess.run(cmd, cwd=path.parent, capture_output=True, text=True, check=True)
    return done.stdout.strip()

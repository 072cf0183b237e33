"""A straightforward reference implementation of kaflow's reading and TCP stages.

kaflow's product reads, rebuilds and labels connections in its compiled core
(``crates/kaflow-core``); this is the obvious per-packet Python loop: dpkt walks the file,
``struct`` decodes the link, IP and TCP headers, each packet is appended to its connection one at
a time, and the pure-Python labelling kaflow had before its core (``tests/oracle/``) labels them.
It shares nothing with the core but the stages after labelling (classifier, diagnosis), so when
both give the same :class:`~pcapkit.model.Analysis` on real and generated captures, the core is
not changing answers.

It is slow (a few hundred thousand packets per second) and deliberately simple.
"""

from __future__ import annotations

import io
import ipaddress
import os
import struct
from collections import Counter
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import dpkt

from pcapkit.analysis import DEFAULT_PORT
from pcapkit.model import Analysis, CaptureSummary
from tests.oracle.batch import analysis
from tests.oracle.flows import ACK, FIN, RST, SYN, Chunk, Flow, Mark, Stream, TcpConnection
from tests.oracle.label import build_connection
from tests.oracle.zeek import Zeek

_MOD32 = 1 << 32
_HALF32 = 1 << 31

_ETHER_HEADER = {1: 14, 113: 16, 276: 20, 101: 0, 12: 0, 14: 0, 228: 0, 229: 0, 0: 4, 108: 4}

# (frame, ts_ns, version, src, dst, sport, dport, seq, ack, window, flags, payload_len, payload)
Packet = tuple[int, int, int, int, int, int, int, int, int, int, int, int, bytes]


def _ip_offset(linktype: int, buf: bytes) -> int | None:
    """Where the IP header starts behind the link header, or None if this is not IP."""
    if linktype == 1:
        return _after_ethernet(buf, 0)
    if linktype == 113:
        return 16 if struct.unpack_from("!H", buf, 14)[0] in (0x0800, 0x86DD) else None
    if linktype == 276:
        return 20 if struct.unpack_from("!H", buf, 0)[0] in (0x0800, 0x86DD) else None
    if linktype in (0, 108):
        return 4
    if linktype in _ETHER_HEADER:
        return 0
    return None


def _after_ethernet(buf: bytes, l2: int) -> int | None:
    """Where the IP header starts in the Ethernet frame at ``l2`` (VLAN tags and a PPPoE session
    stepped over), or None if it carries no IP."""
    off, etype = l2 + 14, struct.unpack_from("!H", buf, l2 + 12)[0]
    while etype in (0x8100, 0x88A8, 0x9100) and len(buf) >= off + 4:
        etype = struct.unpack_from("!H", buf, off + 2)[0]
        off += 4
    if etype == 0x8864:  # PPPoE session: 6 bytes, then the PPP protocol
        return off + 8 if struct.unpack_from("!H", buf, off + 6)[0] in (0x0021, 0x0057) else None
    return off if etype in (0x0800, 0x86DD) else None


def _inside(buf: bytes, proto: int, at: int) -> int | None:
    """Where the IP header an IP-in-IP, VXLAN, Geneve, GRE or ERSPAN tunnel carries at ``at``
    starts."""
    if proto in (4, 41):
        return at
    if proto == 17:
        dport = struct.unpack_from("!H", buf, at + 2)[0]
        body = at + 8
        if dport in (4789, 8472):
            return _after_ethernet(buf, body + 8)
        if dport == 6081:
            inner = body + 8 + (buf[body] & 0x3F) * 4
            kind = struct.unpack_from("!H", buf, body + 2)[0]
            if kind == 0x6558:
                return _after_ethernet(buf, inner)
            return inner if kind in (0x0800, 0x86DD) else None
        return None
    if proto == 47:
        flags, kind = struct.unpack_from("!HH", buf, at)
        body = at + 4 + 4 * (bool(flags & 0xC000) + bool(flags & 0x2000) + bool(flags & 0x1000))
        if kind in (0x0800, 0x86DD):
            return body
        if kind == 0x6558:
            return _after_ethernet(buf, body)
        if kind == 0x88BE:
            return _after_ethernet(buf, body + 8)
        if kind == 0x22EB:
            return _after_ethernet(buf, body + 12 + (8 if buf[body + 11] & 1 else 0))
    return None


_TUNNELS = (4, 17, 41, 47)


def _locate(linktype: int, buf: bytes) -> int | None:
    """Where the innermost IP header starts, through tunnels (at most four deep)."""
    off = _ip_offset(linktype, buf)
    for _ in range(4):
        if off is None:
            return None
        version = buf[off] >> 4
        if version == 4:
            proto, frag = buf[off + 9], struct.unpack_from("!H", buf, off + 6)[0]
            if proto in _TUNNELS and not frag & 0x3FFF:
                off = _inside(buf, proto, off + (buf[off] & 0x0F) * 4)
                continue
        elif version == 6 and buf[off + 6] in _TUNNELS:
            off = _inside(buf, buf[off + 6], off + 40)
            continue
        break
    return off


class _Defrag:
    """IP fragments by datagram until every byte to the last fragment's end is there; the
    pieces laid down by offset (then arrival), each adding what lies beyond the ones before."""

    def __init__(self) -> None:
        # key -> [first_ts, header | None, pieces [(offset, bytes)], total | None]
        self.pending: dict[tuple[int, bytes, bytes, int, int], list[Any]] = {}

    def add(self, linktype: int, buf: bytes, ts: int) -> bytes | None:
        """The whole datagram (raw IP) if this record is the fragment that completes it."""
        try:
            off = _locate(linktype, buf)
            if off is None:
                return None
            got = self._fragment(buf, off)
        except (struct.error, IndexError):
            return None
        if got is None:
            return None
        key, offset, more, header, payload = got
        end = offset + len(payload)
        if end > 65_535:
            return None
        p = self.pending.get(key)
        if p is not None and ts - p[0] > 30_000_000_000:
            del self.pending[key]
        if key not in self.pending and len(self.pending) >= 1024:
            del self.pending[min(self.pending, key=lambda k: self.pending[k][0])]
        p = self.pending.setdefault(key, [ts, None, [], None])
        if len(p[2]) >= 256:
            return None
        if offset == 0 and p[1] is None:
            p[1] = header
        if not more and p[3] is None:
            p[3] = end
        p[2].append((offset, payload))
        if p[1] is None or p[3] is None:
            return None
        data = b""
        for o, piece in sorted(p[2], key=lambda x: x[0]):  # stable: arrival among equals
            if o > len(data):
                return None
            data += piece[len(data) - o :]
            if len(data) >= p[3]:
                break
        if len(data) < p[3]:
            return None
        del self.pending[key]
        data = data[: p[3]]
        head = bytearray(p[1])
        if key[0] == 4:
            head[2:4] = struct.pack("!H", len(head) + len(data))
        else:
            head[4:6] = struct.pack("!H", len(data))
        return bytes(head) + data

    @staticmethod
    def _fragment(
        buf: bytes, off: int
    ) -> tuple[tuple[int, bytes, bytes, int, int], int, bool, bytes, bytes] | None:
        version = buf[off] >> 4
        if version == 4:
            ihl = (buf[off] & 0x0F) * 4
            total, ident, flags, _, proto = struct.unpack_from("!HHHBB", buf, off + 2)
            if not flags & 0x3FFF or ihl < 20 or total < ihl or off + total > len(buf):
                return None
            header = bytearray(buf[off : off + ihl])
            header[6:8] = b"\0\0"
            key = (4, buf[off + 12 : off + 16], buf[off + 16 : off + 20], ident, proto)
            payload = buf[off + ihl : off + total]
            return key, (flags & 0x1FFF) * 8, bool(flags & 0x2000), bytes(header), payload
        if version != 6:
            return None
        end = off + 40 + struct.unpack_from("!H", buf, off + 4)[0]
        if end > len(buf):
            return None
        p, nh = off + 40, buf[off + 6]
        for _ in range(8):
            if nh not in (0, 43, 60):
                break
            nh, p = buf[p], p + (buf[p + 1] + 1) * 8
        if nh != 44 or p + 8 > end:
            return None
        nxt, word, ident = buf[p], struct.unpack_from("!H", buf, p + 2)[0], buf[p + 4 : p + 8]
        header = bytearray(buf[off : off + 40])
        header[6] = nxt
        key = (6, buf[off + 8 : off + 24], buf[off + 24 : off + 40], int.from_bytes(ident), nxt)
        return key, word & 0xFFF8, bool(word & 1), bytes(header), buf[p + 8 : end]


def _nflog_ip(buf: bytes, order: str) -> bytes | None:
    """NFLOG (link type 239): the packet its NFULA_PAYLOAD attribute holds, for IPv4 or IPv6.
    Attributes are (length, type) in the writer's byte order, padded to 4 bytes."""
    if len(buf) < 4 or buf[0] not in (2, 10):
        return None
    at = 4
    while at + 4 <= len(buf):
        length, kind = struct.unpack_from(order + "HH", buf, at)
        if length < 4:
            return None
        if kind & 0x3FFF == 9:
            return buf[at + 4 : at + length]
        at += (length + 3) & ~3
    return None


def _decode(
    linktype: int, buf: bytes
) -> tuple[int, int, int, int, int, int, int, int, int, int, int, bytes] | None:
    try:
        off = _locate(linktype, buf)
        if off is None:
            return None
        version = buf[off] >> 4
        if version == 4:
            ihl = (buf[off] & 0x0F) * 4
            total, frag, proto = struct.unpack_from("!H2xH1xB", buf, off + 2)
            if proto != 6 or frag & 0x3FFF:
                return None
            src = (0xFFFF << 32) | int.from_bytes(buf[off + 12 : off + 16], "big")
            dst = (0xFFFF << 32) | int.from_bytes(buf[off + 16 : off + 20], "big")
            ip_payload = (total or len(buf) - off) - ihl
            t = off + ihl
        elif version == 6:
            plen, nxt = struct.unpack_from("!HB", buf, off + 4)
            if nxt != 6:
                return None
            src = int.from_bytes(buf[off + 8 : off + 24], "big")
            dst = int.from_bytes(buf[off + 24 : off + 40], "big")
            ip_payload = plen or len(buf) - off - 40
            t = off + 40
        else:
            return None
        sport, dport, seq, ack, doff, flags, window = struct.unpack_from("!HHIIBBH", buf, t)
        thl = (doff >> 4) * 4
        payload_len = ip_payload - thl
        if payload_len < 0:
            return None
        payload = buf[t + thl : t + thl + payload_len]
        return (
            version,
            src,
            dst,
            sport,
            dport,
            seq,
            ack,
            window,
            flags & 0x3F,
            payload_len,
            len(payload),
            payload,
        )
    except (struct.error, IndexError):
        return None


def _pcapng_records(data: bytes) -> tuple[list[tuple[int, int, bytes]], list[int]]:
    """(interface, ts_ns, frame bytes) of every packet block, walked block by block.

    dpkt's pcapng reader rounds nanosecond timestamps through a float, so the reference walks the
    blocks itself: they are simple enough.
    """
    out: list[tuple[int, int, bytes]] = []
    linktypes: list[int] = []
    resol: list[int] = []
    order = "<"
    pos = 0
    while pos + 12 <= len(data):
        btype = struct.unpack_from(order + "I", data, pos)[0]
        if btype == 0x0A0D0D0A:
            order = "<" if data[pos + 8 : pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            linktypes, resol = [], []
        blen = struct.unpack_from(order + "I", data, pos + 4)[0]
        body = data[pos + 8 : pos + blen - 4]
        if btype == 1:
            linktypes.append(struct.unpack_from(order + "H", body, 0)[0])
            units = 1_000_000
            opt = 8
            while opt + 4 <= len(body):
                code, olen = struct.unpack_from(order + "HH", body, opt)
                if code == 0:
                    break
                if code == 9:
                    r = body[opt + 4]
                    units = 2 ** (r & 0x7F) if r & 0x80 else 10**r
                opt += 4 + (olen + 3) // 4 * 4
            resol.append(units)
        elif btype == 6:
            iface, hi, lo, caplen = struct.unpack_from(order + "IIII", body, 0)
            ticks = (hi << 32) | lo
            out.append((iface, ticks * 1_000_000_000 // resol[iface], body[20 : 20 + caplen]))
        pos += blen
    return out, linktypes


def read_packets(path: str | os.PathLike[str]) -> tuple[list[Packet], str, list[str], int]:
    """Every TCP packet of the file, one tuple each (dpkt walks pcap files)."""
    out: list[Packet] = []
    data = Path(path).read_bytes()
    records: list[tuple[int, int, bytes]]
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        fmt = "pcapng"
        records, linktypes = _pcapng_records(data)
    else:
        fmt = "pcap"
        reader = dpkt.pcap.Reader(io.BytesIO(data))
        linktypes = [reader.datalink()]
        records = []
        for ts, buf in reader:
            # dpkt gives a Decimal for nanosecond files and a float otherwise
            ns = int(ts * 1_000_000_000) if isinstance(ts, Decimal) else round(ts * 1e6) * 1000
            records.append((0, ns, bytes(buf)))
    defrag = _Defrag()
    little = data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\x34\xcd\xb2\xa1")
    if fmt == "pcapng":
        little = data[8:12] == b"\x4d\x3c\x2b\x1a"
    for frame, (iface, ts_ns, buf) in enumerate(records, start=1):
        linktype = linktypes[iface]
        if linktype == 239:
            ip = _nflog_ip(buf, "<" if little else ">")
            if ip is None:
                continue
            linktype, buf = 101, ip
        d = _decode(linktype, buf)
        if d is None:
            # a fragment completing its datagram: the datagram is this record's packet
            whole = defrag.add(linktype, buf, ts_ns)
            d = _decode(101, whole) if whole is not None else None
        if d is None:
            continue
        version, src, dst, sport, dport, seq, ack, window, flags, plen, _clen, payload = d
        out.append(
            (frame, ts_ns, version, src, dst, sport, dport, seq, ack, window, flags, plen, payload)
        )
    names = {1: "EN10MB", 113: "LINUX_SLL", 276: "LINUX_SLL2", 239: "NFLOG"}
    return out, fmt, [names.get(lt, str(lt)) for lt in linktypes], len(records)


Raw = tuple[int, int, int, int, int, bytes]  # (ts_ns, frame, seq, flags, payload_len, payload)


def _signed32(x: int) -> int:
    x &= _MOD32 - 1
    return x - _MOD32 if x >= _HALF32 else x


def reassemble(raws: list[Raw]) -> Flow:
    """Order one direction by stream offset and keep every byte once.

    Offsets are unwrapped in arrival order (each step is the signed 32-bit distance from the
    previous segment), which keeps them monotonic across 2**32 and tolerates the reordering and
    retransmissions that real captures have.
    """
    syn: Mark | None = None
    syn_count = 0
    fin: Mark | None = None
    rst: Mark | None = None
    isn: int | None = None
    for ts, frame, seq, flags, _plen, _data in raws:
        if flags & SYN:
            syn_count += 1
            if syn is None:
                syn = Mark(ts, frame)
                isn = seq
    ref = (isn + 1) & (_MOD32 - 1) if isn is not None else (raws[0][2] if raws else 0)

    prev_seq = ref
    prev_rel = 0
    data: list[tuple[int, int, int, int, bytes]] = []  # (offset, ts, frame, length, bytes)
    late: list[Mark] = []
    for ts, frame, seq, flags, plen, payload in raws:
        rel = prev_rel + _signed32(seq - prev_seq)
        prev_seq, prev_rel = seq, rel
        start = rel + 1 if flags & SYN else rel  # data on a SYN starts after the SYN's own seq
        if plen:
            data.append((start, ts, frame, plen, payload))
            if fin is not None and start >= fin.offset:
                late.append(Mark(ts, frame, start))
        if flags & FIN and fin is None:
            fin = Mark(ts, frame, start + plen)
        if flags & RST and rst is None:
            rst = Mark(ts, frame, start)

    data.sort(key=lambda d: (d[0], d[1], d[2]))
    chunks: list[Chunk] = []
    covered: int | None = None
    retrans = 0
    missing = 0
    unique = 0
    for off, ts, frame, length, payload in data:
        end = off + length
        if covered is not None and end <= covered:
            retrans += 1
            continue
        if covered is not None and off < covered:
            cut = covered - off  # overlap: keep only the new tail, first transmission wins
            payload = payload[cut:]
            off, length = covered, end - covered
        elif covered is not None and off > covered:
            missing += off - covered
        chunks.append(Chunk(off, length, ts, frame, payload))
        unique += length
        covered = end
    last_ts = max((r[0] for r in raws), default=None)
    return Flow(
        stream=Stream.from_chunks(chunks),
        syn=syn,
        syn_count=syn_count,
        fin=fin,
        rst=rst,
        packets=len(raws),
        retransmissions=retrans,
        bytes=unique,
        missing=missing,
        last_ts_ns=last_ts,
        late_data=tuple(late),
    )


@dataclass
class _Attempt:
    id: int
    key: tuple[int, int, int, int, int]
    first_ts: int
    first_frame: int
    last_ts: int
    min_ts: int
    isn: int | None = None
    syn_ack_ack: int | None = None  # what the server's first SYN-ACK acknowledged
    server_syn: bool = False  # a SYN (its SYN-ACK) came from the server
    handshake_ack: int | None = None  # the client's first ACK (no SYN) after that
    closed: bool = False  # a FIN or RST was seen
    zeek: Zeek = field(default_factory=Zeek)
    up: list[Raw] = field(default_factory=list)
    down: list[Raw] = field(default_factory=list)


def _endpoint(ip: int, port: int, version: int) -> str:
    if version == 4:
        return f"{ipaddress.IPv4Address(ip & 0xFFFFFFFF)}:{port}"
    return f"[{ipaddress.IPv6Address(ip)}]:{port}"


def _attempt_only(b: _Attempt) -> bool:
    """Nothing but the client's SYNs so far."""
    return not b.down and all(r[3] & SYN for r in b.up)


_PARKED_PER_TUPLE = 8


def connections(packets: list[Packet], ports: frozenset[int]) -> list[TcpConnection]:
    """Group packets into connection attempts the obvious way: a dict, one packet at a time.

    A tuple has one current attempt; other attempts on it (SYNs with another ISN: forged, or
    given up and retried) are parked beside it. A SYN with a parked attempt's ISN is its
    retransmission; a SYN-ACK acknowledging a parked attempt makes it current.
    """
    open_: dict[tuple[int, int, int, int, int], _Attempt] = {}
    parked: dict[tuple[int, int, int, int, int], list[_Attempt]] = {}
    done: list[_Attempt] = []
    ids = 0

    def new(key: tuple[int, int, int, int, int], ts: int, frame: int) -> _Attempt:
        nonlocal ids
        ids += 1
        return _Attempt(ids, key, ts, frame, ts, ts)

    def park(key: tuple[int, int, int, int, int], b: _Attempt) -> None:
        there = parked.setdefault(key, [])
        if len(there) >= _PARKED_PER_TUPLE:
            done.append(there.pop(0))
        there.append(b)

    def current(key: tuple[int, int, int, int, int], b: _Attempt) -> None:
        """``b`` is the tuple's attempt; the one it replaces is parked if it has only SYNs."""
        old = open_[key]
        if _attempt_only(old):
            park(key, old)
        else:
            done.append(old)
        open_[key] = b

    for (
        frame,
        ts,
        version,
        src,
        dst,
        sport,
        dport,
        seq,
        ack,
        window,
        flags,
        plen,
        payload,
    ) in packets:
        if dport in ports:
            c2s, key = True, (src, sport, dst, dport, version)
        elif sport in ports:
            c2s, key = False, (dst, dport, src, sport, version)
        else:
            continue
        b = open_.get(key)
        client_syn = c2s and flags & SYN and not flags & ACK
        there = parked.get(key, [])
        if client_syn and b is not None:
            # its own SYN, written late (stamped no later than the rest, or acknowledged by the
            # SYN-ACK already seen); else another attempt on a known tuple
            if b.isn is None and (ts <= b.min_ts or b.syn_ack_ack == (seq + 1) % 2**32):
                b.isn = seq
                b.first_ts = min(b.first_ts, ts)
            elif b.isn != seq:
                same = next((p for p in there if p.isn == seq), None)
                if same is not None:
                    there.remove(same)
                    if _attempt_only(b):
                        current(key, same)
                    else:
                        park(key, same)
                    b = same
                elif _attempt_only(b) or b.closed:
                    b = new(key, ts, frame)
                    current(key, b)
                else:
                    b = new(key, ts, frame)
                    park(key, b)  # a stray SYN does not end a connection; its SYN-ACK would
        elif (
            b is not None
            and not c2s
            and flags & (SYN | ACK) == SYN | ACK
            and (b.isn is None or (b.isn + 1) % 2**32 != ack)
        ):
            accepted = next((p for p in there if p.isn == (ack - 1) % 2**32), None)
            if accepted is not None:
                there.remove(accepted)
                current(key, accepted)
                b = accepted
        if b is None:
            b = open_[key] = new(key, ts, frame)
        if client_syn and b.isn is None:
            b.isn = seq
        if not c2s and flags & (SYN | ACK) == SYN | ACK and b.syn_ack_ack is None:
            b.syn_ack_ack = ack
        if c2s and b.handshake_ack is None and b.server_syn and flags & (SYN | ACK) == ACK:
            b.handshake_ack = ts
        if not c2s and flags & SYN:
            b.server_syn = True
        if flags & (FIN | RST):
            b.closed = True
        b.min_ts = min(b.min_ts, ts)
        b.zeek.packet(c2s, flags, seq, ack, window, plen)
        (b.up if c2s else b.down).append((ts, frame, seq, flags, plen, payload))
        b.last_ts = max(ts, b.last_ts)
    done.extend(open_.values())
    done.extend(b for there in parked.values() for b in there)
    out = []
    for b in sorted(done, key=lambda b: b.id):
        c_ip, c_port, s_ip, s_port, version = b.key
        up = reassemble(b.up)
        out.append(
            TcpConnection(
                id=b.id,
                client=_endpoint(c_ip, c_port, version),
                server=_endpoint(s_ip, s_port, version),
                client_port=c_port,
                server_port=s_port,
                ip_version=version,
                first_ts_ns=b.first_ts,
                first_frame=b.first_frame,
                last_ts_ns=b.last_ts,
                partial=up.syn is None,
                zeek_state=b.zeek.state(),
                zeek_history=b.zeek.history,
                handshake_ack_ns=b.handshake_ack,
                to_server=up,
                to_client=reassemble(b.down),
            )
        )
    return out


def analyze(path: str | os.PathLike[str], port: int = DEFAULT_PORT) -> Analysis:
    """The reference analysis of a capture (no error handling beyond the obvious)."""
    packets, fmt, link_types, frames = read_packets(path)
    ports = frozenset({port})
    tcs = connections(packets, ports)
    upstream = sum(c.to_server.packets + c.to_client.packets for c in tcs)
    capture = CaptureSummary(
        path=str(Path(path)),
        format=fmt,
        link_types=tuple(link_types),
        packets=frames,
        tcp_segments=len(packets),
        upstream_segments=upstream,
        skipped=tuple(sorted(Counter({"other": frames - upstream}).items())),
        ports=(port,),
        first_ts_ns=min((p[1] for p in packets), default=None),
        last_ts_ns=max((p[1] for p in packets), default=None),
    )
    return assemble(tcs, capture)


def assemble(tcs: list[TcpConnection], capture: CaptureSummary) -> Analysis:
    """The stages after TCP reconstruction, for connections at hand: label, classify, diagnose.

    Connections are numbered here, 1-based in order of their first packet, whatever order they
    come in (the core numbers them the same way as it goes).
    """
    built = sorted(
        ((build_connection(tc), request_header_names(tc.to_server.stream)) for tc in tcs),
        key=lambda ch: ch[0].first_frame,
    )
    numbered = [c if c.id == i else replace(c, id=i) for i, (c, _) in enumerate(built, start=1)]
    return analysis(numbered, capture, heads=[h for _, h in built])


def request_header_names(st: Stream) -> str | None:
    """The header names of the request head the client's stream starts with, as sent, one per
    line: the contiguous, wholly captured pieces from its first, up to 8 KiB, read plainly."""
    if not st.starts:
        return None
    head, nxt = b"", st.starts[0]
    for i, start in enumerate(st.starts):
        if start != nxt or len(head) >= 8192:
            break
        head += st.data[st.data_starts[i] : st.data_starts[i] + st.captured[i]]
        if b"\r\n\r\n" in head or st.captured[i] != st.lengths[i]:
            break
        nxt = start + st.lengths[i]
    end = head.find(b"\r\n\r\n")
    if end < 0:
        return None
    first, *lines = head[:end].split(b"\n")
    if b" HTTP/1" not in first:
        return None
    names = []
    for line in lines:
        if b":" not in line:
            return None
        try:
            name = line.split(b":", 1)[0].decode().strip()
        except UnicodeDecodeError:
            return None
        if not name or any(ch.isspace() for ch in name):
            return None
        names.append(name)
    return "\n".join(names) if names else None

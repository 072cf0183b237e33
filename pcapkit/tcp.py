"""TCP reconstruction: columnar segments in; one ordered, de-duplicated stream per direction out.

What this stage decides, and why here:

- *Which side is the server*: the side on an upstream port. nginx connects from an ephemeral port,
  so the configured port is the only reliable orientation (a capture may start mid-connection and
  never show the SYN).
- *Where one connection ends and the next begins* on the same 4-tuple: a client SYN with a new
  ISN starts a new connection; a SYN with the same ISN is a retransmission of the same attempt.
- *Sequence order*: each direction is unwrapped to 64-bit stream offsets in arrival order (so a
  stream crossing 2**32 stays monotonic), sorted by offset, and every byte is kept once — the first
  transmission wins, retransmissions and overlaps are counted, not repeated.

Nothing here knows about HTTP; the next stage reads :class:`Flow.chunks` as a byte stream.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from pcapkit.capture.types import ACK, FIN, RST, SYN, SegmentBatch, format_endpoint

_MOD32 = 1 << 32
_HALF32 = 1 << 31

# One captured segment of one direction, kept as a tuple for speed:
# (ts_ns, frame, seq, flags, payload_len, captured payload bytes)
_Raw = tuple[int, int, int, int, int, bytes]


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a direction's byte stream that the capture holds, each byte exactly once.

    ``offset`` counts from the first byte after the SYN (or, mid-connection, from the first byte
    the capture saw). ``data`` may be shorter than ``length`` when a snaplen cut the packet: the
    stream then has bytes whose count is known but whose values are not.
    """

    offset: int
    length: int
    ts_ns: int
    frame: int
    data: bytes

    @property
    def end(self) -> int:
        return self.offset + self.length


@dataclass(frozen=True, slots=True)
class Mark:
    """A control segment (SYN, FIN, RST) as first seen: when, which packet, where in the stream."""

    ts_ns: int
    frame: int
    offset: int = 0


@dataclass(frozen=True, slots=True)
class Flow:
    """One direction of a connection, reassembled."""

    chunks: tuple[Chunk, ...]
    syn: Mark | None  # first SYN (client) or SYN-ACK (server)
    syn_count: int
    fin: Mark | None  # first FIN; offset = stream position of the FIN
    rst: Mark | None  # first RST
    packets: int
    retransmissions: int  # segments whose every byte had been seen already
    bytes: int  # payload bytes, each counted once
    missing: int  # bytes in gaps the capture never saw
    last_ts_ns: int | None
    late_data: tuple[Mark, ...] = ()  # data beyond this direction's own FIN

    @property
    def first_close(self) -> Mark | None:
        """This side's first closing segment, FIN or RST, whichever came first."""
        marks = [m for m in (self.fin, self.rst) if m is not None]
        return min(marks, key=lambda m: (m.ts_ns, m.frame)) if marks else None


@dataclass(frozen=True, slots=True)
class TcpConnection:
    """Both directions of one connection attempt, oriented client (nginx) → server (upstream)."""

    id: int  # 1-based, in order of first packet
    client: str
    server: str
    client_port: int
    server_port: int
    ip_version: int
    first_ts_ns: int
    first_frame: int
    last_ts_ns: int
    partial: bool  # no client SYN seen: the connection was open before the capture began
    to_server: Flow
    to_client: Flow


@dataclass(slots=True)
class TcpStats:
    """Counts this stage adds to the capture summary.

    ``other_port_counts`` keeps, for segments not on an upstream port, the lower of their two
    ports (the likely service port): when nothing matched, the error can suggest ``--port``.
    """

    upstream_segments: int = 0
    other_ports: int = 0
    other_port_counts: Counter[int] = field(default_factory=Counter)


def _signed32(x: int) -> int:
    x &= _MOD32 - 1
    return x - _MOD32 if x >= _HALF32 else x


class _Builder:
    """One connection attempt's segments, kept until the capture ends or the tuple is reused."""

    __slots__ = (
        "client_isn",
        "first_frame",
        "first_ts",
        "id",
        "key",
        "last_ts",
        "to_client",
        "to_server",
    )

    def __init__(self, conn_id: int, key: tuple[int, ...], ts: int, frame: int) -> None:
        self.id = conn_id
        self.key = key
        self.first_ts = ts
        self.first_frame = frame
        self.last_ts = ts
        self.client_isn: int | None = None
        self.to_server: list[_Raw] = []
        self.to_client: list[_Raw] = []


def _reassemble(raws: list[_Raw]) -> Flow:
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
        chunks=tuple(chunks),
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


def _finish(b: _Builder) -> TcpConnection:
    c_hi, c_lo, c_port, s_hi, s_lo, s_port, version = b.key
    to_server = _reassemble(b.to_server)
    return TcpConnection(
        id=b.id,
        client=format_endpoint(c_hi, c_lo, version, c_port),
        server=format_endpoint(s_hi, s_lo, version, s_port),
        client_port=c_port,
        server_port=s_port,
        ip_version=version,
        first_ts_ns=b.first_ts,
        first_frame=b.first_frame,
        last_ts_ns=b.last_ts,
        partial=to_server.syn is None,
        to_server=to_server,
        to_client=_reassemble(b.to_client),
    )


@dataclass(slots=True)
class Reconstructor:
    """Feeds on segment batches; yields each connection attempt once it can no longer grow.

    A connection is finished when its 4-tuple is reused by a new SYN, or when the capture ends.
    """

    ports: frozenset[int]
    stats: TcpStats = field(default_factory=TcpStats)
    _open: dict[tuple[int, ...], _Builder] = field(default_factory=dict)
    _next_id: int = 1

    def _new(self, key: tuple[int, ...], ts: int, frame: int) -> _Builder:
        b = self._open[key] = _Builder(self._next_id, key, ts, frame)
        self._next_id += 1
        return b

    def feed(self, batch: SegmentBatch) -> Iterator[TcpConnection]:
        """Add one batch; yield the connections this batch finished (tuple reuse)."""
        port_list = np.fromiter(self.ports, dtype=np.uint16, count=len(self.ports))
        to_srv = np.isin(batch.dport, port_list)
        from_srv = np.isin(batch.sport, port_list) & ~to_srv
        keep = np.flatnonzero(to_srv | from_srv)
        self.stats.other_ports += len(batch) - len(keep)
        self.stats.upstream_segments += len(keep)
        if len(keep) < len(batch):
            other = ~(to_srv | from_srv)
            low = np.minimum(batch.sport[other], batch.dport[other])
            values, counts = np.unique(low, return_counts=True)
            self.stats.other_port_counts.update(
                dict(zip(values.tolist(), counts.tolist(), strict=True))
            )
        if not len(keep):
            return
        cols = (
            batch.ts_ns[keep].tolist(),
            batch.frame[keep].tolist(),
            batch.seq[keep].tolist(),
            batch.flags[keep].tolist(),
            batch.payload_len[keep].tolist(),
            batch.captured_len[keep].tolist(),
            batch.payload_off[keep].tolist(),
            to_srv[keep].tolist(),
            batch.src_hi[keep].tolist(),
            batch.src_lo[keep].tolist(),
            batch.dst_hi[keep].tolist(),
            batch.dst_lo[keep].tolist(),
            batch.sport[keep].tolist(),
            batch.dport[keep].tolist(),
            batch.ip_version[keep].tolist(),
        )
        data = batch.data
        open_ = self._open
        for ts, frame, seq, flags, plen, clen, poff, c2s, shi, slo, dhi, dlo, sp, dp, ver in zip(
            *cols, strict=True
        ):
            key = (shi, slo, sp, dhi, dlo, dp, ver) if c2s else (dhi, dlo, dp, shi, slo, sp, ver)
            b = open_.get(key)
            if c2s and flags & SYN and not flags & ACK:
                if b is not None and b.client_isn != seq:
                    # A new ISN on a known tuple: the port was reused, or the capture began
                    # mid-connection and this SYN opens the next connection on the same tuple.
                    yield _finish(b)
                    b = None
                if b is None:
                    b = self._new(key, ts, frame)
                if b.client_isn is None:
                    b.client_isn = seq
            elif b is None:
                b = self._new(key, ts, frame)
            payload = data[poff : poff + clen] if clen else b""
            (b.to_server if c2s else b.to_client).append((ts, frame, seq, flags, plen, payload))
            if ts > b.last_ts:
                b.last_ts = ts

    def finish(self) -> Iterator[TcpConnection]:
        """The capture ended: finish every connection still open."""
        builders = sorted(self._open.values(), key=lambda b: b.first_frame)
        self._open.clear()
        for b in builders:
            yield _finish(b)


def reconstruct(batches: Iterable[SegmentBatch], ports: Iterable[int]) -> list[TcpConnection]:
    """Every connection attempt on the upstream ports, in order of first packet."""
    r = Reconstructor(frozenset(ports))
    out: list[TcpConnection] = []
    for batch in batches:
        out.extend(r.feed(batch))
    out.extend(r.finish())
    out.sort(key=lambda c: c.id)
    return out

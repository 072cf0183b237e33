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
- *When a connection is finished*: once both sides have closed (or one reset it) and nothing more
  came for :data:`LINGER_NS` of capture time, or its tuple is reused, or the capture ends. Finished
  connections leave memory, so memory follows the connections open at once, not the file size.

Speed: the work per packet is numpy over a whole batch (orientation, grouping by connection,
flag summaries); Python runs once per connection per batch, and once per connection to order its
segments — again with numpy. Nothing here knows about HTTP; the next stage reads
:attr:`Flow.stream` as a byte stream.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from pcapkit.capture.types import ACK, FIN, RST, SYN, SegmentBatch, format_endpoint

_MOD32 = 1 << 32
_HALF32 = 1 << 31

# A finished connection stays findable this long after its last packet (capture time), so late
# retransmissions of its FIN or last ACK still land on it rather than opening a "partial" one.
LINGER_NS = 10 * 1_000_000_000

# A connection silent this long (capture time) is finished whatever its state: a peer that
# never shows up, or a close the capture missed, must not keep its bytes buffered to the end.
# Longer than any keepalive idle timeout in common use (nginx 60 s, Tomcat 20-60 s).
IDLE_FINISH_NS = 300 * 1_000_000_000

# Rows are grouped once this many are waiting, or this many payload bytes: grouping costs per
# connection, so bigger groups mean less Python per packet, but waiting rows hold their bytes.
GROUP_ROWS = 1 << 17
GROUP_BYTES = 32 << 20

_ROW: np.dtype[np.void] = np.dtype(
    [
        ("ts", "<i8"),
        ("frame", "<i8"),
        ("seq", "<u4"),
        ("plen", "<u4"),
        ("clen", "<u4"),
        ("flags", "u1"),
        ("c2s", "?"),
    ]
)


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
class Stream:
    """A direction's bytes as the capture holds them: pieces in stream order, each byte once.

    Columnar (plain lists and one bytes buffer) rather than one object per piece: a busy
    connection has thousands of pieces, and the HTTP framer only needs to find a few offsets in
    them. Piece ``i`` covers stream offsets ``starts[i]`` to ``starts[i] + lengths[i]``; its
    captured bytes are ``data[data_starts[i] : data_starts[i] + captured[i]]`` (fewer than
    ``lengths[i]`` when a snaplen cut the packet).
    """

    starts: list[int]
    lengths: list[int]
    ts: list[int]
    frames: list[int]
    captured: list[int]
    data_starts: list[int]
    data: bytes

    @property
    def end(self) -> int:
        return self.starts[-1] + self.lengths[-1] if self.starts else 0

    @property
    def contiguous(self) -> bool:
        """No holes and every byte captured: ``data`` is the stream from ``starts[0]`` on."""
        return len(self.data) == self.end - (self.starts[0] if self.starts else 0)

    @property
    def chunks(self) -> tuple[Chunk, ...]:
        """The pieces as objects, for code and tests that prefer them."""
        return tuple(
            Chunk(a, n, t, f, self.data[d : d + c])
            for a, n, t, f, c, d in zip(
                self.starts,
                self.lengths,
                self.ts,
                self.frames,
                self.captured,
                self.data_starts,
                strict=True,
            )
        )

    @classmethod
    def from_chunks(cls, chunks: Iterable[Chunk]) -> Stream:
        items = list(chunks)
        caps = [len(c.data) for c in items]
        data_starts = [0] * len(items)
        total = 0
        for i, n in enumerate(caps):
            data_starts[i] = total
            total += n
        return cls(
            starts=[c.offset for c in items],
            lengths=[c.length for c in items],
            ts=[c.ts_ns for c in items],
            frames=[c.frame for c in items],
            captured=caps,
            data_starts=data_starts,
            data=b"".join(c.data for c in items),
        )


EMPTY_STREAM = Stream([], [], [], [], [], [], b"")


@dataclass(frozen=True, slots=True)
class Mark:
    """A control segment (SYN, FIN, RST) as first seen: when, which packet, where in the stream."""

    ts_ns: int
    frame: int
    offset: int = 0


@dataclass(frozen=True, slots=True)
class Flow:
    """One direction of a connection, reassembled."""

    stream: Stream
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
    ignored_rsts: int = 0  # RSTs whose number is far from the stream: blind resets, not closes

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


def _signed32(x: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    return ((x + _HALF32) & (_MOD32 - 1)) - _HALF32


class _Builder:
    """One connection attempt: per direction, its rows (an array per batch) and payload bytes."""

    __slots__ = (
        "client_isn",
        "closed",
        "first_frame",
        "first_ts",
        "id",
        "key",
        "last_ts",
        "pay_down",
        "pay_up",
        "rows_down",
        "rows_up",
    )

    def __init__(self, conn_id: int, key: tuple[int, ...], ts: int, frame: int) -> None:
        self.id = conn_id
        self.key = key
        self.first_ts = ts
        self.first_frame = frame
        self.last_ts = ts
        self.client_isn: int | None = None
        self.closed = 0  # bit 1: the client sent FIN/RST, bit 2: the server did, bit 4: a RST
        self.rows_up: list[npt.NDArray[np.void]] = []
        self.rows_down: list[npt.NDArray[np.void]] = []
        self.pay_up: list[bytes] = []
        self.pay_down: list[bytes] = []

    def add(
        self,
        up: npt.NDArray[np.void],
        up_bytes: bytes,
        down: npt.NDArray[np.void],
        down_bytes: bytes,
    ) -> None:
        """Rows to the server and back, each in file order, with their captured payloads."""
        for rows, payload, rows_list, pay_list, bit in (
            (up, up_bytes, self.rows_up, self.pay_up, 1),
            (down, down_bytes, self.rows_down, self.pay_down, 2),
        ):
            if not len(rows):
                continue
            rows_list.append(rows)
            if payload:
                pay_list.append(payload)
            flags = rows["flags"]
            if (flags & (FIN | RST)).any():
                self.closed |= bit
                if (flags & RST).any():
                    self.closed |= 4
            last = int(rows["ts"].max())
            if last > self.last_ts:
                self.last_ts = last

    @property
    def over(self) -> bool:
        return self.closed & 4 != 0 or self.closed & 3 == 3


def _split_add(
    b: _Builder, rows: npt.NDArray[np.void], idx: npt.NDArray[np.intp], pieces: list[bytes]
) -> None:
    """Add rows ``idx`` (file order, both directions mixed) to ``b``."""
    part = rows[idx]
    up = part["c2s"]
    ids = idx.tolist()
    ups = up.tolist()
    b.add(
        part[up],
        b"".join([pieces[i] for i, u in zip(ids, ups, strict=True) if u]),
        part[~up],
        b"".join([pieces[i] for i, u in zip(ids, ups, strict=True) if not u]),
    )


_SPAN = 1 << 44  # room for one direction's offsets in the segmented running maximum

# A RST further than this from where its direction's stream stands is not taken as a close
# (RFC 5961: a stack accepts a RST only at the next expected sequence number).
RST_WINDOW = 1 << 20

# Directions with more segments than this keep the offset-ordered answer for overlaps (the
# arrival-ordered walk is Python per segment).
ARRIVAL_LIMIT = 200_000

EMPTY_FLOW = Flow(EMPTY_STREAM, None, 0, None, None, 0, 0, 0, 0, None)


def _flows(
    dirs: list[tuple[list[npt.NDArray[np.void]], list[bytes]]], *, alone: bool = False
) -> list[Flow]:
    """Order each direction by stream offset and keep every byte once, all directions at once.

    Offsets are unwrapped in arrival order (each step is the signed 32-bit distance from the
    previous segment), which keeps them monotonic across 2**32 and tolerates the reordering and
    retransmissions real captures have. Finishing connections one at a time would spend most of
    its time in numpy's per-call overhead, so every step runs over all the directions' rows
    together: per-direction results come from ``reduceat``, and the running maximum is kept
    apart per direction by lifting each direction into its own range. A direction whose offsets
    leave that range (a hostile run of sequence jumps) is done again on its own (``alone``).
    """
    out: list[Flow | None] = [None] * len(dirs)
    parts: list[npt.NDArray[np.void]] = []
    pays: list[bytes] = []
    todo: list[int] = []
    for i, (rows_list, pay_list) in enumerate(dirs):
        if not rows_list:
            out[i] = EMPTY_FLOW
            continue
        todo.append(i)
        parts.extend(rows_list)
        pays.append(b"".join(pay_list))
    if not todo:
        return [f for f in out if f is not None]
    # concatenating structured arrays makes numpy compare dtypes per array: go through bytes
    rows = np.concatenate([np.ascontiguousarray(p).view(np.uint8) for p in parts]).view(_ROW)
    sizes = np.array([sum(len(r) for r in dirs[i][0]) for i in todo], dtype=np.int64)
    first = np.cumsum(sizes) - sizes
    did = np.repeat(np.arange(len(todo), dtype=np.int64), sizes)
    clen = rows["clen"].astype(np.int64)
    # offsets into each direction's own payload buffer (pays[j]): no joined copy of everything
    cum = np.cumsum(clen) - clen
    pay_off = cum - cum[first][did]
    n = len(rows)
    idx = np.arange(n, dtype=np.int64)
    flags = rows["flags"]
    seq = rows["seq"].astype(np.int64)
    ts, frame = rows["ts"], rows["frame"]
    plen = rows["plen"].astype(np.int64)

    is_syn = (flags & SYN) != 0
    is_rst = (flags & RST) != 0
    never = np.int64(n)
    first_syn = np.minimum.reduceat(np.where(is_syn, idx, never), first)
    has_syn = first_syn < n
    syn_count = np.add.reduceat(is_syn.astype(np.int64), first)
    ref = np.where(has_syn, (seq[np.minimum(first_syn, n - 1)] + 1) & (_MOD32 - 1), seq[first])

    # Offsets follow the chain of every segment but RSTs (each step the signed 32-bit distance
    # from the previous one): a RST's number may be anything (a blind reset, RFC 5961) and must
    # not move where the stream is. A RST is placed against the segment before it.
    rel = np.empty(n, dtype=np.int64)
    a_idx = np.flatnonzero(~is_rst)
    if len(a_idx):
        a_did = did[a_idx]
        a_seq = seq[a_idx]
        a_first = np.ones(len(a_idx), dtype=bool)
        a_first[1:] = a_did[1:] != a_did[:-1]
        a_steps = np.empty(len(a_idx), dtype=np.int64)
        a_steps[1:] = np.diff(a_seq)
        a_steps[a_first] = a_seq[a_first] - ref[a_did[a_first]]
        a_steps = _signed32(a_steps)
        a_cs = np.cumsum(a_steps)
        rel[a_idx] = a_cs - (a_cs - a_steps)[a_first][np.cumsum(a_first) - 1]
    r_idx = np.flatnonzero(is_rst)
    last_anchor = np.maximum.accumulate(np.where(~is_rst, idx, -1))
    if len(r_idx):
        la = last_anchor[r_idx]
        la_ok = la >= first[did[r_idx]]
        la_c = np.where(la_ok, la, r_idx)
        rel[r_idx] = np.where(
            la_ok,
            rel[la_c] + _signed32(seq[r_idx] - seq[la_c]),
            _signed32(seq[r_idx] - ref[did[r_idx]]),
        )
    start = rel + is_syn
    end = start + plen
    # where each direction's stream stands before each row (for judging a RST's number)
    lift_all = did * (2 * _SPAN) + _SPAN
    reach_all = np.maximum.accumulate(np.where(is_rst, -_SPAN, end + (flags & FIN != 0)) + lift_all)
    reach_all -= lift_all
    valid_rst = is_rst.copy()
    if len(r_idx):
        la = last_anchor[r_idx]
        expected = np.where(la >= first[did[r_idx]], reach_all[np.maximum(la, 0)], 0)
        valid_rst[r_idx] = np.abs(start[r_idx] - expected) <= RST_WINDOW
    ignored_rst = np.bincount(did[is_rst & ~valid_rst], minlength=len(todo))

    def first_of(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
        return np.minimum.reduceat(np.where(mask, idx, never), first)

    first_fin = first_of((flags & FIN) != 0)
    first_rst = first_of(valid_rst)
    last_ts = np.maximum.reduceat(ts, first)

    data = np.flatnonzero(plen)
    # Where a direction's data did not arrive in stream order with nothing overlapping, the
    # bytes a later arrival repeats are decided in arrival order (below, per direction); the
    # offset-ordered pass here is exact for every other direction.
    arrival = data[np.lexsort((frame[data], ts[data], did[data]))]
    a_did = did[arrival]
    a_s = start[arrival]
    back = np.zeros(len(arrival), dtype=bool)
    if len(arrival) > 1:
        back[1:] = (a_did[1:] == a_did[:-1]) & (a_s[1:] < a_s[:-1])
    disordered = np.bincount(a_did[back], minlength=len(todo)) > 0
    order = data[np.lexsort((frame[data], ts[data], start[data], did[data]))]
    d_did = did[order]
    s = start[order]
    e = end[order]
    lift = did[order] * (2 * _SPAN) + _SPAN
    wild = np.zeros(len(todo), dtype=bool)
    out_of_range = (np.abs(s) >= _SPAN // 2) | (np.abs(e) >= _SPAN // 2)
    if not alone and out_of_range.any():
        wild[np.unique(d_did[out_of_range])] = True
    reach = np.maximum.accumulate(e + lift) - lift
    before = np.empty_like(reach)
    if len(order):
        before[1:] = reach[:-1]
        new_dir = np.ones(len(order), dtype=bool)
        new_dir[1:] = d_did[1:] != d_did[:-1]
        before[new_dir] = s[new_dir]
    keep = e > before
    retrans = np.bincount(d_did[~keep], minlength=len(todo))
    gap = np.where(keep, s - before, 0)
    missing = np.bincount(d_did, weights=np.maximum(gap, 0), minlength=len(todo))
    kept = order[keep]
    k_did = d_did[keep]
    new_s = np.maximum(s, before)[keep]
    cut = new_s - s[keep]
    k_clen = clen[kept]
    got = np.maximum(k_clen - cut, 0)
    lengths = e[keep] - new_s
    offs = pay_off[kept]
    # a direction is one slice of the payload buffer when nothing was trimmed and its kept
    # pieces sit back to back in arrival order
    broken = cut != 0
    if len(kept) > 1:
        same = k_did[1:] == k_did[:-1]
        broken[1:] |= same & (offs[1:] != offs[:-1] + k_clen[:-1])
    bad = np.bincount(k_did[broken], minlength=len(todo)) > 0
    bounds = np.searchsorted(k_did, np.arange(len(todo) + 1))

    before_got = np.cumsum(got) - got
    dir_base = before_got[np.minimum(bounds[:-1], max(len(got) - 1, 0))] if len(got) else got
    data_starts = before_got - dir_base[k_did] if len(got) else got
    dir_bytes = np.bincount(k_did, weights=lengths, minlength=len(todo)).astype(np.int64)
    dir_got = np.bincount(k_did, weights=got, minlength=len(todo)).astype(np.int64)
    l_starts, l_lengths = new_s.tolist(), lengths.tolist()
    l_ts, l_frames, l_got = ts[kept].tolist(), frame[kept].tolist(), got.tolist()
    l_offs, l_cut, l_ds = offs.tolist(), cut.tolist(), data_starts.tolist()
    for j, i in enumerate(todo):
        if wild[j]:
            # offsets too far apart for the shared running maximum: this direction on its own
            out[i] = _flows([dirs[i]], alone=True)[0]
            continue
        a, b = int(bounds[j]), int(bounds[j + 1])
        retrans_j, missing_j, bytes_j = int(retrans[j]), int(missing[j]), int(dir_bytes[j])
        if disordered[j] and sizes[j] <= ARRIVAL_LIMIT:
            lo_r, hi_r = int(first[j]), int(first[j] + sizes[j])
            stream, retrans_j, missing_j, bytes_j = _by_arrival(
                start[lo_r:hi_r],
                plen[lo_r:hi_r],
                clen[lo_r:hi_r],
                pay_off[lo_r:hi_r],
                ts[lo_r:hi_r],
                frame[lo_r:hi_r],
                pays[j],
            )
        elif a == b:
            stream = EMPTY_STREAM
        else:
            g = l_got[a:b]
            payload = pays[j]
            if not bad[j]:
                lo = l_offs[a]
                size = int(dir_got[j])
                buf = payload if lo == 0 and size == len(payload) else payload[lo : lo + size]
            else:
                buf = b"".join(
                    payload[o + min(c, n_) : o + n_]
                    for o, c, n_ in zip(
                        l_offs[a:b], l_cut[a:b], clen[kept[a:b]].tolist(), strict=True
                    )
                )
            stream = Stream(
                l_starts[a:b], l_lengths[a:b], l_ts[a:b], l_frames[a:b], g, l_ds[a:b], buf
            )
        fs, fr, sy = int(first_fin[j]), int(first_rst[j]), int(first_syn[j])
        fin = Mark(int(ts[fs]), int(frame[fs]), int(end[fs])) if fs < n else None
        late: tuple[Mark, ...] = ()
        if fin is not None:
            lo_r, hi_r = int(first[j]), int(first[j] + sizes[j])
            beyond = np.flatnonzero((start[lo_r:hi_r] >= fin.offset) & (plen[lo_r:hi_r] > 0))
            late = tuple(
                Mark(int(ts[lo_r + x]), int(frame[lo_r + x]), int(start[lo_r + x])) for x in beyond
            )
        out[i] = Flow(
            stream=stream,
            syn=Mark(int(ts[sy]), int(frame[sy])) if sy < n else None,
            syn_count=int(syn_count[j]),
            fin=fin,
            rst=Mark(int(ts[fr]), int(frame[fr]), int(start[fr])) if fr < n else None,
            packets=int(sizes[j]),
            retransmissions=retrans_j,
            bytes=bytes_j,
            missing=missing_j,
            last_ts_ns=int(last_ts[j]),
            late_data=late,
            ignored_rsts=int(ignored_rst[j]),
        )
    return [f for f in out if f is not None]


def _by_arrival(
    start: npt.NDArray[np.int64],
    plen: npt.NDArray[np.int64],
    clen: npt.NDArray[np.int64],
    pay_off: npt.NDArray[np.int64],
    ts: npt.NDArray[np.int64],
    frame: npt.NDArray[np.int64],
    payload: bytes,
) -> tuple[Stream, int, int, int]:
    """One direction's stream where segments overlap out of order: the first arrival wins.

    Walks the data segments in (time, packet number) order and keeps of each only the bytes no
    earlier arrival brought, so a retransmission that says something else (or a hostile
    overlap) never overwrites what the receiver most likely took. Python, per segment: only
    directions with reordered or repeated data come here.
    Returns the stream, the segments that brought nothing new, missing and unique byte counts.
    """
    rows = np.flatnonzero(plen)
    rows = rows[np.lexsort((frame[rows], ts[rows]))]
    cs: list[int] = []  # starts of the ranges already taken: sorted, disjoint, not touching
    ce: list[int] = []  # their ends
    pieces: list[tuple[int, int, int]] = []  # (a, b, row)
    retrans = 0
    for i, s0, n in zip(rows.tolist(), start[rows].tolist(), plen[rows].tolist(), strict=True):
        e0 = s0 + n
        k = bisect_right(cs, s0) - 1
        j = k if k >= 0 and ce[k] > s0 else k + 1  # first range overlapping [s0, e0)
        m, pos = j, s0
        new: list[tuple[int, int]] = []
        while m < len(cs) and cs[m] < e0:
            if cs[m] > pos:
                new.append((pos, cs[m]))
            pos = max(pos, ce[m])
            m += 1
        if pos < e0:
            new.append((pos, e0))
        if not new:
            retrans += 1
            continue
        pieces.extend((a, b, i) for a, b in new)
        lo = min(s0, cs[j]) if j < m else s0
        hi = max(e0, ce[m - 1]) if j < m else e0
        if j > 0 and ce[j - 1] >= lo:  # touching the range before
            j -= 1
            lo = cs[j]
        if m < len(cs) and cs[m] <= hi:  # touching the range after
            hi = max(hi, ce[m])
            m += 1
        cs[j:m] = [lo]
        ce[j:m] = [hi]
    pieces.sort()
    starts, lengths, tss, frames, got, data_starts, parts = [], [], [], [], [], [], []
    total = 0
    missing = 0
    prev_end: int | None = None
    for a, b, i in pieces:
        if prev_end is not None and a > prev_end:
            missing += a - prev_end
        prev_end = b
        skip = a - int(start[i])
        have = max(0, min(int(clen[i]), b - int(start[i])) - skip)
        o = int(pay_off[i]) + skip
        starts.append(a)
        lengths.append(b - a)
        tss.append(int(ts[i]))
        frames.append(int(frame[i]))
        got.append(have)
        data_starts.append(total)
        parts.append(payload[o : o + have])
        total += have
    stream = Stream(starts, lengths, tss, frames, got, data_starts, b"".join(parts))
    return stream, retrans, missing, sum(lengths)


def _finish_many(builders: list[_Builder]) -> list[TcpConnection]:
    """Connections from their builders, reassembling all their directions together."""
    if not builders:
        return []
    flows = _flows(
        [d for b in builders for d in ((b.rows_up, b.pay_up), (b.rows_down, b.pay_down))]
    )
    out = []
    for k, b in enumerate(builders):
        to_server, to_client = flows[2 * k], flows[2 * k + 1]
        c_hi, c_lo, s_hi, s_lo, ports = b.key
        c_port, s_port, version = ports >> 32, (ports >> 8) & 0xFFFF, ports & 0xFF
        out.append(
            TcpConnection(
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
                to_client=to_client,
            )
        )
    return out


@dataclass(slots=True)
class Reconstructor:
    """Feeds on segment batches; yields each connection attempt once it can no longer grow."""

    ports: frozenset[int]
    stats: TcpStats = field(default_factory=TcpStats)
    linger_ns: int = LINGER_NS
    _open: dict[tuple[int, ...], _Builder] = field(default_factory=dict)
    _next_id: int = 1
    _pending: list[tuple[npt.NDArray[np.void], npt.NDArray[np.uint64], list[bytes]]] = field(
        default_factory=list
    )
    _pending_rows: int = 0
    _pending_bytes: int = 0
    _pending_since: int = 0  # capture time of the oldest waiting row

    def feed(self, batch: SegmentBatch) -> Iterator[TcpConnection]:
        """Add one batch; yield the connections that are now finished."""
        port_list = np.fromiter(self.ports, dtype=np.uint16, count=len(self.ports))
        to_srv = np.isin(batch.dport, port_list)
        from_srv = np.isin(batch.sport, port_list) & ~to_srv
        mine = to_srv | from_srv
        keep = np.flatnonzero(mine)
        self.stats.other_ports += len(batch) - len(keep)
        self.stats.upstream_segments += len(keep)
        if len(keep) < len(batch):
            other = ~mine
            low = np.minimum(batch.sport[other], batch.dport[other])
            values, counts = np.unique(low, return_counts=True)
            self.stats.other_port_counts.update(
                dict(zip(values.tolist(), counts.tolist(), strict=True))
            )
        if not len(keep):
            return
        c2s = to_srv[keep]
        rows = np.empty(len(keep), dtype=_ROW)
        rows["ts"] = batch.ts_ns[keep]
        rows["frame"] = batch.frame[keep]
        rows["seq"] = batch.seq[keep]
        rows["plen"] = batch.payload_len[keep]
        rows["clen"] = batch.captured_len[keep]
        rows["flags"] = batch.flags[keep]
        rows["c2s"] = c2s
        src_hi, src_lo = batch.src_hi[keep], batch.src_lo[keep]
        dst_hi, dst_lo = batch.dst_hi[keep], batch.dst_lo[keep]
        sport, dport = batch.sport[keep], batch.dport[keep]
        keys = np.empty((len(keep), 5), dtype=np.uint64)
        keys[:, 0] = np.where(c2s, src_hi, dst_hi)
        keys[:, 1] = np.where(c2s, src_lo, dst_lo)
        keys[:, 2] = np.where(c2s, dst_hi, src_hi)
        keys[:, 3] = np.where(c2s, dst_lo, src_lo)
        cport = np.where(c2s, sport, dport).astype(np.uint64)
        sport_ = np.where(c2s, dport, sport).astype(np.uint64)
        keys[:, 4] = (cport << 32) | (sport_ << 8) | batch.ip_version[keep]
        # copy the captured payloads now: the batch's window is released after this call
        mv = memoryview(batch.data)
        has = np.flatnonzero(rows["clen"])
        offs = batch.payload_off[keep][has].tolist()
        lens = rows["clen"][has].tolist()
        pieces = [b""] * len(keep)
        for i, o, n in zip(has.tolist(), offs, lens, strict=True):
            pieces[i] = mv[o : o + n].tobytes()
        if not self._pending:
            self._pending_since = int(rows["ts"][0])
        self._pending.append((rows, keys, pieces))
        self._pending_rows += len(keep)
        self._pending_bytes += sum(lens)
        if (
            self._pending_rows >= GROUP_ROWS
            or self._pending_bytes >= GROUP_BYTES
            or int(rows["ts"].max()) - self._pending_since > self.linger_ns
        ):
            yield from self._group()

    def _group(self) -> Iterator[TcpConnection]:
        """Hand the waiting rows to their connections, one numpy grouping for all of them."""
        if not self._pending:
            return
        rows = np.concatenate([p[0] for p in self._pending])
        keys = np.concatenate([p[1] for p in self._pending])
        pieces = [x for p in self._pending for x in p[2]]
        self._pending.clear()
        self._pending_rows = 0
        self._pending_bytes = 0

        flat = np.ascontiguousarray(keys).view(np.dtype((np.void, 40))).ravel()
        _, first, inverse = np.unique(flat, return_index=True, return_inverse=True)
        inverse = inverse.ravel()
        # rows by connection, then nginx's rows before the upstream's, each in file order
        order = np.lexsort((~rows["c2s"], inverse))
        bounds = np.concatenate(([0], np.cumsum(np.bincount(inverse))))
        flags = rows["flags"]
        client_syn = (flags & (SYN | ACK)) == SYN
        client_syn &= rows["c2s"]
        syn_groups = set(np.unique(inverse[client_syn]).tolist())
        open_ = self._open
        first_id = self._next_id
        created: list[_Builder] = []
        ended: list[_Builder] = []
        for g in np.argsort(first).tolist():  # groups in order of their first packet
            idx = order[bounds[g] : bounds[g + 1]]
            key = tuple(keys[idx[0]].tolist())
            if g in syn_groups:
                self._with_syns(key, rows, np.sort(idx), pieces, created, ended)
                continue
            b = open_.get(key)
            if b is None:
                b = self._new(key, rows[int(idx.min())])
                created.append(b)
            part = rows[idx]
            n_up = int(part["c2s"].sum())
            ids = idx.tolist()
            b.add(
                part[:n_up],
                b"".join([pieces[i] for i in ids[:n_up]]),
                part[n_up:],
                b"".join([pieces[i] for i in ids[n_up:]]),
            )
        # Ids follow first packets exactly, even when a tuple reused inside this batch made a
        # connection start after another group's first packet.
        created.sort(key=lambda c: c.first_frame)
        for i, c in enumerate(created, start=first_id):
            c.id = i
        yield from _finish_many(ended)
        yield from self._expire(int(rows["ts"].max()))

    def _with_syns(
        self,
        key: tuple[int, ...],
        rows: npt.NDArray[np.void],
        idx: npt.NDArray[np.intp],
        pieces: list[bytes],
        created: list[_Builder],
        ended: list[_Builder],
    ) -> None:
        """A group holding client SYNs: split it wherever a SYN with a new ISN starts over."""
        part = rows[idx]
        syns = np.flatnonzero(part["c2s"] & ((part["flags"] & (SYN | ACK)) == SYN))
        start = 0
        syn_ts = part["ts"][syns].tolist()
        for j, seq, t in zip(syns.tolist(), part["seq"][syns].tolist(), syn_ts, strict=True):
            b = self._open.get(key)
            if b is not None and b.client_isn == seq:
                continue  # the same attempt's SYN again
            if b is None or b.client_isn is None:
                earliest = b.first_ts if b is not None else None
                if j > start:
                    waiting = int(part["ts"][start:j].min())
                    earliest = waiting if earliest is None else min(earliest, waiting)
                if earliest is not None and t <= earliest:
                    # written to the file after packets it precedes (a SYN-ACK first: tcpdump
                    # -i any across CPUs, mergecap): it opens this connection, not a new one
                    if b is None:
                        b = self._new(key, part[start])
                        created.append(b)
                    b.client_isn = seq
                    b.first_ts = min(b.first_ts, t)
                    continue
            # A SYN with a new ISN: the port was reused, or the capture began mid-connection and
            # this SYN opens the next connection on the tuple. What came before is the old one's.
            if j > start:
                if b is None:
                    b = self._new(key, part[start])
                    created.append(b)
                _split_add(b, rows, idx[start:j], pieces)
            if b is not None:
                ended.append(self._open.pop(key))
            b = self._new(key, part[j])
            b.client_isn = seq
            created.append(b)
            start = j
        b = self._open.get(key)
        if b is None:
            b = self._new(key, rows[idx[start]])
            created.append(b)
        _split_add(b, rows, idx[start:], pieces)

    def _new(self, key: tuple[int, ...], row: np.void) -> _Builder:
        b = self._open[key] = _Builder(self._next_id, key, int(row["ts"]), int(row["frame"]))
        self._next_id += 1
        return b

    def _expire(self, now: int) -> Iterator[TcpConnection]:
        """Finish connections that are over and quiet for the linger time, or silent for long."""
        linger, idle = self.linger_ns, IDLE_FINISH_NS
        done = [
            k
            for k, b in self._open.items()
            if b.last_ts + idle < now or (b.over and b.last_ts + linger < now)
        ]
        yield from _finish_many([self._open.pop(k) for k in done])

    def finish(self) -> Iterator[TcpConnection]:
        """The capture ended: finish every connection still open."""
        yield from self._group()
        builders = sorted(self._open.values(), key=lambda b: b.id)
        self._open.clear()
        for i in range(0, len(builders), 20_000):  # bounded temporary arrays
            yield from _finish_many(builders[i : i + 20_000])

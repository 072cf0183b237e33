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

Speed: no Python runs per packet. Per batch, numpy orients the rows and keeps the batch's window
(its payload bytes are not copied yet). Per grouping (every :data:`GROUP_ROWS` rows or
:data:`GROUP_BYTES` payload bytes), one sort of a 64-bit key hash groups the rows by connection,
Python looks each connection up once, and each connection's payloads per direction are copied
once, in C, straight from the windows into one *blob*; the rows go to one shared store
(see :class:`Reconstructor`). Finishing is per set of connections: one scan of the store finds
their rows, one sort orders them by direction, and :func:`_reassemble` answers every direction
at once. A direction that arrived in order (nearly all) needs no further sort: arrival order is
then offset order, and its ``data`` is its blobs joined (copied once more), or one blob as is.
Reordered or overlapping directions take :func:`_flows_general`, the two-sort path that decides
overlaps by arrival. Python then builds the objects, per direction, with the cyclic garbage
collector paused (they hold no cycles). Nothing here knows about HTTP; the next stage reads
:attr:`Flow.stream` as a byte stream.
"""

from __future__ import annotations

import gc
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice, pairwise
from operator import getitem
from typing import cast

import numpy as np
import numpy.typing as npt

from pcapkit.capture.reread import FileBytes
from pcapkit.capture.types import ACK, FIN, RST, SYN, SegmentBatch, format_ip

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
# A stored row: the same, and the serial number of the payload blob holding its bytes (see
# Reconstructor; the slot of its connection is kept apart, in a column scanned on its own).
_STORE: np.dtype[np.void] = np.dtype([*_ROW.descr, ("blob", "<i8")])
# The same bytes as one opaque item: numpy gathers these several times faster than records.
_STORE_ITEM: np.dtype[np.void] = np.dtype((np.void, _STORE.itemsize))


def _take(rows: npt.NDArray[np.void], at: npt.NDArray[np.intp]) -> npt.NDArray[np.void]:
    """``rows[at]`` for store rows, copied as opaque items."""
    return np.take(rows.view(_STORE_ITEM), at).view(_STORE)


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


def _place_rsts(
    rel: npt.NDArray[np.int64],
    seq: npt.NDArray[np.int64],
    ref: npt.NDArray[np.int64],
    did: npt.NDArray[np.int64],
    r_idx: npt.NDArray[np.int64],
    anchor: npt.NDArray[np.int64],
    ok: npt.NDArray[np.bool_],
) -> None:
    """Set each RST's relative offset: its anchor's (the segment before it in its direction,
    where ``ok``) plus its signed step from it, or its step from ``ref`` where it has none."""
    at = np.where(ok, anchor, r_idx)
    rel[r_idx] = np.where(
        ok, rel[at] + _signed32(seq[r_idx] - seq[at]), _signed32(seq[r_idx] - ref[did[r_idx]])
    )


def _unwrapped(
    did: npt.NDArray[np.int64], seq: npt.NDArray[np.int64], ref: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Sequence numbers relative to their direction's ``ref``, unwrapped past 2**32: each row's
    step from the one before it (from ``ref`` for a direction's first row) taken as signed 32-bit
    and added up within the direction. Rows come grouped by direction (``did``)."""
    first = np.ones(len(did), dtype=bool)
    first[1:] = did[1:] != did[:-1]
    steps = np.empty(len(did), dtype=np.int64)
    steps[1:] = np.diff(seq)
    steps[first] = seq[first] - ref[did[first]]
    steps = _signed32(steps)
    total = np.cumsum(steps)
    return total - (total - steps)[first][np.cumsum(first) - 1]  # type: ignore[no-any-return]


class _Builder:
    """One open connection attempt. Its rows live in the reconstructor's shared row store, under
    ``slot``; its last packet time and close bits live in per-slot arrays, updated by numpy."""

    __slots__ = ("client_isn", "first_frame", "first_ts", "id", "key", "seq", "slot")

    def __init__(
        self, conn_id: int, key: tuple[int, ...], ts: int, frame: int, slot: int, seq: int
    ) -> None:
        self.id = conn_id
        self.key = key
        self.first_ts = ts
        self.first_frame = frame
        self.client_isn: int | None = None
        self.slot = slot
        self.seq = seq  # creation order: the order connections are looked at for expiry


_SPAN = 1 << 44  # room for one direction's offsets in the segmented running maximum

# A RST further than this from where its direction's stream stands is not taken as a close
# (RFC 5961: a stack accepts a RST only at the next expected sequence number).
RST_WINDOW = 1 << 20

# Directions with more segments than this keep the offset-ordered answer for overlaps (the
# arrival-ordered walk is Python per segment).
ARRIVAL_LIMIT = 200_000

EMPTY_FLOW = Flow(EMPTY_STREAM, None, 0, None, None, 0, 0, 0, 0, None)


def _flows_general(
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

    This is the general path: :func:`_reassemble` hands it the directions that need its sorts
    (and any direction out of range on its own, so that none can spill into another's running
    maximum), and ``tests/test_tcp_fast.py`` checks that both give the same flows.
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
        rel[a_idx] = _unwrapped(did[a_idx], seq[a_idx], ref)
    r_idx = np.flatnonzero(is_rst)
    last_anchor = np.maximum.accumulate(np.where(~is_rst, idx, -1))
    if len(r_idx):
        la = last_anchor[r_idx]
        _place_rsts(rel, seq, ref, did, r_idx, la, la >= first[did[r_idx]])
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
            out[i] = _flows_general([dirs[i]], alone=True)[0]
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


# Multipliers of the key hash (odd 64-bit constants from splitmix64 and xxhash).
_MIX = np.array(
    [
        0x9E3779B97F4A7C15,
        0xC2B2AE3D27D4EB4F,
        0x165667B19E3779F9,
        0x27D4EB2F165667C5,
        0x94D049BB133111EB,
    ],
    dtype=np.uint64,
)

# Connections finished together: their temporary arrays, and the payload they hold twice (the
# pieces and the joined streams), stay bounded: at most this many connections, and no more
# payload than FINISH_BYTES unless one connection alone has more.
FINISH_CHUNK = 128
FINISH_BYTES = 8 << 20

_I64_MIN = -(1 << 63)


def _key_groups(
    keys: npt.NDArray[np.uint64],
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp], list[int]]:
    """Rows with equal keys (``keys[:, i]`` is row ``i``'s key), found with one sort of a 64-bit
    hash with the row number in its low bits (so a plain sort is stable); rows with equal hashes
    are checked against the keys themselves.

    Returns each group's first row, each row's group, the rows ordered by group (file order
    within one) and where each group starts in that order.
    """
    n = keys.shape[1]
    h = keys[0] * _MIX[0]
    for c in range(1, 5):
        h ^= h >> np.uint64(29)
        h += keys[c] * _MIX[c]
    h ^= h >> np.uint64(32)
    h *= _MIX[4]
    h ^= h >> np.uint64(29)
    bits = max(n - 1, 1).bit_length()
    packed = np.sort((h << np.uint64(bits)) | np.arange(n, dtype=np.uint64))
    order = (packed & np.uint64((1 << bits) - 1)).astype(np.intp)
    hv = packed >> np.uint64(bits)
    new = np.ones(n, dtype=bool)
    new[1:] = hv[1:] != hv[:-1]
    same = ~new[1:]
    for c in range(5):
        col = keys[c][order]
        if (same & (col[1:] != col[:-1])).any():  # two keys, one hash: sort the keys instead
            order = np.lexsort(keys[::-1]).astype(np.intp)
            new[1:] = False
            for c2 in range(5):
                col = keys[c2][order]
                new[1:] |= col[1:] != col[:-1]
            break
    inverse = np.empty(n, dtype=np.intp)
    inverse[order] = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    return order[starts], inverse, order, [*starts.tolist(), n]


def _as_rows(rows: npt.NDArray[np.void]) -> npt.NDArray[np.void]:
    out = np.empty(len(rows), dtype=_ROW)
    for name in _ROW.names or ():
        out[name] = rows[name]
    return out


def _reassemble(
    rows: npt.NDArray[np.void], payloads: list[bytes], sizes: npt.NDArray[np.int64]
) -> list[Flow]:
    """Every direction's :class:`Flow` at once; the fast, exact path of :func:`_flows_general`.

    ``rows`` holds the directions one after the other (``sizes[d]`` rows each), each in file
    order; ``payloads[d]`` is direction ``d``'s captured payload bytes, row after row. Nearly
    every direction arrives in order: capture times never go back, and data never goes back in
    the stream (retransmissions of the newest segment included). For those, arrival order is
    file order and offset order at once, so the two sorts of :func:`_flows_general` are not
    needed. The other directions (reordered, overlapping out of order, or with offsets too far
    apart for the shared running maximum) go to :func:`_flows_general`, which gives the same
    answer for every direction.
    """
    out: list[Flow] = [EMPTY_FLOW] * len(sizes)
    todo = np.flatnonzero(sizes)
    if not len(todo):
        return out
    sz = sizes[todo]
    m = len(todo)
    first = np.cumsum(sz) - sz
    did = np.repeat(np.arange(m, dtype=np.int64), sz)
    n = len(rows)
    flags = rows["flags"]
    seq = rows["seq"].astype(np.int64)
    ts, frame = rows["ts"], rows["frame"]
    plen = rows["plen"].astype(np.int64)
    clen = rows["clen"].astype(np.int64)
    cum = np.cumsum(clen) - clen  # a row's bytes sit at cum - cum[first] of its payload

    def first_of(at: npt.NDArray[np.intp]) -> npt.NDArray[np.int64]:
        """Each direction's first row among ``at`` (ascending); ``n`` where it has none."""
        found = np.full(m, n, dtype=np.int64)
        if len(at):
            d = did[at]
            head = np.ones(len(at), dtype=bool)
            head[1:] = d[1:] != d[:-1]
            found[d[head]] = at[head]
        return found

    # Control segments are few: their per-direction answers come from their own rows.
    is_syn = (flags & SYN) != 0
    syn_rows = np.flatnonzero(is_syn)
    first_syn = first_of(syn_rows)
    has_syn = first_syn < n
    syn_count = np.bincount(did[syn_rows], minlength=m)
    ref = np.where(has_syn, (seq[np.minimum(first_syn, n - 1)] + 1) & (_MOD32 - 1), seq[first])

    # offsets: as in _flows_general (the chain runs through every segment but RSTs)
    r_idx = np.flatnonzero(flags & RST)
    if len(r_idx):
        a_idx = np.flatnonzero((flags & RST) == 0)
        a_did, a_seq = did[a_idx], seq[a_idx]
    else:
        a_idx, a_did, a_seq = np.arange(n), did, seq
    rel = np.empty(n, dtype=np.int64)
    if len(a_idx):
        rel[a_idx] = _unwrapped(a_did, a_seq, ref)
    # each RST's anchor: the last non-RST row before it (a_pos: where that is in a_idx)
    a_pos = np.searchsorted(a_idx, r_idx) - 1
    la = a_idx[np.maximum(a_pos, 0)] if len(a_idx) else np.zeros(len(r_idx), dtype=np.int64)
    la_ok = (a_pos >= 0) & (la >= first[did[r_idx]])
    if len(r_idx):
        _place_rsts(rel, seq, ref, did, r_idx, la, la_ok)
    start = rel + is_syn
    end = start + plen
    # A direction with offsets outside the lifted range goes to _flows_general on its own; here
    # its offsets are zeroed so that it cannot spill into its neighbours' running maxima.
    wild = np.zeros(m, dtype=bool)
    if start.min() <= -(_SPAN // 2) or end.max() >= _SPAN // 2:
        far = (np.abs(start) >= _SPAN // 2) | (np.abs(end) >= _SPAN // 2)
        wild[did[far]] = True
        zero = wild[did]
        start[zero] = 0
        end[zero] = 0
    odd = wild.copy()
    fin_rows = np.flatnonzero(flags & FIN)
    valid_rst = np.ones(len(r_idx), dtype=bool)
    if len(r_idx):
        # where the direction's stream stood at each RST's anchor: the furthest end (FIN
        # included) of its non-RST rows up to the anchor
        fin_step = np.zeros(n, dtype=np.int64)
        fin_step[fin_rows] = 1
        a_lift = a_did * (2 * _SPAN) + _SPAN
        reach = np.maximum.accumulate((end + fin_step)[a_idx] + a_lift) - a_lift
        expected = np.where(la_ok, reach[np.maximum(a_pos, 0)] if len(a_idx) else 0, 0)
        valid_rst = np.abs(start[r_idx] - expected) <= RST_WINDOW
    ignored_rst = np.bincount(did[r_idx[~valid_rst]], minlength=m)
    first_fin = first_of(fin_rows)
    first_rst = first_of(r_idx[valid_rst])
    last_ts = np.maximum.reduceat(ts, first)

    data = np.flatnonzero(plen)
    d_did = did[data]
    s = start[data]
    e = end[data]
    new_dir = np.ones(len(data), dtype=bool)
    if len(data) > 1:
        new_dir[1:] = d_did[1:] != d_did[:-1]
        d_ts = ts[data]
        turn = ~new_dir[1:] & ((d_ts[1:] < d_ts[:-1]) | (s[1:] < s[:-1]))
        odd[d_did[1:][turn]] = True
    # in order: a piece brings what lies beyond the furthest byte before it
    lift = d_did * (2 * _SPAN) + _SPAN
    before = np.empty_like(s)
    if len(data):
        before[1:] = (np.maximum.accumulate(e + lift) - lift)[:-1]
        before[new_dir] = s[new_dir]
    keep = e > before
    retrans = np.bincount(d_did[~keep], minlength=m)
    gap = np.where(keep, s - before, 0)
    missing = np.bincount(d_did, weights=np.maximum(gap, 0), minlength=m)
    kept = data[keep]
    k_did = d_did[keep]
    new_s = np.maximum(s, before)[keep]
    cut = new_s - s[keep]
    k_clen = clen[kept]
    got = np.maximum(k_clen - cut, 0)
    lengths = e[keep] - new_s
    bounds = np.searchsorted(k_did, np.arange(m + 1)).tolist()
    before_got = np.cumsum(got) - got
    base = np.append(before_got, before_got[-1] + got[-1] if len(got) else 0)
    data_starts = before_got - base[bounds[:-1]][k_did]
    dir_bytes = np.bincount(k_did, weights=lengths, minlength=m)
    dir_got = np.bincount(k_did, weights=got, minlength=m)
    # as in _flows_general: a direction is one slice of its payload when nothing was trimmed
    # and its kept pieces sit back to back
    offs = cum[kept] - cum[first][k_did]
    broken = cut != 0
    if len(kept) > 1:
        broken[1:] |= (k_did[1:] == k_did[:-1]) & (offs[1:] != offs[:-1] + k_clen[:-1])
    bad = np.bincount(k_did[broken], minlength=m) > 0

    fin_at = np.minimum(first_fin, n - 1)
    fin_end = end[fin_at]
    late_at = data[(first_fin < n)[d_did] & (s >= fin_end[d_did])]
    late: dict[int, list[Mark]] = {}
    for j, t, f, a in zip(
        did[late_at].tolist(),
        ts[late_at].tolist(),
        frame[late_at].tolist(),
        start[late_at].tolist(),
        strict=True,
    ):
        late.setdefault(j, []).append(Mark(t, f, a))

    # Most directions have every byte captured (captured == lengths) and no hole or overlap
    # (data_starts == starts): their lists are then sliced from one list of int objects
    # instead of two equal ones (slices are separate lists; ints are immutable).
    l_starts, l_lengths = new_s.tolist(), lengths.tolist()
    l_ts, l_frames = ts[kept].tolist(), frame[kept].tolist()
    own_got = np.bincount(k_did[got != lengths], minlength=m) > 0
    own_ds = np.bincount(k_did[data_starts != new_s], minlength=m) > 0
    l_got = got.tolist() if own_got.any() else l_lengths
    l_ds = data_starts.tolist() if own_ds.any() else l_starts
    got_from = [l_got if x else l_lengths for x in own_got.tolist()]
    ds_from = [l_ds if x else l_starts for x in own_ds.tolist()]
    l_cut = cut.tolist()
    l_offs = offs.tolist()
    syn_at = np.minimum(first_syn, n - 1)
    rst_at = np.minimum(first_rst, n - 1)

    def marks(
        first: npt.NDArray[np.int64], at: npt.NDArray[np.int64], extra: npt.NDArray[np.int64]
    ) -> Iterator[tuple[int, ...]]:
        """Per direction: a flag's first row, its time and frame there, and one more column."""
        cols = (first, ts[at], frame[at], extra)
        return zip(*(c.tolist() for c in cols), strict=True)

    c_syn = marks(first_syn, syn_at, syn_count)
    c_fin = marks(first_fin, fin_at, fin_end)
    c_rst = marks(first_rst, rst_at, start[rst_at])
    c_counts = zip(
        dir_got.tolist(),
        bad.tolist(),
        sz.tolist(),
        retrans.tolist(),
        dir_bytes.tolist(),
        missing.tolist(),
        last_ts.tolist(),
        ignored_rst.tolist(),
        strict=True,
    )
    todo_l = todo.tolist()
    for j, i, is_odd, syn, fin, rst, counts in zip(
        range(m), todo_l, odd.tolist(), c_syn, c_fin, c_rst, c_counts, strict=True
    ):
        if is_odd:
            continue
        a, b = bounds[j], bounds[j + 1]
        if a == b:
            stream = EMPTY_STREAM
        else:
            payload = payloads[i]
            if not counts[1]:
                lo, size = l_offs[a], int(counts[0])
                buf = payload if lo == 0 and size == len(payload) else payload[lo : lo + size]
            else:  # the first transmission of each byte won: keep what each piece brought
                buf = b"".join(
                    [
                        payload[o + min(c, n_) : o + n_]
                        for o, c, n_ in zip(
                            l_offs[a:b], l_cut[a:b], k_clen[a:b].tolist(), strict=True
                        )
                    ]
                )
            stream = Stream(
                l_starts[a:b],
                l_lengths[a:b],
                l_ts[a:b],
                l_frames[a:b],
                got_from[j][a:b],
                ds_from[j][a:b],
                buf,
            )
        out[i] = Flow(
            stream=stream,
            syn=Mark(syn[1], syn[2]) if syn[0] < n else None,
            syn_count=syn[3],
            fin=Mark(fin[1], fin[2], fin[3]) if fin[0] < n else None,
            rst=Mark(rst[1], rst[2], rst[3]) if rst[0] < n else None,
            packets=counts[2],
            retransmissions=counts[3],
            bytes=int(counts[4]),
            missing=int(counts[5]),
            last_ts_ns=counts[6],
            late_data=tuple(late.get(j, ())),
            ignored_rsts=counts[7],
        )

    if odd.any():
        odd_js = np.flatnonzero(odd).tolist()
        dirs = [
            ([_as_rows(rows[first[j] : first[j] + sz[j]])], [payloads[todo_l[j]]]) for j in odd_js
        ]
        tame = [k for k, j in enumerate(odd_js) if not wild[j]]
        for k, flow in zip(tame, _flows_general([dirs[k] for k in tame]), strict=True):
            out[int(todo[odd_js[k]])] = flow
        for k, j in enumerate(odd_js):
            if wild[j]:  # alone: its offsets would spill over its neighbours'
                out[int(todo[j])] = _flows_general([dirs[k]])[0]
    return out


@dataclass(slots=True)
class Reconstructor:
    """Feeds on segment batches; yields each connection attempt once it can no longer grow.

    Rows of the open connections wait in one shared store (a structured array in file order,
    each row tagged with its connection's slot, filled like a vector: room doubles when full).
    Payload bytes wait as blobs: when rows are grouped, each connection's payloads in each
    direction are copied from the batches' windows into one bytes object, named by a serial
    number that its rows carry. A direction's payload is then its few blobs joined, not
    thousands of pieces, and finishing touches few Python objects. A finished connection's rows
    are found by slot and its blobs dropped at once; the store is compacted when it is full and
    holds dead rows, so memory follows the open connections and each row is copied a bounded
    number of times on average.
    """

    ports: frozenset[int]
    stats: TcpStats = field(default_factory=TcpStats)
    linger_ns: int = LINGER_NS
    # Read payloads back from the capture file when a connection is finished, instead of
    # holding them meanwhile: rows then carry their payload's file offset in place of a blob.
    payloads: FileBytes | None = None
    _open: dict[tuple[int, ...], _Builder] = field(default_factory=dict)
    _next_id: int = 1
    _next_seq: int = 0
    # waiting batches: rows, key columns, the window holding their payloads, payload offsets
    _pending: list[
        tuple[
            npt.NDArray[np.void], npt.NDArray[np.uint64], memoryview | None, npt.NDArray[np.int64]
        ]
    ] = field(default_factory=list)
    _pending_rows: int = 0
    _pending_bytes: int = 0
    _pending_since: int = 0  # capture time of the oldest waiting row
    _rows: npt.NDArray[np.void] = field(default_factory=lambda: np.empty(0, dtype=_STORE))
    _blob_of: dict[int, bytes] = field(default_factory=dict)  # live blobs by serial number
    _row_slot: npt.NDArray[np.int32] = field(default_factory=lambda: np.empty(0, dtype=np.int32))
    _used: int = 0  # rows of the store in use (the rest is room)
    _blobs: int = 0  # serial numbers of blobs handed out
    # per slot: last packet time, close bits (1 client FIN/RST, 2 server's, 4 a RST), open
    _last: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    _closed: npt.NDArray[np.uint8] = field(default_factory=lambda: np.zeros(0, dtype=np.uint8))
    _is_open: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    _slots: list[_Builder | None] = field(default_factory=list)
    _free: list[int] = field(default_factory=list)
    _ips: dict[tuple[int, int, int], str] = field(default_factory=dict)

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
        rows = np.empty(len(keep), dtype=_STORE)
        rows["ts"] = batch.ts_ns[keep]
        rows["frame"] = batch.frame[keep]
        rows["seq"] = batch.seq[keep]
        rows["plen"] = batch.payload_len[keep]
        clen = batch.captured_len[keep]
        rows["clen"] = clen
        rows["flags"] = batch.flags[keep]
        rows["c2s"] = c2s
        src_hi, src_lo = batch.src_hi[keep], batch.src_lo[keep]
        dst_hi, dst_lo = batch.dst_hi[keep], batch.dst_lo[keep]
        sport, dport = batch.sport[keep], batch.dport[keep]
        keys = np.empty((5, len(keep)), dtype=np.uint64)  # a column per key part
        keys[0] = np.where(c2s, src_hi, dst_hi)
        keys[1] = np.where(c2s, src_lo, dst_lo)
        keys[2] = np.where(c2s, dst_hi, src_hi)
        keys[3] = np.where(c2s, dst_lo, src_lo)
        cport = np.where(c2s, sport, dport).astype(np.uint64)
        sport_ = np.where(c2s, dport, sport).astype(np.uint64)
        keys[4] = (cport << 32) | (sport_ << 8) | batch.ip_version[keep]
        # The payloads stay in the batch's window until the rows are grouped, and are then
        # copied once, straight into each connection's blobs (an immutable window is kept as
        # it is; any other buffer is copied, as it may be reused once this call returns).
        offsets = batch.payload_off[keep]
        window: memoryview | None = None
        if self.payloads is not None:
            if batch.file_base is None:
                raise ValueError("payloads are read back from the file: batches need file_base")
            rows["blob"] = offsets + batch.file_base
        else:
            window = memoryview(batch.data if type(batch.data) is bytes else bytes(batch.data))
        if not self._pending:
            self._pending_since = int(rows["ts"][0])
        self._pending.append((rows, keys, window, offsets))
        self._pending_rows += len(keep)
        self._pending_bytes += int(clen.sum())
        if (
            self._pending_rows >= GROUP_ROWS
            or self._pending_bytes >= GROUP_BYTES
            or int(rows["ts"].max()) - self._pending_since > self.linger_ns
        ):
            yield from self._group()

    def _group(self) -> Iterator[TcpConnection]:
        """Hand the waiting rows to their connections, one numpy grouping for all of them.

        Python runs once per connection here (a dict lookup), and per client SYN only for the
        rare groups a SYN may split (a new ISN on an open tuple, SYNs written out of order).
        """
        if not self._pending:
            return
        rows = np.concatenate([p[0] for p in self._pending])
        keys = np.concatenate([p[1] for p in self._pending], axis=1)
        window: npt.NDArray[np.object_] | None = None
        if self.payloads is None:
            windows = np.empty(len(self._pending), dtype=object)
            windows[:] = [p[2] for p in self._pending]
            window = np.repeat(windows, [len(p[0]) for p in self._pending])
        offsets = np.concatenate([p[3] for p in self._pending])
        self._pending.clear()
        self._pending_rows = 0
        self._pending_bytes = 0

        first, inverse, order, bounds = _key_groups(keys)
        flags = rows["flags"]
        c2s = rows["c2s"]
        client_syn = c2s & ((flags & (SYN | ACK)) == SYN)
        # per group: the lowest and highest ISN of its client SYNs (-1: none)
        isn_lo = np.full(len(first), -1, dtype=np.int64)
        isn_hi = isn_lo.copy()
        syn_rows = np.flatnonzero(client_syn)
        if len(syn_rows):
            sg = inverse[syn_rows]
            isn = rows["seq"][syn_rows].astype(np.int64)
            isn_lo[sg] = _MOD32
            np.minimum.at(isn_lo, sg, isn)
            np.maximum.at(isn_hi, sg, isn)
        key_l = keys[:, first].T.tolist()
        ts_l = rows["ts"][first].tolist()
        frame_l = rows["frame"][first].tolist()
        lo_l, hi_l = isn_lo.tolist(), isn_hi.tolist()
        opens_l = client_syn[first].tolist()
        slot_l = [-1] * len(first)
        open_ = self._open
        first_id = self._next_id
        created: list[_Builder] = []
        ended: list[_Builder] = []
        assign: list[tuple[npt.NDArray[np.intp], int]] = []
        for g in np.argsort(first).tolist():  # groups in order of their first packet
            key = tuple(key_l[g])
            b = open_.get(key)
            lo = lo_l[g]
            if lo >= 0 and not (
                lo == hi_l[g] and (opens_l[g] if b is None else b.client_isn == lo)
            ):
                # not simply one attempt's SYNs opening the group, or repeated on its builder
                self._with_syns(key, rows, order[bounds[g] : bounds[g + 1]], created, ended, assign)
                continue
            if b is None:
                b = self._new(key, ts_l[g], frame_l[g])
                if lo >= 0:
                    b.client_isn = lo
                created.append(b)
            slot_l[g] = b.slot
        group_slot = np.array(slot_l, dtype=np.int32)
        row_slot = group_slot[inverse]
        ts = rows["ts"]
        whole = np.flatnonzero(group_slot >= 0)
        if len(whole):  # the groups that went to one connection: their latest packet
            latest = np.maximum.reduceat(ts[order], bounds[:-1])[whole]
            at = group_slot[whole]
            self._last[at] = np.maximum(self._last[at], latest)
        for rows_at, slot in assign:
            row_slot[rows_at] = slot
            self._last[slot] = max(int(self._last[slot]), int(ts[rows_at].max()))
        if window is not None:
            self._blobs_of(rows, row_slot, window, offsets)
        # Ids follow first packets exactly, even when a tuple reused inside this batch made a
        # connection start after another group's first packet.
        created.sort(key=lambda c: c.first_frame)
        for i, c in enumerate(created, start=first_id):
            c.id = i
        shut = np.flatnonzero(flags & (FIN | RST))
        if len(shut):
            bits = np.where(c2s[shut], 1, 2) | np.where(flags[shut] & RST, 4, 0)
            np.bitwise_or.at(self._closed, row_slot[shut], bits.astype(np.uint8))
        self._append(rows, row_slot)
        yield from self._finish(ended + self._expired(int(ts.max())))

    def _blobs_of(
        self,
        rows: npt.NDArray[np.void],
        row_slot: npt.NDArray[np.int32],
        window: npt.NDArray[np.object_],
        offsets: npt.NDArray[np.int64],
    ) -> None:
        """Join each connection's payloads per direction (file order) into one blob, straight
        from the batches' windows; give every row its blob and the blob's serial number.

        Python runs per blob; per payload only C does (``map`` slicing memoryviews, ``join``).
        """
        n = len(rows)
        pair = 2 * row_slot.astype(np.uint64) + ~rows["c2s"]
        bits = max(n - 1, 1).bit_length()
        packed = np.sort((pair << np.uint64(bits)) | np.arange(n, dtype=np.uint64))
        order = (packed & np.uint64((1 << bits) - 1)).astype(np.intp)
        pair = packed >> np.uint64(bits)
        new = np.ones(n, dtype=bool)
        new[1:] = pair[1:] != pair[:-1]
        serial = np.cumsum(new) - 1
        count = int(serial[-1]) + 1
        clen = rows["clen"].astype(np.int64)[order]
        has = np.flatnonzero(clen)
        per_blob = np.bincount(serial[has], minlength=count).tolist()
        starts = offsets[order[has]]
        views = cast(
            Iterator[memoryview],
            map(
                getitem,
                window[order[has]].tolist(),
                map(slice, starts.tolist(), (starts + clen[has]).tolist()),
            ),
        )
        base = self._blobs
        self._blob_of.update(
            zip(
                range(base, base + count),
                (b"".join(islice(views, k)) for k in per_blob),
                strict=True,
            )
        )
        at = np.empty(n, dtype=np.intp)
        at[order] = serial
        rows["blob"] = at + base
        self._blobs += count

    def _append(self, rows: npt.NDArray[np.void], row_slot: npt.NDArray[np.int32]) -> None:
        """Add rows to the store: into its room, after dropping the dead rows when it is full
        (and growing it when the live ones would fill more than half of it)."""
        n, used = len(rows), self._used
        if used + n > len(self._rows):
            alive = np.flatnonzero(self._row_slot[:used] >= 0)
            live = len(alive)
            old_rows, old_slot = self._rows[:used].view(_STORE_ITEM), self._row_slot[:used]
            if 2 * (live + n) > len(self._rows):  # grow: the live rows go straight over
                size = max(2 * (live + n), 1 << 16)
                self._rows = np.empty(size, dtype=_STORE)
                self._row_slot = np.empty(size, dtype=np.int32)
                np.take(old_rows, alive, out=self._rows.view(_STORE_ITEM)[:live])
                np.take(old_slot, alive, out=self._row_slot[:live])
            else:  # compact in place, through a copy of the live rows
                self._rows.view(_STORE_ITEM)[:live] = old_rows[alive]
                self._row_slot[:live] = old_slot[alive]
            used = live
        self._rows.view(_STORE_ITEM)[used : used + n] = rows.view(_STORE_ITEM)
        self._row_slot[used : used + n] = row_slot
        self._used = used + n

    def _with_syns(
        self,
        key: tuple[int, ...],
        rows: npt.NDArray[np.void],
        idx: npt.NDArray[np.intp],
        created: list[_Builder],
        ended: list[_Builder],
        assign: list[tuple[npt.NDArray[np.intp], int]],
    ) -> None:
        """A group holding client SYNs: split it wherever a SYN with a new ISN starts over."""
        part = rows[idx]
        syns = np.flatnonzero(part["c2s"] & ((part["flags"] & (SYN | ACK)) == SYN))
        start = 0
        p_ts, p_frame = part["ts"], part["frame"]
        syn_ts = p_ts[syns].tolist()
        for j, seq, t in zip(syns.tolist(), part["seq"][syns].tolist(), syn_ts, strict=True):
            b = self._open.get(key)
            if b is not None and b.client_isn == seq:
                continue  # the same attempt's SYN again
            if b is None or b.client_isn is None:
                earliest = b.first_ts if b is not None else None
                if j > start:
                    waiting = int(p_ts[start:j].min())
                    earliest = waiting if earliest is None else min(earliest, waiting)
                if earliest is not None and t <= earliest:
                    # written to the file after packets it precedes (a SYN-ACK first: tcpdump
                    # -i any across CPUs, mergecap): it opens this connection, not a new one
                    if b is None:
                        b = self._new(key, int(p_ts[start]), int(p_frame[start]))
                        created.append(b)
                    b.client_isn = seq
                    b.first_ts = min(b.first_ts, t)
                    continue
            # A SYN with a new ISN: the port was reused, or the capture began mid-connection and
            # this SYN opens the next connection on the tuple. What came before is the old one's.
            if j > start:
                if b is None:
                    b = self._new(key, int(p_ts[start]), int(p_frame[start]))
                    created.append(b)
                assign.append((idx[start:j], b.slot))
            if b is not None:
                ended.append(self._open.pop(key))
                self._is_open[b.slot] = False
            b = self._new(key, t, int(p_frame[j]))
            b.client_isn = seq
            created.append(b)
            start = j
        b = self._open.get(key)
        if b is None:
            b = self._new(key, int(p_ts[start]), int(p_frame[start]))
            created.append(b)
        assign.append((idx[start:], b.slot))

    def _new(self, key: tuple[int, ...], ts: int, frame: int) -> _Builder:
        if not self._free:
            self._grow()
        slot = self._free.pop()
        b = _Builder(self._next_id, key, ts, frame, slot, self._next_seq)
        self._next_id += 1
        self._next_seq += 1
        self._open[key] = b
        self._slots[slot] = b
        self._last[slot] = ts
        self._closed[slot] = 0
        self._is_open[slot] = True
        return b

    def _grow(self) -> None:
        """More slots: twice as many (slots are reused, so they follow the open connections)."""
        old = len(self._slots)
        size = max(1024, 2 * old)
        for name in ("_last", "_closed", "_is_open"):
            arr = getattr(self, name)
            grown = np.zeros(size, dtype=arr.dtype)
            grown[:old] = arr
            setattr(self, name, grown)
        self._slots.extend([None] * (size - old))
        self._free.extend(range(size - 1, old - 1, -1))

    def _expired(self, now: int) -> list[_Builder]:
        """Connections over and quiet for the linger time, or silent for long; oldest first."""
        last, closed = self._last, self._closed
        over = ((closed & 4) != 0) | ((closed & 3) == 3)
        quiet = last < max(now - self.linger_ns, _I64_MIN)
        silent = last < max(now - IDLE_FINISH_NS, _I64_MIN)
        due = np.flatnonzero(self._is_open & (silent | (over & quiet))).tolist()
        done = sorted((b for s in due if (b := self._slots[s]) is not None), key=lambda b: b.seq)
        for b in done:
            del self._open[b.key]
            self._is_open[b.slot] = False
        return done

    def _finish(self, builders: list[_Builder]) -> Iterator[TcpConnection]:
        """Connections from their builders, in that order: their rows are found with one pass
        over the store and one sort, then reassembled :data:`FINISH_CHUNK` at a time."""
        if not builders:
            return
        k = len(builders)
        slots = np.array([b.slot for b in builders], dtype=np.int64)
        finishing = np.zeros(len(self._slots) + 1, dtype=bool)  # [-1]: dead rows
        finishing[slots] = True
        rank = np.zeros(len(self._slots), dtype=np.int64)
        rank[slots] = np.arange(k, dtype=np.int64)
        store = self._rows[: self._used]
        row_slot = self._row_slot[: self._used]
        sel = np.flatnonzero(finishing[row_slot])
        # each direction's rows together (client's first), in file order: a stable sort
        d = (2 * rank[row_slot[sel]] + ~store["c2s"][sel]).astype(np.uint64)
        bits = max(len(sel) - 1, 1).bit_length()
        by_dir = np.sort((d << np.uint64(bits)) | np.arange(len(sel), dtype=np.uint64))
        sel = sel[(by_dir & np.uint64((1 << bits) - 1)).astype(np.intp)]
        sizes = np.bincount((by_dir >> np.uint64(bits)).astype(np.intp), minlength=2 * k)
        ends = np.cumsum(sizes).tolist()
        last = self._last[slots].tolist()
        dirs = (by_dir >> np.uint64(bits)).astype(np.intp)
        per_conn = np.bincount(dirs // 2, weights=store["clen"][sel], minlength=k)
        reach = np.cumsum(per_conn)
        c1 = 0
        while c1 < k:
            c0 = c1
            base = float(reach[c0 - 1]) if c0 else 0.0
            fits = int(np.searchsorted(reach, base + FINISH_BYTES, side="right"))
            c1 = min(max(fits, c0 + 1), c0 + FINISH_CHUNK, k)
            part = sel[ends[2 * c0 - 1] if c0 else 0 : ends[2 * c1 - 1]]
            chunk_sizes = sizes[2 * c0 : 2 * c1]
            # each direction's payload: its blobs joined (a blob's rows begin where the serial
            # changes; directions never share a blob)
            rows = _take(store, part)
            if self.payloads is not None:
                payloads = self._read_back(rows, chunk_sizes, self.payloads)
            else:
                blob = rows["blob"]
                blob_at = np.flatnonzero(np.concatenate(([True], blob[1:] != blob[:-1])))
                blobs = list(map(self._blob_of.pop, blob[blob_at].tolist()))
                cut = [0, *np.searchsorted(blob_at, np.cumsum(chunk_sizes)).tolist()]
                payloads = [b"".join(blobs[a:b]) for a, b in pairwise(cut)]
                del blobs
            conns = self._connections(builders[c0:c1], last[c0:c1], rows, payloads, chunk_sizes)
            del payloads
            # the finished connections leave: their pieces now, their rows at the next compaction
            row_slot[part] = -1
            for b in builders[c0:c1]:
                self._slots[b.slot] = None
                self._free.append(b.slot)
            yield from conns

    @staticmethod
    def _read_back(
        rows: npt.NDArray[np.void], sizes: npt.NDArray[np.int64], source: FileBytes
    ) -> list[bytes]:
        """Each direction's payloads (its rows are consecutive, in file order) from the file."""
        clen = rows["clen"].astype(np.int64)
        has = np.flatnonzero(clen)
        direction = np.repeat(np.arange(len(sizes)), sizes)
        pieces = np.bincount(direction[has], minlength=len(sizes)).tolist()
        return source.gather_groups(rows["blob"][has], clen[has], pieces)

    def _connections(
        self,
        builders: list[_Builder],
        last: list[int],
        rows: npt.NDArray[np.void],
        payloads: list[bytes],
        sizes: npt.NDArray[np.int64],
    ) -> list[TcpConnection]:
        """Build the objects with the cyclic garbage collector paused: they hold no cycles, and
        hundreds of thousands of new lists would otherwise make it walk the heap again and again.
        """
        paused = gc.isenabled()
        gc.disable()
        try:
            flows = _reassemble(rows, payloads, sizes)
            out = []
            for j, (b, last_ts) in enumerate(zip(builders, last, strict=True)):
                to_server, to_client = flows[2 * j], flows[2 * j + 1]
                c_hi, c_lo, s_hi, s_lo, ports = b.key
                c_port, s_port, version = ports >> 32, (ports >> 8) & 0xFFFF, ports & 0xFF
                out.append(
                    TcpConnection(
                        id=b.id,
                        client=self._endpoint(c_hi, c_lo, version, c_port),
                        server=self._endpoint(s_hi, s_lo, version, s_port),
                        client_port=c_port,
                        server_port=s_port,
                        ip_version=version,
                        first_ts_ns=b.first_ts,
                        first_frame=b.first_frame,
                        last_ts_ns=last_ts,
                        partial=to_server.syn is None,
                        to_server=to_server,
                        to_client=to_client,
                    )
                )
            return out
        finally:
            if paused:
                gc.enable()

    def _endpoint(self, hi: int, lo: int, version: int, port: int) -> str:
        """``format_endpoint``, with the address printed once per host rather than per side."""
        ip = self._ips.get((hi, lo, version))
        if ip is None:
            if len(self._ips) >= 4096:
                self._ips.clear()
            ip = self._ips[hi, lo, version] = format_ip(hi, lo, version)
        return f"[{ip}]:{port}" if version == 6 else f"{ip}:{port}"

    def finish(self) -> Iterator[TcpConnection]:
        """The capture ended: finish every connection still open."""
        yield from self._group()
        builders = sorted(self._open.values(), key=lambda b: b.id)
        self._open.clear()
        self._is_open[:] = False
        yield from self._finish(builders)
        self._rows = np.empty(0, dtype=_STORE)
        self._blob_of.clear()
        self._used = 0

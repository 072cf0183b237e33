"""Turn one window of packet records into TCP segment columns, all packets at once.

The record walk (``reader.py``) hands over where each packet starts, how much of it was captured,
its timestamp and its link type; everything from the link header to the TCP flags is decoded here
with numpy over the whole window. Python-level loops would cost ~1 µs per packet; gathering
fixed-size header rows with fancy indexing costs a few nanoseconds.

The trick that makes the gathers cheap: a stride-1 view of the window whose items are k-byte
"rows" (``dtype=V<k>``) starting at every byte offset. Indexing it with the header offsets copies
one k-byte header per packet in a single numpy call, and the copy reinterpreted as big-endian
``u2``/``u4``/``u8`` columns yields every header field without per-field gathers. The reader pads
each window with :data:`PAD` zero bytes so a row read near the end never leaves the buffer; a row
that extends past its own packet is only ever used after the captured-length check says so.

Rare shapes (IPv6 extension headers) take a per-packet Python path; they are a few per mille of
real traffic. Every packet ends with exactly one outcome: a segment or one skip reason.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .linktypes import SUPPORTED, Framing, LinkType
from .types import I64, U8, SegmentBatch

#: Zero bytes the reader appends to each window; must cover the widest row gathered here (40).
PAD = 64

OK = 0
NON_IP = 1
NON_TCP = 2
IP_FRAGMENT = 3
TRUNCATED = 4
MALFORMED = 5
UNSUPPORTED_LINK_TYPE = 6
#: Skip reason names, indexed by the codes above (code 0 is "became a segment").
REASONS: tuple[str, ...] = (
    "",
    "non_ip",
    "non_tcp",
    "ip_fragment",
    "truncated",
    "malformed",
    "unsupported_link_type",
)

_ETH_IPV4 = 0x0800
_ETH_IPV6 = 0x86DD
_ETH_VLANS = (0x8100, 0x88A8, 0x9100)  # 802.1Q, 802.1ad, the pre-standard QinQ tag
_AF_INET = 2
_AF_INET6 = (24, 28, 30)  # NetBSD/OpenBSD, FreeBSD, macOS: DLT_NULL carries the host's own value
_IPPROTO_TCP = 6
_IPV6_FRAGMENT = 44
_IPV6_AH = 51
_IPV6_WALKED = (0, 43, 60, _IPV6_AH)  # hop-by-hop, routing, destination options, AH
_V4_MAPPED = np.uint64(0xFFFF << 32)
_FLAG_BITS = np.uint8(0x3F)  # FIN..URG; ECE/CWR are ECN bookkeeping no later stage looks at


class _Window:
    """Typed views of one window: single bytes, unaligned big-endian fields, k-byte rows."""

    __slots__ = ("b", "data", "rows20", "rows40", "u16", "u32")

    def __init__(self, data: bytes) -> None:
        self.data = data
        b = np.frombuffer(data, np.uint8)
        self.b = b
        self.u16 = np.ndarray((b.size - 1,), np.dtype(">u2"), buffer=b, strides=(1,))
        self.u32 = np.ndarray((b.size - 3,), np.dtype(">u4"), buffer=b, strides=(1,))
        self.rows20 = _row_view(b, 20)
        self.rows40 = _row_view(b, 40)


def _row_view(b: U8, k: int) -> npt.NDArray[np.void]:
    return np.ndarray((b.size - k + 1,), np.dtype((np.void, k)), buffer=b, strides=(1,))


def _gather(rows: npt.NDArray[np.void], k: int, at: I64) -> U8:
    """The k bytes at each offset in ``at``, as an (n, k) uint8 array."""
    return rows[at].view(np.uint8).reshape(-1, k)


def _is_vlan(etype: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    tagged: npt.NDArray[np.bool_] = etype == _ETH_VLANS[0]
    tagged |= etype == _ETH_VLANS[1]
    tagged |= etype == _ETH_VLANS[2]
    return tagged


def _family_of_ethertype(etype: npt.NDArray[np.int64]) -> U8:
    fam = np.zeros(etype.size, np.uint8)
    fam[etype == _ETH_IPV4] = 4
    fam[etype == _ETH_IPV6] = 6
    return fam


def _family_of_af(af: npt.NDArray[np.int64]) -> U8:
    fam = np.zeros(af.size, np.uint8)
    fam[af == _AF_INET] = 4
    fam[(af == _AF_INET6[0]) | (af == _AF_INET6[1]) | (af == _AF_INET6[2])] = 6
    return fam


def _link_layer(w: _Window, lt: LinkType | None, start: I64, end: I64) -> tuple[I64, U8, U8]:
    """Where the IP header starts, which IP it is (4, 6, 0 = not IP) and any skip reason."""
    n = start.size
    reason = np.zeros(n, np.uint8)
    if lt is None:
        reason[:] = UNSUPPORTED_LINK_TYPE
        return start, np.zeros(n, np.uint8), reason
    l3 = start + lt.header_len if lt.header_len else start
    reason[l3 > end] = TRUNCATED
    framing = lt.framing
    if framing is Framing.ETHERTYPE:
        etype = w.u16[start + lt.proto_at].astype(np.int64)
        tagged = _is_vlan(etype)
        if tagged.any():
            l3 = l3.copy()
            _strip_vlans(w, l3, end, etype, tagged, reason)
        fam = _family_of_ethertype(etype)
    elif framing is Framing.IP_VERSION:
        reason[l3 >= end] = TRUNCATED
        nibble = w.b[l3] >> 4
        fam = np.zeros(n, np.uint8)
        fam[nibble == 4] = 4
        fam[nibble == 6] = 6
        reason[(fam == 0) & (reason == OK)] = MALFORMED
    elif framing is Framing.AF_NETWORK_ORDER:
        fam = _family_of_af(w.u32[start].astype(np.int64))
    elif framing is Framing.AF_HOST_ORDER:
        af = w.u32[start].astype(np.int64)
        # Either byte order: a little-endian host's small AF value reads as >= 2**24 big-endian.
        swapped = af > 0xFFFF
        af[swapped] = af[swapped].astype(np.uint32).byteswap().astype(np.int64)
        fam = _family_of_af(af)
    elif framing is Framing.FIXED_IPV4:
        fam = np.full(n, 4, np.uint8)
    else:
        fam = np.full(n, 6, np.uint8)
    reason[(fam == 0) & (reason == OK)] = NON_IP
    return l3, fam, reason


def _strip_vlans(
    w: _Window,
    l3: I64,
    end: I64,
    etype: npt.NDArray[np.int64],
    tagged: npt.NDArray[np.bool_],
    reason: U8,
) -> None:
    """Step over 802.1Q/802.1ad tags, any number deep, updating ``l3`` and ``etype`` in place."""
    idx = np.flatnonzero(tagged & (reason == OK))
    while idx.size:
        at = l3[idx]
        cut = at + 4 > end[idx]
        if cut.any():
            reason[idx[cut]] = TRUNCATED
            idx = idx[~cut]
            at = at[~cut]
        etype[idx] = w.u16[at + 2]
        l3[idx] = at + 4
        idx = idx[_is_vlan(etype[idx])]


class _Columns:
    """Per-packet results of the IP stage, filled family by family."""

    __slots__ = ("dst_hi", "dst_lo", "ip_end", "src_hi", "src_lo", "tcp_off")

    def __init__(self, n: int) -> None:
        self.tcp_off = np.zeros(n, np.int64)
        self.ip_end = np.zeros(n, np.int64)
        self.src_hi = np.zeros(n, np.uint64)
        self.src_lo = np.zeros(n, np.uint64)
        self.dst_hi = np.zeros(n, np.uint64)
        self.dst_lo = np.zeros(n, np.uint64)


def _rows_where(mask: npt.NDArray[np.bool_]) -> I64 | slice:
    """Row selector for ``mask``: a plain slice when every row is selected (the common case),
    so selecting and scattering become views and whole-array writes instead of copies."""
    rows = np.flatnonzero(mask)
    return slice(None) if rows.size == mask.size else rows


def _index(rows: I64 | slice, n: int) -> I64:
    return np.arange(n) if isinstance(rows, slice) else rows


def _ipv4(w: _Window, i: I64 | slice, l3: I64, end: I64, reason: U8, out: _Columns) -> None:
    s = l3[i]
    e = end[i]
    hdr = _gather(w.rows20, 20, s)
    vihl = hdr[:, 0]
    ihl = (vihl & 15).astype(np.int64) << 2
    h16 = hdr.view(">u2")
    total = h16[:, 1].astype(np.int64)
    # Total length 0 is what TSO-offloaded sends look like on the sending host: trust the capture.
    tso = total == 0
    if tso.any():
        total[tso] = (e - s)[tso]
    short = total < ihl + 20
    fragment = (h16[:, 3] & 0x3FFF) != 0  # MF set or fragment offset != 0
    not_tcp = hdr[:, 9] != _IPPROTO_TCP
    broken = ((vihl >> 4) != 4) | (ihl < 20)
    cut = s + 20 > e
    if (short | fragment | not_tcp | broken | cut).any():
        r = np.zeros(s.size, np.uint8)
        # Later assignments win: the most basic fault is the one reported.
        r[short] = MALFORMED
        r[fragment] = IP_FRAGMENT
        r[not_tcp] = NON_TCP
        r[broken] = MALFORMED
        r[cut] = TRUNCATED
        reason[i] = r
    out.tcp_off[i] = s + ihl
    out.ip_end[i] = s + total
    h32 = hdr.view(">u4")
    out.src_lo[i] = h32[:, 3].astype(np.uint64) | _V4_MAPPED
    out.dst_lo[i] = h32[:, 4].astype(np.uint64) | _V4_MAPPED


def _ipv6(w: _Window, i: I64 | slice, l3: I64, end: I64, reason: U8, out: _Columns) -> None:
    s = l3[i]
    e = end[i]
    hdr = _gather(w.rows40, 40, s)
    plen = hdr.view(">u2")[:, 2].astype(np.int64)
    nh = hdr[:, 6]
    tcp = s + 40
    not_tcp = nh != _IPPROTO_TCP
    broken = (hdr[:, 0] >> 4) != 6
    cut = s + 40 > e
    if (not_tcp | broken | cut).any():
        r = np.zeros(s.size, np.uint8)
        r[not_tcp] = NON_TCP
        r[nh == _IPV6_FRAGMENT] = IP_FRAGMENT
        walk = (nh == _IPV6_WALKED[0]) | (nh == _IPV6_WALKED[1]) | (nh == _IPV6_WALKED[2])
        walk |= nh == _IPV6_WALKED[3]
        r[walk] = OK
        r[broken] = MALFORMED
        r[cut] = TRUNCATED
        for k in np.flatnonzero(walk & (r == OK)).tolist():
            r[k], tcp[k] = _walk_ipv6_extensions(w.data, int(tcp[k]), int(nh[k]), int(e[k]))
        reason[i] = r
    # Payload length 0: a jumbogram or a TSO send; either way the capture is the best truth left.
    tso = plen == 0
    if tso.any():
        plen[tso] = (e - s - 40)[tso]
    out.tcp_off[i] = tcp
    out.ip_end[i] = s + 40 + plen
    a = hdr.view(">u8").astype(np.uint64)
    out.src_hi[i] = a[:, 1]
    out.src_lo[i] = a[:, 2]
    out.dst_hi[i] = a[:, 3]
    out.dst_lo[i] = a[:, 4]


def _walk_ipv6_extensions(data: bytes, p: int, nh: int, end: int) -> tuple[int, int]:
    """Follow the extension header chain from ``p``: (reason, offset of the TCP header)."""
    while nh in _IPV6_WALKED:
        if p + 2 > end:
            return TRUNCATED, p
        length = (data[p + 1] + 2) * 4 if nh == _IPV6_AH else (data[p + 1] + 1) * 8
        nh = data[p]
        p += length
    if nh == _IPPROTO_TCP:
        return OK, p
    if nh == _IPV6_FRAGMENT:
        return IP_FRAGMENT, p
    return NON_TCP, p


def decode(
    data: bytes,
    frame: I64,
    ts_ns: I64,
    start: I64,
    caplen: I64,
    link: int | I64,
) -> tuple[SegmentBatch, I64]:
    """Decode the packets of one window: (segments, count of packets per :data:`REASONS` code).

    ``data`` must end with :data:`PAD` bytes beyond the last packet. ``link`` is the link type of
    every packet, or one per packet (pcapng with several interfaces).
    """
    w = _Window(data)
    n = frame.size
    end = start + caplen
    if isinstance(link, int):
        l3, fam, reason = _link_layer(w, SUPPORTED.get(link), start, end)
    else:
        kinds = np.unique(link)
        if kinds.size == 1:
            l3, fam, reason = _link_layer(w, SUPPORTED.get(int(kinds[0])), start, end)
        else:
            l3 = np.zeros(n, np.int64)
            fam = np.zeros(n, np.uint8)
            reason = np.zeros(n, np.uint8)
            for kind in kinds.tolist():
                j = np.flatnonzero(link == kind)
                l3[j], fam[j], reason[j] = _link_layer(w, SUPPORTED.get(kind), start[j], end[j])

    cols = _Columns(n)
    usable = reason == OK
    i4 = _rows_where((fam == 4) & usable)
    if isinstance(i4, slice):
        _ipv4(w, i4, l3, end, reason, cols)  # every packet is IPv4 so far: no index arrays
    else:
        if i4.size:
            _ipv4(w, i4, l3, end, reason, cols)
        i6 = _rows_where((fam == 6) & usable)
        if isinstance(i6, slice) or i6.size:
            _ipv6(w, i6, l3, end, reason, cols)

    ok = _rows_where(reason == OK)
    tcp = cols.tcp_off[ok]
    cut = tcp + 20 > end[ok]
    if cut.any():
        rows = _index(ok, n)
        reason[rows[cut]] = TRUNCATED
        ok = rows[~cut]
        tcp = tcp[~cut]
    th = _gather(w.rows20, 20, tcp)
    doff = (th[:, 12] >> 4).astype(np.int64) << 2
    payload_len = cols.ip_end[ok] - tcp - doff
    bad = (doff < 20) | (payload_len < 0)
    if bad.any():
        rows = _index(ok, n)
        reason[rows[bad]] = MALFORMED
        good = ~bad
        ok = rows[good]
        tcp = tcp[good]
        th = th[good]
        doff = doff[good]
        payload_len = payload_len[good]
    payload_off = tcp + doff
    captured = np.minimum(np.maximum(end[ok] - payload_off, 0), payload_len)
    h16 = th.view(">u2")
    h32 = th.view(">u4")
    batch = SegmentBatch(
        frame=frame[ok],
        ts_ns=ts_ns[ok],
        ip_version=fam[ok],
        src_hi=cols.src_hi[ok],
        src_lo=cols.src_lo[ok],
        dst_hi=cols.dst_hi[ok],
        dst_lo=cols.dst_lo[ok],
        sport=h16[:, 0].astype(np.uint16),
        dport=h16[:, 1].astype(np.uint16),
        seq=h32[:, 1].astype(np.uint32),
        ack=h32[:, 2].astype(np.uint32),
        flags=th[:, 13] & _FLAG_BITS,
        window=h16[:, 7].astype(np.uint16),
        payload_len=payload_len.astype(np.uint32),
        captured_len=captured.astype(np.uint32),
        payload_off=payload_off,
        data=data,
    )
    counts: I64 = np.bincount(reason, minlength=len(REASONS)).astype(np.int64)
    return batch, counts

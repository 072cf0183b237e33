"""Zeek's ``conn_state`` and ``history`` from a connection's packets: the reference for
``crates/kaflow-core/src/zeek.rs``, written again from Zeek's sources (``TCPSessionAdapter.cc``:
the endpoint states, ``update_history``, ``update_last_seq``, ``update_window``;
``base/protocols/conn/main.zeek``: ``conn_state``), the plain way.

The differences from Zeek that kaflow keeps on purpose are the core's: the originator is always
the client, checksums are not checked (``zeek -C``), no ``G``, sizes are payload bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
TOO_LARGE = 1_048_576

INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = range(7)


def _delta(a: int, b: int) -> int:
    """``a - b`` as a signed 32-bit number."""
    d = (a - b) % 2**32
    return d - 2**32 if d >= 2**31 else d


@dataclass
class _Endpoint:
    state: int = INACTIVE
    prev: int = INACTIVE
    start: int = 0
    last: int = 0
    seen: set[str] = field(default_factory=set)
    last_syn: int = 0
    last_fin: int = 0
    last_rst: int = 0
    rxmit: list[int] = field(default_factory=lambda: [0, 1])
    zero_window: list[int] = field(default_factory=lambda: [0, 1])
    bytes: int = 0

    def set(self, state: int) -> None:
        self.prev, self.state = self.state, state

    @property
    def inactive(self) -> bool:
        return self.state in (INACTIVE, PARTIAL)


@dataclass
class Zeek:
    orig: _Endpoint = field(default_factory=_Endpoint)
    resp: _Endpoint = field(default_factory=_Endpoint)
    history: str = ""

    def _add(self, code: str, orig: bool) -> None:
        self.history += code if orig else code.lower()

    def _once(self, e: _Endpoint, kind: str, code: str, orig: bool) -> bool:
        """Zeek's ``CheckHistory``: the letter the first time (False), True after that."""
        if kind in e.seen:
            return True
        e.seen.add(kind)
        self._add(code, orig)
        return False

    def _scaled(self, count: list[int], code: str, orig: bool) -> None:
        count[0] += 1
        if count[0] == count[1]:
            self._add(code, orig)
            count[1] *= 10

    def packet(self, orig: bool, flags: int, seq: int, ack: int, window: int, length: int) -> None:
        e, p = (self.orig, self.resp) if orig else (self.resp, self.orig)
        syn, fin, rst = bool(flags & SYN), bool(flags & FIN), bool(flags & RST)
        seg_len = int(syn) + int(fin) + (0 if rst else length)
        seq_end = (seq + seg_len) % 2**32

        # init_endpoint
        if e.state == INACTIVE:
            if syn:
                e.start, e.last = seq, seq_end
            else:
                e.start, e.last = (seq - 1) % 2**32, seq
        elif e.state in (SYN_SENT, SYN_ACK_SENT):
            if syn and seq != e.start:
                e.start, e.last = seq, seq_end
        elif e.state in (ESTABLISHED, PARTIAL):
            if syn:
                e.start, e.last = seq, seq_end
        elif e.state == RESET and syn and e.prev == INACTIVE:
            e.start, e.last = seq, seq_end

        # update_history
        bits = int(syn) + int(fin) + int(rst)
        if bits > 1:
            if fin and rst:
                self._once(e, "I", "I", orig)
            else:
                self._once(e, "Q", "Q", orig)
        elif bits == 1:
            if syn:
                code = "H" if flags & ACK else "S"
                if self._once(e, "SYN", code, orig) and seq != e.last_syn:
                    self._add(code, orig)
                e.last_syn = seq
            if fin:
                at = (seq + length) % 2**32
                if self._once(e, "F", "F", orig) and at != e.last_fin:
                    self._add("F", orig)
                e.last_fin = at
            if rst:
                if self._once(e, "R", "R", orig) and seq != e.last_rst:
                    self._add("R", orig)
                e.last_rst = seq
        elif length:
            self._once(e, "D", "D", orig)
        elif flags & ACK:
            self._once(e, "A", "A", orig)

        # update_window
        if window == 0 and not rst and p.state != CLOSED and e.state != RESET:
            self._scaled(e.zero_window, "W", orig)

        if flags & ACK and p.state == INACTIVE:
            p.start = p.last = (ack - 1) % 2**32

        # update_last_seq
        delta = _delta(seq_end, e.last)
        if (syn or rst) and abs(delta) > TOO_LARGE:
            pass
        elif fin and e.last == (e.start + 1) % 2**32:
            e.last = seq_end
        elif e.state == RESET:
            pass
        elif delta > 0:
            e.last = seq_end
        elif length > 0:
            self._scaled(e.rxmit, "T", orig)

        self._transition(e, p, orig, flags, length)
        if not rst:
            e.bytes += length

    def _transition(self, e: _Endpoint, p: _Endpoint, orig: bool, flags: int, length: int) -> None:
        syn, fin, rst, ack = (bool(flags & f) for f in (SYN, FIN, RST, ACK))
        if e.state == INACTIVE:
            if syn:
                if orig:
                    e.set(SYN_ACK_SENT if ack else SYN_SENT)
                else:
                    if p.state == SYN_SENT:
                        p.set(ESTABLISHED)
                    e.set(ESTABLISHED)
            if fin:
                e.set(CLOSED)
            if rst:
                e.set(RESET)
            if e.state == INACTIVE:
                if not orig and length == 0 and self.orig.state == SYN_SENT:
                    pass
                elif ack and p.state == ESTABLISHED:
                    e.set(ESTABLISHED)
                else:
                    e.set(PARTIAL)
        elif e.state in (SYN_SENT, SYN_ACK_SENT):
            if fin:
                e.set(CLOSED)
            if rst:
                e.set(RESET)
        elif e.state in (ESTABLISHED, PARTIAL):
            if syn and e.state == PARTIAL and p.state == INACTIVE and not ack:
                e.set(SYN_SENT)
            if fin and not rst:
                e.set(CLOSED)
                if p.state == RESET and p.prev == CLOSED:
                    p.set(CLOSED)
            if rst:
                e.set(RESET)
        elif e.state == CLOSED and rst and p.state != CLOSED:
            e.set(RESET)

    def state(self) -> str:
        """``conn_state`` from ``base/protocols/conn/main.zeek``, line for line."""
        o, r = self.orig, self.resp
        os, rs = o.state, r.state
        if rs == RESET:
            if os in (SYN_SENT, SYN_ACK_SENT) or (os == RESET and o.bytes == 0 and r.bytes == 0):
                return "REJ"
            return "RSTRH" if o.inactive else "RSTR"
        if os == RESET:
            if r.inactive:
                return "RSTOS0" if re.fullmatch(r"\^?S[^HAFGIQ]*R.*", self.history) else "OTH"
            return "RSTO"
        if rs == CLOSED and os == CLOSED:
            return "SF"
        if os == CLOSED:
            return "SH" if r.inactive else "S2"
        if rs == CLOSED:
            return "SHR" if o.inactive else "S3"
        if os == SYN_SENT and rs == INACTIVE:
            return "S0"
        if os == ESTABLISHED and rs == ESTABLISHED:
            return "S1"
        return "OTH"

"""The oracle's TCP values: what a reassembled connection is, as plain Python.

These are the values ``tests/reference.py`` builds one packet at a time and the oracle's
labelling (``tests/oracle/label.py``) reads. They mirror the core's `flow.rs` field for field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# TCP flag bits as they sit in the 13th byte of the TCP header.
FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20


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
    # Zeek's conn_state and history, from the packets (tests/oracle/zeek.py)
    zeek_state: str = ""
    zeek_history: str = ""
    # the client's first segment after the server's SYN(-ACK): its ACK of it, or data
    handshake_ack_ns: int | None = None


EMPTY_FLOW = Flow(EMPTY_STREAM, None, 0, None, None, 0, 0, 0, 0, None)

"""HTTP/1.x message framing over one direction's reassembled byte stream.

Only where each message *starts* matters to kaflow, and that is exactly what naive tools get
wrong: a POST body that contains ``"GET "`` is not a request, and a response to HEAD has no body
even when it says ``Content-Length``. So messages are delimited the way an HTTP/1.1 peer does it
(RFC 9112 §6): Content-Length, chunked transfer coding, no body for HEAD / 1xx / 204 / 304, and
"until close" for a response with neither.

Captures are imperfect, so the stream may have holes (lost packets) or bytes whose count is known
but whose values are not (a small snaplen). Where the framing cannot be followed, the parser falls
back to *bursts*: a new message is assumed where this side starts sending again after the other
side has sent data. Such messages are marked ``parsed=False`` and carry no method or status.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pcapkit.tcp import Chunk

MAX_HEAD = 64 * 1024  # longest header block we look for; nginx's own default limit is far lower
_REQUEST_LINE = re.compile(rb"([A-Z][A-Z0-9_-]{0,31}) (\S{1,8192}) HTTP/(\d)\.(\d)\r?$")
_STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d) (\d{3})(?: [^\r\n]*)?\r?$")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?\r?$")

Kind = Literal["request", "response"]


@dataclass(frozen=True, slots=True)
class HttpMessage:
    """The start of one HTTP message in a stream, and what its head says."""

    kind: Kind
    offset: int
    ts_ns: int
    frame: int
    parsed: bool  # False: inferred from a data burst, no bytes to read
    method: str | None = None
    target: str | None = None
    host: str | None = None
    status: int | None = None
    connection_close: bool = False
    length: int | None = None  # head + body, when the framing determined it


@dataclass(frozen=True, slots=True)
class HttpNote:
    """Something in the stream that is not well-formed HTTP/1.x, where it was."""

    offset: int
    ts_ns: int
    frame: int
    what: str


class _Stream:
    """Random access to a direction's captured bytes by stream offset."""

    def __init__(self, chunks: Sequence[Chunk]) -> None:
        self.chunks = chunks
        self.starts = [c.offset for c in chunks]
        self.end = chunks[-1].end if chunks else 0

    def index(self, pos: int) -> int | None:
        """Index of the chunk holding stream offset ``pos``, or None in a gap."""
        i = bisect_right(self.starts, pos) - 1
        if i >= 0 and pos < self.chunks[i].end:
            return i
        return None

    def next_start(self, pos: int) -> int | None:
        """Offset of the first chunk starting after ``pos``."""
        i = bisect_right(self.starts, pos)
        return self.starts[i] if i < len(self.starts) else None

    def read(self, pos: int, limit: int) -> bytes:
        """Captured bytes from ``pos`` on, as far as they are contiguous, at most ``limit``."""
        i = self.index(pos)
        if i is None:
            return b""
        c = self.chunks[i]
        k = pos - c.offset
        if k >= len(c.data):
            return b""
        first = c.data[k : k + limit]
        if len(first) >= limit or len(c.data) < c.length:
            return first  # enough, or this chunk's tail was not captured
        parts = [first]
        have = len(first)
        i += 1
        while have < limit and i < len(self.chunks):
            nxt = self.chunks[i]
            if nxt.offset != self.chunks[i - 1].end:
                break  # a hole
            part = nxt.data[: limit - have]
            parts.append(part)
            have += len(part)
            if len(nxt.data) < nxt.length:
                break
            i += 1
        return b"".join(parts)

    def where(self, pos: int) -> tuple[int, int]:
        """(ts_ns, frame) of the packet that carried stream offset ``pos``."""
        i = self.index(pos)
        if i is None:
            i = max(0, bisect_right(self.starts, pos) - 1)
        c = self.chunks[i]
        return c.ts_ns, c.frame


def _head(buf: bytes) -> tuple[int, list[bytes]] | None:
    """Length of the header block (through the blank line) and its lines, if it is complete."""
    end = buf.find(b"\r\n\r\n")
    sep = 4
    if end < 0:
        end = buf.find(b"\n\n")
        sep = 2
        if end < 0:
            return None
    return end + sep, buf[:end].split(b"\n")


def _headers(lines: list[bytes]) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if colon:
            key = name.strip().lower()
            val = value.strip()
            out[key] = out[key] + b", " + val if key in out else val
    return out


class _Framer:
    """Walks one direction's stream message by message, falling back to bursts when blind."""

    def __init__(
        self, kind: Kind, chunks: Sequence[Chunk], bursts: Sequence[int], midstream: bool
    ) -> None:
        self.kind: Kind = kind
        self.midstream = midstream
        self.s = _Stream(chunks)
        self.bursts = bursts
        self.messages: list[HttpMessage] = []
        self.notes: list[HttpNote] = []

    def note(self, pos: int, what: str) -> None:
        ts, frame = self.s.where(pos)
        self.notes.append(HttpNote(pos, ts, frame, what))

    def next_burst(self, pos: int) -> int:
        """Where the next burst starts after ``pos`` (the stream end if none)."""
        i = bisect_right(self.bursts, pos)
        return self.bursts[i] if i < len(self.bursts) else self.s.end

    def blind(self, pos: int) -> int:
        """Record a message we cannot read at ``pos``; resume at the next burst."""
        ts, frame = self.s.where(pos)
        self.messages.append(HttpMessage(self.kind, pos, ts, frame, parsed=False))
        return self.next_burst(pos)

    def chunked_end(self, pos: int) -> int | None:
        """End of a chunked body starting at ``pos``; None if the bytes needed are missing."""
        while True:
            line = self.s.read(pos, 1024)
            nl = line.find(b"\n")
            if nl < 0:
                return None
            m = _CHUNK_SIZE.match(line[:nl])
            if m is None:
                return None
            size = int(m.group(1), 16)
            pos += nl + 1
            if size == 0:
                # trailer section, ends with an empty line
                while True:
                    t = self.s.read(pos, 8192)
                    tn = t.find(b"\n")
                    if tn < 0:
                        return None
                    pos += tn + 1
                    if t[:tn].strip() == b"":
                        return pos
            pos += size
            crlf = self.s.read(pos, 2)
            if crlf.startswith(b"\r\n"):
                pos += 2
            elif crlf.startswith(b"\n"):
                pos += 1
            elif len(crlf) == 0 and self.s.index(pos) is not None:
                pos += 2  # bytes present but not captured: trust the framing
            else:
                return None

    def run(self, methods: Sequence[str | None] = ()) -> None:
        """Frame the whole stream. ``methods`` are the requests' methods, for responses to HEAD."""
        s = self.s
        pos = s.chunks[0].offset if s.chunks else 0
        answered = 0  # final (non-1xx) responses seen, to pick the matching request's method
        while pos < s.end:
            if s.index(pos) is None:  # in a gap the capture never saw
                nxt = s.next_start(pos)
                if nxt is None:
                    break
                self.note(pos, f"{nxt - pos} bytes missing from the capture")
                pos = nxt
                continue
            buf = s.read(pos, MAX_HEAD)
            if not buf:
                pos = self.blind(pos)
                continue
            nl = buf.find(b"\n")
            first = buf[:nl] if nl >= 0 else b""
            m = (_REQUEST_LINE if self.kind == "request" else _STATUS_LINE).match(first)
            if m is None:
                if self.midstream and not self.messages and pos == s.chunks[0].offset:
                    # the capture began inside a message: its start was never seen
                    self.note(pos, "capture began mid-message")
                    pos = self.next_burst(pos)
                    continue
                if nl < 0 and s.end - pos <= len(buf) and _could_start(self.kind, buf):
                    self.note(pos, "stream ends inside a message's first line")
                    self.blind(pos)
                    break
                self.note(pos, f"not an HTTP/1.x {self.kind} line: {first[:40]!r}")
                pos = self.blind(pos)
                continue
            ts, frame = s.where(pos)
            head = _head(buf)
            hdrs = _headers(head[1]) if head else {}
            conn_hdr = hdrs.get(b"connection", b"").lower()
            close = b"close" in conn_hdr
            if self.kind == "request":
                method = m.group(1).decode("ascii")
                target = m.group(2).decode("latin-1")
                host_b = hdrs.get(b"host")
                msg_method: str | None = method
                status = None
            else:
                method, target, host_b, msg_method = "", "", None, None
                status = int(m.group(3))
                if m.group(1) == b"1" and m.group(2) == b"0" and b"keep-alive" not in conn_hdr:
                    close = True  # HTTP/1.0 closes unless it asks to keep alive
            host = host_b.decode("latin-1") if host_b else None
            length: int | None = None
            nxt_pos: int | None = None
            if head is not None:
                hlen = head[0]
                body: int | None = 0
                te = hdrs.get(b"transfer-encoding", b"").lower()
                cl = hdrs.get(b"content-length")
                if status is not None:
                    req_method = methods[answered] if answered < len(methods) else None
                    if 100 <= status < 200 or req_method == "HEAD" or status in (204, 304):
                        body = 0
                    elif te and b"chunked" in te:
                        body = None
                    elif cl is not None:
                        body = _content_length(cl)
                    else:
                        body = -1  # read until close
                elif te and b"chunked" in te:
                    body = None
                elif cl is not None:
                    body = _content_length(cl)
                if body is None:
                    end = self.chunked_end(pos + hlen)
                    if end is None:
                        nxt_pos = self.next_burst(pos)
                    else:
                        length, nxt_pos = end - pos, end
                elif body == -1:
                    length, nxt_pos = s.end - pos, s.end
                elif body < -1:
                    self.note(pos, "unreadable Content-Length")
                    nxt_pos = self.next_burst(pos)
                else:
                    length, nxt_pos = hlen + body, pos + hlen + body
            else:
                if len(buf) >= MAX_HEAD:
                    self.note(pos, f"header block longer than {MAX_HEAD} bytes")
                nxt_pos = self.next_burst(pos)
            self.messages.append(
                HttpMessage(
                    self.kind,
                    pos,
                    ts,
                    frame,
                    parsed=True,
                    method=msg_method,
                    target=target if self.kind == "request" else None,
                    host=host,
                    status=status,
                    connection_close=close,
                    length=length,
                )
            )
            if status is not None:
                if status == 101:
                    break  # the connection switched protocols: what follows is not HTTP/1.x
                if status >= 200:
                    answered += 1
            pos = max(nxt_pos, pos + 1)


def _could_start(kind: Kind, buf: bytes) -> bool:
    """Whether ``buf`` may be the beginning of a start line the capture cut off."""
    if kind == "response":
        return buf.startswith(b"HTTP/") or b"HTTP/".startswith(buf)
    return buf[:1].isupper() and buf.isascii() and all(32 <= b < 127 for b in buf)


def _content_length(value: bytes) -> int:
    """Content-Length as an int; -2 when it is not a number (an explicit "unreadable")."""
    first = value.split(b",")[0].strip()
    return int(first) if first.isdigit() else -2


def frame_requests(
    chunks: Sequence[Chunk], bursts: Sequence[int] = (), *, midstream: bool = False
) -> tuple[list[HttpMessage], list[HttpNote]]:
    """The requests in a client→server stream, in order.

    ``midstream``: the capture began mid-connection, so unreadable leading bytes are the tail of
    an earlier message, not a request.
    """
    f = _Framer("request", chunks, bursts, midstream)
    f.run()
    return f.messages, f.notes


def frame_responses(
    chunks: Sequence[Chunk],
    methods: Sequence[str | None],
    bursts: Sequence[int] = (),
    *,
    midstream: bool = False,
) -> tuple[list[HttpMessage], list[HttpNote]]:
    """The responses in a server→client stream, in order; ``methods`` frame responses to HEAD."""
    f = _Framer("response", chunks, bursts, midstream)
    f.run(methods)
    return f.messages, f.notes


def burst_starts(chunks: Sequence[Chunk], other: Sequence[Chunk]) -> list[int]:
    """Offsets where this side starts sending again after the other side sent data.

    That is where a new message most likely starts when its bytes cannot be read: nginx sends a
    request, the upstream answers, nginx sends the next one.
    """
    if not chunks:
        return []
    other_ts = sorted(c.ts_ns for c in other)
    out: list[int] = []
    j = 0
    prev_ts = chunks[0].ts_ns
    for c in chunks[1:]:
        # is there other-side data strictly after the previous chunk and up to this one?
        while j < len(other_ts) and other_ts[j] <= prev_ts:
            j += 1
        if j < len(other_ts) and other_ts[j] <= c.ts_ns:
            out.append(c.offset)
        prev_ts = max(prev_ts, c.ts_ns)
    return out

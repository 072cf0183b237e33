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
from typing import Any, Literal

from tests.oracle.flows import EMPTY_STREAM, Chunk, Stream

MAX_HEAD = 64 * 1024  # longest header block we look for; nginx's own default limit is far lower
_REQUEST_LINE = re.compile(rb"([A-Z][A-Z0-9_-]{0,31}) (\S{1,8192}) HTTP/(\d)\.(\d)\r?$")
_LOOSE_REQUEST_LINE = re.compile(rb"([A-Z][A-Z0-9_-]{0,31}) (\S{1,8192})(?!\S)(.*?)\r?$")


def _loose_request_line(line: bytes) -> tuple[str, str, bool] | None:
    """A request line :data:`_REQUEST_LINE` refuses that still says what was asked: method,
    target, and whether it is HTTP/0.9 (``GET /path`` and nothing after) rather than a line with
    a broken version or a space in its target (``HTTP/`` somewhere after the target). Anything
    else is not taken for a request: body bytes that start with a capital word must not be."""
    m = _LOOSE_REQUEST_LINE.match(line)
    if m is None:
        return None
    method, target, after = m.groups()
    if not after:
        if method == b"GET" and target.startswith(b"/"):
            return "GET", target.decode("latin-1"), True
        return None
    if b"HTTP/" not in after:
        return None
    return method.decode("ascii"), target.decode("latin-1"), False


_STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d) (\d{3})(?: [^\r\n]*)?\r?$")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})[ \t]*(?:;[^\r\n]*)?\r?$")
# What the first bytes of a request line must look like (a method, then a space), checked on a
# short peek before reading a whole head: garbage is rejected without copying 64 KiB per burst.
_METHOD_START = re.compile(rb"[A-Z][A-Z0-9_-]{0,31}(?: |\Z)")
_PEEK = 64
_MAX_LINE = 8192 + 64  # the longest start line the regexes accept, and then some
# A TLS record header (change_cipher_spec, alert, handshake, application_data; SSL 3.0..TLS 1.3)
# and HTTP/2's client preface and first server frame (SETTINGS on stream 0).
_TLS_RECORD = re.compile(rb"[\x14-\x17]\x03[\x00-\x04]")
_H2_PREFACE = b"PRI * HTTP/2.0\r\n"
_H2_SETTINGS = re.compile(rb"\x00[\x00-\xff]{2}\x04[\x00\x01]\x00\x00\x00\x00", re.DOTALL)

Kind = Literal["request", "response"]


@dataclass(slots=True)
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

    def __init__(self, stream: Stream) -> None:
        self.st = stream
        self.starts = stream.starts
        self.end = stream.end
        self.n = len(stream.starts)
        # the usual case: no holes, everything captured, so offset -> data index is a subtraction
        self.base = stream.starts[0] if stream.contiguous and self.n else None
        self._run_last: list[int] | None = None  # see :meth:`run_last`

    def run_last(self) -> list[int]:
        """For each piece, the last piece of its run: pieces that follow each other without a
        hole, all captured but maybe the last. A run's bytes are one slice of ``data``, so a read
        is one slice too (walking piece by piece made a flood of one-byte segments with a single
        hole cost 64 Ki steps per message head: quadratic)."""
        if self._run_last is None:
            st = self.st
            last = [0] * self.n
            j = self.n - 1
            for i in range(self.n - 1, -1, -1):
                if (
                    i == self.n - 1
                    or st.captured[i] != st.lengths[i]
                    or st.starts[i + 1] != st.starts[i] + st.lengths[i]
                ):
                    j = i
                last[i] = j
            self._run_last = last
        return self._run_last

    def index(self, pos: int) -> int | None:
        """Index of the piece holding stream offset ``pos``, or None in a gap."""
        i = bisect_right(self.starts, pos) - 1
        if i >= 0 and pos < self.starts[i] + self.st.lengths[i]:
            return i
        return None

    def next_start(self, pos: int) -> int | None:
        """Offset of the first piece starting after ``pos``."""
        i = bisect_right(self.starts, pos)
        return self.starts[i] if i < self.n else None

    def read(self, pos: int, limit: int) -> bytes:
        """Captured bytes from ``pos`` on, as far as they are contiguous, at most ``limit``."""
        st = self.st
        if self.base is not None:
            k = pos - self.base
            return st.data[k : k + limit] if k >= 0 else b""
        i = self.index(pos)
        if i is None:
            return b""
        k = pos - st.starts[i]
        if k >= st.captured[i]:
            return b""
        j = self.run_last()[i]
        a = st.data_starts[i] + k
        return st.data[a : min(a + limit, st.data_starts[j] + min(st.captured[j], st.lengths[j]))]

    def head_at(self, pos: int) -> bytes | None:
        """The message head starting at ``pos`` when it is all there, found without copying more.

        None when the fast lookup cannot tell (a hole, uncaptured bytes, or no end of head in
        reach): the caller then reads progressively.
        """
        if self.base is None:
            return None
        k = pos - self.base
        data = self.st.data
        end = data.find(b"\r\n\r\n", k, k + MAX_HEAD)
        return data[k : end + 4] if end >= 0 else None

    def where(self, pos: int) -> tuple[int, int]:
        """(ts_ns, frame) of the packet that carried stream offset ``pos``."""
        i = self.index(pos)
        if i is None:
            i = max(0, bisect_right(self.starts, pos) - 1)
        return self.st.ts[i], self.st.frames[i]


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


def _headers(lines: list[bytes]) -> tuple[dict[bytes, bytes], bool, bool]:
    """The header lines' values by lower-case name (a repeated name's values joined by ", "),
    whether a line was folded onto the one before (RFC 9112 §5.2: unfolded with one space), and
    whether the first header line was indented (RFC 9112 §2.2: not read). A line starting with a
    space or a tab is never a header of its own."""
    out: dict[bytes, bytes] = {}
    folded = indented = False
    key: bytes | None = None
    for i, line in enumerate(lines[1:]):
        if line[:1] in (b" ", b"\t"):
            if i == 0:
                indented = True
                continue
            folded = True
            more = line.strip()
            if more and key is not None and key in out:
                out[key] += b" " + more
            continue
        name, colon, value = line.partition(b":")
        if not colon:
            key = None
            continue
        key = name.strip().lower()
        val = value.strip()
        out[key] = out[key] + b", " + val if key in out else val
    return out, folded, indented


Row = tuple[int, int, int, bool, str | None, str | None, str | None, int | None, bool, int | None]
"""One framed message as a plain tuple, in :class:`HttpMessage`'s field order after ``kind``:
(offset, ts_ns, frame, parsed, method, target, host, status, connection_close, length).
Labelling builds its events straight from these: an object per message here would be built only
to be taken apart again, and a busy capture has millions of messages."""


class _Framer:
    """Walks one direction's stream message by message, falling back to bursts when blind."""

    def __init__(
        self,
        kind: Kind,
        stream: Stream,
        bursts: Sequence[int] | None,
        midstream: bool,
        other: Stream | None = None,
    ) -> None:
        self.kind: Kind = kind
        self.midstream = midstream
        self.s = _Stream(stream)
        # Bursts are only needed where the framing cannot be followed: computed on first use
        # from the other direction's stream when not given.
        self._bursts = bursts
        self._other = other
        self.rows: list[Row] = []
        self.notes: list[HttpNote] = []
        self._heads: set[int] | None = None

    @property
    def bursts(self) -> Sequence[int]:
        if self._bursts is None:
            other = self._other if self._other is not None else EMPTY_STREAM
            self._bursts = burst_starts(self.s.st, other)
        return self._bursts

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
        self.rows.append((pos, ts, frame, False, None, None, None, None, False, None))
        return self.next_burst(pos)

    def read_head(self, pos: int) -> bytes:
        """Bytes from ``pos`` on, enough to hold the message head if the capture has it.

        Starts small and grows: nearly every head fits in the first read, and copying
        :data:`MAX_HEAD` bytes for each message would cost more than all the parsing.
        """
        head = self.s.head_at(pos)
        if head is not None:
            return head
        limit = 2048
        while True:
            buf = self.s.read(pos, limit)
            if len(buf) < limit or limit >= MAX_HEAD or _head(buf) is not None:
                return buf
            if limit >= _MAX_LINE and b"\n" not in buf[:_MAX_LINE]:
                return buf  # no start line is that long: do not read 64 KiB of garbage per burst
            limit = _MAX_LINE if limit < _MAX_LINE else MAX_HEAD

    def cut_by_hole(self, pos: int, buf: bytes) -> bool:
        """Whether ``buf``, read from ``pos``, stops at bytes the capture never saw (a hole)
        rather than at the end of the stream or at bytes a snaplen left out."""
        stop = pos + len(buf)
        return stop < self.s.end and self.s.index(stop) is None

    def other_protocol(self, pos: int, peek: bytes) -> str | None:
        """What the stream is instead of HTTP/1.x, when a message should start at ``pos``."""
        if _TLS_RECORD.match(peek):
            return "TLS (HTTPS) — the payload is encrypted; its messages cannot be read"
        at_start = not self.rows and not self.midstream and pos == self.s.starts[0]
        if peek.startswith(_H2_PREFACE) or (
            at_start and self.kind == "response" and _H2_SETTINGS.match(peek)
        ):
            return "HTTP/2 — kaflow reads HTTP/1.x; its messages are not read"
        return None

    def turbo(
        self, pos: int, methods: Sequence[str | None], answered: int
    ) -> tuple[int, int, bool]:
        """Frame the plainest messages of a contiguous stream, as far as they go.

        One regex match per message (:data:`_TURBO_REQUEST`, :data:`_TURBO_STATUS`) reads the
        whole head and picks out the four headers framing depends on; what those say is looked up
        in :data:`_FRAMINGS`, since the same few lines recur on every connection. A message is
        taken here only when :meth:`fast` and the general loop would agree on it; anything else
        (one of the four headers given twice or with white space around its name, a bare LF, a
        chunked body cut short, an unreadable Content-Length) stops here, and :meth:`fast`
        decides that one message as it always has. Returns (where to go on, final responses seen,
        stop).
        """
        if self.kind == "request":
            return self._turbo_requests(pos), answered, False
        return self._turbo_responses(pos, methods, answered)

    def _turbo_requests(self, pos: int) -> int:
        """:meth:`turbo` for requests; returns where to go on."""
        s = self.s
        data = s.st.data
        base = s.base
        assert base is not None
        end = s.end
        starts, ts, frames = s.starts, s.st.ts, s.st.frames
        append = self.rows.append
        match = _TURBO_REQUEST.match
        framings = _FRAMINGS
        method_names = _METHOD_NAMES
        i = 0  # the piece holding ``pos``: pieces and messages both go forward
        while pos < end:
            m = match(data, pos - base)
            if m is None:
                break
            hlen = m.end() - pos + base
            g = m.groups()
            body, _, close, _, host = framings[g[2:]]
            if hlen > MAX_HEAD:
                break
            i = bisect_right(starts, pos, i) - 1
            method, target = g[0], g[1]
            length = self.extent(pos, hlen, body, end)
            if length is None:
                break
            append(
                (
                    pos,
                    ts[i],
                    frames[i],
                    True,
                    method_names[method],
                    target.decode("latin-1"),
                    host,
                    None,
                    close,
                    length,
                )
            )
            pos += length
        return pos

    def extent(self, pos: int, hlen: int, body: int, end: int) -> int | None:
        """A message's length from its head's length and its framing (:data:`_FRAMINGS`);
        None where :meth:`turbo` stops: a chunked body cut short (the general loop falls back
        to bursts and says so) or an unreadable Content-Length (the general loop notes it)."""
        if body >= 0:
            return hlen + body
        if body == -3:
            stop = self.chunked_end(pos + hlen)
            return None if stop is None or stop < 0 else stop - pos
        if body == -1:  # responses only: until the connection closes
            return end - pos
        return None

    def heads(self, methods: Sequence[str | None]) -> set[int]:
        """Which responses (counting final ones only) answer a HEAD: no body, whatever they say.

        Worked out once per stream: the framer may come back to :meth:`turbo` once per burst.
        """
        if self._heads is None:
            self._heads = {n for n, method in enumerate(methods) if method == "HEAD"}
        return self._heads

    def _turbo_responses(
        self, pos: int, methods: Sequence[str | None], answered: int
    ) -> tuple[int, int, bool]:
        """:meth:`turbo` for responses."""
        s = self.s
        data = s.st.data
        base = s.base
        assert base is not None
        end = s.end
        starts, ts, frames = s.starts, s.st.ts, s.st.frames
        append = self.rows.append
        match = _TURBO_STATUS.match
        framings = _FRAMINGS
        statuses = _STATUS_CODES
        bodiless = _BODILESS
        heads = self.heads(methods)
        i = 0  # the piece holding ``pos``: pieces and messages both go forward
        while pos < end:
            m = match(data, pos - base)
            if m is None:
                break
            hlen = m.end() - pos + base
            g = m.groups()
            _, body, close, close_10, _ = framings[g[2:]]
            if hlen > MAX_HEAD:
                break
            i = bisect_right(starts, pos, i) - 1
            version, code = g[0], g[1]
            status = statuses[code]
            if version == b"1.0":
                close = close_10  # HTTP/1.0 closes unless it asks to keep alive
            length = hlen if status in bodiless or answered in heads else None
            if length is None and (length := self.extent(pos, hlen, body, end)) is None:
                break
            append((pos, ts[i], frames[i], True, None, None, None, status, close, length))
            pos += length
            if status >= 200:
                answered += 1
            elif status == 101:
                return pos, answered, True  # switched protocols: no more HTTP/1.x
        return pos, answered, False

    def fast(
        self, pos: int, methods: Sequence[str | None], answered: int, once: bool = False
    ) -> tuple[int, int, bool]:
        """Frame well-formed messages of a contiguous stream at C speed, as far as it goes.

        Nearly every message on a real nginx↔upstream connection is a plain HTTP/1.1 head with
        CRLF line ends and Content-Length (or chunked) framing; those are read here with one
        regex match and a few ``bytes.find`` calls. Anything else (a gap, a bare LF, a header
        given twice, a line that is not a start line) returns to the general loop, which handles
        it and notes it. ``once``: stop after one message (:meth:`turbo` takes the rest).
        Returns (where to go on, final responses seen, stop).
        """
        s = self.s
        data = s.st.data
        base = s.base
        assert base is not None
        end = s.end
        request = self.kind == "request"
        line = _FAST_REQUEST if request else _FAST_STATUS
        rows = self.rows
        while pos < end:
            k = pos - base
            m = line.match(data, k)
            if m is None or (request and data.startswith(_H2_PREFACE, k)):
                break  # HTTP/2's preface parses as a request line: the general loop names it
            body_at = data.find(b"\r\n\r\n", m.end() - 2, k + MAX_HEAD)
            if body_at < 0:
                break
            raw = data[m.end() - 2 : body_at + 2]  # "\r\nName: value\r\n...\r\n"
            block = raw.lower()
            if (
                block.count(b"\n") != block.count(b"\r\n")
                or b" :" in block
                or b"\t:" in block
                or b"\n " in block
                or b"\n\t" in block
            ):
                break  # bare LF, an odd or folded header line: the general parser decides
            cl = _fast_value(block, b"\r\ncontent-length:")
            te = _fast_value(block, b"\r\ntransfer-encoding:")
            conn = _fast_value(block, b"\r\nconnection:")
            if cl is _TWICE or te is _TWICE or conn is _TWICE:
                break
            hlen = body_at + 4 - k
            close = conn is not None and b"close" in conn
            if request:
                status = None
                method: str | None = m.group(1).decode("ascii")
                target: str | None = m.group(2).decode("latin-1")
                host_v = _fast_value(block, b"\r\nhost:")
                if host_v is _TWICE:
                    break
                host = None
                if host_v:
                    i = block.find(b"\r\nhost:") + 7
                    host = raw[i : raw.find(b"\r\n", i)].strip().decode("latin-1")
                req_method = None
            else:
                status = int(m.group(3))
                method = target = host = None
                if m.group(1) + m.group(2) == b"10" and (conn is None or b"keep-alive" not in conn):
                    close = True  # HTTP/1.0 closes unless it asks to keep alive
                req_method = methods[answered] if answered < len(methods) else None
            body = _body_length(status, req_method, te, cl)
            if body is None:
                stop = self.chunked_end(pos + hlen)
                if stop is None or stop < 0:
                    break  # the general loop falls back to bursts and says so
                length, nxt = stop - pos, stop
            elif body == -1:
                length, nxt = end - pos, end
            elif body < -1:
                break
            else:
                length, nxt = hlen + body, pos + hlen + body
            i = bisect_right(s.starts, pos) - 1
            rows.append(
                (pos, s.st.ts[i], s.st.frames[i], True, method, target, host, status, close, length)
            )
            if status is not None:
                if status == 101:
                    return nxt, answered, True  # switched protocols: no more HTTP/1.x
                if status >= 200:
                    answered += 1
            pos = nxt
            if once:
                break
        return pos, answered, False

    def chunked_end(self, pos: int) -> int | None:
        """End of a chunked body starting at ``pos``; None if the bytes needed are missing, -1
        at a chunk-size line that is not one."""
        if self.s.base is not None:
            return self._chunked_end_flat(pos)
        while True:
            line = self.s.read(pos, 1024)
            nl = line.find(b"\n")
            if nl < 0:
                return None
            m = _CHUNK_SIZE.match(line[:nl])
            if m is None:
                return -1
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

    def _chunked_end_flat(self, pos: int) -> int | None:
        """:meth:`chunked_end` on a contiguous stream: the same reads, as searches in place
        rather than a copied KiB per chunk."""
        data = self.s.st.data
        base = self.s.base
        assert base is not None
        k = pos - base
        if k < 0:
            return None
        find = data.find
        size_line = _CHUNK_SIZE.match
        while True:
            nl = find(b"\n", k, k + 1024)
            if nl < 0:
                return None
            m = size_line(data, k, nl)
            if m is None:
                return -1
            size = int(m.group(1), 16)
            k = nl + 1
            if size == 0:
                if data.startswith(b"\r\n", k):
                    return k + 2 + base  # no trailers: the usual end
                # trailer section, ends with an empty line
                while True:
                    tn = find(b"\n", k, k + 8192)
                    if tn < 0:
                        return None
                    blank = tn == k or data[k:tn].strip() == b""
                    k = tn + 1
                    if blank:
                        return k + base
            k += size
            if data.startswith(b"\r\n", k):
                k += 2
            elif data.startswith(b"\n", k):
                k += 1
            else:
                return None  # cut short (past the end, the stream has no more bytes)

    def run(self, methods: Sequence[str | None] = ()) -> None:
        """Frame the whole stream. ``methods`` are the requests' methods, for responses to HEAD."""
        s = self.s
        pos = s.starts[0] if s.n else 0
        if not self.midstream and pos < 0:
            # Offset 0 is the first byte after the SYN: a byte before it is a keepalive probe's
            # (one old byte at snd_nxt - 1 on a connection that has sent nothing yet), not data.
            if s.index(0) is not None:
                pos = 0
            else:
                nxt = s.next_start(-1)  # the first piece at or after offset 0
                pos = s.end if nxt is None else nxt
        answered = 0  # final (non-1xx) responses seen, to pick the matching request's method
        while pos < s.end:
            if s.base is not None:
                pos, answered, stop = self.turbo(pos, methods, answered)
                if stop or pos >= s.end:
                    break
                was = pos
                pos, answered, stop = self.fast(pos, methods, answered, once=True)
                if stop or pos >= s.end:
                    break
                if pos != was:
                    continue  # fast took one message turbo would not: turbo goes on after it
            if s.index(pos) is None:  # in a gap the capture never saw
                nxt = s.next_start(pos)
                if nxt is None:
                    break
                gap = nxt - pos
                self.note(pos, f"{gap:,} byte{'s' if gap != 1 else ''} missing from the capture")
                pos = nxt
                continue
            peek = s.read(pos, _PEEK)
            blank = len(peek) - len(peek.lstrip(b"\r\n"))
            if blank:
                # RFC 9112 §2.2: empty lines before a message are ignored, not a message
                pos += blank
                continue
            other = self.other_protocol(pos, peek)
            if other is not None:
                # Not HTTP/1.x at all: say so once, keep one unreadable message for what was
                # sent, and leave the rest of the stream unread.
                self.note(pos, f"not an HTTP/1.x {self.kind}: {other}")
                self.blind(pos)
                break
            buf = self.read_head(pos) if _may_begin(self.kind, peek) else peek
            if not buf:
                pos = self.blind(pos)
                continue
            nl = buf.find(b"\n")
            first = buf[:nl] if nl >= 0 else b""
            m = (_REQUEST_LINE if self.kind == "request" else _STATUS_LINE).match(first)
            loose = _loose_request_line(first) if m is None and self.kind == "request" else None
            if m is None and loose is None:
                if self.midstream and not self.rows and pos == s.starts[0]:
                    # the capture began inside a message: its start was never seen
                    self.note(pos, "capture began mid-message")
                    pos = self.next_burst(pos)
                    continue
                if nl < 0 and s.end - pos <= len(buf) and _could_start(self.kind, buf):
                    self.note(pos, "stream ends inside a message's first line")
                    self.blind(pos)
                    break
                if nl < 0 and self.cut_by_hole(pos, buf) and _could_start(self.kind, buf):
                    nxt = self.blind(pos)
                    self.note(pos, _cut_note("start line", nxt - pos))
                    pos = nxt
                    continue
                shown = first if nl >= 0 else buf
                self.note(pos, f"not an HTTP/1.x {self.kind} line: {shown[:40]!r}")
                pos = self.blind(pos)
                continue
            ts, frame = s.where(pos)
            if loose is not None:
                l_method, l_target, nine = loose
                asked = f"{l_method} {l_target}"
                if nine:
                    # HTTP/0.9: the line is the whole request, and the connection closes after
                    # the answer
                    self.note(pos, f"HTTP/0.9 request (no version), read as {asked}")
                    n = len(first) + 1
                    self.rows.append(
                        (pos, ts, frame, True, l_method, l_target, None, None, True, n)
                    )
                    pos += n
                    continue
                self.note(pos, f"malformed request line, read as {asked}: {first[:40]!r}")
            head = _head(buf)
            hdrs, folded, indented = _headers(head[1]) if head else ({}, False, False)
            if indented:
                self.note(
                    pos, "header line beginning with white space after the start line (not read)"
                )
            if folded:
                self.note(pos, "header folded over lines (obsolete line folding, unfolded)")
            conn_hdr = hdrs.get(b"connection", b"").lower()
            close = b"close" in conn_hdr
            msg_method: str | None
            if loose is not None:
                method, target = loose[0], loose[1]
                host_b = hdrs.get(b"host")
                msg_method = method
                status = None
            elif m is None:
                raise AssertionError("unreachable: a start line or a loose request line")
            elif self.kind == "request":
                method = m.group(1).decode("ascii")
                target = m.group(2).decode("latin-1")
                host_b = hdrs.get(b"host")
                msg_method = method
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
                    elif end < 0:
                        self.note(pos, "unreadable chunk size")
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
                nxt_pos = self.next_burst(pos)
                if len(buf) >= MAX_HEAD:
                    self.note(pos, f"header block longer than {MAX_HEAD} bytes")
                elif self.cut_by_hole(pos, buf):
                    # a hole, not a snaplen, cut the head: say what reading skips, never silently
                    self.note(pos, _cut_note("head", nxt_pos - pos))
            self.rows.append(
                (
                    pos,
                    ts,
                    frame,
                    True,
                    msg_method,
                    target if self.kind == "request" else None,
                    host,
                    status,
                    close,
                    length,
                )
            )
            if status is not None:
                if status == 101:
                    break  # the connection switched protocols: what follows is not HTTP/1.x
                if status >= 200:
                    answered += 1
            pos = max(nxt_pos, pos + 1)


# The common head in one match: the start line, header lines ending in CRLF (no bare LF: every
# LF ends a line after a CR), then the empty line. The four headers framing depends on are
# captured, groups 3 to 6, each at most once (a second one fails the match): a line is one of
# them exactly as the general parser would see it (any case), or cannot be read as one by it
# (lines starting with white space before such a name fail the match too).
_SPACE = rb"[ \t\r\x0b\x0c]"  # what bytes.strip() drops from a header name


def _once(group: int, name: bytes) -> bytes:
    """A ``name: value`` line captured in ``group``, unless that group already matched."""
    return rb"(?(%d)(?!)|(?i:%b):([^\r\n]*)\r\n)" % (group, name)


_HEAD_LINES = (
    rb"\r\n(?:"
    rb"[^CcTtHh\r\n \t\x0b\x0c][^\n]*+(?<=\r)\n|"  # most lines: no name of the four
    + _once(3, b"content-length")
    + b"|"
    + _once(4, b"transfer-encoding")
    + b"|"
    + _once(5, b"connection")
    + b"|"
    + _once(6, b"host")
    + rb"|(?!"
    + _SPACE
    + rb"*(?i:content-length|transfer-encoding|connection|host)"
    + _SPACE
    + rb"*:)[^\r\n \t][^\n]*+(?<=\r)\n"
    rb")*+\r\n"
)
_TURBO_REQUEST = re.compile(
    rb"(?!PRI \* HTTP/2\.0\r\n)([A-Z][A-Z0-9_-]{0,31}) (\S{1,8192}) HTTP/\d\.\d" + _HEAD_LINES
)
_TURBO_STATUS = re.compile(rb"HTTP/(\d\.\d) (\d{3})(?: [^\r\n]*)?" + _HEAD_LINES)
_STATUS_CODES = {b"%03d" % n: n for n in range(1000)}
_BODILESS = frozenset([*range(100, 200), 204, 304])  # statuses whose responses have no body


class _Names(dict[bytes, str]):
    """Method names, decoded once each."""

    def __missing__(self, key: bytes) -> str:
        if len(self) >= 1024:
            self.clear()  # not a real method vocabulary: do not grow without bound
        value = self[key] = key.decode("ascii")
        return value


_METHOD_NAMES = _Names()

# (request body, response body, close, close for HTTP/1.0, host) for the four framing headers'
# values (None when absent): the same few lines recur on every connection (a Host, a
# Content-Length), so each combination is read once. Bodies as :func:`_body_length` gives them,
# with -3 for chunked.
Framing = tuple[int, int, bool, bool, str | None]
FramingKey = tuple[bytes | Any, ...]  # groups 3 to 6 of a turbo match, None where absent


class _Framings(dict[FramingKey, Framing]):
    def __missing__(self, key: FramingKey) -> Framing:
        if len(self) >= 4096:
            self.clear()  # Content-Length values are many: keep the recent ones only
        cl, te, conn, host = key
        value = self[key] = _framing(cl, te, conn, host)
        return value


_FRAMINGS = _Framings()


def _framing(
    cl_v: bytes | None, te_v: bytes | None, conn_v: bytes | None, host_v: bytes | None
) -> Framing:
    """What the framing headers say, read as :meth:`_Framer.fast` reads them."""
    conn = conn_v.strip().lower() if conn_v is not None else None
    te = te_v.strip().lower() if te_v is not None else None
    close = conn is not None and b"close" in conn
    close_10 = close or conn is None or b"keep-alive" not in conn
    host = (host_v.strip().decode("latin-1") or None) if host_v is not None else None
    if te and b"chunked" in te:
        req_body = resp_body = -3
    elif cl_v is not None:
        req_body = resp_body = _content_length(cl_v.strip())
    else:
        req_body, resp_body = 0, -1
    return req_body, resp_body, close, close_10, host


_FAST_REQUEST = re.compile(rb"([A-Z][A-Z0-9_-]{0,31}) (\S{1,8192}) HTTP/(\d)\.(\d)\r\n")
_FAST_STATUS = re.compile(rb"HTTP/(\d)\.(\d) (\d{3})(?: [^\r\n]*)?\r\n")
_TWICE = b"\x00twice"  # a header that appears more than once: left to the general parser


def _fast_value(block: bytes, name: bytes) -> bytes | None:
    """The stripped value of header ``name`` (lower case, with its leading CRLF) in ``block``."""
    i = block.find(name)
    if i < 0:
        return None
    if block.find(name, i + 1) >= 0:
        return _TWICE
    j = i + len(name)
    return block[j : block.find(b"\r\n", j)].strip()


def _body_length(
    status: int | None, req_method: str | None, te: bytes | None, cl: bytes | None
) -> int | None:
    """RFC 9112 §6.3: the body length; None chunked, -1 until close, -2 unreadable."""
    if status is not None:
        if 100 <= status < 200 or req_method == "HEAD" or status in (204, 304):
            return 0
        if te and b"chunked" in te:
            return None
        if cl is not None:
            return _content_length(cl)
        return -1
    if te and b"chunked" in te:
        return None
    if cl is not None:
        return _content_length(cl)
    return 0


def _cut_note(what: str, skipped: int) -> str:
    return (
        f"message {what} cut by bytes missing from the capture; "
        f"{skipped:,} bytes not framed (resuming at the next burst)"
    )


def _may_begin(kind: Kind, peek: bytes) -> bool:
    """Whether a start line may begin with ``peek`` (a necessary condition, cheap to check)."""
    if kind == "request":
        return _METHOD_START.match(peek) is not None
    return peek.startswith(b"HTTP/") or b"HTTP/".startswith(peek)


def _could_start(kind: Kind, buf: bytes) -> bool:
    """Whether ``buf`` may be the beginning of a start line the capture cut off."""
    if kind == "response":
        return buf.startswith(b"HTTP/") or b"HTTP/".startswith(buf)
    return buf[:1].isupper() and buf.isascii() and all(32 <= b < 127 for b in buf)


def _content_length(value: bytes) -> int:
    """Content-Length as an int; -2 when it is not one (an explicit "unreadable").

    RFC 9110 §8.6: digits, leading zeros allowed; a list (the header given twice, or "50, 50")
    is one length when every value is the same; empty list elements are ignored.
    """
    parts = [p.strip() for p in value.split(b",")]
    parts = [p for p in parts if p]
    if not parts or not all(p.isdigit() for p in parts):
        return -2
    values = {p.lstrip(b"0") or b"0" for p in parts}
    if len(values) != 1:
        return -2
    (digits,) = values
    # More than 18 digits is more than an exabyte: not a length (and int() refuses > 4300 digits).
    return int(digits) if len(digits) <= 18 else -2


def _as_stream(data: Stream | Sequence[Chunk]) -> Stream:
    return data if isinstance(data, Stream) else Stream.from_chunks(data)


def frame_requests(
    chunks: Stream | Sequence[Chunk], bursts: Sequence[int] = (), *, midstream: bool = False
) -> tuple[list[HttpMessage], list[HttpNote]]:
    """The requests in a client→server stream, in order.

    ``midstream``: the capture began mid-connection, so unreadable leading bytes are the tail of
    an earlier message, not a request.
    """
    f = _Framer("request", _as_stream(chunks), bursts, midstream)
    f.run()
    return [HttpMessage("request", *r) for r in f.rows], f.notes


def frame_responses(
    chunks: Stream | Sequence[Chunk],
    methods: Sequence[str | None],
    bursts: Sequence[int] = (),
    *,
    midstream: bool = False,
) -> tuple[list[HttpMessage], list[HttpNote]]:
    """The responses in a server→client stream, in order; ``methods`` frame responses to HEAD."""
    f = _Framer("response", _as_stream(chunks), bursts, midstream)
    f.run(methods)
    return [HttpMessage("response", *r) for r in f.rows], f.notes


def frame_rows(
    kind: Kind,
    stream: Stream,
    other: Stream,
    methods: Sequence[str | None] = (),
    *,
    midstream: bool = False,
) -> tuple[list[Row], list[HttpNote]]:
    """:func:`frame_requests` or :func:`frame_responses` as plain rows (see :data:`Row`), with
    the bursts taken from ``other``, the opposite direction, only if the framing needs them."""
    f = _Framer(kind, stream, None, midstream, other)
    f.run(methods)
    return f.rows, f.notes


def header_raw(stream: Stream, offset: int, *lower_names: bytes) -> str | None:
    """The value of the first header named one of ``lower_names`` in the head of the message at
    ``offset``, stripped, as sent, when the head is captured whole."""
    head = _head(_Stream(stream).read(offset, MAX_HEAD))
    if head is None:
        return None
    for line in head[1][1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in lower_names:
            return value.strip().decode("latin-1")
    return None


def header_value(stream: Stream, offset: int, lower_name: bytes) -> str | None:
    """:func:`header_raw` of one name, lower-cased."""
    value = header_raw(stream, offset, lower_name)
    return None if value is None else value.lower()


def burst_starts(mine: Stream | Sequence[Chunk], other: Stream | Sequence[Chunk]) -> list[int]:
    """Offsets where this side starts sending again after the other side sent data.

    That is where a new message most likely starts when its bytes cannot be read: nginx sends a
    request, the upstream answers, nginx sends the next one.
    """
    a, b = _as_stream(mine), _as_stream(other)
    if not a.starts:
        return []
    other_ts = sorted(b.ts)
    out: list[int] = []
    j = 0
    prev_ts = a.ts[0]
    for off, ts in zip(a.starts[1:], a.ts[1:], strict=True):
        # is there other-side data strictly after the previous piece and up to this one?
        while j < len(other_ts) and other_ts[j] <= prev_ts:
            j += 1
        if j < len(other_ts) and other_ts[j] <= ts:
            out.append(off)
        prev_ts = max(prev_ts, ts)
    return out

"""The TLS framer, as the core's ``tls.rs`` does it, one obvious step at a time: on a connection
whose client opens with a TLS handshake record, the record headers (``type version length``,
in the clear) give the requests (client bursts of application data), their answers and the
upstream's alert. See ``crates/kaflow-core/src/tls.rs`` for what each version shows."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

from tests.oracle.flows import Stream
from tests.oracle.http import Row, _Stream

CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA = 20, 21, 22, 23
TLS13_ALERT_LEN = 19  # a 2-byte alert, its inner type and a 16-byte AEAD tag


@dataclass(frozen=True)
class Record:
    offset: int
    ts_ns: int
    frame: int
    content_type: int
    length: int


@dataclass
class Tls:
    version: str  # "TLS 1.2" or "TLS 1.3"
    requests: list[Row]
    responses: list[Row]
    server_alert: Record | None


MAX_RECORD = 16384 + 2048  # longer is no record header


def _header_ok(h: bytes) -> bool:
    return (
        len(h) >= 5
        and 20 <= h[0] <= 23
        and h[1] == 3
        and h[2] <= 4
        and int.from_bytes(h[3:5], "big") <= MAX_RECORD
    )


def detect(up: Stream, partial: bool) -> bool:
    if not up.starts:
        return False
    h = _Stream(up).read(up.starts[0], 5)
    return _header_ok(h) and (h[0] == HANDSHAKE or partial)


def records(st: Stream) -> list[Record]:
    out: list[Record] = []
    if not st.starts:
        return out
    v = _Stream(st)
    pos = st.starts[0]
    floor = -(1 << 63)  # records, and places tried again, lie after this
    while pos < st.end:
        h = v.read(pos, 5)
        if _header_ok(h):
            length = int.from_bytes(h[3:5], "big")
            ts, frame = v.where(pos)
            out.append(Record(pos, ts, frame, h[0], length))
            floor = pos
            pos += 5 + length
        else:
            # a record overran its bytes: try the start of the segment holding pos, once
            i = bisect_right(st.starts, pos) - 1
            back = st.starts[i] if i >= 0 and floor < st.starts[i] < pos else None
            nxt = back if back is not None else v.next_start(pos)
            if nxt is None:
                break
            floor = max(floor, min(nxt, pos))
            pos = nxt
    return out


def _server_hello_13(st: Stream, first: Record) -> bool | None:
    if first.content_type != HANDSHAKE:
        return None
    b = _Stream(st).read(first.offset + 5, min(1024, first.length))
    if not b or b[0] != 2 or len(b) <= 38:
        return None
    at = 39 + b[38] + 3
    if len(b) < at + 2:
        return None
    stop = min(at + 2 + int.from_bytes(b[at : at + 2], "big"), len(b))
    at += 2
    while at + 4 <= stop:
        kind = int.from_bytes(b[at : at + 2], "big")
        n = int.from_bytes(b[at + 2 : at + 4], "big")
        if kind == 0x002B:
            value = b[at + 4 : at + 6]
            return value == b"\x03\x04" if len(value) == 2 else None
        at += 4 + n
    return False


def _key(r: Record) -> tuple[int, int]:
    return (r.ts_ns, r.frame)


def _bursts(mine: list[Record], other: list[Record]) -> list[Row]:
    """A new message where the other side sent a record since this side's previous one."""
    out: list[Row] = []
    prev: tuple[int, int] | None = None
    for r in mine:
        if prev is None or any(prev < _key(o) <= _key(r) for o in other):
            out.append((r.offset, r.ts_ns, r.frame, False, None, None, None, None, False, None))
        prev = _key(r) if prev is None else max(prev, _key(r))
    return out


def read(up: Stream, down: Stream, partial: bool) -> Tls:
    client, server = records(up), records(down)
    tls13 = _server_hello_13(down, server[0]) if server else None
    version = "TLS 1.2" if tls13 is False else "TLS 1.3"

    def is_alert(r: Record) -> bool:
        if version == "TLS 1.2":
            return r.content_type == ALERT
        return r.content_type == APPLICATION_DATA and r.length == TLS13_ALERT_LEN

    app = [r for r in client if r.content_type == APPLICATION_DATA]
    if version == "TLS 1.3" and not partial:
        hello = _key(server[0]) if server else None
        after = [r for r in app if hello is not None and _key(r) > hello]
        finished = after[0].frame if after else None  # the client's Finished flight
        app = [r for r in after if r.frame != finished]
    app = [r for r in app if not is_alert(r)]
    if version == "TLS 1.3" and not partial:
        first = _key(app[0]) if app else None
        later = [r for r in server if first is not None and _key(r) > first]
    else:
        later = list(server)
    alert = next((r for r in later if is_alert(r)), None)
    server_app = [r for r in later if r.content_type == APPLICATION_DATA and not is_alert(r)]
    return Tls(version, _bursts(app, server_app), _bursts(server_app, app), alert)

"""HTTP/1.1 framing as RFC 9112 has it, on the whole pipeline (crafted conversations).

Content-Length as RFC 9110 §8.6 defines it (leading zeros, a list of one repeated value), an
empty line before a message ignored (§2.2), an unreadable chunk size said as plainly as an
unreadable Content-Length, and words for what could not be read that say what was seen: bytes not
captured, or bytes that are not HTTP/1.x. The Python reference agrees on every one.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from pcapkit import Connection, analyze
from pcapkit.report import ReportOptions, reporter
from tests import reference
from tests.conversation import MS, T0, Conv, get, ok, write


def one(tmp_path: Path, exchanges: list[tuple[bytes, bytes]]) -> Connection:
    """One connection carrying these exchanges, 10 ms apart; nginx closes it. The core's
    answer, held equal to the Python reference's."""
    c = Conv(40000).handshake(T0)
    t = T0 + 1 * MS
    for request, response in exchanges:
        c.exchange(t, request, response)
        t += 10 * MS
    c.fin("c", t)
    c.fin("s", t + 1 * MS)
    path = write(tmp_path / "c.pcap", [c])
    core, ref = analyze(path), reference.analyze(path)
    assert core.connections == ref.connections
    (conn,) = core.connections
    return conn


def answered(conn: Connection) -> list[tuple[str | None, str | None, int | None]]:
    return [(r.method, r.target, r.status) for r in conn.requests]


def sized(value: str, body: bytes = b"abc") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {value}\r\n\r\n".encode() + body


@pytest.mark.parametrize("value", ["3", "0003", "0" * 40 + "3", "3, 3", "3,3,,3"])
def test_content_length_with_leading_zeros_or_a_list_of_one_value(
    tmp_path: Path, value: str
) -> None:
    conn = one(tmp_path, [(get("/a"), sized(value)), (get("/b"), ok())])
    assert answered(conn) == [("GET", "/a", 200), ("GET", "/b", 200)]
    head = len(f"HTTP/1.1 200 OK\r\nContent-Length: {value}\r\n\r\n")
    assert next(e.length for e in conn.events if e.type == "response") == head + 3
    assert conn.anomalies == ()


def test_content_length_given_twice_with_one_value(tmp_path: Path) -> None:
    twice = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 03\r\n\r\nabc"
    conn = one(tmp_path, [(get("/a"), twice), (get("/b"), ok())])
    assert answered(conn) == [("GET", "/a", 200), ("GET", "/b", 200)]
    assert conn.anomalies == ()


@pytest.mark.parametrize("value", ["3, 4", "3x", "-3", "1" * 19])
def test_content_length_that_is_no_one_length_is_noted(tmp_path: Path, value: str) -> None:
    conn = one(tmp_path, [(get("/a"), sized(value)), (get("/b"), ok())])
    assert [a.what for a in conn.anomalies] == ["unreadable Content-Length"]
    # the framing resumes with nginx's next request: nothing is made up
    assert answered(conn) == [("GET", "/a", 200), ("GET", "/b", 200)]


def test_an_unreadable_chunk_size_is_noted_like_an_unreadable_content_length(
    tmp_path: Path,
) -> None:
    bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"
    conn = one(tmp_path, [(get("/a"), bad), (get("/b"), ok())])
    assert [a.what for a in conn.anomalies] == ["unreadable chunk size"]
    assert answered(conn) == [("GET", "/a", 200), ("GET", "/b", 200)]
    good = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    assert one(tmp_path, [(get("/a"), good), (get("/b"), ok())]).anomalies == ()


@pytest.mark.parametrize(
    ("request2", "response1"),
    [(b"\r\n" + get("/b"), ok()), (get("/b"), ok() + b"\r\n"), (b"\n\r\n" + get("/b"), ok())],
    ids=["before-request", "after-response", "bare-lf"],
)
def test_an_empty_line_between_messages_is_no_message(
    tmp_path: Path, request2: bytes, response1: bytes
) -> None:
    conn = one(tmp_path, [(get("/a"), response1), (request2, ok())])
    assert answered(conn) == [("GET", "/a", 200), ("GET", "/b", 200)]
    assert [e.type for e in conn.events if e.type in ("request", "response")] == [
        "request",
        "response",
        "request",
        "response",
    ]
    assert conn.anomalies == ()


def test_bytes_that_are_there_but_not_http_are_not_called_uncaptured(tmp_path: Path) -> None:
    garbage = one(tmp_path, [(b"GET  /a HTTP/1.1\r\nHost: x\r\n\r\n", ok())])
    (req,) = [e for e in garbage.events if e.type == "request"]
    assert req.method is None and req.note == "not HTTP"
    # a TLS handshake is read as TLS records: no HTTP message, and the handshake no request
    tls = one(tmp_path, [(b"\x16\x03\x01\x00\x05hello", b"\x16\x03\x03\x00\x02hi")])
    assert tls.tls is not None and tls.requests == ()
    assert [e for e in tls.events if e.type in ("request", "response")] == []


def test_bytes_not_captured_are_said_so(tmp_path: Path) -> None:
    c = Conv(40000).handshake(T0)
    c.exchange(T0 + 1 * MS, get("/a"), ok())
    c.fin("c", T0 + 5 * MS)
    c.fin("s", T0 + 6 * MS)
    path = write(tmp_path / "snap.pcap", [c], snaplen=54)  # headers only
    (conn,) = analyze(path).connections
    assert {e.note for e in conn.events if e.type in ("request", "response")} == {
        "payload not captured"
    }


def test_a_response_without_a_request_on_a_connection_seen_from_its_start(
    tmp_path: Path,
) -> None:
    c = Conv(40000).handshake(T0)
    c.send("s", T0 + 1 * MS, ok())
    c.exchange(T0 + 5 * MS, get("/a"), ok())
    c.fin("c", T0 + 10 * MS)
    c.fin("s", T0 + 11 * MS)
    a = analyze(write(tmp_path / "c.pcap", [c]))
    out = io.StringIO()
    reporter("table").render(a, out, ReportOptions(connections="all"))
    assert "(no request seen for it)" in out.getvalue()
    assert "request before the capture" not in out.getvalue()


def whats(conn: Connection) -> list[str]:
    return [a.what for a in conn.anomalies]


def test_a_folded_header_is_unfolded_and_said(tmp_path: Path) -> None:
    folded = b"GET /a HTTP/1.1\r\nHost: b\r\nX-Long: one\r\n two\r\n\r\n"
    conn = one(tmp_path, [(folded, ok()), (get("/b"), ok())])
    assert answered(conn) == [("GET", "/a", 200), ("GET", "/b", 200)]
    assert whats(conn) == ["header folded over lines (obsolete line folding, unfolded)"]


def test_a_folded_content_length_is_unreadable_not_a_shorter_body(tmp_path: Path) -> None:
    # "Content-Length: 3" continued by " 9" is "3 9": no one length, so no body length at all
    folded = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n 9\r\n\r\nabc"
    conn = one(tmp_path, [(get("/a"), folded), (get("/b"), ok())])
    assert whats(conn)[:2] == [
        "header folded over lines (obsolete line folding, unfolded)",
        "unreadable Content-Length",
    ]


def test_an_indented_line_is_never_a_header_of_its_own(tmp_path: Path) -> None:
    # a Content-Length hidden on a continuation line must not frame a body: read as one, the
    # next request's 5 bytes would be swallowed and "/b" never seen
    hidden = b"GET /a HTTP/1.1\r\nHost: b\r\nX-A: 1\r\n Content-Length: 5\r\n\r\n"
    conn = one(tmp_path, [(hidden, ok()), (get("/b"), ok())])
    assert answered(conn) == [("GET", "/a", 200), ("GET", "/b", 200)]
    indented = b"GET /a HTTP/1.1\r\n Content-Length: 5\r\nHost: b\r\n\r\n"
    conn = one(tmp_path, [(indented, ok()), (get("/b"), ok())])
    assert answered(conn) == [("GET", "/a", 200), ("GET", "/b", 200)]
    assert conn.requests[0].host == "b"
    assert whats(conn) == ["header line beginning with white space after the start line (not read)"]


def test_an_http_0_9_request_keeps_its_method_and_target(tmp_path: Path) -> None:
    conn = one(tmp_path, [(b"GET /old\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")])
    assert answered(conn) == [("GET", "/old", 200)]
    assert whats(conn) == ["HTTP/0.9 request (no version), read as GET /old"]
    request = next(e for e in conn.events if e.type == "request")
    assert request.length == len(b"GET /old\r\n")


@pytest.mark.parametrize(
    ("line", "target"),
    [
        (b"GET /a b c HTTP/1.1", "/a"),
        (b"GET /a HTTP/1.x", "/a"),
        (b"POST /form HTTP/1.1 extra", "/form"),
    ],
)
def test_a_malformed_request_line_keeps_what_it_says_and_is_flagged(
    tmp_path: Path, line: bytes, target: str
) -> None:
    request = line + b"\r\nHost: b\r\nContent-Length: 2\r\n\r\nxy"
    conn = one(tmp_path, [(request, ok()), (get("/next"), ok())])
    method = line.split(b" ")[0].decode()
    assert answered(conn) == [(method, target, 200), ("GET", "/next", 200)]
    shown = repr(line + b"\r")
    assert whats(conn) == [f"malformed request line, read as {method} {target}: {shown}"]


@pytest.mark.parametrize("junk", [b"HELLO WORLD\r\n", b"POST /x\r\n", b"GET x\r\n"])
def test_words_that_only_look_like_a_request_line_are_not_made_a_request(
    tmp_path: Path, junk: bytes
) -> None:
    conn = one(tmp_path, [(junk, ok())])
    assert [r.method for r in conn.requests] == [None]
    assert whats(conn)[0].startswith("not an HTTP/1.x request line")

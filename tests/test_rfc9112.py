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
    tls = one(tmp_path, [(b"\x16\x03\x01\x00\x05hello", b"\x16\x03\x03\x00\x02hi")])
    notes = {e.type: e.note for e in tls.events if e.type in ("request", "response")}
    assert notes == {"request": "not HTTP: TLS, encrypted", "response": "not HTTP: TLS, encrypted"}


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

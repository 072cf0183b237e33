"""HTTP/1.x framing over reassembled streams: message starts must follow the framing rules."""

from __future__ import annotations

from tests.oracle.flows import Chunk
from tests.oracle.http import burst_starts, frame_requests, frame_responses


def chunks(*parts: bytes | int, t0: int = 1_000, step: int = 1_000) -> list[Chunk]:
    """A stream made of pieces; an int is that many bytes whose values were not captured."""
    out: list[Chunk] = []
    off = 0
    for i, p in enumerate(parts):
        if isinstance(p, int):
            out.append(Chunk(off, p, t0 + i * step, i + 1, b""))
            off += p
        else:
            out.append(Chunk(off, len(p), t0 + i * step, i + 1, p))
            off += len(p)
    return out


def test_body_containing_a_request_line_is_not_a_request() -> None:
    body = b"GET /evil HTTP/1.1\r\nHost: x\r\n\r\n"
    post = b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    get = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"
    msgs, notes = frame_requests(chunks(post, get))
    assert [(m.method, m.target) for m in msgs] == [("POST", "/upload"), ("GET", "/next")]
    assert msgs[0].length == len(post)
    assert notes == []


def test_request_split_across_segments_and_body_in_next_segment() -> None:
    head = b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n"
    msgs, _ = frame_requests(
        chunks(head[:10], head[10:], b"0123456789", b"GET /g HTTP/1.1\r\n\r\n")
    )
    assert [m.target for m in msgs] == ["/p", "/g"]
    assert msgs[0].frame == 1 and msgs[1].frame == 4


def test_chunked_request_body_is_skipped() -> None:
    body = b"4\r\nGET \r\n6\r\n/x HTT\r\n0\r\n\r\n"
    post = b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    msgs, _ = frame_requests(chunks(post, b"GET /after HTTP/1.1\r\n\r\n"))
    assert [m.target for m in msgs] == ["/c", "/after"]


def test_chunked_response_with_trailers() -> None:
    r1 = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"
    r2 = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
    msgs, notes = frame_responses(chunks(r1, r2), ["GET", "GET"])
    assert [m.status for m in msgs] == [200, 404]
    assert notes == []


def test_head_response_has_no_body_despite_content_length() -> None:
    r1 = b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n"
    r2 = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    msgs, _ = frame_responses(chunks(r1 + r2), ["HEAD", "GET"])
    assert [m.status for m in msgs] == [200, 200]
    assert msgs[1].offset == len(r1)


def test_1xx_204_304_have_no_body() -> None:
    parts = [
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    ]
    msgs, _ = frame_responses(chunks(b"".join(parts)), ["POST", "GET", "GET"])
    assert [m.status for m in msgs] == [100, 204, 304, 200]


def test_connection_close_is_recorded() -> None:
    r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    msgs, _ = frame_responses(chunks(r), ["GET"])
    assert msgs[0].connection_close


def test_response_without_length_reads_until_close() -> None:
    r = b"HTTP/1.1 200 OK\r\n\r\nbody HTTP/1.1 200 OK\r\n\r\n"
    msgs, _ = frame_responses(chunks(r), ["GET"])
    assert len(msgs) == 1


def test_uncaptured_payload_falls_back_to_bursts() -> None:
    # snaplen cut every payload: 3 requests of unknown bytes, bursts at their starts
    c = chunks(80, 80, 80)
    msgs, _ = frame_requests(c, burst_starts(c, chunks(10, 10, t0=1_500)))
    assert len(msgs) == 3
    assert all(not m.parsed and m.method is None for m in msgs)


def test_bursts_start_where_the_other_side_spoke_in_between() -> None:
    mine = chunks(b"a", b"b", b"c", t0=0, step=10)  # at 0, 10, 20
    other = [Chunk(0, 1, 15, 9, b"x")]  # between b and c
    assert burst_starts(mine, other) == [2]


def test_garbage_is_noted_not_raised() -> None:
    msgs, notes = frame_requests(chunks(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"))
    assert len(msgs) == 1 and not msgs[0].parsed
    assert notes and "not an HTTP/1.x request" in notes[0].what


def test_midstream_start_skips_the_tail_of_an_earlier_message() -> None:
    tail = b"...rest of a body"
    get = b"GET /x HTTP/1.1\r\n\r\n"
    c = chunks(tail, get)
    msgs, notes = frame_requests(c, [len(tail)], midstream=True)
    assert [m.target for m in msgs] == ["/x"]
    assert notes[0].what == "capture began mid-message"


def test_gap_in_stream_is_noted_and_parsing_resumes() -> None:
    a = b"GET /a HTTP/1.1\r\n\r\n"
    b = b"GET /b HTTP/1.1\r\n\r\n"
    c = [Chunk(0, len(a), 1, 1, a), Chunk(len(a) + 50, len(b), 2, 2, b)]
    msgs, notes = frame_requests(c, [len(a) + 50])
    assert [m.target for m in msgs] == ["/a", "/b"]
    assert any("missing" in n.what for n in notes)


def test_host_header_is_read() -> None:
    msgs, _ = frame_requests(chunks(b"GET / HTTP/1.1\r\nhost: api.local\r\n\r\n"))
    assert msgs[0].host == "api.local"

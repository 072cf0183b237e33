"""The HTTP framer on hostile streams: cheap on floods, honest about what it could not frame."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.oracle.flows import Chunk, Stream
from tests.oracle.http import _Stream, frame_requests, frame_responses

REQ = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"


def pieces(*parts: bytes | int, cut: dict[int, int] | None = None) -> list[Chunk]:
    """Chunks one after the other; an int is a hole of that many bytes; ``cut`` maps a part's
    index to how many of its bytes were captured (a snaplen)."""
    out: list[Chunk] = []
    off = 0
    for i, p in enumerate(parts):
        if isinstance(p, int):
            off += p
            continue
        data = p[: (cut or {}).get(i, len(p))]
        out.append(Chunk(off, len(p), 1000 + i, i + 1, data))
        off += len(p)
    return out


def _reference_read(chunks: list[Chunk], pos: int, limit: int) -> bytes:
    """Captured bytes from ``pos`` on, piece by piece: what the framer must see."""
    out = b""
    expect: int | None = None
    for c in chunks:
        if expect is None:
            if not c.offset <= pos < c.end:
                continue
            k = pos - c.offset
        elif c.offset != expect:
            break
        else:
            k = 0
        out += c.data[k:]
        if len(c.data) < c.length or len(out) >= limit:
            break
        expect = c.end
    return out[:limit]


layouts = st.lists(
    st.tuples(st.integers(0, 3), st.binary(min_size=1, max_size=6), st.integers(0, 6)),
    min_size=1,
    max_size=25,
)


@settings(max_examples=200, deadline=None)
@given(layout=layouts, pos=st.integers(-2, 120), limit=st.integers(1, 40))
def test_reads_equal_a_piece_by_piece_walk(
    layout: list[tuple[int, bytes, int]], pos: int, limit: int
) -> None:
    """The framer reads a run of pieces as one slice; it must see exactly the same bytes."""
    chunks: list[Chunk] = []
    off = 0
    for hole, data, keep in layout:
        off += hole
        captured = data[: min(keep, len(data))] if keep < len(data) else data
        chunks.append(Chunk(off, len(data), off, len(chunks) + 1, captured))
        off += len(data)
    s = _Stream(Stream.from_chunks(chunks))
    assert s.read(pos, limit) == _reference_read(chunks, pos, limit)


def test_a_hole_inside_a_head_is_said_not_skipped_silently() -> None:
    """A one-way stream has no bursts to resync at: what is skipped must be said."""
    head = REQ[:20]
    msgs, notes = frame_requests(pieces(REQ * 3, head, 5, REQ[25:], REQ * 3))
    assert [m.target for m in msgs] == ["/a"] * 4
    (note,) = notes
    assert note.offset == 3 * len(REQ)
    assert note.what.startswith("message head cut by bytes missing from the capture; ")


def test_a_hole_inside_a_start_line_is_said_as_such() -> None:
    msgs, notes = frame_requests(pieces(REQ, REQ[:9], 3, REQ[12:], REQ))
    assert [m.method for m in msgs] == ["GET", None]
    assert [n.what.split(";")[0] for n in notes] == [
        "message start line cut by bytes missing from the capture"
    ]


def test_a_snaplen_cut_is_not_a_hole() -> None:
    """Every message of a ``-s 64`` capture is cut short on purpose: no note for that."""
    c = pieces(REQ + b"x" * 200, REQ + b"x" * 200, cut={0: 20, 1: 20})
    msgs, notes = frame_requests(c, [c[1].offset])
    assert len(msgs) == 2 and notes == []


def test_one_missing_byte_is_singular() -> None:
    _, notes = frame_requests(pieces(REQ, 1, REQ), [len(REQ) + 1])
    assert notes[0].what == "1 byte missing from the capture"


def test_keepalive_probe_byte_before_offset_zero_is_skipped() -> None:
    probe = Chunk(-1, 1, 500, 1, b"\x00")
    msgs, notes = frame_requests([probe, Chunk(0, len(REQ), 900, 2, REQ)])
    assert [(m.target, m.frame) for m in msgs] == [("/a", 2)] and notes == []
    # mid-stream, offsets are relative to the first byte seen: nothing is skipped there
    tail = [Chunk(-5, 5, 1, 1, b"tail."), Chunk(0, len(REQ), 2, 2, REQ)]
    msgs, notes = frame_requests(tail, [0], midstream=True)
    assert [m.target for m in msgs] == ["/a"]
    assert [(n.offset, n.what) for n in notes] == [(-5, "capture began mid-message")]


def test_tls_and_http2_are_named_once_per_stream() -> None:
    tls = bytes.fromhex("160301004a") + bytes(74)
    app = bytes.fromhex("1703030020") + bytes(32)
    msgs, notes = frame_requests(pieces(tls, app, app), [len(tls), len(tls) + len(app)])
    assert len(msgs) == 1 and not msgs[0].parsed
    assert [n.what for n in notes] == [
        "not an HTTP/1.x request: TLS (HTTPS) — the payload is encrypted; its messages "
        "cannot be read"
    ]
    h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes(9)
    for chunks in (pieces(h2), pieces(h2, 2, b"x")):  # the contiguous path and the general one
        msgs, notes = frame_requests(chunks)
        assert len(msgs) == 1 and not msgs[0].parsed and len(notes) == 1
        assert "HTTP/2" in notes[0].what
    settings_frame = bytes.fromhex("000006040000000000000300000064")
    _, notes = frame_responses(pieces(settings_frame), [None])
    assert len(notes) == 1 and "HTTP/2" in notes[0].what


def test_absurd_content_lengths_are_unreadable_not_a_crash() -> None:
    for digits in (19, 5000):
        req = b"POST / HTTP/1.1\r\nContent-Length: " + b"9" * digits + b"\r\n\r\n" + REQ
        for chunks in (pieces(req), pieces(req, 1, b"x")):
            msgs, notes = frame_requests(chunks)
            assert msgs[0].method == "POST"
            assert "unreadable Content-Length" in [n.what for n in notes]


def test_garbage_bursts_cost_a_short_read_each() -> None:
    """40k one-byte bursts of "GET GET GET ..." (no line end, longer than any head) with a
    hole near the start: a burst that could start a request line is read until it cannot (8 KiB
    without a line end), not 64 KiB, and not one piece at a time (that took minutes)."""
    n = 40_000
    body = b"GET " * (n // 4)
    chunks = [Chunk(0, 1, 0, 1, b"G"), *(Chunk(k, 1, k, k, body[k : k + 1]) for k in range(2, n))]
    t0 = time.perf_counter()
    msgs, notes = frame_requests(chunks, list(range(2, n)))
    took = time.perf_counter() - t0
    assert len(msgs) > n // 2 and len(notes) == len(msgs)
    assert took < 5, f"{took:.1f} s"

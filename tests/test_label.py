"""Labelling's shortcuts give what the plain way gives.

The turbo framing path (one regex per head) must frame every message exactly as the fast path
and the general parser do; the one-pass machine must find run()'s anomalies;
build_connection's stable (time, frame) sort must equal sorting by (time, frame, event type).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pcapkit.model import Event, EventType, Side
from tests.oracle import http, machine
from tests.oracle.flows import Chunk, Flow, Mark, Stream, TcpConnection
from tests.oracle.label import build_connection

VALUES = {
    b"Content-Length": [b"0", b"3", b" 3 ", b"3, 3", b"x", b"9" * 20],
    b"Transfer-Encoding": [b"chunked", b"gzip, chunked", b"identity"],
    b"Connection": [b"close", b"keep-alive", b"Keep-Alive, close", b"upgrade"],
    b"Host": [b"h", b"", b" h:80 ", b"a\rb"],
    b"X-Other": [b"a :b", b"1"],
}


@st.composite
def header(draw: st.DrawFn) -> bytes:
    """A header line, often one framing depends on, sometimes oddly written."""
    name = draw(st.sampled_from(sorted(VALUES)))
    value = draw(st.sampled_from(VALUES[name]))
    if draw(st.integers(0, 3)) == 0:
        name = draw(st.sampled_from([name.lower(), name.upper(), b" " + name, name + b" "]))
    sep, end = b": ", b"\r\n"
    if draw(st.integers(0, 3)) == 0:
        sep = draw(st.sampled_from([b":", b":\t", b" : "]))
        end = draw(st.sampled_from([b"\n", b"\r\r\n"]))
    return name + sep + value + end


@st.composite
def message(draw: st.DrawFn, kind: str) -> bytes:
    if kind == "request":
        method = draw(st.sampled_from([b"GET", b"HEAD", b"POST", b"get", b"PRI"]))
        start = method + b" " + draw(st.sampled_from([b"/", b"/a?b=c", b"*"])) + b" HTTP/1.1"
    else:
        version = draw(st.sampled_from([b"1.1", b"1.0"]))
        code = draw(st.sampled_from([b"200", b"204", b"304", b"100", b"101", b"404", b"099"]))
        start = b"HTTP/" + version + b" " + code + draw(st.sampled_from([b" OK", b"", b" "]))
    head = start + b"\r\n" + b"".join(draw(st.lists(header(), max_size=5))) + b"\r\n"
    body = draw(st.sampled_from([b"", b"abc", b"3\r\nabc\r\n0\r\n\r\n", b"0\r\nX: y\r\n\r\n"]))
    return head + body


def frame(
    kind: str, parts: list[bytes], methods: Sequence[str | None], turbo: bool
) -> list[http.Row]:
    chunks, off = [], 0
    for i, p in enumerate(parts):
        chunks.append(Chunk(off, len(p), 1000 + i, i + 1, p))
        off += len(p)
    stream = Stream.from_chunks(chunks)
    f = http._Framer("request" if kind == "request" else "response", stream, None, False)
    if not turbo:
        f.turbo = lambda pos, methods, answered: (pos, answered, False)  # type: ignore[method-assign]
    f.run(methods)
    return f.rows + [
        (n.offset, n.ts_ns, n.frame, False, n.what, None, None, None, False, None) for n in f.notes
    ]


@pytest.mark.parametrize("kind", ["request", "response"])
@settings(max_examples=500, deadline=None)
@given(data=st.data())
def test_turbo_frames_as_the_fast_path_and_the_general_parser_do(
    kind: str, data: st.DataObject
) -> None:
    parts = data.draw(st.lists(message(kind), min_size=1, max_size=6))
    methods = data.draw(st.lists(st.sampled_from(["GET", "HEAD", None]), max_size=8))
    assert frame(kind, parts, methods, turbo=True) == frame(kind, parts, methods, turbo=False)


KEYS: list[tuple[EventType, Side]] = [
    ("syn", "client"),
    ("syn_ack", "server"),
    ("request", "client"),
    ("response", "server"),
    ("fin", "client"),
    ("fin", "server"),
    ("rst", "client"),
    ("rst", "server"),
]


@settings(max_examples=300, deadline=None)
@given(
    keys=st.lists(st.sampled_from(KEYS), max_size=12),
    start=st.sampled_from([machine.State.START, machine.State.ESTABLISHED]),
)
def test_describe_is_runs_anomalies_in_one_pass(
    keys: list[tuple[EventType, Side]], start: machine.State
) -> None:
    events = [Event(i, kind, side, i) for i, (kind, side) in enumerate(keys)]
    assert tuple(machine.describe(events, start)) == machine.run(events, start).anomalies


ORDER = {"syn": 0, "syn_ack": 1, "request": 2, "response": 3, "fin": 4, "rst": 5}


def test_events_sharing_a_packet_keep_the_type_order() -> None:
    """A FIN carried by the packet of the last request and response, a SYN with data: events
    with the same time and frame are ordered SYN, SYN-ACK, request, response, FIN, RST."""
    req = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    up = Stream.from_chunks([Chunk(0, len(req), 10, 1, req)])
    down = Stream.from_chunks([Chunk(0, len(resp), 10, 1, resp)])

    def flow(s: Stream, syn: Mark, rst: Mark | None) -> Flow:
        return Flow(s, syn, 1, Mark(10, 1), rst, 1, 0, len(s.data), 0, 10)

    tc = TcpConnection(
        1, "a:1", "b:2", 1, 2, 4, 10, 1, 10, False,
        flow(up, Mark(10, 1), Mark(10, 1)), flow(down, Mark(10, 1), None),
    )  # fmt: skip
    events = build_connection(tc).events
    assert [e.type for e in events] == [
        "syn",
        "syn_ack",
        "request",
        "response",
        "fin",
        "fin",
        "rst",
    ]
    assert list(events) == sorted(events, key=lambda e: (e.time_ns, e.frame, ORDER[e.type]))

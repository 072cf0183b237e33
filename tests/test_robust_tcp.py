"""Hostile and odd TCP, end to end: each case gives an Analysis with sensible connections and
anomalies, in bounded time, and never an exception.

Conversations are built with real sequence numbers (:mod:`tests.conversation`); floods of
thousands of packets are stamped out of one template frame with numpy (crafting them one by one
would take longer than analyzing them).
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np

from pcapkit import Analysis, analyze
from tests import craft
from tests.conversation import MS, T0, Conv, get, ok, write

SEC = 1_000_000_000
# Where fields sit in an Ethernet + IPv4 (no options) + TCP (no options) frame.
_TCP = 14 + 20
_SPORT, _DPORT, _SEQ, _FLAGS, _PAYLOAD = _TCP, _TCP + 2, _TCP + 4, _TCP + 13, _TCP + 20


def run(tmp_path: Path, *convs: Conv) -> Analysis:
    return analyze(write(tmp_path / "c.pcap", convs))


def run_packets(tmp_path: Path, packets: list[tuple[int, bytes]]) -> Analysis:
    """Analyze packets in exactly the file order given (timestamps as they are)."""
    path = tmp_path / "c.pcap"
    craft.write_pcap(path, packets)
    return analyze(path)


def labels(a: Analysis) -> list[list[str]]:
    return [[r.label for r in c.requests] for c in a.connections]


def what(a: Analysis) -> list[str]:
    return [x.what for c in a.connections for x in c.anomalies]


def stamp(
    path: Path,
    template: bytes,
    n: int,
    *,
    step_ns: int = 1000,
    seq: np.ndarray | None = None,
    sport: np.ndarray | None = None,
    payload: np.ndarray | None = None,
    skip: int | None = None,
) -> Path:
    """A pcap of ``n`` copies of an Ethernet ``template`` frame, ``step_ns`` apart, with per-copy
    sequence numbers, source ports and one-byte payloads; ``skip`` leaves one copy out (a hole).
    Checksums are left as in the template: the reader does not verify them."""
    size = len(template)
    recs = np.zeros((n, 16 + size), np.uint8)
    recs[:, 16:] = np.frombuffer(template, np.uint8)
    ts = T0 + np.arange(n, dtype=np.int64) * step_ns
    head = recs[:, :16].view("<u4")
    head[:, 0] = ts // SEC
    head[:, 1] = ts % SEC // 1000
    head[:, 2] = head[:, 3] = size
    if seq is not None:
        recs[:, 16 + _SEQ : 16 + _SEQ + 4] = seq.astype(">u4").view(np.uint8).reshape(n, 4)
    if sport is not None:
        recs[:, 16 + _SPORT : 16 + _SPORT + 2] = sport.astype(">u2").view(np.uint8).reshape(n, 2)
    if payload is not None:
        recs[:, 16 + _PAYLOAD] = payload
    if skip is not None:
        recs = np.delete(recs, skip, axis=0)
    path.write_bytes(craft.pcap_bytes([]) + recs.tobytes())
    return path


def timed(path: Path) -> tuple[Analysis, float]:
    t0 = time.perf_counter()
    a = analyze(path)
    return a, time.perf_counter() - t0


# -- retransmissions and overlaps -------------------------------------------------------------


def test_retransmission_with_other_bytes_at_the_same_offset_first_wins(tmp_path: Path) -> None:
    c = Conv().handshake(T0)
    c.send("c", T0 + MS, get("/aaaa"))
    c.retransmit("c", T0 + 2 * MS, get("/bbbb"), back=len(get("/aaaa")))
    c.send("s", T0 + 3 * MS, ok())
    (conn,) = run(tmp_path, c).connections
    assert [r.label for r in conn.requests] == ["GET /aaaa"]
    assert conn.retransmissions == 1
    assert conn.client_bytes == len(get("/aaaa"))


def test_overlap_that_starts_earlier_and_arrives_later_does_not_win(tmp_path: Path) -> None:
    req = get("/first")
    c = Conv().handshake(T0)
    c._pkt("c", T0 + MS, "PA", req[:4])  # "GET "
    c._pkt("c", T0 + 2 * MS, "PA", req[4:], seq=c.nxt["c"] + 4)
    c.nxt["c"] += len(req)
    # a retransmission of bytes 2..10 that says something else, arriving last
    c._pkt("c", T0 + 3 * MS, "PA", b"T /zzzzz", seq=c.isn["c"] + 1 + 2)
    c.send("s", T0 + 4 * MS, ok())
    (conn,) = run(tmp_path, c).connections
    assert [r.label for r in conn.requests] == ["GET /first"]
    assert conn.retransmissions == 1  # it brought no byte the capture had not already seen
    assert conn.client_bytes == len(req)


# -- floods -----------------------------------------------------------------------------------


def test_syn_flood_every_unanswered_syn_is_a_connect_failure(tmp_path: Path) -> None:
    n = 5000
    template = craft.frame(craft.tcp("10.0.0.1", "10.0.0.2", 1, 8080, seq=7, flags="S"))
    path = stamp(tmp_path / "syn.pcap", template, n, sport=np.arange(10_000, 10_000 + n))
    a, took = timed(path)
    assert took < 10, f"{n} SYNs took {took:.1f} s"
    assert len(a.connections) == n
    assert all(c.opened_by == "client" and c.established_at_ns is None for c in a.connections)
    assert a.summary.findings_of("connect_failed") == n
    assert {f.message for f in a.findings} == {
        "SYN never answered: the upstream's accept queue was likely full"
    }
    assert a.capture.packets == a.capture.upstream_segments == n


def test_syn_retransmissions_are_one_attempt(tmp_path: Path) -> None:
    c = Conv(40000).syn(T0).syn(T0 + 1 * SEC).syn(T0 + 3 * SEC)
    (conn,) = run(tmp_path, c).connections
    assert conn.syn_count == 3 and conn.state == "S0"


def test_rst_storm_to_many_ports_is_many_one_packet_connections(tmp_path: Path) -> None:
    n = 5000
    template = craft.frame(craft.tcp("10.0.0.2", "10.0.0.1", 8080, 1, seq=9, flags="R"))
    path = stamp(tmp_path / "rst.pcap", template, n)
    # the client port is the destination here: vary it
    data = bytearray(path.read_bytes())
    size = len(template) + 16
    for k in range(n):
        at = 24 + k * size + 16 + _DPORT
        data[at : at + 2] = (20_000 + k).to_bytes(2, "big")
    path.write_bytes(bytes(data))
    a, took = timed(path)
    assert took < 10, f"{n} RSTs took {took:.1f} s"
    assert len(a.connections) == n
    assert all(c.partial and c.closed_by == "server" and c.close == "rst" for c in a.connections)


def test_rst_answering_every_segment_after_the_upstream_closed(tmp_path: Path) -> None:
    """The common RST storm: the upstream is gone and resets each segment nginx still sends."""
    c = Conv().handshake(T0).exchange(T0 + MS, get("/a"), ok())
    c.fin("s", T0 + 2 * MS)
    for k in range(300):
        c.send("c", T0 + 3 * MS + k * 10_000, get(f"/again/{k}"), ack_after=None)
        c.rst("s", T0 + 3 * MS + k * 10_000 + 5_000)
    (conn,) = run(tmp_path, c).connections
    assert conn.closed_by == "server" and conn.close == "fin"
    assert conn.requests[0].status == 200
    assert len(conn.requests) == 301
    assert sum(e.type == "rst" for e in conn.events) == 1  # the first RST, not 300 events


def test_blind_rst_storm_with_random_sequence_numbers(tmp_path: Path) -> None:
    rng = random.Random(5)
    c = Conv().handshake(T0).exchange(T0 + MS, get("/a"), ok())
    for k in range(200):
        c._pkt("s", T0 + 2 * MS + k * 1000, "R", seq=rng.randrange(2**32))
    c.exchange(T0 + 10 * MS, get("/b"), ok())
    a = run(tmp_path, c)
    (conn,) = a.connections
    assert [(r.label, r.status) for r in conn.requests] == [("GET /a", 200), ("GET /b", 200)]
    assert a.summary.findings_of("request_lost_to_fin") == 0
    assert not any("missing" in w for w in what(a))


def test_flood_of_one_byte_segments_in_one_direction_is_linear(tmp_path: Path) -> None:
    """200k one-byte segments of pipelined requests, the upstream never seen at all."""
    n = 200_000
    req = get("/x")
    stream = np.frombuffer((req * (n // len(req) + 1))[:n], np.uint8)
    template = craft.frame(craft.tcp("10.0.0.1", "10.0.0.2", 40000, 8080, flags="PA", payload=b"?"))
    path = stamp(tmp_path / "flood.pcap", template, n, seq=np.arange(n) + 1, payload=stream)
    a, took = timed(path)
    assert took < 10, f"{n} one-byte segments took {took:.1f} s"
    (conn,) = a.connections
    assert len(conn.requests) == n // len(req) + 1  # the last one cut by the end
    assert conn.requests[0].label == "GET /x"
    # the same with one byte never captured midway: the general (non-contiguous) path
    hole = n // 2 + 3
    holed = stamp(
        tmp_path / "hole.pcap", template, n, seq=np.arange(n) + 1, payload=stream, skip=hole
    )
    b, took = timed(holed)
    assert took < 10, f"{n} one-byte segments with a hole took {took:.1f} s"
    (conn,) = b.connections
    assert len(conn.requests) > hole // len(req)  # every request before the hole was read
    # the hole cut a request's head: what framing skipped is said, not lost silently
    (note,) = what(b)
    assert note.startswith("message start line cut by bytes missing from the capture; ")


def test_garbage_bursts_in_one_byte_segments_are_linear(tmp_path: Path) -> None:
    """40k bursts of one byte each, the upstream answering one byte between them, and a hole:
    every burst is a place where a message could start and must be looked at cheaply."""
    c = Conv().handshake(T0)
    text = b"GET " * 10_000
    for i in range(len(text)):
        if i != 3:  # a byte the capture missed
            c._pkt("c", T0 + MS + 2 * i * 1000, "PA", text[i : i + 1])
        c.nxt["c"] += 1
        c._pkt("s", T0 + MS + (2 * i + 1) * 1000, "PA", b"x")
        c.nxt["s"] += 1
    path = write(tmp_path / "bursts.pcap", [c])
    a, took = timed(path)
    assert took < 10, f"{len(text)} bursts took {took:.1f} s"
    (conn,) = a.connections
    assert conn.packets == 2 * len(text) + 3 - 1


# -- sequence numbers, probes, closes ---------------------------------------------------------


def test_sequence_numbers_wrapping_around_2_32(tmp_path: Path) -> None:
    c = Conv(isn_c=2**32 - 10, isn_s=2**32 - 3).handshake(T0)
    c.exchange(T0 + MS, get("/a"), ok()).exchange(T0 + 5 * MS, get("/b"), ok(b"x" * 3000))
    c.fin("c", T0 + 9 * MS).fin("s", T0 + 10 * MS)
    a = run(tmp_path, c)
    (conn,) = a.connections
    assert [(r.label, r.status) for r in conn.requests] == [("GET /a", 200), ("GET /b", 200)]
    assert conn.state == "SF" and conn.retransmissions == 0 and what(a) == []
    assert conn.client_bytes == len(get("/a")) + len(get("/b"))


def test_keepalive_probes_after_data_are_not_requests(tmp_path: Path) -> None:
    c = Conv().handshake(T0).exchange(T0 + MS, get("/a"), ok())
    for k in range(3):  # one old byte at snd_nxt - 1, each ACKed
        c._pkt("c", T0 + (75 + k) * SEC, "A", b"\x00", seq=c.nxt["c"] - 1)
        c._pkt("s", T0 + (75 + k) * SEC + 50_000, "A")
    c.exchange(T0 + 80 * SEC, get("/b"), ok())
    a = run(tmp_path, c)
    (conn,) = a.connections
    assert [r.label for r in conn.requests] == ["GET /a", "GET /b"]
    assert conn.retransmissions == 3 and what(a) == []


def test_keepalive_probe_before_any_data_is_not_a_request(tmp_path: Path) -> None:
    """On a connection that has sent nothing yet, the probe's byte sits before offset 0."""
    c = Conv().handshake(T0)
    c._pkt("c", T0 + 75 * SEC, "A", b"\x00", seq=c.nxt["c"] - 1)
    c.exchange(T0 + 80 * SEC, get("/b"), ok())
    a = run(tmp_path, c)
    (conn,) = a.connections
    assert [(r.label, r.status) for r in conn.requests] == [("GET /b", 200)]
    assert what(a) == []


def test_zero_window_probe_then_the_request(tmp_path: Path) -> None:
    c = Conv().handshake(T0).exchange(T0 + MS, get("/a"), ok())
    req = get("/b")
    c._pkt("s", T0 + 2 * MS, "A")  # (a window of 0 would be advertised here)
    c._pkt("c", T0 + 3 * MS, "PA", req[:1])  # the probe: the next new byte, alone
    c._pkt("c", T0 + 5 * MS, "PA", req)  # the window opened: the whole request
    c.nxt["c"] += len(req)
    c.send("s", T0 + 6 * MS, ok())
    a = run(tmp_path, c)
    (conn,) = a.connections
    assert [(r.label, r.status) for r in conn.requests] == [("GET /a", 200), ("GET /b", 200)]
    assert what(a) == []


def test_data_after_its_own_fin_is_an_anomaly(tmp_path: Path) -> None:
    c = Conv().handshake(T0).exchange(T0 + MS, get("/a"), ok())
    c.fin("c", T0 + 2 * MS).send("c", T0 + 3 * MS, get("/late")).fin("s", T0 + 4 * MS)
    a = run(tmp_path, c)
    (conn,) = a.connections
    assert conn.closed_by == "client" and conn.state == "SF"
    assert "data after its own FIN" in what(a)


def test_simultaneous_fins(tmp_path: Path) -> None:
    """Both FINs at the same instant, each before the other side's: a clean close, no anomaly;
    the closer is the side whose FIN the capture has first."""
    c = Conv().handshake(T0).exchange(T0 + MS, get("/a"), ok())
    c._pkt("c", T0 + 5 * MS, "FA")
    c._pkt("s", T0 + 5 * MS, "FA")
    c.nxt["c"] += 1
    c.nxt["s"] += 1
    c._pkt("c", T0 + 5 * MS + 10, "A")
    c._pkt("s", T0 + 5 * MS + 10, "A")
    a = run(tmp_path, c)
    (conn,) = a.connections
    assert conn.closed_by == "client" and conn.close == "fin"
    assert conn.state == "SF" and what(a) == [] and a.findings == ()


def test_four_tuple_reused_within_the_capture(tmp_path: Path) -> None:
    convs = []
    for k in range(3):
        t = T0 + k * 100 * MS
        c = Conv(40000, isn_c=1000 + k * 7_000_000).handshake(t)
        c.exchange(t + MS, get(f"/{k}"), ok()).fin("c", t + 2 * MS).fin("s", t + 3 * MS)
        convs.append(c)
    a = run(tmp_path, *convs)
    assert labels(a) == [["GET /0"], ["GET /1"], ["GET /2"]]
    assert [c.closed_by for c in a.connections] == ["client"] * 3
    assert {c.client_port for c in a.connections} == {40000}


def test_tuple_reused_while_the_old_connection_was_never_closed(tmp_path: Path) -> None:
    old = Conv(40000, isn_c=1000).handshake(T0).exchange(T0 + MS, get("/old"), ok())
    new = Conv(40000, isn_c=9_000_000).handshake(T0 + 10 * MS)
    new.exchange(T0 + 11 * MS, get("/new"), ok())
    a = run(tmp_path, old, new)
    assert labels(a) == [["GET /old"], ["GET /new"]]
    assert [c.closed_by for c in a.connections] == [None, None]


def _racy_packets() -> list[tuple[int, bytes]]:
    a = Conv(40000).handshake(T0).exchange(T0 + 1 * MS, get("/a"), ok())
    t = T0 + 1003 * MS
    a.send("c", t, get("/lost")).fin("s", t + 200_000).fin("c", t + 300_000)
    b = Conv(40002).handshake(t + 400_000).exchange(t + 500_000, get("/lost"), ok())
    return sorted(a.packets + b.packets, key=lambda p: p[0])


def _outcome(a: Analysis) -> object:
    return (
        [
            (c.client_port, c.closed_by, c.state, [r.label for r in c.requests])
            for c in a.connections
        ],
        [(f.type, f.connection) for f in a.findings],
    )


def test_data_segments_out_of_order_in_the_file(tmp_path: Path) -> None:
    """Each request and response written in the file after what follows it."""
    packets = _racy_packets()
    expected = _outcome(run_packets(tmp_path, packets))
    shuffled = list(packets)
    syn = [bool(p[33] & 0x02) for _, p in shuffled]  # IPv4 without options: TCP flags at 33
    for k in range(3, len(shuffled) - 1, 2):
        if not (syn[k] or syn[k + 1]):
            shuffled[k], shuffled[k + 1] = shuffled[k + 1], shuffled[k]
    assert shuffled != packets
    assert _outcome(run_packets(tmp_path, shuffled)) == expected


def test_handshake_out_of_timestamp_order_in_the_file(tmp_path: Path) -> None:
    packets = _racy_packets()
    expected = _outcome(run_packets(tmp_path, packets))
    swapped = list(packets)
    swapped[0], swapped[1] = swapped[1], swapped[0]  # the SYN-ACK before its SYN
    assert _outcome(run_packets(tmp_path, swapped)) == expected


def test_whole_file_in_reverse_order_is_analyzed(tmp_path: Path) -> None:
    """Not sensible input, but it must give an Analysis that keeps every packet."""
    a = run_packets(tmp_path, _racy_packets()[::-1])
    assert a.capture.packets == a.capture.upstream_segments == len(_racy_packets())
    assert sum(c.packets for c in a.connections) == len(_racy_packets())


# -- not HTTP ---------------------------------------------------------------------------------


def test_tls_on_the_upstream_port(tmp_path: Path) -> None:
    c = Conv().handshake(T0)
    c.send("c", T0 + MS, bytes.fromhex("16030100a5010000a10303") + bytes(160))  # ClientHello
    c.send("s", T0 + 2 * MS, bytes.fromhex("160303005a0200005603") + bytes(80))  # ServerHello
    c.send("c", T0 + 3 * MS, bytes.fromhex("1703030040") + bytes(64))
    c.send("s", T0 + 4 * MS, bytes.fromhex("1703030040") + bytes(64))
    c.fin("s", T0 + 5 * MS).fin("c", T0 + 6 * MS)
    a = run(tmp_path, c)
    (conn,) = a.connections
    # read as TLS records (README "TLS to the upstream"): the handshake is no request, the
    # application data each way a request and its answer; nothing is an anomaly
    assert what(a) == [] and conn.anomalies == ()
    assert conn.tls == "TLS 1.2"  # its ServerHello names no supported_versions
    (req,) = conn.requests
    assert req.encrypted and req.answered and req.label == "(encrypted request)"
    assert conn.closed_by == "server" and conn.state == "SF"


def test_http2_prior_knowledge_on_the_upstream_port(tmp_path: Path) -> None:
    c = Conv().handshake(T0)
    c.send("c", T0 + MS, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000"))
    c.send("s", T0 + 2 * MS, bytes.fromhex("000006040000000000000300000064"))
    a = run(tmp_path, c)
    notes = what(a)
    assert len(notes) == 2 and all("HTTP/2" in n for n in notes)


def test_random_garbage_both_ways(tmp_path: Path) -> None:
    rng = random.Random(7)
    c = Conv().handshake(T0)
    for k in range(20):
        c.send("c", T0 + (2 * k + 1) * MS, rng.randbytes(rng.randrange(1, 300)))
        c.send("s", T0 + (2 * k + 2) * MS, rng.randbytes(rng.randrange(1, 300)))
    a = run(tmp_path, c)
    (conn,) = a.connections
    assert 1 <= len(conn.requests) <= 20
    assert all(r.method is None for r in conn.requests)
    assert all(n.startswith("not an HTTP/1.x") for n in what(a))


def test_content_length_of_thousands_of_digits(tmp_path: Path) -> None:
    """int() refuses more than 4300 digits: this raised ValueError out of the framer."""
    c = Conv().handshake(T0)
    c.send("c", T0 + MS, b"POST /p HTTP/1.1\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\nx")
    c.send("s", T0 + 2 * MS, b"HTTP/1.1 200 OK\r\nContent-Length: " + b"7" * 5000 + b"\r\n\r\n")
    a = run(tmp_path, c)
    (conn,) = a.connections
    assert [r.label for r in conn.requests] == ["POST /p"]
    assert what(a).count("unreadable Content-Length") == 2

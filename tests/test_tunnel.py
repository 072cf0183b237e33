"""Connections that stop carrying HTTP: a WebSocket after ``101 Switching Protocols``, a tunnel
after a CONNECT answered 2xx.

What follows the two messages that opened the tunnel is the tunnel's: not framed, never taken for
requests (the frames a WebSocket client sends would otherwise read as requests "payload not
captured", lost when the upstream closes), never anomalies. The upgrade request is answered by
the 101; the upstream ending the tunnel first is a close of its own kind, not an idle timeout the
diagnosis would read the upstream's keepalive timeout from.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from pcapkit import analyze
from tests import reference
from tests.conversation import MS, T0, Conv, get, ok, write

SEC = 1_000 * MS


def upgrade(target: str = "/ws") -> bytes:
    return (
        f"GET {target} HTTP/1.1\r\nHost: backend\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def switching(protocol: str | None = "websocket") -> bytes:
    named = f"Upgrade: {protocol}\r\n" if protocol is not None else ""
    return (
        f"HTTP/1.1 101 Switching Protocols\r\n{named}Connection: upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    ).encode()


def frame(payload: bytes, *, masked: bool, opcode: int = 0x1) -> bytes:
    """One WebSocket frame (RFC 6455), text by default: a client's are masked."""
    if not masked:
        return bytes([0x80 | opcode, len(payload)]) + payload
    key = b"\x01\x02\x03\x04"
    body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + key + body


def close_frame(*, masked: bool) -> bytes:
    return frame(struct.pack("!H", 1001), masked=masked, opcode=0x8)


def websocket(cport: int, idle_close: bool = True) -> Conv:
    """A GET, then an upgrade on the same connection, two frames each way, then the upstream's
    idle close (a close frame and its FIN) or nginx's."""
    c = Conv(cport).handshake(T0)
    c.exchange(T0 + 1 * MS, get("/before"), ok())
    c.exchange(T0 + 10 * MS, upgrade(), switching())
    t = T0 + 20 * MS
    for i in range(2):
        c.send("c", t + i * 5 * MS, frame(b"GET / HTTP/1.1", masked=True))
        c.send("s", t + i * 5 * MS + 1 * MS, frame(b"GET / HTTP/1.1", masked=False))
    end = t + 10 * MS + 1 * SEC
    if idle_close:
        c.send("s", end, close_frame(masked=False))
        c.fin("s", end + 100_000)
        c.send("c", end + 200_000, close_frame(masked=True))
        c.fin("c", end + 300_000)
    else:
        c.send("c", end, close_frame(masked=True))
        c.send("s", end + 100_000, close_frame(masked=False))
        c.fin("c", end + 200_000)
        c.fin("s", end + 300_000)
    return c


def test_websocket_frames_are_not_requests_and_the_upgrade_is_answered(tmp_path: Path) -> None:
    path = write(tmp_path / "ws.pcap", [websocket(40000)])
    a = analyze(path)
    (c,) = a.connections
    assert c.tunnel == "websocket"
    assert [(r.method, r.target, r.status) for r in c.requests] == [
        ("GET", "/before", 200),
        ("GET", "/ws", 101),
    ]
    assert [e.type for e in c.events if e.type in ("request", "response")] == [
        "request",
        "response",
        "request",
        "response",
    ]
    switched = [e for e in c.events if e.status == 101]
    assert len(switched) == 1 and switched[0].note is not None
    assert switched[0].note.startswith("websocket tunnel from here: ")
    # two masked frames of 20 bytes and the masked close (8), two of 16 and the close (4)
    assert "48 bytes to the upstream, 36 from it" in switched[0].note
    assert c.anomalies == ()
    assert a.summary.unanswered_requests == 0


def test_upstream_ending_a_websocket_is_a_tunnel_close_not_a_lost_request(
    tmp_path: Path,
) -> None:
    path = write(tmp_path / "ws.pcap", [websocket(40000)])
    a = analyze(path)
    assert [f.type for f in a.findings] == ["server_initiated_close"]
    (f,) = a.findings
    assert f.reason == "tunnel"
    assert f.message.startswith("upstream ended the websocket tunnel first with FIN, ")
    assert "after its last data" in f.message
    # an upstream's WebSocket idle timeout is not its HTTP keepalive timeout
    assert [x.topic for x in a.advice] == []


def test_nginx_ending_a_websocket_has_no_finding(tmp_path: Path) -> None:
    a = analyze(write(tmp_path / "ws.pcap", [websocket(40000, idle_close=False)]))
    assert a.connections[0].closed_by == "client" and a.findings == ()


def test_an_unnamed_upgrade_and_a_connect_tunnel(tmp_path: Path) -> None:
    up = Conv(40001).handshake(T0)
    up.exchange(T0 + 1 * MS, upgrade(), switching(None))
    up.send("c", T0 + 3 * MS, b"\x00\x01binary")
    connect = Conv(40002).handshake(T0)
    connect.exchange(
        T0 + 1 * MS,
        b"CONNECT backend:443 HTTP/1.1\r\nHost: backend:443\r\n\r\n",
        b"HTTP/1.1 200 Connection established\r\n\r\n",
    )
    connect.send("c", T0 + 3 * MS, b"\x16\x03\x01\x00\x05hello")  # a TLS record, not HTTP
    connect.send("s", T0 + 4 * MS, b"\x16\x03\x03\x00\x02hi")
    plain = Conv(40003).handshake(T0)
    plain.exchange(T0 + 1 * MS, get("/a"), ok(status=200))
    a = analyze(write(tmp_path / "t.pcap", [up, connect, plain]))
    by_port = {c.client_port: c for c in a.connections}
    assert by_port[40001].tunnel == "upgrade"
    assert by_port[40002].tunnel == "connect"
    assert by_port[40003].tunnel is None
    assert [len(c.requests) for c in (by_port[40001], by_port[40002])] == [1, 1]
    assert all(c.anomalies == () for c in a.connections)


def test_interim_responses_still_wait_for_the_final_one(tmp_path: Path) -> None:
    c = Conv(40004).handshake(T0)
    c.send("c", T0 + 1 * MS, b"POST /up HTTP/1.1\r\nHost: b\r\nExpect: 100-continue\r\n"
           b"Content-Length: 3\r\n\r\n")  # fmt: skip
    c.send("s", T0 + 2 * MS, b"HTTP/1.1 100 Continue\r\n\r\n")
    c.send("c", T0 + 3 * MS, b"x=1")
    c.send("s", T0 + 4 * MS, ok())
    (conn,) = analyze(write(tmp_path / "c.pcap", [c])).connections
    assert conn.tunnel is None
    assert [(r.method, r.status) for r in conn.requests] == [("POST", 200)]


def test_the_reference_agrees_on_tunnels(tmp_path: Path) -> None:
    path = write(tmp_path / "ws.pcap", [websocket(40000), websocket(40010, idle_close=False)])
    core, ref = analyze(path), reference.analyze(path)
    assert core.connections == ref.connections
    assert core.findings == ref.findings


FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "websocket"


def test_real_websockets_through_nginx_to_tomcat() -> None:
    """The lab's capture: plain GETs, then five WebSockets (101 each, per tshark in truth.json);
    Tomcat ends the idle ones. nginx logged no error: no request was lost."""
    truth = json.loads((FIXTURE / "truth.json").read_text())
    a = analyze(FIXTURE / "capture.pcap")
    by_port = {c.client_port: c for c in a.connections}
    upgraded = {t["client_port"]: t["websocket"] for t in truth["connections"] if "websocket" in t}
    assert len(upgraded) == truth["websocket"]["upgraded_connections"] == 5
    for port, c in by_port.items():
        if port not in upgraded:
            assert c.tunnel is None
            continue
        assert c.tunnel == "websocket"
        (switched,) = [e for e in c.events if e.status == 101]
        assert switched.frame == upgraded[port]["upgrade_frame"]
        assert c.requests[-1].status == 101 and c.anomalies == ()
    assert a.summary.unanswered_requests == 0
    assert a.summary.findings_of("request_lost_to_fin") == 0
    closes = [f for f in a.findings if f.type == "server_initiated_close"]
    assert {f.reason for f in closes} == {"tunnel"}
    assert len(closes) == truth["first_close_by"]["server"] == 4
    assert not any(x.topic in ("lost_requests", "upstream_idle_timeout") for x in a.advice)

"""Captures that hold one direction only: an asymmetric route, a mirror port of one side.

nginx's ACKs and requests after its SYN show the handshake happened even when the SYN-ACK is not
in the capture: no failed connect is made up. The upstream's SYN-ACK shows a SYN was sent: no
anomaly is made up either. The Python reference agrees.
"""

from __future__ import annotations

from pathlib import Path

from pcapkit import analyze
from tests import reference
from tests.conversation import MS, T0, Conv, get, ok, write

SEC = 1_000_000_000


def _sent_by(c: Conv, port: int) -> Conv:
    """Only the packets whose TCP source port is ``port``: one direction of the conversation."""
    c.packets = [p for p in c.packets if int.from_bytes(p[1][20:22], "big") == port]
    return c


def _talk(cport: int) -> Conv:
    c = Conv(cport).handshake(T0 + cport * MS)
    c.exchange(T0 + cport * MS + 1 * MS, get("/a"), ok())
    c.exchange(T0 + cport * MS + 3 * MS, get("/b"), ok())
    return c.fin("s", T0 + cport * MS + SEC).fin("c", T0 + cport * MS + SEC + 1 * MS)


def test_nginx_side_only_is_no_failed_connect(tmp_path: Path) -> None:
    path = write(tmp_path / "nginx-side.pcap", [_sent_by(_talk(p), p) for p in (40000, 40001)])
    a = analyze(path)
    assert [f.type for f in a.findings] == []  # the SYNs were answered, off the capture
    assert [c.one_sided for c in a.connections] == ["client", "client"]
    assert all(c.opened_by == "client" and not c.anomalies for c in a.connections)
    assert [[r.target for r in c.requests] for c in a.connections] == [["/a", "/b"]] * 2
    (warning,) = [w for w in a.capture.warnings if w.startswith("one-sided")]
    assert "2 connections seen in one direction only (2 with only nginx's packets)" in warning
    assert reference.analyze(path).connections == a.connections


def test_the_upstreams_side_only_starts_at_its_syn_ack(tmp_path: Path) -> None:
    path = write(tmp_path / "upstream-side.pcap", [_sent_by(_talk(40000), 8080)])
    a = analyze(path)
    (conn,) = a.connections
    assert conn.one_sided == "server"
    assert conn.anomalies == ()  # the SYN-ACK is where it began, not "SYN-ACK in established"
    assert [e.type for e in conn.events][:1] == ["syn_ack"]
    assert [f.type for f in a.findings] == ["server_initiated_close"]  # what it did show
    assert any("1 with only the upstream's packets" in w for w in a.capture.warnings)
    assert reference.analyze(path).connections == a.connections


def test_a_syn_never_answered_is_still_a_failed_connect(tmp_path: Path) -> None:
    # SYNs alone say nothing of the other direction: the failed connect stands
    c = Conv().syn(T0).syn(T0 + 1 * SEC)
    a = analyze(write(tmp_path / "syn.pcap", [c]))
    assert [f.type for f in a.findings] == ["connect_failed"]
    assert a.connections[0].one_sided is None
    assert not any(w.startswith("one-sided") for w in a.capture.warnings)


def test_both_sides_are_not_one_sided(tmp_path: Path) -> None:
    a = analyze(write(tmp_path / "both.pcap", [_talk(40000)]))
    assert a.connections[0].one_sided is None
    assert not any(w.startswith("one-sided") for w in a.capture.warnings)

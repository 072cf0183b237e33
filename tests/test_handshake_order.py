"""A handshake whose SYN-ACK the capture wrote, and even stamped, before its SYN.

``tcpdump -i any`` and multi-queue NICs write packets slightly out of order; on loopback a
SYN-ACK stamped 0.26 ms before its SYN is real. The SYN belongs to the connection whose SYN-ACK
acknowledges its ISN + 1 — TCP's evidence, not the file's order — and the timeline shows the
handshake in TCP's order, without anomalies.
"""

from __future__ import annotations

from pathlib import Path

from pcapkit import analyze
from tests import craft, reference
from tests.conversation import MS, T0, Conv, get, ok, write


def reordered(cport: int, *, isn_ok: bool = True) -> Conv:
    c = Conv(cport).handshake(T0)
    syn, syn_ack = c.packets[0], c.packets[1]
    # the SYN-ACK written first and stamped 260 µs before the SYN
    c.packets[0] = (T0 - 260_000, syn_ack[1])
    c.packets[1] = (T0, syn[1])
    if not isn_ok:  # a SYN the SYN-ACK does not answer: another attempt
        c.packets[1] = (T0, reordered_syn(cport))
    c.exchange(T0 + 1 * MS, get("/a"), ok())
    c.fin("c", T0 + 5 * MS)
    c.fin("s", T0 + 6 * MS)
    return c


def reordered_syn(cport: int) -> bytes:
    other = Conv(cport, isn_c=555_555).syn(T0)
    return other.packets[0][1]


def test_a_syn_ack_stamped_before_its_syn_is_one_connection(tmp_path: Path) -> None:
    path = tmp_path / "r.pcap"
    # written in file order as given: the SYN-ACK is the file's first packet
    write(path, [reordered(40000)])
    a = analyze(path)
    (c,) = a.connections
    assert not c.partial and c.opened_by == "client" and c.state == "SF"
    assert [e.type for e in c.events][:2] == ["syn", "syn_ack"]
    assert c.anomalies == ()
    assert [(r.method, r.status) for r in c.requests] == [("GET", 200)]
    assert a.findings == ()
    ref = reference.analyze(path)
    assert ref.connections == a.connections


def test_a_syn_the_syn_ack_does_not_answer_is_another_attempt(tmp_path: Path) -> None:
    path = tmp_path / "r.pcap"
    write(path, [reordered(40000, isn_ok=False)])
    a = analyze(path)
    assert len(a.connections) == 2
    assert reference.analyze(path).connections == a.connections


def test_packets_written_out_of_time_order_are_counted_and_said(tmp_path: Path) -> None:
    # the SYN written first, its SYN-ACK after it but stamped 260 µs earlier
    c = reordered(40000)
    packets = [c.packets[1], c.packets[0], *c.packets[2:]]
    path = tmp_path / "out-of-order.pcap"
    craft.write_pcap(path, packets)
    a = analyze(path)
    (conn,) = a.connections
    assert [e.type for e in conn.events][:2] == ["syn", "syn_ack"] and conn.anomalies == ()
    assert a.capture.warnings == (
        "1 packet stamped earlier than one before it in the file (at most 0.260 ms back): the "
        "capture wrote packets out of order (-i any, a multi-queue NIC); timelines follow the "
        "timestamps, and a SYN-ACK stamped before its SYN is put after it",
    )
    in_order = analyze(write(tmp_path / "in-order.pcap", [reordered(40000)]))
    assert in_order.capture.warnings == ()

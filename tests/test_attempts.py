"""Several connection attempts on one tuple: each SYN goes to the attempt whose ISN it carries.

A retransmitted SYN among forged SYNs on the same 4-tuple (other ISNs) is one attempt, not a new
failed connection each time; a stray SYN does not end an established connection (its SYN-ACK
would); a SYN-ACK names the attempt it accepted by acknowledging its ISN + 1. The Python
reference agrees on each.
"""

from __future__ import annotations

from pathlib import Path

from pcapkit import Analysis, analyze
from tests import reference
from tests.conversation import MS, T0, Conv, get, ok, write

SEC = 1_000_000_000


def both(path: Path) -> Analysis:
    a = analyze(path)
    assert reference.analyze(path).connections == a.connections
    return a


def accept(c: Conv, t: int) -> Conv:
    """The upstream's SYN-ACK for ``c``'s ISN, and nginx's ACK."""
    c._pkt("s", t, "SA")
    c.nxt["s"] += 1
    c._pkt("c", t + 100_000, "A")
    return c


def test_a_retransmitted_syn_among_forged_ones_is_one_attempt(tmp_path: Path) -> None:
    real, forged = Conv(40000, isn_c=1_000), Conv(40000, isn_c=777_777)
    real.syn(T0)
    forged.syn(T0 + 300 * MS)
    real.syn(T0 + 1 * SEC)  # the kernel's retransmission: the same ISN
    forged.syn(T0 + 1300 * MS)
    accept(real, T0 + 1 * SEC + 100_000)
    real.exchange(T0 + 1 * SEC + 1 * MS, get("/a"), ok())
    forged.syn(T0 + 1500 * MS)  # mid-connection: it does not end the real one
    real.fin("c", T0 + 2 * SEC).fin("s", T0 + 2 * SEC + 1 * MS)
    a = both(write(tmp_path / "forged.pcap", [real, forged]))
    got = [(c.state, c.syn_count, [r.target for r in c.requests]) for c in a.connections]
    assert got == [("SF", 2, ["/a"]), ("S0", 3, [])]
    assert [f.type for f in a.findings] == ["connect_failed"]  # the forged attempt's, once


def test_a_stray_syn_does_not_split_an_established_connection(tmp_path: Path) -> None:
    c = Conv(40000).handshake(T0).exchange(T0 + 1 * MS, get("/a"), ok())
    stray = Conv(40000, isn_c=555_555).syn(T0 + 5 * MS)
    c.exchange(T0 + 10 * MS, get("/b"), ok())
    c.fin("c", T0 + 20 * MS).fin("s", T0 + 21 * MS)
    a = both(write(tmp_path / "stray.pcap", [c, stray]))
    got = [(c.state, [r.target for r in c.requests]) for c in a.connections]
    assert got == [("SF", ["/a", "/b"]), ("S0", [])]


def test_a_syn_ack_accepting_another_attempt_ends_the_one_before(tmp_path: Path) -> None:
    # the old connection's close was not captured, and the port was used again: the upstream's
    # SYN-ACK for the new ISN says the tuple is free
    old = Conv(40000).handshake(T0).exchange(T0 + 1 * MS, get("/a"), ok())
    again = Conv(40000, isn_c=555_555).syn(T0 + 1 * SEC)
    accept(again, T0 + 1 * SEC + 100_000)
    again.exchange(T0 + 1 * SEC + 1 * MS, get("/b"), ok())
    again.fin("c", T0 + 2 * SEC).fin("s", T0 + 2 * SEC + 1 * MS)
    a = both(write(tmp_path / "reuse.pcap", [old, again]))
    got = [[r.target for r in c.requests] for c in a.connections]
    assert got == [["/a"], ["/b"]]
    assert a.connections[1].state == "SF" and a.connections[1].opened_by == "client"


def test_a_closed_connections_port_used_again_is_a_new_connection(tmp_path: Path) -> None:
    old = Conv(40000).handshake(T0).exchange(T0 + 1 * MS, get("/a"), ok())
    old.fin("s", T0 + 5 * MS).fin("c", T0 + 6 * MS)
    again = Conv(40000, isn_c=555_555).handshake(T0 + 10 * MS)
    again.exchange(T0 + 11 * MS, get("/b"), ok())
    a = both(write(tmp_path / "again.pcap", [old, again]))
    assert [[r.target for r in c.requests] for c in a.connections] == [["/a"], ["/b"]]


def test_a_syn_flood_on_one_tuple_stays_bounded(tmp_path: Path) -> None:
    flood = [Conv(40000, isn_c=10_000 * k).syn(T0 + k * MS) for k in range(1, 41)]
    a = both(write(tmp_path / "flood.pcap", flood))
    assert len(a.connections) == 40  # each ISN its own failed attempt, none lost
    assert [f.type for f in a.findings] == ["connect_failed"] * 40

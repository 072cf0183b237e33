"""Zeek's ``conn_state`` and ``history``, as ``conn.log`` would show them (``zeek -C``), on the
whole pipeline: crafted conversations whose expected codes follow from Zeek's rules
(``TCPSessionAdapter.cc``, ``base/protocols/conn/main.zeek``), the Python reference
(``tests/oracle/zeek.py``) agreeing, and the real fixtures' first closers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pcapkit import analyze
from tests import reference
from tests.conversation import MS, T0, Conv, get, ok, write

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def served() -> Conv:
    return Conv(40000).handshake(T0).exchange(T0 + 1 * MS, get("/a"), ok())


def syn_only() -> Conv:
    return Conv(40000).syn(T0).syn(T0 + 1000 * MS)


def refused() -> Conv:
    return Conv(40000).syn(T0).rst("s", T0 + 1 * MS, ack=True)


def syn_then_rst() -> Conv:
    c = Conv(40000).syn(T0)
    c._pkt("c", T0 + 1 * MS, "R")
    return c


def midstream() -> Conv:
    c = Conv(40000)
    c.nxt = {"c": 77_777, "s": 123_456}
    return c.exchange(T0, get("/mid"), ok())


CASES = {
    "closed by nginx": (served().fin("c", T0 + 5 * MS).fin("s", T0 + 6 * MS), "SF", "ShADadFf"),
    "closed by the upstream": (
        served().fin("s", T0 + 5 * MS).fin("c", T0 + 6 * MS),
        "SF",
        "ShADadfF",
    ),
    "half closed by nginx": (served().fin("c", T0 + 5 * MS), "S2", "ShADadF"),
    "half closed by the upstream": (served().fin("s", T0 + 5 * MS), "S3", "ShADadf"),
    "reset by nginx": (served().rst("c", T0 + 5 * MS), "RSTO", "ShADadR"),
    "reset by the upstream": (served().rst("s", T0 + 5 * MS), "RSTR", "ShADadr"),
    "open": (served(), "S1", "ShADad"),
    "syn unanswered, sent twice": (syn_only(), "S0", "S"),
    "syn refused": (refused(), "REJ", "Sr"),
    "syn then nginx's rst": (syn_then_rst(), "RSTOS0", "SR"),
    "open before the capture, closed": (
        midstream().fin("s", T0 + 5 * MS).fin("c", T0 + 6 * MS),
        "SF",
        "DadAfF",
    ),
    "open before the capture, upstream's fin": (midstream().fin("s", T0 + 5 * MS), "SHR", "DadAf"),
    "open before the capture": (midstream(), "OTH", "DadA"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_state_and_history_as_zeek_writes_them(tmp_path: Path, name: str) -> None:
    conv, state, history = CASES[name]
    path = write(tmp_path / "c.pcap", [conv])
    (c,) = analyze(path).connections
    assert (c.state, c.history) == (state, history)
    (ref,) = reference.analyze(path).connections
    assert (ref.state, ref.history) == (state, history)


def test_a_retransmission_is_a_t(tmp_path: Path) -> None:
    c = Conv(40000).handshake(T0)
    c.send("c", T0 + 1 * MS, get("/a"))
    c.retransmit("c", T0 + 200 * MS, get("/a"), back=len(get("/a")))
    c.send("s", T0 + 201 * MS, ok())
    c.fin("c", T0 + 300 * MS).fin("s", T0 + 301 * MS)
    path = write(tmp_path / "c.pcap", [c])
    (conn,) = analyze(path).connections
    assert conn.history == "ShADaTdFf" and conn.retransmissions == 1
    assert reference.analyze(path).connections[0].history == conn.history


@pytest.mark.parametrize("name", ["idle-race-get", "idle-close", "agree", "max-requests"])
def test_the_fixtures_closers_read_in_zeeks_history(name: str) -> None:
    """tshark's first closing segment (truth.json) is the first F or R in Zeek's history, in
    the closer's case: upper for nginx, lower for the upstream."""
    truth = json.loads((FIXTURES / name / "truth.json").read_text())
    by_port = {t["client_port"]: t["first_close_by"] for t in truth["connections"]}
    for c in analyze(FIXTURES / name / "capture.pcap").connections:
        first = next((ch for ch in c.history if ch in "FfRr"), None)
        closer = {None: "none", "F": "client", "R": "client", "f": "server", "r": "server"}
        assert closer[first] == by_port[c.client_port], c.history

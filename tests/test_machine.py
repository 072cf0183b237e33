"""The oracle's connection state machine and the Zeek vocabulary derived from the same events,
and the docs' diagram drawn from the core's table."""

from __future__ import annotations

from pathlib import Path

from pcapkit import _core
from pcapkit.model import Event, EventType, Side
from tests.oracle import machine
from tests.oracle.machine import State


def ev(t: int, kind: EventType, side: Side) -> Event:
    return Event(t, kind, side, t)


HEALTHY = [
    ev(1, "syn", "client"),
    ev(2, "syn_ack", "server"),
    ev(3, "request", "client"),
    ev(4, "response", "server"),
    ev(5, "fin", "client"),
    ev(6, "fin", "server"),
]


def test_healthy_keepalive_connection() -> None:
    run = machine.run(HEALTHY)
    assert run.final is State.CLOSED
    assert run.anomalies == ()


def test_request_after_upstream_fin_is_allowed_it_is_the_race() -> None:
    events = [
        *HEALTHY[:4],
        ev(5, "fin", "server"),
        ev(6, "request", "client"),
        ev(7, "fin", "client"),
    ]
    run = machine.run(events)
    assert run.states[-3:] == (State.SERVER_CLOSED, State.SERVER_CLOSED, State.CLOSED)
    assert run.anomalies == ()


def test_data_after_own_fin_is_an_anomaly_not_an_error() -> None:
    events = [*HEALTHY[:4], ev(5, "fin", "server"), ev(6, "response", "server")]
    run = machine.run(events)
    assert run.final is State.SERVER_CLOSED
    assert len(run.anomalies) == 1
    assert run.anomalies[0].what == "response in state server_closed"


def test_syn_answered_by_rst_is_rejected() -> None:
    events = [ev(1, "syn", "client"), ev(2, "rst", "server")]
    assert machine.run(events).final is State.REJECTED


def test_midstream_start() -> None:
    events = [ev(1, "request", "client"), ev(2, "response", "server"), ev(3, "fin", "server")]
    run = machine.run(events, State.ESTABLISHED)
    assert run.final is State.SERVER_CLOSED and run.anomalies == ()


def test_every_state_has_a_row() -> None:
    assert set(machine.TRANSITIONS) == set(State)


def test_docs_diagram_matches_the_table() -> None:
    """The docs draw the core's table; the oracle's table is the same table."""
    doc = (Path(__file__).parent.parent / "docs" / "state-machine.md").read_text()
    assert _core.diagram() in doc
    assert machine.diagram() == _core.diagram()

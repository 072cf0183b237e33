"""The connection state machine: every state, every event, every transition — here and only here.

Like h11's ``_state.py``, the whole protocol view of a connection is one table,
``TRANSITIONS[state][(event type, side)] -> next state``. The events are the labelled moments the
earlier stages found (SYN, SYN-ACK, request, response, FIN, RST, each with the side that sent it);
the machine never sees bytes.

A missing entry is not a crash. Real captures contain traffic that does not fit (data after a FIN,
a SYN-ACK whose SYN the capture missed), so, as Zeek does, the event is kept, an :class:`Anomaly`
naming the state and the event is recorded on the connection, and the state does not change.

``docs/state-machine.md`` shows the diagram :func:`diagram` draws from this table, and a test
keeps the two equal, so the picture cannot drift from the code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from pcapkit.model import Anomaly, Event, EventType, Side


class State(StrEnum):
    START = "start"  # nothing seen yet
    SYN_SENT = "syn_sent"  # the client's SYN, no answer yet
    REJECTED = "rejected"  # the SYN was answered with RST
    ESTABLISHED = "established"  # handshake done (or the capture began mid-connection)
    CLIENT_CLOSED = "client_closed"  # nginx sent FIN first; the upstream may still answer
    SERVER_CLOSED = "server_closed"  # the upstream sent FIN first; nginx's data is now lost
    CLOSED = "closed"  # both FINs
    RESET = "reset"  # a RST ended it


Key = tuple[EventType, Side]

_RSTS: dict[Key, State] = {("rst", "client"): State.RESET, ("rst", "server"): State.RESET}

TRANSITIONS: dict[State, dict[Key, State]] = {
    State.START: {
        ("syn", "client"): State.SYN_SENT,
    },
    State.SYN_SENT: {
        ("request", "client"): State.SYN_SENT,  # TCP Fast Open: the request rides on the SYN
        ("syn_ack", "server"): State.ESTABLISHED,
        ("rst", "server"): State.REJECTED,
        ("rst", "client"): State.RESET,
        ("fin", "client"): State.CLIENT_CLOSED,
    },
    State.ESTABLISHED: {
        ("request", "client"): State.ESTABLISHED,
        ("response", "server"): State.ESTABLISHED,
        ("fin", "client"): State.CLIENT_CLOSED,
        ("fin", "server"): State.SERVER_CLOSED,
        **_RSTS,
    },
    State.CLIENT_CLOSED: {
        # a half-close: the upstream may still answer what it was sent
        ("response", "server"): State.CLIENT_CLOSED,
        ("fin", "server"): State.CLOSED,
        **_RSTS,
    },
    State.SERVER_CLOSED: {
        # nginx may write a request into the connection before it reads the upstream's FIN:
        # legal TCP, and exactly the race that loses requests (the classifier flags it)
        ("request", "client"): State.SERVER_CLOSED,
        ("fin", "client"): State.CLOSED,
        **_RSTS,
    },
    State.CLOSED: {
        **{k: State.CLOSED for k in _RSTS},  # a RST after both FINs answers a late segment
    },
    State.RESET: {
        **{k: State.RESET for k in _RSTS},  # both sides resetting
    },
    State.REJECTED: {},
}

_WHAT: dict[Key, str] = {
    ("syn", "client"): "SYN",
    ("syn_ack", "server"): "SYN-ACK",
    ("request", "client"): "request",
    ("response", "server"): "response",
    ("fin", "client"): "nginx's FIN",
    ("fin", "server"): "upstream's FIN",
    ("rst", "client"): "nginx's RST",
    ("rst", "server"): "upstream's RST",
}


@dataclass(frozen=True, slots=True)
class Run:
    """What the machine made of one connection's events."""

    states: tuple[State, ...]  # the state after each event
    final: State
    anomalies: tuple[Anomaly, ...]


def run(events: Iterable[Event], start: State = State.START) -> Run:
    """Drive the machine over events in time order; unexpected ones become anomalies."""
    state = start
    states: list[State] = []
    anomalies: list[Anomaly] = []
    for ev in events:
        key: Key = (ev.type, ev.side)
        nxt = TRANSITIONS[state].get(key)
        if nxt is None:
            anomalies.append(_unexpected(ev, key, state))
        else:
            state = nxt
        states.append(state)
    return Run(tuple(states), state, tuple(anomalies))


def _unexpected(ev: Event, key: Key, state: State) -> Anomaly:
    what = _WHAT.get(key, f"{ev.type} from {ev.side}")
    return Anomaly(ev.time_ns, ev.frame, ev.side, f"{what} in state {state}")


def describe(events: Iterable[Event], start: State = State.START) -> list[Anomaly]:
    """:func:`run`'s anomalies alone, in one pass that keeps no state per event (labelling's:
    a busy keepalive connection has thousands of events)."""
    state = start
    table = TRANSITIONS[state]
    anomalies: list[Anomaly] = []
    for ev in events:
        key: Key = (ev.type, ev.side)
        nxt = table.get(key)
        if nxt is None:
            anomalies.append(_unexpected(ev, key, state))
        elif nxt is not state:
            state = nxt
            table = TRANSITIONS[state]
    return anomalies


def diagram() -> str:
    """The transition table as a Mermaid state diagram, for the docs."""
    lines = ["stateDiagram-v2", "    [*] --> start", "    [*] --> established: mid-stream"]
    for state, edges in TRANSITIONS.items():
        for (etype, side), nxt in edges.items():
            lines.append(f"    {state} --> {nxt}: {etype} ({side})")
    return "\n".join(lines)

"""The core's finished connections, as columns, into the public :class:`Connection` values.

The compiled core (:mod:`pcapkit._core`) reads the capture, rebuilds each TCP connection and
labels it; what crosses into Python is a :class:`~pcapkit._core.Batch` per group of finished
connections: their per-connection columns, and the ones asked for whole, each as the pickle of
its plain values (a :data:`Record`, written by the core). This module is the one place that
turns those into dataclasses, only for the connections the analysis keeps or must look into,
and only when they are read: a spool keeps the pickles as the core wrote them, which
:func:`build` turns into objects once loaded. The connections the rules must look into get
less (:func:`suspects`): what the rules read of them.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Sequence
from dataclasses import fields
from itertools import starmap
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NamedTuple

from pcapkit.model import Anomaly, Connection, Event, Request, Side

if TYPE_CHECKING:
    from pcapkit._core import Batch


Rows = list[tuple[Any, ...]]
Record = tuple[tuple[Any, ...], Rows, Rows, Rows]
"""A connection as plain values: its own fields (``Connection``'s, in order, without the three
below), then its events, requests and anomalies as rows of their fields in order. The core
writes it pickled (``crates/kaflow-core/src/record.rs``): what a spool keeps of a connection
the report may never read costs the Python side nothing until it is read."""


def _requests(rows: Iterable[tuple[Any, ...]], tls: str | None) -> tuple[Request, ...]:
    """Requests from their rows; over TLS each is encrypted (the connection's, not a column)."""
    reqs = tuple(starmap(Request, rows))
    if tls is not None:
        for q in reqs:
            q.encrypted = True
    return reqs


def build(recs: Iterable[Record]) -> list[Connection]:
    """The :class:`Connection` values of these records: positional construction, one
    ``starmap`` per kind of row."""
    out: list[Connection] = []
    for row, events, requests, anomalies in recs:
        (
            cid, client, server, client_port, ip_version, opened_at_ns, first_frame, opened_by,
            established_at_ns, closed_by, close, closed_at_ns, last_seen_ns, last_response_ns,
            partial, state, history, syn_count, packets, client_bytes, server_bytes,
            retransmissions, tunnel, keep_alive, server_header, one_sided, handshake_ack_ns, tls,
        ) = row  # fmt: skip
        reqs = _requests(requests, tls)
        out.append(
            Connection(
                id=cid,
                client=client,
                server=server,
                client_port=client_port,
                ip_version=ip_version,
                opened_at_ns=opened_at_ns,
                first_frame=first_frame,
                opened_by=opened_by,
                established_at_ns=established_at_ns,
                closed_by=closed_by,
                close=close,
                closed_at_ns=closed_at_ns,
                last_seen_ns=last_seen_ns,
                last_response_ns=last_response_ns,
                partial=partial,
                state=state,
                history=history,
                syn_count=syn_count,
                packets=packets,
                client_bytes=client_bytes,
                server_bytes=server_bytes,
                retransmissions=retransmissions,
                requests=reqs,
                events=tuple(starmap(Event, events)),
                anomalies=tuple(starmap(Anomaly, anomalies)),
                tunnel=tunnel,
                keep_alive=keep_alive,
                server_header=server_header,
                one_sided=one_sided,
                handshake_ack_ns=handshake_ack_ns,
                tls=tls,
            )
        )
    return out


def connections(b: Batch, which: Sequence[int]) -> list[Connection]:
    """The batch's connections at these positions, in that order."""
    return build(map(pickle.loads, b.records(which)))


class Suspect(NamedTuple):
    """What the rules that look past a connection's columns read of it
    (:func:`pcapkit.classify.judge`): a connection the upstream closed with requests
    unanswered, or whose SYN got no SYN-ACK. Of its requests only the unanswered ones, of its
    events only the first and the upstream's RSTs: the rules read no others, and the others are
    most of what building the whole connection costs."""

    id: int
    server: str
    opened_by: Side | None
    established_at_ns: int | None
    one_sided: Side | None
    syn_count: int
    requests: tuple[Request, ...]
    events: tuple[Event, ...]


# where a Record's rows hold what a Suspect takes: the positions of the dataclasses' fields
_ROW = [f.name for f in fields(Connection) if f.name not in ("requests", "events", "anomalies")]
_SUSPECT = itemgetter(*map(_ROW.index, Suspect._fields[:6]))
_TLS = _ROW.index("tls")
_EVENT = [f.name for f in fields(Event)]
_TYPE, _SIDE = _EVENT.index("type"), _EVENT.index("side")
_RESPONDED = [f.name for f in fields(Request)].index("responded_at_ns")


def suspects(b: Batch, which: Sequence[int]) -> list[Suspect]:
    """The batch's connections at these positions, in that order, as the rules read them."""
    out: list[Suspect] = []
    for row, events, requests, _ in map(pickle.loads, b.records(which)):
        reqs = _requests((r for r in requests if r[_RESPONDED] is None), row[_TLS])
        rsts = [e for e in events[1:] if e[_TYPE] == "rst" and e[_SIDE] == "server"]
        out.append(
            Suspect._make((*_SUSPECT(row), reqs, tuple(starmap(Event, [*events[:1], *rsts]))))
        )
    return out

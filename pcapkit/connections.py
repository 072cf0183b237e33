"""The core's finished connections, as columns, into the public :class:`Connection` values.

The compiled core (:mod:`pcapkit._core`) reads the capture, rebuilds each TCP connection and
labels it; what crosses into Python is a :class:`~pcapkit._core.Batch` per group of finished
connections: their per-connection columns, and the events, requests and anomalies of the ones
asked for. This module is the one place that turns those columns into dataclasses, only for the
connections the analysis keeps or must look into, and only when they are read: a spool keeps
the plain rows (:func:`records`), which :func:`build` turns into objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import starmap
from typing import TYPE_CHECKING, Any

from pcapkit.model import Anomaly, Connection, Event, Request

if TYPE_CHECKING:
    from pcapkit._core import Batch


Rows = list[tuple[Any, ...]]
Record = tuple[tuple[Any, ...], Rows, Rows, Rows]
"""A connection as plain values: its own fields (``Connection``'s, in order, without the three
below), then its events, requests and anomalies as rows. What a spool keeps of a connection
the report may never read: pickling rows of numbers and strings costs a fraction of pickling
the objects, and the objects are built only when read (:func:`build`)."""

_ROW = (
    "conn_id",
    "conn_client",
    "conn_server",
    "conn_client_port",
    "conn_ip_version",
    "conn_opened_at_ns",
    "conn_first_frame",
    "conn_opened_by",
    "conn_established_at_ns",
    "conn_closed_by",
    "conn_close",
    "conn_closed_at_ns",
    "conn_last_seen_ns",
    "conn_last_response_ns",
    "conn_partial",
    "conn_state",
    "conn_history",
    "conn_syn_count",
    "conn_packets",
    "conn_client_bytes",
    "conn_server_bytes",
    "conn_retransmissions",
    "conn_tunnel",
    "conn_keep_alive",
    "conn_server_header",
    "conn_one_sided",
    "conn_handshake_ack_ns",
    "conn_tls",
)
"""The batch's columns holding a connection's own fields, in :class:`Connection`'s order."""


def records(b: Batch, which: Sequence[int]) -> list[Record]:
    """The batch's connections at these positions, in that order, as plain values."""
    if not which:
        return []
    d = b.details(which)
    events = list(
        zip(
            d.ev_time_ns,
            d.ev_type,
            d.ev_side,
            d.ev_frame,
            d.ev_method,
            d.ev_target,
            d.ev_host,
            d.ev_status,
            d.ev_connection_close,
            d.ev_request_index,
            d.ev_length,
            d.ev_note,
            strict=True,
        )
    )
    requests = list(
        zip(
            d.rq_index,
            d.rq_method,
            d.rq_target,
            d.rq_host,
            d.rq_sent_at_ns,
            d.rq_frame,
            d.rq_status,
            d.rq_responded_at_ns,
            d.rq_response_frame,
            d.rq_connection_close,
            d.rq_request_id,
            strict=True,
        )
    )
    anomalies = list(zip(d.an_time_ns, d.an_frame, d.an_side, d.an_what, strict=True))
    c = b.connections
    columns = [getattr(c, name) for name in _ROW]
    out: list[Record] = []
    e = r = a = 0
    for i in which:
        ne, nr, na = c.conn_events[i], c.conn_requests[i], c.conn_anomalies[i]
        row = tuple(col[i] for col in columns)
        out.append((row, events[e : e + ne], requests[r : r + nr], anomalies[a : a + na]))
        e, r, a = e + ne, r + nr, a + na
    return out


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
        reqs = tuple(starmap(Request, requests))
        if tls is not None:
            for q in reqs:
                q.encrypted = True
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
    return build(records(b, which))

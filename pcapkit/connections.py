"""The core's finished connections, as columns, into the public :class:`Connection` values.

The compiled core (:mod:`pcapkit._core`) reads the capture, rebuilds each TCP connection and
labels it; what crosses into Python is a :class:`~pcapkit._core.Batch` per group of finished
connections: their per-connection columns, and the events, requests and anomalies of the ones
asked for. This module is the one place that turns those columns into dataclasses, only for the
connections the analysis keeps or must look into: one ``map`` per kind of row (positional
construction, no per-row keyword arguments), then one slice per connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pcapkit.model import Anomaly, Connection, Event, Request

if TYPE_CHECKING:
    from pcapkit._core import Batch


def connections(b: Batch, which: Sequence[int]) -> list[Connection]:
    """The batch's connections at these positions, in that order."""
    if not which:
        return []
    d = b.details(which)
    events = list(
        map(
            Event,
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
        )
    )
    requests = list(
        map(
            Request,
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
        )
    )
    anomalies = list(map(Anomaly, d.an_time_ns, d.an_frame, d.an_side, d.an_what))
    c = b.connections
    out: list[Connection] = []
    e = r = a = 0
    for i in which:
        ne, nr, na = c.conn_events[i], c.conn_requests[i], c.conn_anomalies[i]
        out.append(
            Connection(
                id=c.conn_id[i],
                client=c.conn_client[i],
                server=c.conn_server[i],
                client_port=c.conn_client_port[i],
                ip_version=c.conn_ip_version[i],
                opened_at_ns=c.conn_opened_at_ns[i],
                first_frame=c.conn_first_frame[i],
                opened_by=c.conn_opened_by[i],
                established_at_ns=c.conn_established_at_ns[i],
                closed_by=c.conn_closed_by[i],
                close=c.conn_close[i],
                closed_at_ns=c.conn_closed_at_ns[i],
                last_seen_ns=c.conn_last_seen_ns[i],
                last_response_ns=c.conn_last_response_ns[i],
                partial=c.conn_partial[i],
                state=c.conn_state[i],
                history=c.conn_history[i],
                syn_count=c.conn_syn_count[i],
                packets=c.conn_packets[i],
                client_bytes=c.conn_client_bytes[i],
                server_bytes=c.conn_server_bytes[i],
                retransmissions=c.conn_retransmissions[i],
                requests=tuple(requests[r : r + nr]),
                events=tuple(events[e : e + ne]),
                anomalies=tuple(anomalies[a : a + na]),
                tunnel=c.conn_tunnel[i],
                keep_alive=c.conn_keep_alive[i],
                server_header=c.conn_server_header[i],
                one_sided=c.conn_one_sided[i],
                handshake_ack_ns=c.conn_handshake_ack_ns[i],
                tls=c.conn_tls[i],
            )
        )
        if c.conn_tls[i] is not None:
            for q in requests[r : r + nr]:
                q.encrypted = True
        e, r, a = e + ne, r + nr, a + na
    return out

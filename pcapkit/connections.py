"""The core's finished connections, as columns, into the public :class:`Connection` values.

The compiled core (:mod:`pcapkit._core`) reads the capture, rebuilds each TCP connection and
labels it; what crosses into Python is a :class:`~pcapkit._core.Batch` of columns per group of
finished connections. This module is the one place that turns those columns into dataclasses:
one ``map`` per kind of row (positional construction, no per-row keyword arguments), then one
slice per connection, so the cost is the objects themselves and nothing around them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from pcapkit.model import Anomaly, Connection, Event, Request

if TYPE_CHECKING:
    from pcapkit._core import Batch


def connections(b: Batch) -> Iterator[Connection]:
    """Every connection of a batch, in the order the core finished them."""
    events = list(
        map(
            Event,
            b.ev_time_ns,
            b.ev_type,
            b.ev_side,
            b.ev_frame,
            b.ev_method,
            b.ev_target,
            b.ev_host,
            b.ev_status,
            b.ev_connection_close,
            b.ev_request_index,
            b.ev_length,
            b.ev_note,
        )
    )
    requests = list(
        map(
            Request,
            b.rq_index,
            b.rq_method,
            b.rq_target,
            b.rq_host,
            b.rq_sent_at_ns,
            b.rq_frame,
            b.rq_status,
            b.rq_responded_at_ns,
            b.rq_response_frame,
            b.rq_connection_close,
        )
    )
    anomalies = list(map(Anomaly, b.an_time_ns, b.an_frame, b.an_side, b.an_what))
    e = r = a = 0
    for i, ne in enumerate(b.conn_events):
        nr, na = b.conn_requests[i], b.conn_anomalies[i]
        yield Connection(
            id=b.conn_id[i],
            client=b.conn_client[i],
            server=b.conn_server[i],
            client_port=b.conn_client_port[i],
            ip_version=b.conn_ip_version[i],
            opened_at_ns=b.conn_opened_at_ns[i],
            first_frame=b.conn_first_frame[i],
            opened_by=b.conn_opened_by[i],
            established_at_ns=b.conn_established_at_ns[i],
            closed_by=b.conn_closed_by[i],
            close=b.conn_close[i],
            closed_at_ns=b.conn_closed_at_ns[i],
            last_seen_ns=b.conn_last_seen_ns[i],
            last_response_ns=b.conn_last_response_ns[i],
            partial=b.conn_partial[i],
            state=b.conn_state[i],
            history=b.conn_history[i],
            syn_count=b.conn_syn_count[i],
            packets=b.conn_packets[i],
            client_bytes=b.conn_client_bytes[i],
            server_bytes=b.conn_server_bytes[i],
            retransmissions=b.conn_retransmissions[i],
            requests=tuple(requests[r : r + nr]),
            events=tuple(events[e : e + ne]),
            anomalies=tuple(anomalies[a : a + na]),
        )
        e, r, a = e + ne, r + nr, a + na

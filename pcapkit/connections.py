"""The core's finished connections, as columns, into the public :class:`Connection` values.

The compiled core (:mod:`pcapkit._core`) reads the capture, rebuilds each TCP connection and
labels it; what crosses into Python is a :class:`~pcapkit._core.Batch` per group of finished
connections: their per-connection columns, and the ones asked for whole, each as the pickle of
its plain values (a :data:`Record`, written by the core). This module is the one place that
turns those into dataclasses, only for the connections the analysis keeps or must look into,
and only when they are read: a spool keeps the pickles as the core wrote them, which
:func:`build` turns into objects once loaded.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Sequence
from itertools import starmap
from typing import TYPE_CHECKING, Any

from pcapkit.model import Anomaly, Connection, Event, Request

if TYPE_CHECKING:
    from pcapkit._core import Batch


Rows = list[tuple[Any, ...]]
Record = tuple[tuple[Any, ...], Rows, Rows, Rows]
"""A connection as plain values: its own fields (``Connection``'s, in order, without the three
below), then its events, requests and anomalies as rows of their fields in order. The core
writes it pickled (``crates/kaflow-core/src/record.rs``): what a spool keeps of a connection
the report may never read costs the Python side nothing until it is read."""


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
    return build(map(pickle.loads, b.records(which)))

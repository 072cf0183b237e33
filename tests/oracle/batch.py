"""Connections at hand as the core's batch, so the stages after the core run on them unchanged.

The product takes a :class:`pcapkit._core.Batch` (per-connection columns, the connections
asked for whole as pickled records, request rows). Tests that build connections by hand, and
the Python reference, wrap them in :class:`HeldBatch`: the same surface, derived from the objects
the plain way (count the responses, the unanswered requests...). That derivation is the oracle for
the core's own columns: ``tests/test_reference.py`` holds both to the same analysis.
"""

from __future__ import annotations

import pickle
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, cast

from pcapkit._core import request_key
from pcapkit.analysis import _Scan
from pcapkit.classify import Facts
from pcapkit.classify import facts as columns_facts
from pcapkit.diagnose import Evidence, advise
from pcapkit.model import (
    Advice,
    Analysis,
    Anomaly,
    CaptureSummary,
    Connection,
    Event,
    Finding,
    Request,
)

if TYPE_CHECKING:
    from pcapkit._core import Batch, Connections
    from pcapkit.client import ClientKind

_NESTED = ("requests", "events", "anomalies")
_CONN = [f.name for f in fields(Connection) if f.name not in _NESTED]
_EVENT = [f.name for f in fields(Event)]
# "encrypted" is the connection's TLS, set on its requests in Python: not a column
_REQUEST = [f.name for f in fields(Request) if f.name != "encrypted"]
_ANOMALY = [f.name for f in fields(Anomaly)]


@dataclass
class _Columns:
    cols: dict[str, list[Any]] = field(default_factory=dict)

    def __getattr__(self, name: str) -> list[Any]:
        try:
            return self.cols[name]
        except KeyError:
            raise AttributeError(name) from None


def _columns(conns: Sequence[Connection], heads: Sequence[str | None] | None = None) -> _Columns:
    cols: dict[str, list[Any]] = {f"conn_{n}": [getattr(c, n) for c in conns] for n in _CONN}
    cols["conn_events"] = [len(c.events) for c in conns]
    cols["conn_requests"] = [len(c.requests) for c in conns]
    cols["conn_anomalies"] = [len(c.anomalies) for c in conns]
    # the header names of each connection's first request head, read off its bytes by whoever
    # has them (tests/reference.py); connections built from events keep no head
    cols["conn_request_headers"] = list(heads) if heads is not None else [None for c in conns]
    cols["conn_responses"] = [sum(e.type == "response" for e in c.events) for c in conns]
    cols["conn_unanswered"] = [sum(not r.answered for r in c.requests) for c in conns]
    cols["conn_requests_close"] = [
        sum(e.type == "request" and e.connection_close for e in c.events) for c in conns
    ]
    cols["conn_last_close"] = [bool(c.requests) and c.requests[-1].connection_close for c in conns]
    answered = [[r for r in c.requests if r.answered] for c in conns]
    cols["conn_last_answered_close"] = [bool(a) and a[-1].connection_close for a in answered]
    closes = [
        next((e for e in c.events if e.side == "server" and e.type in ("fin", "rst")), None)
        for c in conns
    ]
    # the upstream's TLS alert in its FIN's place (the note the labelling gave it) is its own kind
    cols["conn_server_close"] = [
        None
        if e is None
        else "close_notify"
        if c.tls is not None and e.type == "fin" and (e.note or "").startswith("TLS")
        else e.type
        for c, e in zip(conns, closes, strict=True)
    ]
    cols["conn_server_close_ns"] = [e.time_ns if e else None for e in closes]
    cols["conn_server_close_frame"] = [e.frame if e else None for e in closes]
    return _Columns(cols)


class HeldBatch:
    """Connections held as objects, offered the way the core offers a batch."""

    def __init__(
        self, conns: Iterable[Connection], heads: Sequence[str | None] | None = None
    ) -> None:
        self.conns = list(conns)
        self.connections = _columns(self.conns, heads)

    def __len__(self) -> int:
        return len(self.conns)

    def records(self, which: Sequence[int]) -> list[bytes]:
        """Each connection asked for as the pickle of its plain values, read off the object:
        its own fields in ``Connection``'s order, then its events, requests and anomalies as
        tuples of their fields (a request's ``encrypted`` is its connection's ``tls``)."""
        out = []
        for c in (self.conns[i] for i in which):
            record = (
                tuple(getattr(c, n) for n in _CONN),
                [tuple(getattr(e, n) for n in _EVENT) for e in c.events],
                [tuple(getattr(r, n) for n in _REQUEST) for r in c.requests],
                [tuple(getattr(a, n) for n in _ANOMALY) for a in c.anomalies],
            )
            out.append(pickle.dumps(record, protocol=pickle.HIGHEST_PROTOCOL))
        return out

    def request_rows(self) -> bytes:
        rows = array("q")
        for c in self.conns:
            opened = -1 if c.partial else c.opened_at_ns
            for r in c.requests:
                captured = r.method is not None and r.target is not None
                key = (
                    request_key(r.method or "", r.target or "", r.host, r.request_id)
                    if captured
                    else 0
                )
                rows.extend((key, r.sent_at_ns, c.id, r.index, r.frame, opened))
        return rows.tobytes()


def batch(conns: Iterable[Connection]) -> Batch:
    """Connections at hand as a batch the product's stages accept."""
    return cast("Batch", HeldBatch(conns))


def analysis(
    conns: Iterable[Connection],
    capture: CaptureSummary,
    client: ClientKind | None = None,
    heads: Sequence[str | None] | None = None,
) -> Analysis:
    """The product's stages after the core (count, classify, diagnose) over these connections,
    with ``client``'s rules (None: as ``heads``, their first request heads' header names, tell;
    without them nginx)."""
    scan = _Scan(None, spool=False, client=client)
    scan.add(cast("Batch", HeldBatch(conns, heads)))
    return scan.conclude(capture)


_NO_CAPTURE = CaptureSummary("-", "pcap", (), 0, 0, 0, (), (8080,), None, None)


def classify(conns: Iterable[Connection]) -> tuple[Finding, ...]:
    """Every finding of these connections, in report order."""
    return tuple(analysis(conns, _NO_CAPTURE).findings)


def facts(conn: Connection) -> Facts:
    """What the close rules read of this connection."""
    (f,) = columns_facts(cast("Connections", _columns([conn])), [0])
    return f


def evidence(conns: Iterable[Connection]) -> Evidence:
    ev = Evidence()
    ev.add(cast("Connections", _columns(list(conns))))
    return ev


def diagnose(conns: Iterable[Connection], findings: Sequence[Finding]) -> tuple[Advice, ...]:
    """The advice these findings and connections support."""
    return advise(findings, evidence(conns))

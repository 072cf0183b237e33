"""The JSON and CSV reports' per-connection text as Python's own encoders write it: the oracle
the core's writer (``crates/kaflow-core/src/export.rs``) is held to, never shipped.

``connection_dict`` is ``docs/json-schema.md``'s connection object built field by field, and
``json.dumps`` of it (``ensure_ascii=False``, no spaces) is what a connection's line must be;
``csv_rows`` is each event's row through ``csv.writer`` as the CSV report wrote them before the
core did, the findings column given.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from pcapkit.model import Connection, Event, Request


def seconds(ns: int | None) -> float | None:
    return None if ns is None else ns / 1e9


def _event(e: Event) -> dict[str, Any]:
    d: dict[str, Any] = {
        "time": seconds(e.time_ns),
        "type": e.type,
        "from": e.side,
        "frame": e.frame,
    }
    if e.type == "request":
        d.update(method=e.method, target=e.target, host=e.host, request=e.request_index)
    elif e.type == "response":
        d.update(status=e.status, connection_close=e.connection_close, request=e.request_index)
    if e.length is not None:
        d["length"] = e.length
    if e.note is not None:
        d["note"] = e.note
    return d


def _request(r: Request) -> dict[str, Any]:
    return {
        "method": r.method,
        "target": r.target,
        "host": r.host,
        "sent_at": seconds(r.sent_at_ns),
        "frame": r.frame,
        "status": r.status,
        "responded_at": seconds(r.responded_at_ns),
        "connection_close": r.connection_close,
        **({"request_id": r.request_id} if r.request_id is not None else {}),
    }


def connection_dict(c: Connection) -> dict[str, Any]:
    return {
        "id": c.id,
        "client": c.client,
        "server": c.server,
        "opened_at": seconds(c.opened_at_ns),
        "first_frame": c.first_frame,
        "opened_by": c.opened_by,
        "established_at": seconds(c.established_at_ns),
        "closed_by": c.closed_by,
        "close": c.close,
        "closed_at": seconds(c.closed_at_ns),
        "last_seen": seconds(c.last_seen_ns),
        "partial": c.partial,
        "state": c.state,
        "history": c.history,
        "packets": c.packets,
        "retransmissions": c.retransmissions,
        "client_bytes": c.client_bytes,
        "server_bytes": c.server_bytes,
        "requests": [_request(r) for r in c.requests],
        "events": [_event(e) for e in c.events],
        "anomalies": [
            {"time": seconds(a.time_ns), "frame": a.frame, "from": a.side, "what": a.what}
            for a in c.anomalies
        ],
        **({"tunnel": c.tunnel} if c.tunnel is not None else {}),
        **({"keep_alive": c.keep_alive} if c.keep_alive is not None else {}),
        **({"server_header": c.server_header} if c.server_header is not None else {}),
        **({"one_sided": c.one_sided} if c.one_sided is not None else {}),
        **({"tls": c.tls} if c.tls is not None else {}),
    }


def connection_line(c: Connection) -> str:
    """The connection's line in the JSON report."""
    return json.dumps(connection_dict(c), ensure_ascii=False, separators=(",", ":"))


def exact_seconds(ns: int) -> str:
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    return f"{sign}{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def csv_rows(c: Connection, findings: dict[int, str] | None = None) -> str:
    """The connection's rows in the CSV report; ``findings``: the column's text by event."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    for i, e in enumerate(c.events):
        w.writerow(
            (
                c.id,
                c.client,
                c.server,
                exact_seconds(e.time_ns),
                exact_seconds(e.time_ns - c.opened_at_ns),
                e.type,
                e.side,
                e.frame,
                e.method or "",
                e.target or "",
                e.host or "",
                "" if e.status is None else e.status,
                int(e.connection_close),
                "" if e.request_index is None else e.request_index,
                e.note or "",
                (findings or {}).get(i, ""),
            )
        )
    return out.getvalue()

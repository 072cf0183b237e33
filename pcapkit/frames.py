"""pandas views of an Analysis, for notebooks and other tooling.

Kept apart from the model so that pandas (about 0.2 s to import) is loaded only by callers who
ask for a frame. Times are given twice: ``time`` as a UTC timestamp for reading and plotting,
``time_ns`` as the exact integer for joining with other data.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from pcapkit.model import Analysis
from pcapkit.report.severity import tier


def _ts(values: list[int | None]) -> pd.Series:
    return pd.to_datetime(pd.Series(values, dtype="Int64"), unit="ns", utc=True)


def events_frame(analysis: Analysis) -> pd.DataFrame:
    """One row per event: connection, time, since_open_s, type, side, frame and details."""
    rows: list[dict[str, Any]] = []
    for c in analysis.connections:
        for e in c.events:
            rows.append(
                {
                    "connection": c.id,
                    "time_ns": e.time_ns,
                    "since_open_s": (e.time_ns - c.opened_at_ns) / 1e9,
                    "type": e.type,
                    "side": e.side,
                    "frame": e.frame,
                    "method": e.method,
                    "target": e.target,
                    "host": e.host,
                    "status": e.status,
                    "connection_close": e.connection_close,
                    "request_index": e.request_index,
                    "length": e.length,
                    "note": e.note,
                }
            )
    df = pd.DataFrame(rows, columns=list(_EVENT_COLUMNS))
    df.insert(1, "time", _ts(df["time_ns"].tolist()))
    return df.astype({"status": "Int64", "request_index": "Int64", "length": "Int64"})


_EVENT_COLUMNS = (
    "connection",
    "time_ns",
    "since_open_s",
    "type",
    "side",
    "frame",
    "method",
    "target",
    "host",
    "status",
    "connection_close",
    "request_index",
    "length",
    "note",
)


def connections_frame(analysis: Analysis) -> pd.DataFrame:
    """One row per connection, indexed by id."""
    rows = [
        {
            "id": c.id,
            "client": c.client,
            "server": c.server,
            "client_port": c.client_port,
            "opened_at": c.opened_at_ns,
            "first_frame": c.first_frame,
            "opened_by": c.opened_by,
            "established_at": c.established_at_ns,
            "closed_by": c.closed_by,
            "close": c.close,
            "closed_at": c.closed_at_ns,
            "last_seen": c.last_seen_ns,
            "partial": c.partial,
            "state": c.state,
            "history": c.history,
            "requests": len(c.requests),
            "unanswered": sum(1 for r in c.requests if not r.answered),
            "packets": c.packets,
            "retransmissions": c.retransmissions,
            "client_bytes": c.client_bytes,
            "server_bytes": c.server_bytes,
            "anomalies": len(c.anomalies),
            "duration_s": c.duration_ns / 1e9,
            "tunnel": c.tunnel,
            "keep_alive": c.keep_alive,
            "server_header": c.server_header,
            "one_sided": c.one_sided,
        }
        for c in analysis.connections
    ]
    df = pd.DataFrame(rows, columns=list(_CONNECTION_COLUMNS))
    for col in ("opened_at", "established_at", "closed_at", "last_seen"):
        df[col] = _ts(df[col].tolist())
    return df.set_index("id")


_CONNECTION_COLUMNS = (
    "id",
    "client",
    "server",
    "client_port",
    "opened_at",
    "first_frame",
    "opened_by",
    "established_at",
    "closed_by",
    "close",
    "closed_at",
    "last_seen",
    "partial",
    "state",
    "history",
    "requests",
    "unanswered",
    "packets",
    "retransmissions",
    "client_bytes",
    "server_bytes",
    "anomalies",
    "duration_s",
    "tunnel",
    "keep_alive",
    "server_header",
    "one_sided",
)


def findings_frame(analysis: Analysis) -> pd.DataFrame:
    """One row per finding, in time order."""
    rows = [
        {
            "type": f.type,
            "connection": f.connection,
            "time_ns": f.time_ns,
            "frame": f.frame,
            "request": f.request,
            "reason": f.reason,
            "idle_s": None if f.idle_ns is None else f.idle_ns / 1e9,
            "retry_of": f.retry_of,
            "new_connection": f.new_connection,
            "retried": f.retried,
            "retried_on": f.retried_on,
            "request_index": f.request_index,
            # one string, the likelier message first: a column of lists would not survive
            # every Parquet reader alike
            "nginx_errors": " | ".join(f.nginx_errors) or None,
            "other_server": f.other_server,
            "severity": tier(f),
            "message": f.message,
        }
        for f in analysis.findings
    ]
    df = pd.DataFrame(rows, columns=list(_FINDING_COLUMNS))
    df.insert(2, "time", _ts(df["time_ns"].tolist()))
    return df.astype({"retry_of": "Int64", "retried_on": "Int64", "request_index": "Int64"})


_FINDING_COLUMNS = (
    "type",
    "connection",
    "time_ns",
    "frame",
    "request",
    "reason",
    "idle_s",
    "retry_of",
    "new_connection",
    "retried",
    "retried_on",
    "request_index",
    "nginx_errors",
    "other_server",
    "severity",
    "message",
)

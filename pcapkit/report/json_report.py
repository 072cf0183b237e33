"""The JSON report: a documented, versioned contract (``docs/json-schema.md``).

The schema string changes its number whenever a field is removed or changes meaning; adding a
field does not. Times are epoch seconds (float, microsecond-exact); ``frame`` numbers are exact.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TextIO

from pcapkit import __version__, _core
from pcapkit.model import Analysis, CaptureHost, Connection, Finding
from pcapkit.report import ReportOptions
from pcapkit.report.severity import TITLES, Ranking, rank, tier
from pcapkit.store import Spool

if TYPE_CHECKING:
    from pcapkit._core import Batch

SCHEMA = "kaflow.analysis/1"


def seconds(ns: int | None) -> float | None:
    return None if ns is None else ns / 1e9


def _host(h: CaptureHost | None) -> dict[str, Any] | None:
    if h is None:
        return None
    return {
        "seen_from": h.seen_from,
        "handshakes": h.handshakes,
        "syn_to_syn_ack": seconds(h.syn_to_syn_ack_ns),
        "syn_ack_to_ack": seconds(h.syn_ack_to_ack_ns),
    }


def connection_json(c: Connection) -> str:
    """The connection's object of the document, on one line: the core's encoder, the one that
    writes every connection of a capture's report (``Batch.json_lines``), so a connection held
    as an object is written exactly as one the core hands over."""
    return _core.connection_json(c).decode("utf-8")


def connection_dict(c: Connection) -> dict[str, Any]:
    """The connection's object of the document as plain values, read back from
    :func:`connection_json`: the schema is written in one place, and a float or string read
    back encodes to the same text."""
    d: dict[str, Any] = json.loads(connection_json(c))
    return d


class JsonLines:
    """Connections spooled as their JSON lines (``analyze(spool=JSON_LINES)``), written by the
    core from its rows: a capture's report is mostly events, never built as objects."""

    def encode(self, batch: Batch, which: list[int]) -> list[bytes]:
        return batch.json_lines(which)


JSON_LINES = JsonLines()


def finding_dict(f: Finding) -> dict[str, Any]:
    d: dict[str, Any] = {
        "type": f.type,
        "connection": f.connection,
        "time": seconds(f.time_ns),
        "frame": f.frame,
        "message": f.message,
        "severity": tier(f),
    }
    if f.request is not None:
        d["request"] = f.request
    if f.request_id is not None:
        d["request_id"] = f.request_id
    if f.type == "server_initiated_close":
        d.update(reason=f.reason, idle=seconds(f.idle_ns))
    elif f.type == "request_lost_to_fin":
        d.update(retried=f.retried, retried_on=f.retried_on)
        if f.nginx_errors:
            d["nginx_errors"] = list(f.nginx_errors)
    elif f.type == "retry":
        d.update(retry_of=f.retry_of, new_connection=f.new_connection)
        if f.other_server is not None:
            d["other_server"] = f.other_server
    if f.retry_ambiguous:
        d["retry_ambiguous"] = True
    return d


def analysis_dict(a: Analysis, connections: bool = True, findings: bool = True) -> dict[str, Any]:
    """The whole analysis as plain JSON-ready values, schema ``kaflow.analysis/1``.

    ``connections=False`` and ``findings=False`` leave them out (an empty list), for
    :func:`write` to stream them.
    """
    cap = a.capture
    s = a.summary
    extra: dict[str, Any] = {}
    if a.logs is not None or a.configured:
        from pcapkit.report.nginx_section import comparisons_list, logs_dict

        if a.logs is not None:
            extra["logs"] = logs_dict(a.logs)
        if a.configured:
            extra["configured"] = comparisons_list(a.configured)
    return {
        "schema": SCHEMA,
        "generator": f"kaflow {__version__}",
        "capture": {
            "path": cap.path,
            "format": cap.format,
            "link_types": list(cap.link_types),
            "packets": cap.packets,
            "tcp_segments": cap.tcp_segments,
            "upstream_segments": cap.upstream_segments,
            "skipped": dict(cap.skipped),
            "skipped_total": cap.skipped_total,
            "ports": list(cap.ports),
            "start": seconds(cap.first_ts_ns),
            "end": seconds(cap.last_ts_ns),
            "warnings": list(cap.warnings),
            "series": cap.series,
            "files": [
                {
                    "path": f.path,
                    "format": f.format,
                    "link_types": list(f.link_types),
                    "packets": f.packets,
                    "start": seconds(f.first_ts_ns),
                    "end": seconds(f.last_ts_ns),
                    "first_frame": f.first_frame,
                    "last_frame": f.last_frame,
                    "gap_before": seconds(f.gap_before_ns),
                    "warnings": list(f.warnings),
                }
                for f in cap.files
            ],
            "since": seconds(cap.since_ns),
            "until": seconds(cap.until_ns),
            "host": _host(cap.host),
        },
        # the proxy that sent the requests, whose rules paired retries and worded the advice
        "client": {"kind": a.client.kind, "basis": a.client.basis, "given": a.client.given},
        "summary": {
            "connections": s.connections,
            "partial_connections": s.partial_connections,
            "requests": s.requests,
            "responses": s.responses,
            "unanswered_requests": s.unanswered_requests,
            "closed_by": {
                "client": s.closed_by_client,
                "server": s.closed_by_server,
                "none": s.not_closed,
            },
            "closed_with_rst": s.closed_with_rst,
            "retransmissions": s.retransmissions,
            "anomalies": s.anomalies,
            "findings": dict(s.findings),
            **ranking_dict(rank(a.findings)),
        },
        "connections": [connection_dict(c) for c in a.connections] if connections else [],
        "findings": [finding_dict(f) for f in a.findings] if findings else [],
        "advice": [
            {"topic": x.topic, "text": x.text, "value": x.value, "evidence": x.evidence}
            for x in a.advice
        ],
        **extra,
    }


def ranking_dict(r: Ranking) -> dict[str, Any]:
    """The summary's severity-first view: tiers worst first, the idle closes as a distribution,
    and the connections worst first."""
    idle = r.idle
    return {
        "severity": [{"tier": t, "title": TITLES[t], "count": n} for t, n in r.counts],
        "idle_closes": {
            "count": idle.count,
            "connections": idle.connections,
            "unknown_idle": idle.unknown_idle,
            "first": seconds(idle.first_ns),
            "last": seconds(idle.last_ns),
            "idle": {
                "min": seconds(idle.min_ns),
                "median": seconds(idle.median_ns),
                "max": seconds(idle.max_ns),
                "dominant": seconds(idle.dominant_ns),
                "dominant_share": round(idle.dominant_share, 6),
                "dominant_from": seconds(idle.dominant_from_ns) if idle.bins else None,
                "dominant_width": seconds(idle.dominant_width_ns) if idle.bins else None,
                "bin": seconds(idle.bin_ns) if idle.bins else None,
                "histogram": [{"from": seconds(lo), "count": n} for lo, n in idle.bins],
            },
        },
        "worst_connections": list(r.worst),
    }


MANY_SCHEMA = "kaflow.analyses/1"


def many_dict(analyses: list[Analysis], unreadable: int) -> dict[str, Any]:
    """Several captures in one document: each one's ``kaflow.analysis/1`` object, in order."""
    return {
        "schema": MANY_SCHEMA,
        "generator": f"kaflow {__version__}",
        "unreadable": unreadable,
        "analyses": [analysis_dict(a) for a in analyses],
    }


_HOLE = '"connections": []'
_FINDINGS_HOLE = '"findings": []'


def write(a: Analysis, out: TextIO) -> None:
    """The document, with its connections written one by one, one line each.

    Connections are most of the document: built all at once they would hold every event of
    the capture in memory twice. Each one is written on its own line by :func:`connection_json`
    (the indenting encoder is pure Python and several times slower); the rest is indented.
    """
    head, rest = json.dumps(
        analysis_dict(a, connections=False, findings=False), indent=1, ensure_ascii=False
    ).split(_HOLE, 1)
    middle, tail = rest.split(_FINDINGS_HOLE, 1)
    out.write(head)
    out.write('"connections": ')
    conns = a.connections
    if isinstance(conns, Spool) and conns.text is JSON_LINES:
        _items((line.decode("utf-8") for _, line in conns.records()), out)
    else:
        _items(map(connection_json, conns), out)
    out.write(middle)
    out.write('"findings": ')
    # as the indenting encoder would write them, one at a time: they may be read from disk
    _items((_indented(finding_dict(f)) for f in a.findings), out)
    out.write(tail)
    out.write("\n")


def _indented(item: dict[str, Any]) -> str:
    """An item of a top-level list, as ``json.dumps(document, indent=1)`` writes it."""
    return json.dumps(item, indent=1, ensure_ascii=False).replace("\n", "\n  ")


def _items(items: Iterable[str], out: TextIO) -> None:
    """A top-level list of the document, given its items' text."""
    out.write("[")
    sep = "\n  "
    for item in items:
        out.write(sep)
        out.write(item)
        sep = ",\n  "
    out.write("\n ]" if sep != "\n  " else "]")


class JsonReporter:
    """Everything, always: the JSON report ignores the table's selection options."""

    def render(self, analysis: Analysis, out: TextIO, options: ReportOptions) -> None:
        write(analysis, out)

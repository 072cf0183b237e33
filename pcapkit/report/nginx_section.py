"""The part of the analysis reports that comes from nginx's own files: its logs joined to the
findings (``--nginx-log``) and its configured timers against the measured ones
(``--nginx-conf``). Shared by the table and the JSON report; absent when not asked for."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from pcapkit.config.compare import Comparison
from pcapkit.logs import AccessEntry, ErrorLine, LogJoin, Unexplained
from pcapkit.model import Finding
from pcapkit.report.json_report import seconds


def error_dict(e: ErrorLine) -> dict[str, Any]:
    return {
        "file": e.file,
        "line": e.line,
        "kind": e.kind,
        "level": e.level,
        "connection": e.connection,
        "request": e.request,
        "upstream": e.upstream,
        "text": e.text,
    }


def access_dict(a: AccessEntry) -> dict[str, Any]:
    return {
        "file": a.file,
        "line": a.line,
        "time": seconds(a.time_ns),
        "status": a.status,
        "request": a.request,
        "request_id": a.request_id,
        "upstream_addr": list(a.upstream_addrs),
        "upstream_status": list(a.upstream_statuses),
        "text": a.text,
    }


def _finding_ref(f: Finding) -> dict[str, Any]:
    return {
        "type": f.type,
        "connection": f.connection,
        "time": seconds(f.time_ns),
        "frame": f.frame,
        "request": f.request,
    }


def logs_dict(j: LogJoin) -> dict[str, Any]:
    """The ``logs`` object of ``kaflow.analysis/1`` (``docs/json-schema.md``)."""
    return {
        "files": [
            {
                "path": c.path,
                "kind": c.kind,
                "compressed": c.compressed,
                "lines": c.lines,
                "kept": c.kept,
                "other": c.other,
                "other_upstreams": c.other_upstreams,
                "unparsed": c.unparsed,
                "partial_last_line": c.partial_last_line,
                "truncated": c.truncated,
                "log_format": c.log_format,
            }
            for c in j.files
        ],
        "utc_offset": j.utc_offset_s,
        "utc_offset_source": j.offset_source,
        "error_lines": j.error_lines,
        "error_kinds": dict(j.kinds),
        "access_failures": j.access_failures,
        "confirmed": [
            {
                "finding": _finding_ref(c.finding),
                "error_log": [error_dict(e) for e in c.errors],
                "access_log": [access_dict(a) for a in c.access],
                "by": "request_id" if c.by_request_id else "time",
            }
            for c in j.confirmed
        ],
        "log_only": [_unexplained(u) for u in j.log_only],
        "log_only_in_capture": j.unexplained_in_capture,
        "packet_only": [_finding_ref(f) for f in j.packet_only],
        "clients_5xx_from_closes": j.clients_5xx,
        "clients_5xx_source": j.clients_5xx_source,
        "clients_5xx_from_connects": j.clients_5xx_connect,
    }


def _unexplained(u: Unexplained) -> dict[str, Any]:
    return {
        "time": seconds(u.time_ns),
        "why": u.why,
        "in_capture": u.in_capture,
        "error_log": error_dict(u.error) if u.error else None,
        "access_log": access_dict(u.access) if u.access else None,
    }


def comparisons_list(cs: tuple[Comparison, ...]) -> list[dict[str, Any]]:
    return [
        {
            "what": c.what,
            "measured": c.measured,
            "evidence": c.evidence,
            "configured": c.configured,
            "setting": c.setting,
            "agrees": c.agrees,
            "text": c.text,
        }
        for c in cs
    ]


def _offset(s: int) -> str:
    sign = "+" if s >= 0 else "-"
    return f"UTC{sign}{abs(s) // 3600:02d}:{abs(s) % 3600 // 60:02d}"


def _stamp(e: ErrorLine) -> str:
    return datetime.fromtimestamp(e.local_s, tz=UTC).strftime("%Y/%m/%d %H:%M:%S")


def _error_text(e: ErrorLine) -> str:
    who = f"*{e.connection} " if e.connection is not None else ""
    what = e.text.split(": ", 1)[1] if ": " in e.text else e.text
    what = what.split(", client:", 1)[0].removeprefix(who)
    req = f', request: "{e.request}"' if e.request else ""
    return f"{Path(e.file).name}:{e.line} nginx logged at {_stamp(e)} [{e.level}] {who}{what}{req}"


def _access_text(a: AccessEntry, exact: bool = False) -> str:
    ups = ", ".join(a.upstream_statuses) or "-"
    by = f" (by X-Request-ID {a.request_id})" if exact and a.request_id else ""
    return (
        f"{Path(a.file).name}:{a.line} access log: {a.request or '?'} → {a.status}, "
        f"upstream_status {ups}{by}"
    )


def write_table(j: LogJoin, out: TextIO) -> None:
    w = out.write
    w("\nnginx's logs\n")
    for c in j.files:
        extra = []
        if c.other_upstreams:
            extra.append(f"{c.other_upstreams:,} of other upstreams")
        if c.unparsed:
            extra.append(f"{c.unparsed:,} unparsed")
        if c.partial_last_line:
            extra.append("a partial last line")
        if c.truncated:
            extra.append(c.truncated)
        about = "about the upstream" if c.kind == "error" else "with a failed upstream attempt"
        fmt = f", format {c.log_format}" if c.log_format else ""
        gz = " (gzip)" if c.compressed else ""
        w(f"  {c.path}{gz}: {c.kind} log{fmt}, {c.lines:,} lines, {c.kept:,} {about}")
        w(f"; {', '.join(extra)}\n" if extra else "\n")
    w(f"  error log time zone: {_offset(j.utc_offset_s)} ({j.offset_source})\n")
    if j.confirmed:
        w("\n  Confirmed by nginx\n")
        for conf in j.confirmed:
            f = conf.finding
            w(f"    #{f.connection} {f.type}{' ' + f.request if f.request else ''}\n")
            for e in conf.errors:
                w(f"      {_error_text(e)}\n")
            for a in conf.access:
                w(f"      {_access_text(a, conf.by_request_id)}\n")
    during = j.unexplained_in_capture
    w(f"\n  Log errors with no packet evidence: {len(j.log_only) or 'none'}")
    w(f" ({during} while the capture ran)\n" if j.log_only else "\n")
    for u in j.log_only:
        line = _error_text(u.error) if u.error else _access_text(u.access) if u.access else ""
        w(f"    {line}\n      ({u.why})\n")
    w(f"  Packet findings nginx did not log: {len(j.packet_only) or 'none'}\n")
    for f in j.packet_only:
        w(f"    #{f.connection} {f.type}{' ' + f.request if f.request else ''}: {f.message}\n")
    if j.clients_5xx is not None:
        w(
            f"  Clients who got a 5xx because of the upstream's closes: {j.clients_5xx} "
            f"({j.clients_5xx_source})"
        )
        if j.clients_5xx_connect:
            w(f"; because a connect failed: {j.clients_5xx_connect}")
        w("\n")


def write_comparisons(cs: tuple[Comparison, ...], out: TextIO) -> None:
    out.write("\nConfigured vs measured\n")
    for c in cs:
        out.write(f"  {'✓' if c.agrees else '✗'} {c.text} ({c.evidence} connections)\n")

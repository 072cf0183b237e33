"""The report of ``kaflow check``: a table for people, ``kaflow.check/1`` JSON for tools.

The JSON is a documented contract (``docs/json-schema.md``), versioned like the analysis report:
fields may be added within a version, never removed or changed in meaning.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any, TextIO

from pcapkit import __version__
from pcapkit.config.model import Backend, CheckResult, Problem, Upstream, Value

SCHEMA = "kaflow.check/1"


def _value(v: Value[Any] | None) -> dict[str, Any] | None:
    if v is None:
        return None
    x = v.value
    return {
        "value": list(x) if isinstance(x, tuple) else x,
        "setting": v.setting,
        "source": v.source,
        "default": v.default,
    }


def _backend(b: Backend) -> dict[str, Any]:
    return {
        "kind": b.kind,
        "source": b.source,
        "port": b.port,
        "idle_timeout": _value(b.idle_timeout),
        "max_requests": _value(b.max_requests),
        "max_connections": _value(b.max_connections),
        "accept_count": _value(b.accept_count),
        "max_threads": _value(b.max_threads),
        "keeps_alive": b.keeps_alive,
        "notes": list(b.notes),
    }


def _problem(p: Problem) -> dict[str, Any]:
    return {
        "rule": p.rule,
        "severity": p.severity,
        "upstream": p.upstream,
        "location": p.location,
        "message": p.message,
        "fix": p.fix,
    }


def _upstream(u: Upstream) -> dict[str, Any]:
    return {
        "name": u.name,
        "source": u.source,
        "servers": [
            {
                "address": s.address,
                "max_fails": s.max_fails,
                "fail_timeout": s.fail_timeout,
                "backup": s.backup,
                "down": s.down,
            }
            for s in u.servers
        ],
        "keepalive": _value(u.keepalive),
        "keepalive_timeout": _value(u.keepalive_timeout),
        "keepalive_requests": _value(u.keepalive_requests),
        "keepalive_time": _value(u.keepalive_time),
        "locations": [
            {
                "server": loc.server,
                "location": loc.path,
                "source": loc.source,
                "proxy_http_version": _value(loc.http_version),
                "connection_header": _value(loc.connection_header),
                "proxy_next_upstream": _value(loc.next_upstream),
                "proxy_next_upstream_tries": _value(loc.next_upstream_tries),
                "proxy_next_upstream_timeout": _value(loc.next_upstream_timeout),
                "proxy_request_buffering": _value(loc.request_buffering),
                "condition": loc.condition,
                "keepalive_in_effect": loc.keepalive_in_effect,
            }
            for loc in u.locations
        ],
    }


def check_dict(r: CheckResult) -> dict[str, Any]:
    n = r.nginx
    return {
        "schema": SCHEMA,
        "generator": f"kaflow {__version__}",
        "compatible": r.compatible,
        "nginx": {
            "files": list(n.files),
            "version": n.version,
            "version_source": n.version_source,
            "worker_processes": _value(n.worker_processes),
            "worker_connections": _value(n.worker_connections),
            "notes": list(n.notes),
        },
        "upstreams": [
            {
                **_upstream(c.upstream),
                "backend": _backend(c.backend) if c.backend else None,
                "race_possible": c.race_possible,
                "workers": c.workers,
            }
            for c in r.upstreams
        ],
        "backends": [_backend(b) for b in r.backends],
        "problems": [_problem(p) for p in r.problems],
    }


def write_json(r: CheckResult, out: TextIO) -> None:
    json.dump(check_dict(r), out, indent=1, ensure_ascii=False)
    out.write("\n")


def _fill(text: str, first: str, rest: str) -> str:
    return textwrap.fill(text, 100, initial_indent=first, subsequent_indent=rest)


def _v(v: Value[Any] | None, unit: str = "") -> str:
    if v is None:
        return "-"
    x = v.value
    shown = (
        "unlimited"
        if x is None
        else (" ".join(x) if isinstance(x, tuple) else f"{x:g}" if isinstance(x, float) else str(x))
    )
    if x is not None and unit:
        shown += unit
    return f"{shown}  ({v.setting}, {v.source})"


def write_table(r: CheckResult, out: TextIO) -> None:
    w = out.write
    n = r.nginx
    version = f"nginx {n.version} ({n.version_source})" if n.version else "nginx version unknown"
    w(f"kaflow check: {', '.join(n.files)}; {version}\n")
    wp = n.worker_processes
    w(f"  worker_processes {'auto' if wp.value is None else wp.value}, ")
    w(f"worker_connections {n.worker_connections.value}\n")
    for note in n.notes:
        w(_fill(note, "  note: ", "        ") + "\n")
    for c in r.upstreams:
        u = c.upstream
        w(f"\nupstream {u.name} ({u.source}): {', '.join(s.address for s in u.servers)}\n")
        ka = u.keepalive
        rows = [
            ("keepalive", "off" if ka.value is None else _v(ka)),
            ("keepalive_timeout", _v(u.keepalive_timeout, " s")),
            ("keepalive_requests", _v(u.keepalive_requests)),
            ("keepalive_time", _v(u.keepalive_time, " s")),
        ]
        for loc in u.locations:
            hdr = loc.connection_header.value
            limits = "".join(
                f", {name} {shown}"
                for name, shown, given in (
                    ("tries", loc.next_upstream_tries.value, not loc.next_upstream_tries.default),
                    (
                        "timeout",
                        loc.next_upstream_timeout.written(loc.next_upstream_timeout.value),
                        loc.next_upstream_timeout.value is not None,
                    ),
                    ("request_buffering", "off", not loc.request_buffering.value),
                )
                if given
            )
            where = f"location {loc.path}" + (f" {loc.condition}" if loc.condition else "")
            rows.append(
                (
                    where,
                    f"{loc.server}: HTTP/{loc.http_version.value}, Connection "
                    f"{'(nginx default)' if hdr is None else repr(hdr)}, next_upstream "
                    f"{' '.join(loc.next_upstream.value)}{limits}; keepalive "
                    f"{'in effect' if loc.keepalive_in_effect else 'NOT in effect'}",
                )
            )
        b = c.backend
        if b is not None:
            rows.append(("upstream server", f"{b.kind} ({b.source})"))
            rows.append(("upstream idle timeout", _v(b.idle_timeout, " s")))
            rows.append(("upstream max requests", _v(b.max_requests)))
            for label, v in (
                ("upstream max connections", b.max_connections),
                ("upstream accept queue", b.accept_count),
                ("upstream threads", b.max_threads),
            ):
                if v is not None:
                    rows.append((label, _v(v)))
        race = {True: "POSSIBLE", False: "not possible", None: "unknown"}[c.race_possible]
        rows.append(("idle-close race", race))
        width = max(len(k) for k, _ in rows)
        w("".join(f"  {k:<{width}}  {v}\n" for k, v in rows))
        if b is not None:
            for note in b.notes:
                w(_fill(note, "  note: ", "        ") + "\n")
    problems = [p for p in r.problems if p.severity == "problem"]
    notes = [p for p in r.problems if p.severity == "note"]
    if notes:
        w("\nNotes\n")
        for p in notes:
            w(_fill(f"[{p.upstream}] {p.message}", "  - ", "    ") + "\n")
    if problems:
        w(f"\nProblems ({len(problems)})\n")
        for p in problems:
            w(_fill(f"[{p.upstream}] {p.rule}: {p.message}", "  ✗ ", "    ") + "\n")
            if p.fix:
                w(_fill(f"fix: {p.fix}", "    → ", "      ") + "\n")
    else:
        w("\nCompatible: no problems found.\n")

"""``--follow``'s output: one line per finding as it is decided, and a summary line now and then.

Two shapes: text for a terminal (the table report's finding columns on one line) and JSON
lines for tools (``-f jsonl``): each finding is the object ``kaflow.analysis/1`` lists under
``findings``, with ``schema`` ``kaflow.finding/1``; each summary line has ``schema``
``kaflow.tally/1`` (``docs/json-schema.md``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pcapkit.report.json_report import finding_dict, seconds
from pcapkit.report.table import clock

if TYPE_CHECKING:
    from pcapkit.follow import Tally
    from pcapkit.model import Finding

FINDING_SCHEMA = "kaflow.finding/1"
TALLY_SCHEMA = "kaflow.tally/1"


def finding_text(f: Finding) -> str:
    return f"{clock(f.time_ns)}  #{f.connection}  {f.type}  {f.message}"


def tally_text(t: Tally) -> str:
    when = clock(t.time_ns) if t.time_ns is not None else "--:--:--"
    found = ", ".join(f"{n:,} {kind}" for kind, n in t.findings if n) or "no findings"
    head = "end of capture" if t.final else "so far"
    return (
        f"{when}  {head}: {t.connections:,} connections finished, {t.requests:,} requests "
        f"({t.unanswered_requests:,} unanswered), {t.closed_by_server:,} closed by the "
        f"upstream; {found}"
    )


def finding_json(f: Finding) -> str:
    return json.dumps({"schema": FINDING_SCHEMA, **finding_dict(f)}, ensure_ascii=False)


def tally_json(t: Tally) -> str:
    d: dict[str, Any] = {
        "schema": TALLY_SCHEMA,
        "time": seconds(t.time_ns),
        "final": t.final,
        "connections": t.connections,
        "requests": t.requests,
        "unanswered_requests": t.unanswered_requests,
        "closed_by_server": t.closed_by_server,
        "findings": dict(t.findings),
    }
    return json.dumps(d, ensure_ascii=False)

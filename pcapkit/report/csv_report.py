"""The CSV report: one row per event, for spreadsheets and ``pandas.read_csv``.

Times are written as exact decimal epoch seconds (nanosecond digits), never rounded by a float.
"""

from __future__ import annotations

import csv
from typing import TextIO

from pcapkit.model import Analysis
from pcapkit.report import ReportOptions, pinned

COLUMNS = (
    "connection",
    "client",
    "server",
    "time",
    "since_open",
    "type",
    "from",
    "frame",
    "method",
    "target",
    "host",
    "status",
    "connection_close",
    "request_index",
    "note",
    "findings",
)


def exact_seconds(ns: int) -> str:
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    return f"{sign}{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


class CsvReporter:
    def render(self, analysis: Analysis, out: TextIO, options: ReportOptions) -> None:
        w = csv.writer(out, lineterminator="\n")
        lead: tuple[str, ...] = (analysis.capture.path,) if options.capture_column else ()
        if options.header:
            w.writerow((("capture",) if options.capture_column else ()) + COLUMNS)
        for c in analysis.connections:
            pins = pinned(c, analysis.findings_for(c.id))
            for i, e in enumerate(c.events):
                w.writerow(
                    (
                        *lead,
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
                        ";".join(f.type for f in pins.get(i, ())),
                    )
                )

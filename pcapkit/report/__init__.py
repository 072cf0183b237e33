"""Reports: one module per output format, all behind the small :class:`Reporter` protocol.

As in coverage.py, the analysis knows nothing of presentation and each reporter only reads an
:class:`~pcapkit.model.Analysis`. Reporters write to a text stream they are given; they never
choose where output goes (the CLI does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TextIO

from pcapkit.model import Analysis, Connection, Finding


@dataclass(frozen=True, slots=True)
class ReportOptions:
    """What the user asked to see.

    ``connections``: None shows the default selection (connections with findings, at most
    ``limit`` timelines); ``"all"`` every connection; a tuple of ids only those.
    """

    connections: tuple[int, ...] | str | None = None
    limit: int = 20
    capture_column: bool = False  # csv: lead each row with the capture's path (several captures)
    header: bool = True  # csv: write the header row


class Reporter(Protocol):
    """Renders an analysis in one format."""

    def render(self, analysis: Analysis, out: TextIO, options: ReportOptions) -> None: ...


class Pinnable(Protocol):
    """What pinning reads of an event: an :class:`~pcapkit.model.Event`, or the CSV report's
    key of a row the core wrote."""

    @property
    def type(self) -> str: ...
    @property
    def side(self) -> str: ...
    @property
    def frame(self) -> int: ...
    @property
    def request_index(self) -> int | None: ...


def pinned(conn: Connection, findings: tuple[Finding, ...]) -> dict[int, list[Finding]]:
    """Which event of ``conn`` shows each of its findings: event index → findings."""
    return pinned_events(conn.events, findings)


def pinned_events(
    events: Sequence[Pinnable], findings: tuple[Finding, ...]
) -> dict[int, list[Finding]]:
    """Which of these events shows each finding: event index → findings.

    A close is pinned to the closing segment, a lost request and a retry to their request, a
    failed connect to its SYN.
    """
    out: dict[int, list[Finding]] = {}
    for f in findings:
        idx = _event_for(events, f)
        if idx is not None:
            out.setdefault(idx, []).append(f)
    return out


def _event_for(events: Sequence[Pinnable], f: Finding) -> int | None:
    for i, e in enumerate(events):
        if f.type in ("request_lost_to_fin", "retry"):
            if e.type == "request" and e.request_index == f.request_index:
                return i
        elif e.frame == f.frame and (
            (f.type == "server_initiated_close" and e.type in ("fin", "rst") and e.side == "server")
            or (f.type == "connect_failed" and e.type == "syn")
        ):
            return i
    return None


def reporter(name: str) -> Reporter:
    """The reporter for a format name: ``table``, ``json``, ``csv`` or ``html`` (Parquet is
    a folder of tables, not a text stream: :mod:`pcapkit.report.parquet_report`)."""
    if name == "table":
        from pcapkit.report.table import TableReporter

        return TableReporter()
    if name == "json":
        from pcapkit.report.json_report import JsonReporter

        return JsonReporter()
    if name == "csv":
        from pcapkit.report.csv_report import CsvReporter

        return CsvReporter()
    if name == "html":
        from pcapkit.report.html_report import HtmlReporter

        return HtmlReporter()
    raise ValueError(f"unknown report format {name!r}")


FORMATS = ("table", "json", "csv", "html")

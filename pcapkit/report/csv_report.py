"""The CSV report: one row per event, for spreadsheets and ``pandas.read_csv``.

Times are written as exact decimal epoch seconds (nanosecond digits), never rounded by a float.

The rows are the core's (``Batch.csv_records`` as connections are finished, ``_core.connection_csv``
for a connection held as an object): a capture has hundreds of thousands of events, never built
as objects for this report. The core leaves the findings column empty, since findings are paired
with events only once the whole capture is read; this module fills it on the rows that show
one, and leads the rows with the capture's path when several captures share the file.
"""

from __future__ import annotations

import csv
import io
from array import array
from collections.abc import Iterator, Sequence
from itertools import repeat
from typing import TYPE_CHECKING, NamedTuple, TextIO

from pcapkit import _core
from pcapkit.model import Analysis, Connection, Finding
from pcapkit.report import ReportOptions, pinned_events
from pcapkit.store import Spool

if TYPE_CHECKING:
    from pcapkit._core import Batch

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


class CsvRows:
    """Connections spooled as their CSV rows (``analyze(spool=CSV_ROWS)``), written by the core
    from its rows, each record the rows' keys (its length first, 8 bytes) then their text."""

    def encode(self, batch: Batch, which: list[int]) -> list[bytes]:
        return batch.csv_records(which)


CSV_ROWS = CsvRows()


class RowKey(NamedTuple):
    """What pinning reads of a row's event (the core's ``CSV_KEY`` int64s, decoded)."""

    type: str
    side: str
    frame: int
    request_index: int | None


def split_record(record: bytes) -> tuple[bytes, bytes]:
    """A spooled record's rows and keys (``Batch.csv_records``)."""
    n = int.from_bytes(record[:8], "little")
    return record[8 + n :], record[8 : 8 + n]


def _rows(conns: Sequence[Connection]) -> Iterator[tuple[int, bytes, bytes]]:
    """Each connection's id, rows and keys, in order."""
    if isinstance(conns, Spool) and conns.text is CSV_ROWS:
        for conn_id, record in conns.records():
            yield conn_id, *split_record(record)
    else:
        for c in conns:
            text, keys = _core.connection_csv(c)
            yield c.id, text, keys


def _keys(keys: bytes) -> tuple[array[int], list[RowKey]]:
    """Each row's end in the text, and its event's key."""
    k = array("q")
    k.frombytes(keys)
    n = _core.CSV_KEY
    types = {**dict(enumerate(_core.EVENT_TYPES)), -1: ""}
    sides = {**dict(enumerate(_core.SIDES)), -1: ""}
    index = [None if i < 0 else i for i in k[4::n]]
    rows = zip(
        map(types.__getitem__, k[1::n]),
        map(sides.__getitem__, k[2::n]),
        k[3::n],
        index,
        strict=True,
    )
    # tuple.__new__ is what RowKey._make calls, here without a Python frame for each row (a
    # capture's flagged connections have hundreds of thousands)
    return k[0::n], list(map(tuple.__new__, repeat(RowKey), rows))


def _lead(path: str) -> str:
    """The capture column's field and its comma, quoted as ``csv`` quotes it."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow((path, ""))
    return buf.getvalue()[:-1]


class CsvReporter:
    def render(self, analysis: Analysis, out: TextIO, options: ReportOptions) -> None:
        lead = _lead(analysis.capture.path) if options.capture_column else ""
        if options.header:
            w = csv.writer(out, lineterminator="\n")
            w.writerow((("capture",) if options.capture_column else ()) + COLUMNS)
        flagged = set(analysis.flagged())
        for conn_id, text, keys in _rows(analysis.connections):
            findings = analysis.findings_for(conn_id) if conn_id in flagged else ()
            if not findings and not lead:
                out.write(text.decode("utf-8"))
                continue
            ends, events = _keys(keys)
            pins = pinned_events(events, findings)
            if lead:
                start = 0
                for i, end in enumerate(ends):
                    out.write(lead)
                    out.write(_row(text[start:end], pins.get(i)))
                    start = end
                continue
            start = 0  # the rows between those showing a finding are written as they are
            for i in sorted(pins):
                row = ends[i - 1] if i else 0
                out.write(text[start:row].decode("utf-8"))
                out.write(_row(text[row : ends[i]], pins[i]))
                start = ends[i]
            out.write(text[start:].decode("utf-8"))


def _row(row: bytes, pins: list[Finding] | None) -> str:
    """A row of the core's, with its findings: its last field, which the core leaves empty."""
    text = row.decode("utf-8")
    if not pins:
        return text
    return text[:-1] + ";".join(f.type for f in pins) + "\n"

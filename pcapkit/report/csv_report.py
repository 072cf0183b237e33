"""The CSV report: one row per event, for spreadsheets and ``pandas.read_csv``.

Times are written as exact decimal epoch seconds (nanosecond digits), never rounded by a float.

The rows are the core's (``Batch.csv_rows`` as connections are finished, ``_core.connection_csv``
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
from typing import TYPE_CHECKING, NamedTuple, TextIO

from pcapkit import _core
from pcapkit.model import Analysis, Connection
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
        return [
            len(keys).to_bytes(8, "little") + keys + text for text, keys in batch.csv_rows(which)
        ]


CSV_ROWS = CsvRows()


class RowKey(NamedTuple):
    """What pinning reads of a row's event (the core's ``CSV_KEY`` int64s, decoded)."""

    type: str
    side: str
    frame: int
    request_index: int | None


def _rows(conns: Sequence[Connection]) -> Iterator[tuple[int, bytes, bytes]]:
    """Each connection's id, rows and keys, in order."""
    if isinstance(conns, Spool) and conns.text is CSV_ROWS:
        for conn_id, record in conns.records():
            n = int.from_bytes(record[:8], "little")
            yield conn_id, record[8 + n :], record[8 : 8 + n]
    else:
        for c in conns:
            text, keys = _core.connection_csv(c)
            yield c.id, text, keys


def _keys(keys: bytes) -> list[tuple[int, RowKey]]:
    """Each row's end in the text and its event's key."""
    k = array("q")
    k.frombytes(keys)
    types, sides, n = _core.EVENT_TYPES, _core.SIDES, _core.CSV_KEY
    return [
        (
            k[i],
            RowKey(
                types[k[i + 1]] if k[i + 1] >= 0 else "",
                sides[k[i + 2]] if k[i + 2] >= 0 else "",
                k[i + 3],
                k[i + 4] if k[i + 4] >= 0 else None,
            ),
        )
        for i in range(0, len(k), n)
    ]


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
        for conn_id, text, keys in _rows(analysis.connections):
            findings = analysis.findings_for(conn_id)
            if not findings and not lead:
                out.write(text.decode("utf-8"))
                continue
            rows = _keys(keys)
            pins = pinned_events([key for _, key in rows], findings)
            start = 0
            for i, (end, _) in enumerate(rows):
                row = text[start:end].decode("utf-8")
                start = end
                pin = pins.get(i)
                if pin:  # the core's row ends with the empty findings field: ",\n"
                    row = row[:-1] + ";".join(f.type for f in pin) + "\n"
                out.write(lead + row)

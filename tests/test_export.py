"""The core writes the JSON report's connection lines and the CSV report's rows
(``crates/kaflow-core/src/export.rs``): they must be, byte for byte, what Python's own encoders
write of the same connection (``tests/oracle/report.py``): ``json.dumps`` of the documented dict
and ``csv.writer``'s rows. Checked on the batches the core hands over (the reports' path), on
connections held as objects (``_core.connection_json``/``connection_csv``), and on the strings
and times real captures rarely hold.
"""

from __future__ import annotations

import io
import json
import random
from array import array
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import get_args

import pytest

from pcapkit import _core, analyze
from pcapkit.connections import connections
from pcapkit.model import Anomaly, Connection, Event, EventType, Request, Side
from pcapkit.report import ReportOptions, pinned, reporter
from pcapkit.report.csv_report import CSV_ROWS, split_record
from pcapkit.report.json_report import JSON_LINES
from tests.conversation import MS, T0, Conv, get, ok, write
from tests.oracle.report import connection_line, csv_rows
from tests.test_benchmark_gen import SEED, gen

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CAPTURES = sorted(FIXTURES.glob("*/capture.pcap"))

ODD = 'a"b\\c,d\ne\rf\tg\x00\x01\x08\x0c\x1f\x7f é ✓ \u2028 \ud7ff \U0001f600 ""'


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("gen") / "busy.pcap"
    gen.generate(path, 8_000, seed=SEED + 1, concurrency=30, ports=(41000, 41049))
    yield path


@pytest.fixture(scope="module")
def odd_capture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Requests whose target and Host hold what JSON escapes and CSV quotes."""
    path = tmp_path_factory.mktemp("odd") / "odd.pcap"
    c = Conv(40001).handshake(T0)
    c.exchange(T0 + 2 * MS, get('/a,b"c\\d?x=é✓', host='h,"q"'), ok())
    c.exchange(T0 + 5 * MS, get("/back\\slash", host="tab\there"), ok(close=True))
    c.fin("s", T0 + 7 * MS).fin("c", T0 + 8 * MS)
    d = Conv(40002).handshake(T0 + MS)
    d.send("c", T0 + 3 * MS, b"GET /\x01\x7f\xff HTTP/1.1\r\nHost: \xc3\x28\r\n\r\n")
    d.send("s", T0 + 4 * MS, b'garbage, "not" HTTP\r\n\r\n')
    d.rst("s", T0 + 6 * MS)
    write(path, [c, d])
    yield path


def _batches(path: Path) -> Iterator[tuple[_core.Batch, list[Connection]]]:
    """Each batch the core hands over and its connections as objects (built from the columns,
    not from the text under test)."""
    for b in _core.Scan([str(path)], (8080,), False, None, None):
        which = list(range(len(b)))
        yield b, connections(b, which)


def _keys(keys: bytes) -> list[tuple[int, ...]]:
    k = array("q")
    k.frombytes(keys)
    n = _core.CSV_KEY
    return [tuple(k[i : i + n]) for i in range(0, len(k), n)]


def _check_batch(b: _core.Batch, conns: list[Connection]) -> int:
    which = list(range(len(b)))
    lines = b.json_lines(which)
    rows = [split_record(r) for r in b.csv_records(which)]
    assert len(lines) == len(rows) == len(conns)
    for c, line, (text, keys) in zip(conns, lines, rows, strict=True):
        assert line.decode("utf-8") == connection_line(c)
        assert text.decode("utf-8") == csv_rows(c)
        assert (text, keys) == _core.connection_csv(c)
        assert line == _core.connection_json(c)
        # each row's key: where it ends, and its event's type, side, frame and request
        ends = [0]
        for e, (end, kind, side, frame, index) in zip(c.events, _keys(keys), strict=True):
            assert text[ends[-1] : end].endswith(b",\n")
            ends.append(end)
            assert (_core.EVENT_TYPES[kind], _core.SIDES[side], frame) == (e.type, e.side, e.frame)
            assert (None if index < 0 else index) == e.request_index
        assert ends[-1] == len(text)
    return sum(len(c.events) for c in conns)


@pytest.mark.parametrize("path", [*CAPTURES, None], ids=lambda p: p.parent.name if p else "gen")
def test_the_cores_text_is_what_pythons_encoders_write(path: Path | None, generated: Path) -> None:
    events = sum(_check_batch(b, conns) for b, conns in _batches(path or generated))
    assert events > 0


def test_odd_strings_from_a_capture(odd_capture: Path) -> None:
    events = 0
    seen = ""
    for b, conns in _batches(odd_capture):
        events += _check_batch(b, conns)
        seen += "".join(f"{e.target}{e.host}{e.note}" for c in conns for e in c.events)
    assert events > 0
    assert all(ch in seen for ch in '",\\\t\x01\x7f')


def _odd(c: Connection) -> Connection:
    """The connection with every string odd and times that test the float's layout."""
    times = [0, 1, -1, 15, 99_999, 100_000, -123_456, 10**9, 2**53 + 1, 2**63 - 1, -(2**63)]
    rng = random.Random(7)
    times += [rng.randrange(-(2**63), 2**63) for _ in range(300)]
    times += [rng.randrange(0, 10**6) for _ in range(300)]
    times += [rng.randrange(1_500_000_000, 1_900_000_000) * 10**9 + rng.randrange(10**9)]
    events = [
        Event(t, "request", "client", 7, ODD, ODD, ODD, None, False, 0, 5, ODD) for t in times
    ]
    return replace(
        c,
        client=ODD,
        server=ODD,
        history="",
        opened_at_ns=-(2**62),
        established_at_ns=2**63 - 1,
        closed_at_ns=-(2**63),
        keep_alive=ODD,
        server_header=ODD,
        tunnel="",
        requests=(Request(0, ODD, ODD, None, 1, 2, request_id=ODD), *c.requests),
        events=(
            *events,
            Event(1, "response", "server", 8, None, None, None, None, True, None, None, None),
            Event(2, "response", "server", 9, None, None, None, 599, False, 3, -1, ""),
            Event(3, "fin", "server", 10, ODD, ODD, ODD, 200, True, 4, 0, ODD),
            *c.events,
        ),
        anomalies=(Anomaly(3, 4, "server", ODD), Anomaly(-3, 2**64 - 1, "client", "")),
    )


def test_odd_strings_and_times_of_a_connection_object(generated: Path) -> None:
    c = _odd(analyze(generated).connections[0])
    line = _core.connection_json(c).decode("utf-8")
    assert line == connection_line(c)
    assert json.loads(line)["client"] == ODD
    assert [e["time"] for e in json.loads(line)["events"][:3]] == [0.0, 1e-09, -1e-09]
    text, _ = _core.connection_csv(c)
    assert text.decode("utf-8") == csv_rows(c)


def test_event_types_and_sides_are_the_models() -> None:
    assert get_args(EventType) == _core.EVENT_TYPES
    assert get_args(Side) == _core.SIDES


def _render(a: object, options: ReportOptions) -> str:
    out = io.StringIO()
    reporter("csv").render(a, out, options)  # type: ignore[arg-type]
    return out.getvalue()


@pytest.mark.parametrize("lead", [False, True])
def test_csv_report_puts_findings_on_the_rows_that_show_them(generated: Path, lead: bool) -> None:
    """The spooled rows, findings spliced in, equal csv.writer's rows of the held connections."""
    held = analyze(generated)
    options = ReportOptions(capture_column=lead)
    spooled = analyze(generated, spool=CSV_ROWS)
    text = _render(spooled, options)
    assert text == _render(held, options)  # the same, written from Connection objects
    want = io.StringIO()
    path = held.capture.path
    for c in held.connections:
        pins = pinned(c, held.findings_for(c.id))
        findings = {i: ";".join(f.type for f in fs) for i, fs in pins.items()}
        rows = csv_rows(c, findings)
        if lead:
            rows = "".join(f"{path},{r}\n" for r in rows.splitlines())
        want.write(rows)
    assert text.split("\n", 1)[1] == want.getvalue()
    assert held.summary.findings_of("retry") and ",retry\n" in text
    assert ",server_initiated_close\n" in text


def test_json_lines_spool_is_the_objects_document(generated: Path) -> None:
    out, spooled = io.StringIO(), io.StringIO()
    reporter("json").render(analyze(generated), out, ReportOptions())
    reporter("json").render(analyze(generated, spool=JSON_LINES), spooled, ReportOptions())
    assert spooled.getvalue() == out.getvalue()


def test_text_spool_is_asked_for_its_records(generated: Path) -> None:
    a = analyze(generated, spool=CSV_ROWS)
    with pytest.raises(TypeError, match="records"):
        a.connections[0]
    objects = analyze(generated, spool=True)
    with pytest.raises(TypeError, match="records"):
        next(objects.connections.records())  # type: ignore[attr-defined]

"""Connection by connection: the streamed analysis must equal the analysis of everything at once.

The command line never holds a capture's connections: each is classified as it is finished,
spooled to disk or dropped, and the report reads back what it shows. These tests hold the
streaming parts to the plain answer: findings in any arrival order, retries found after the
request index was pruned, spooled connections, the default table's choice of what to keep, and
the JSON document written a connection at a time.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from pcapkit import Analysis, analyze
from pcapkit.classify import finding_order
from pcapkit.model import Finding
from pcapkit.report import ReportOptions, reporter
from pcapkit.report.json_report import analysis_dict
from pcapkit.report.severity import connection_rank, rank
from pcapkit.report.table import WorstFirst
from pcapkit.store import FindingSpool, Spool
from tests.oracle.batch import classify
from tests.test_benchmark_gen import SEED, gen

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CAPTURES = sorted(FIXTURES.glob("*/capture.pcap"))


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A generated capture with hundreds of findings of every kind, retries included."""
    path = tmp_path_factory.mktemp("gen") / "busy.pcap"
    gen.generate(path, 20_000, seed=SEED, concurrency=40, ports=(40000, 40099))
    yield path


def _name(p: Path | None) -> str:
    return p.parent.name if p else "busy"


def _render(a: Analysis, fmt: str, options: ReportOptions) -> str:
    out = io.StringIO()
    reporter(fmt).render(a, out, options)
    return out.getvalue()


def test_busy_capture_has_what_these_tests_need(busy: Path) -> None:
    s = analyze(busy).summary
    assert s.findings_of("retry") >= 5 and s.findings_of("request_lost_to_fin") >= 5
    assert s.findings_of("server_initiated_close") >= 20


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_findings_do_not_depend_on_the_order_connections_arrive(busy: Path, seed: int) -> None:
    a = analyze(busy)
    conns = list(a.connections)
    random.Random(seed).shuffle(conns)
    assert classify(conns) == a.findings


@pytest.mark.parametrize("path", [*CAPTURES, None], ids=_name)
def test_spooled_connections_equal_the_held_ones(path: Path | None, busy: Path) -> None:
    path = path or busy
    held = analyze(path)
    spooled = analyze(path, spool=True)
    assert isinstance(spooled.connections, Spool)
    assert list(spooled.connections) == list(held.connections)
    assert spooled.findings == held.findings and spooled.summary == held.summary
    assert spooled.advice == held.advice
    assert isinstance(spooled.findings, FindingSpool)
    assert spooled.findings[:3] == held.findings[:3] and spooled.flagged() == held.flagged()
    for conn_id in {*held.flagged(), held.connections[0].id}:
        assert spooled.findings_for(conn_id) == held.findings_for(conn_id)
    last = held.connections[-1]
    assert spooled.connection(last.id) == last
    assert spooled.connections[0] == held.connections[0]
    with pytest.raises(KeyError):
        spooled.connection(last.id + 1)


@pytest.mark.parametrize("limit", [0, 1, 3, 20])
def test_default_table_from_kept_connections_equals_the_full_one(busy: Path, limit: int) -> None:
    """WorstFirst keeps exactly what the default table shows, retries' connections included."""
    options = ReportOptions(limit=limit)
    full = _render(analyze(busy), "table", options)
    kept = analyze(busy, keep=WorstFirst(limit), spool=True)
    assert _render(kept, "table", options) == full
    assert len(kept.connections) < kept.summary.connections  # it did drop connections
    shown = rank(kept.findings).worst[:limit]
    assert set(shown) <= set(kept.connections.ids())  # type: ignore[attr-defined]
    # the worst come first: every connection that lost a request before any idle close
    tiers = [min(connection_rank(f) for f in kept.findings_for(i)) for i in shown]
    assert tiers == sorted(tiers)


def test_worst_first_keeps_few_connections(busy: Path) -> None:
    """The default table builds the connections it may show, not every flagged one."""
    kept = analyze(busy, keep=WorstFirst(3), spool=True)
    losing = {f.connection for f in kept.findings if f.type == "request_lost_to_fin"}
    assert losing <= set(kept.connections.ids())  # type: ignore[attr-defined]
    # the losses, the first few connections, and the few that were the best three so far
    assert len(kept.connections) <= len(losing) + 3 * 4
    assert len(kept.connections) * 2 < len(kept.flagged())


@pytest.mark.parametrize(
    "path", [*CAPTURES[:3], None], ids=lambda p: p.parent.name if p else "busy"
)
def test_streamed_json_is_the_whole_document(path: Path | None, busy: Path) -> None:
    a = analyze(path or busy, spool=True)
    text = _render(a, "json", ReportOptions())
    assert json.loads(text) == json.loads(json.dumps(analysis_dict(analyze(path or busy))))
    assert text.count('\n  {"id":') == a.summary.connections  # one line per connection


def test_streamed_json_without_connections(tmp_path: Path, busy: Path) -> None:
    a = analyze(busy, keep=lambda c, flagged: False)
    doc = json.loads(_render(a, "json", ReportOptions()))
    assert doc["connections"] == [] and doc["summary"]["connections"] > 0


def test_spooled_csv_equals_held_csv(busy: Path) -> None:
    held = _render(analyze(busy), "csv", ReportOptions())
    spooled = _render(analyze(busy, spool=True), "csv", ReportOptions())
    assert spooled == held
    rows = list(csv.reader(io.StringIO(spooled)))
    assert any("retry" in r[-1] for r in rows[1:])


def test_connection_json_is_exactly_what_the_encoder_writes(busy: Path) -> None:
    """The core's line equals json.dumps of the dict, byte for byte, odd strings too."""
    from dataclasses import replace

    from pcapkit.model import Anomaly, Event, Request
    from pcapkit.report.json_report import connection_json
    from tests.oracle.report import connection_line as exact

    a = analyze(busy)
    for c in a.connections:
        assert connection_json(c) == exact(c)
    odd = 'a"b\\c\x00\x1f\x7f é ✓ \u2028 \ud7ff'
    c = a.connections[0]
    weird = replace(
        c,
        client=odd,
        history="",
        requests=(Request(0, odd, odd, None, 1, 2), *c.requests),
        events=(
            Event(123456789, "request", "client", 7, odd, odd, odd, None, False, 0, 5, odd),
            Event(1, "response", "server", 8, None, None, None, None, True, None, None, None),
            *c.events,
        ),
        anomalies=(Anomaly(3, 4, "server", odd),),
    )
    assert connection_json(weird) == exact(weird)
    assert json.loads(connection_json(weird))["client"] == odd


def test_json_lines_spool_writes_the_same_document(busy: Path) -> None:
    """Connections kept as their JSON lines read back equal."""
    from pcapkit.report.json_report import JSON_LINES

    want = _render(analyze(busy), "json", ReportOptions())
    a = analyze(busy, spool=JSON_LINES)
    assert isinstance(a.connections, Spool) and a.connections.text is JSON_LINES
    assert _render(a, "json", ReportOptions()) == want
    with pytest.raises(TypeError, match="text lines"):
        a.connections[0]


def _finding(conn: int, time_ns: int, frame: int, what: str = "") -> Finding:
    return Finding("server_initiated_close", conn, time_ns, frame, what)


def test_finding_spool_reads_back_in_report_order_ties_as_added() -> None:
    spool = FindingSpool()
    written = [
        _finding(2, 50, 7),
        _finding(1, 50, 9, "a"),
        _finding(1, 10, 3),
        _finding(1, 50, 9, "b"),  # same time, connection and frame as "a": stays after it
        Finding("connect_failed", 3, 5, 1, "c"),
    ]
    spool.extend(written)
    with pytest.raises(RuntimeError):
        spool[0]  # not sealed yet
    spool.seal()
    want = sorted(written, key=finding_order)
    assert list(spool) == want and spool == tuple(want) and tuple(want) == spool
    assert spool[-1] == want[-1] and spool[1:3] == tuple(want[1:3])
    assert spool != tuple(written) and spool != 5
    assert [f.message for f in spool.of(1)] == ["", "a", "b"] and spool.of(4) == ()
    assert spool.connection_ids() == [1, 2, 3]
    assert spool.kinds() == {"server_initiated_close": 4, "connect_failed": 1}
    with pytest.raises(RuntimeError):
        spool.append(_finding(1, 1, 1))


def test_finding_spool_reads_back_what_writes_cut_short_wrote(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A write may take only part of what it is given (a signal, a full disk): the records
    after it go on from the byte where it stopped, and every one reads back whole."""
    import pcapkit.store

    writev = os.writev
    sizes = random.Random(5)

    def short(fd: int, bufs: list[bytes]) -> int:
        return writev(fd, [b"".join(bufs)[: sizes.randint(1, 700)]])

    monkeypatch.setattr(os, "writev", short)
    monkeypatch.setattr(pcapkit.store, "_WRITE_BYTES", 1000)
    written = [_finding(i % 7, i, i, "x" * (i % 50)) for i in range(300)]
    spool = FindingSpool()
    spool.extend(written)
    spool.seal()
    assert list(spool) == sorted(written, key=finding_order)

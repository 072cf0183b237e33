"""A capture in several files (a rotated series) is one capture; a time window is a cut of it.

Splits are made by ``editcap`` (Wireshark's own tool) from the real fixtures; merges are held
against ``mergecap``'s output, cuts against ``editcap -A/-B``'s.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pcapkit import NotOneCaptureError, analyze
from pcapkit._core import read_segments
from pcapkit.cli import app
from pcapkit.model import Analysis
from pcapkit.report.json_report import analysis_dict
from pcapkit.series import numbering, parse_edge

FIXTURES = Path(__file__).parent.parent / "fixtures"
CAPTURES = sorted(FIXTURES.glob("*/*.pcap*"))
runner = CliRunner()


def body(a: Analysis) -> dict[str, Any]:
    """The report without what describes the files: connections, findings, summary, advice."""
    d = analysis_dict(a)
    d.pop("capture")
    d.pop("generator")
    return d


def split(capture: Path, into: Path, *how: str) -> list[Path]:
    into.mkdir()
    subprocess.run(["editcap", *how, str(capture), str(into / "part.pcap")], check=True)
    return sorted(into.iterdir())


def port_of(capture: Path) -> int:
    truth = capture.parent / "truth.json"
    return int(json.loads(truth.read_text())["port"]) if truth.exists() else 8080


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_an_editcap_split_of_every_fixture_is_the_whole(capture: Path, tmp_path: Path) -> None:
    port = port_of(capture)
    whole = analyze(capture, port)
    packets = whole.capture.packets
    parts = split(capture, tmp_path / "parts", "-c", str(max(1, packets // 4)))
    assert len(parts) >= 4
    merged = analyze(list(reversed(parts)), port)  # the order given does not matter
    assert body(merged) == body(whole)
    cap = merged.capture
    assert cap.path == str(parts[0])  # the first in time
    assert cap.packets == packets and cap.skipped == whole.capture.skipped
    assert [f.path for f in cap.files] == [str(p) for p in parts]
    assert sum(f.packets for f in cap.files) == packets
    assert cap.files[0].first_frame == 1 and cap.files[-1].last_frame == packets
    for a, b in zip(cap.files, cap.files[1:], strict=False):
        assert b.first_frame == a.last_frame + 1
        assert b.gap_before_ns is not None and a.last_ts_ns is not None
        assert b.first_ts_ns == a.last_ts_ns + b.gap_before_ns
    assert cap.series is not None and f"numbered series (0 to {len(parts) - 1})" in cap.series


def test_a_split_by_time_interval_is_the_whole(tmp_path: Path) -> None:
    capture = FIXTURES / "idle-race-get" / "capture.pcap"
    parts = split(capture, tmp_path / "parts", "-i", "1")
    assert len(parts) >= 5
    merged = analyze(parts)
    assert body(merged) == body(analyze(capture))
    lost = [f for f in merged.findings if f.type == "request_lost_to_fin"]
    retry = [f for f in merged.findings if f.type == "retry"]
    assert len(lost) == len(retry) == 1 and retry[0].retry_of == lost[0].connection


def test_a_connection_across_files_is_one_connection(tmp_path: Path) -> None:
    capture = FIXTURES / "idle-race-get" / "capture.pcap"
    parts = split(capture, tmp_path / "parts", "-c", "5")
    one_by_one = [analyze(p) for p in parts if _has_upstream(p)]
    merged = analyze(parts)
    # file by file, connections are cut at every file's edges; merged, none is
    assert sum(a.summary.partial_connections for a in one_by_one) > 0
    assert merged.summary.partial_connections == analyze(capture).summary.partial_connections
    assert merged.summary.connections < sum(a.summary.connections for a in one_by_one)


def _has_upstream(path: Path) -> bool:
    segments, _ = read_segments(str(path))
    return bool(segments.frame)


def shifted(capture: Path, into: Path, seconds: float) -> Path:
    subprocess.run(["editcap", "-t", str(seconds), str(capture), str(into)], check=True)
    return into


def test_overlapping_files_are_refused_unless_merged_and_merge_as_mergecap(tmp_path: Path) -> None:
    """Captures of two hosts at the same time: the library refuses to merge them by default;
    merged on purpose, the result is mergecap's file analyzed, frame numbers included."""
    a = FIXTURES / "idle-race-get" / "capture.pcap"
    v6 = FIXTURES / "ipv6" / "capture.pcap"
    first_a = analyze(a).capture.first_ts_ns
    first_b = analyze(v6).capture.first_ts_ns
    assert first_a is not None and first_b is not None
    b = shifted(v6, tmp_path / "b.pcap", (first_a - first_b) / 1e9 + 0.5)
    with pytest.raises(NotOneCaptureError, match="overlap in time"):
        analyze([a, b])
    merged = analyze([a, b], merge=True)
    mergecap = tmp_path / "m.pcap"
    subprocess.run(["mergecap", "-F", "pcap", "-w", str(mergecap), str(a), str(b)], check=True)
    assert body(merged) == body(analyze(mergecap))
    assert merged.capture.series is not None and "overlap" in merged.capture.series
    assert merged.capture.files[1].gap_before_ns is not None
    assert merged.capture.files[1].gap_before_ns < 0


def test_cli_series_is_one_report_overlap_and_separate_are_one_each(tmp_path: Path) -> None:
    capture = FIXTURES / "idle-race-get" / "capture.pcap"
    parts = split(capture, tmp_path / "parts", "-c", "20")
    r = runner.invoke(app, ["analyze", str(tmp_path / "parts"), "-f", "json"])
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert doc["schema"] == "kaflow.analysis/1"
    files = doc["capture"]["files"]
    assert [f["path"] for f in files] == [str(p) for p in parts]
    assert [f["packets"] for f in files] == [20, 20, 20, 4]
    assert files[0]["gap_before"] is None and all(f["gap_before"] > 0 for f in files[1:])
    assert doc["capture"]["series"].startswith("one capture in 4 files")
    table = runner.invoke(app, ["analyze", *map(str, parts)]).stdout
    assert "one capture in 4 files" in table and "frames 21-40" in table
    apart = runner.invoke(app, ["analyze", "--separate", *map(str, parts)])
    assert apart.stdout.count("==> ") == 4, apart.output
    other = shifted(FIXTURES / "ipv6" / "capture.pcap", tmp_path / "v6.pcap", 0)
    first = analyze(capture).capture.first_ts_ns
    v6 = analyze(other).capture.first_ts_ns
    assert first is not None and v6 is not None
    other = shifted(other, tmp_path / "v6-now.pcap", (first - v6) / 1e9 + 0.5)
    both = runner.invoke(app, ["analyze", str(capture), str(other)])
    assert both.stdout.count("==> ") == 2 and "analyzed separately" in both.stderr
    forced = runner.invoke(app, ["analyze", "--merge", str(capture), str(other)])
    assert "==> " not in forced.stdout and "merged as asked" in forced.stdout
    bad = runner.invoke(app, ["analyze", "--merge", "--separate", str(capture)])
    assert bad.exit_code == 2 and "contradict" in bad.stderr


def connection_facts(a: Analysis) -> list[tuple[Any, ...]]:
    """What two captures of the same packets by two tcpdumps share (their stamps may differ by
    a microsecond): each connection's closer, states, packets, requests and events."""
    return [
        (
            c.id,
            c.client_port,
            c.opened_by,
            c.closed_by,
            c.close,
            c.state,
            c.history,
            c.packets,
            [(r.label, r.status, r.frame, r.response_frame) for r in c.requests],
            [(e.type, e.side, e.frame, e.status) for e in c.events],
        )
        for c in a.connections
    ]


def finding_facts(a: Analysis) -> list[tuple[Any, ...]]:
    return [
        (f.type, f.connection, f.frame, f.request, f.retry_of, f.retried_on) for f in a.findings
    ]


def test_a_real_rotated_capture_is_the_single_file_capture_of_the_same_run() -> None:
    """fixtures/idle-race-rotated: the lab's race run captured twice at once, into one file and
    as a series tcpdump -G 1 rotated every second; nginx's logs say what happened."""
    from tests.truthcheck import mismatches

    here = FIXTURES / "idle-race-rotated"
    truth = json.loads((here / "truth.json").read_text())
    pieces = sorted((here / "rotated").iterdir())
    assert len(pieces) >= 10
    assert all(truth["captures"][f"rotated/{p.name}"]["piece_of"] for p in pieces)
    series = analyze(here / "rotated")  # a folder of a series is the series
    single = analyze(here / "capture.pcap")
    assert len(series.capture.files) == len(pieces) and series.capture.series is not None
    assert series.summary == single.summary
    assert connection_facts(series) == connection_facts(single)
    assert finding_facts(series) == finding_facts(single)
    assert mismatches(series, truth) == []
    lost = [f for f in series.findings if f.type == "request_lost_to_fin"]
    assert [f.request for f in lost] == truth["prematurely_closed_requests"]
    assert not any("missing" in w for w in series.capture.warnings)


def test_a_piece_cut_short_stops_only_that_piece(tmp_path: Path) -> None:
    capture = FIXTURES / "idle-race-get" / "capture.pcap"
    parts = split(capture, tmp_path / "parts", "-F", "pcap", "-c", "20")
    cut = parts[1].read_bytes()
    parts[1].write_bytes(cut[:-10])  # tcpdump killed in the middle of its last record
    a = analyze(parts)
    (warning,) = a.capture.warnings
    assert warning.startswith(f"{parts[1]}: the capture ends mid-record at byte ")
    assert warning.endswith("analyzed the 19 packets before it")
    assert a.capture.packets == analyze(capture).capture.packets - 1
    assert [f.packets for f in a.capture.files] == [20, 19, 20, 4]
    assert a.capture.files[1].warnings == (warning.removeprefix(f"{parts[1]}: "),)


def test_a_missing_piece_of_a_numbered_series_is_warned(tmp_path: Path) -> None:
    capture = FIXTURES / "idle-race-get" / "capture.pcap"
    parts = split(capture, tmp_path / "parts", "-c", "16")
    given = [parts[0], parts[2], parts[3]]
    a = analyze(given)
    assert any("but 1 is missing" in w for w in a.capture.warnings)
    assert a.summary.connections >= analyze(capture).summary.connections


@pytest.mark.parametrize(
    ("names", "numbers"),
    [
        (["dump.pcap", "dump.pcap1", "dump.pcap2"], (0, 1, 2)),  # tcpdump -C
        (["d.pcap08", "d.pcap09", "d.pcap10"], (8, 9, 10)),  # tcpdump -C -W (padded)
        (["x_00001_20261203.pcapng", "x_00002_20261203.pcapng"], (1, 2)),  # dumpcap, editcap
        (["a/dump.pcap1", "b/dump.pcap10"], (1, 10)),
        (["web-1.pcap", "web-2.pcap"], (1, 2)),
        (["monday.pcap", "tuesday.pcap"], None),
        (["same.pcap"], None),
    ],
)
def test_numbering_of_names(names: list[str], numbers: tuple[int, ...] | None) -> None:
    got = numbering(names)
    assert (got.numbers if got is not None else None) == numbers


# --------------------------------------------------------------------------- time windows


def editcap_cut(capture: Path, out: Path, since_ns: int, until_ns: int) -> Path:
    subprocess.run(
        [
            "editcap",
            "-F",
            "pcap",
            "-A",
            f"{since_ns // 10**9}.{since_ns % 10**9:09d}",
            "-B",
            f"{until_ns // 10**9}.{until_ns % 10**9:09d}",
            str(capture),
            str(out),
        ],
        check=True,
    )
    return out


def renumbered(doc: Any, frames: dict[int, int]) -> Any:
    """``doc`` with every frame number (keys ending in ``frame``) mapped."""
    if isinstance(doc, dict):
        return {
            k: frames[v] if k.endswith("frame") and isinstance(v, int) else renumbered(v, frames)
            for k, v in doc.items()
        }
    if isinstance(doc, list):
        return [renumbered(v, frames) for v in doc]
    return doc


@pytest.mark.parametrize(
    ("scenario", "since", "until"),
    [("idle-race-get", 1.5, 5.0), ("idle-race-post", 2.0, 6.5), ("max-requests", 0.2, 1.7)],
)
def test_since_until_is_editcap_a_b(
    scenario: str, since: float, until: float, tmp_path: Path
) -> None:
    capture = FIXTURES / scenario / "capture.pcap"
    whole = analyze(capture)
    start = whole.capture.first_ts_ns
    assert start is not None
    a, b = start + int(since * 1e9), start + int(until * 1e9)
    cut = analyze(editcap_cut(capture, tmp_path / "cut.pcap", a, b))
    windowed = analyze(capture, since=f"+{since}s", until=f"+{until * 1000:.0f}ms")
    segments, _ = read_segments(str(capture))
    kept = [f for f, t in zip(segments.frame, segments.ts_ns, strict=True) if a <= t < b]
    frames = {f: n for n, f in enumerate(kept, start=1)}
    assert renumbered(body(windowed), frames) == body(cut)
    assert windowed.capture.since_ns == a and windowed.capture.until_ns == b
    outside = dict(windowed.capture.skipped)["outside_window"]
    assert outside == whole.capture.packets - len(kept)
    # connections crossing the window's edges are partial, as at a capture's edges
    assert windowed.summary.partial_connections > whole.summary.partial_connections
    absolute = analyze(capture, since=("at", a), until=("at", b))
    assert body(absolute) == body(windowed)


def test_since_until_in_the_cli_and_their_errors(tmp_path: Path) -> None:
    capture = str(FIXTURES / "idle-race-get" / "capture.pcap")
    start = analyze(capture).capture.first_ts_ns
    assert start is not None
    from datetime import UTC, datetime

    iso = datetime.fromtimestamp(start // 10**9 + 2, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = runner.invoke(app, ["analyze", capture, "--since", iso, "-f", "json"])
    doc = json.loads(r.stdout)
    assert doc["capture"]["since"] == (start // 10**9 + 2) and doc["capture"]["until"] is None
    table = runner.invoke(app, ["analyze", capture, "--until", "+3s"]).stdout
    assert "analyzed from the start until" in table
    for option, value in [("--since", "yesterday"), ("--until", "+10x"), ("--since", "+")]:
        bad = runner.invoke(app, ["analyze", capture, option, value])
        assert bad.exit_code == 2 and bad.stderr.count("\n") == 1
        assert bad.stderr.startswith(f"kaflow: error: {option} {value!r}")
    empty = runner.invoke(app, ["analyze", capture, "--since", "+1h"])
    assert empty.exit_code == 2 and "no packets on the upstream port from" in empty.stderr
    backwards = runner.invoke(app, ["analyze", capture, "--since", "+5s", "--until", "+1s"])
    assert backwards.exit_code == 2 and "window is empty" in backwards.stderr


@pytest.mark.parametrize(
    ("text", "edge"),
    [
        ("+10m", ("after_start", 600 * 10**9)),
        ("+1h30m", ("after_start", 5400 * 10**9)),
        ("+1.5s", ("after_start", 1_500_000_000)),
        ("+250ms", ("after_start", 250_000_000)),
        ("2026-12-03T02:57:01Z", ("at", 1_796_266_621 * 10**9)),
        ("2026-12-03T04:57:01.5+02:00", ("at", 1_796_266_621 * 10**9 + 500_000_000)),
    ],
)
def test_window_edges_parse(text: str, edge: tuple[str, int]) -> None:
    assert parse_edge(text, "--since") == edge


def test_a_local_time_is_the_machines_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        assert parse_edge("2026-12-03 03:57:01", "--since") == ("at", 1_796_266_621 * 10**9)
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.fixture(autouse=True)
def _tools() -> None:
    for tool in ("editcap", "mergecap"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is needed (Wireshark's tools: apt-get install wireshark-common)")


def test_files_of_one_name_are_two_captures_whatever_their_times() -> None:
    """web-1/capture.pcap and web-2/capture.pcap: two hosts' captures, not a series, even when
    one follows the other in time."""
    a = FIXTURES / "idle-race-get" / "capture.pcap"
    b = FIXTURES / "agree" / "capture.pcap"
    with pytest.raises(NotOneCaptureError, match="have the same name"):
        analyze([a, b])
    merged = analyze([a, b], merge=True)
    assert merged.summary.connections == sum(analyze(p).summary.connections for p in (a, b))
    r = runner.invoke(app, ["analyze", str(a), str(b)])
    assert r.stdout.count("==> ") == 2 and "have the same name" in r.stderr

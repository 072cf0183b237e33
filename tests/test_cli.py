"""The kaflow command: exit codes a script can rely on, one-line errors, the three formats."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pcapkit.cli import app
from tests.conversation import MS, T0, Conv, get, ok, write

runner = CliRunner()


def clean(tmp_path: Path) -> Path:
    c = Conv().handshake(T0).exchange(T0 + 1 * MS, get("/a"), ok())
    c.fin("c", T0 + 2 * MS).fin("s", T0 + 3 * MS)
    return write(tmp_path / "clean.pcap", [c])


def racy(tmp_path: Path) -> Path:
    a = Conv(40000).handshake(T0).exchange(T0 + 1 * MS, get("/a"), ok())
    t = T0 + 1003 * MS
    a.send("c", t, get("/lost")).fin("s", t + 200_000).fin("c", t + 300_000)
    b = Conv(40002).handshake(t + 400_000).exchange(t + 500_000, get("/lost"), ok())
    quiet = Conv(40004).handshake(T0 + 5 * MS).fin("c", T0 + 9 * MS).fin("s", T0 + 10 * MS)
    return write(tmp_path / "racy.pcap", [a, b, quiet])


def test_exit_0_without_findings(tmp_path: Path) -> None:
    r = runner.invoke(app, ["analyze", str(clean(tmp_path))])
    assert r.exit_code == 0, r.output
    assert "No findings" in r.stdout


def test_exit_1_with_findings_and_timelines_of_those_connections(tmp_path: Path) -> None:
    r = runner.invoke(app, ["analyze", str(racy(tmp_path))])
    assert r.exit_code == 1
    out = r.stdout
    assert "request_lost_to_fin" in out and "retried on #3" in out
    assert "Connection #1 " in out and "Connection #3 " in out
    assert "Connection #2 " not in out  # no findings: no timeline by default
    assert "nginx → upstream" in out and "GET /lost" in out


def test_all_and_connection_selection(tmp_path: Path) -> None:
    path = str(racy(tmp_path))
    assert "Connection #2 " in runner.invoke(app, ["analyze", path, "--all"]).stdout
    one = runner.invoke(app, ["analyze", path, "--connection", ":40004"]).stdout
    assert "Connection #2 " in one and "Connection #1 " not in one
    r = runner.invoke(app, ["analyze", path, "--connection", "99"])
    assert r.exit_code == 2 and "no connection with that id" in r.stderr


def test_json_contract(tmp_path: Path) -> None:
    out = tmp_path / "a.json"
    r = runner.invoke(app, ["analyze", str(racy(tmp_path)), "-f", "json", "-o", str(out)])
    assert r.exit_code == 1
    doc = json.loads(out.read_text())
    assert doc["schema"] == "kaflow.analysis/1"
    assert doc["capture"]["format"] == "pcap" and doc["capture"]["link_types"] == ["EN10MB"]
    c1 = doc["connections"][0]
    assert c1["id"] == 1 and c1["client"] == "127.0.0.1:40000" and c1["server"] == "127.0.0.1:8080"
    assert c1["closed_by"] == "server" and c1["close"] == "fin" and c1["partial"] is False
    assert c1["requests"][1] == {
        **c1["requests"][1],
        "method": "GET",
        "target": "/lost",
        "status": None,
        "responded_at": None,
    }
    assert {e["type"] for e in c1["events"]} <= {
        "syn",
        "syn_ack",
        "request",
        "response",
        "fin",
        "rst",
    }
    assert all(e["from"] in ("client", "server") for e in c1["events"])
    retry = next(f for f in doc["findings"] if f["type"] == "retry")
    assert retry == {
        **retry,
        "connection": 3,
        "retry_of": 1,
        "new_connection": True,
        "request": "GET /lost",
    }
    assert doc["summary"]["findings"]["request_lost_to_fin"] == 1


def test_csv_one_row_per_event(tmp_path: Path) -> None:
    r = runner.invoke(app, ["analyze", str(racy(tmp_path)), "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == sum(1 for _ in rows) and rows[0]["type"] == "syn"
    lost = [row for row in rows if "request_lost_to_fin" in row["findings"]]
    assert [row["target"] for row in lost] == ["/lost"]
    assert rows[0]["time"] == f"{T0 // 10**9}.{T0 % 10**9:09d}"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "missing.pcap", "no such file"),
        (lambda d: d, "is a directory"),
        (lambda d: _text(d), "not a pcap or pcapng capture"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    r = runner.invoke(app, ["analyze", str(make(tmp_path))])
    assert r.exit_code == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("kaflow: error: ")
    assert message in r.stderr
    assert "Traceback" not in r.output


def _text(d: Path) -> Path:
    p = d / "dump.txt"
    p.write_text("12:00:00.000001 IP 127.0.0.1.40000 > 127.0.0.1.8080: Flags [S], seq 1\n")
    return p


def test_no_upstream_traffic_exit_2(tmp_path: Path) -> None:
    r = runner.invoke(app, ["analyze", str(clean(tmp_path)), "--port", "9999"])
    assert r.exit_code == 2 and "try --port 8080" in r.stderr


def test_usage_error_exit_2(tmp_path: Path) -> None:
    r = runner.invoke(app, ["analyze", str(clean(tmp_path)), "--format", "xml"])
    assert r.exit_code == 2


def test_help_teaches() -> None:
    r = runner.invoke(app, ["analyze", "--help"])
    assert r.exit_code == 0
    for word in ("--port", "--format", "--all", "--connection", "request_lost_to_fin", "Examples"):
        assert word in r.stdout


def test_installed_command_runs_as_a_process(tmp_path: Path) -> None:
    p = subprocess.run(
        [sys.executable, "-m", "pcapkit", "analyze", str(racy(tmp_path)), "-f", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert p.returncode == 1, p.stderr
    assert json.loads(p.stdout)["summary"]["connections"] == 3
    bad = subprocess.run(
        [sys.executable, "-m", "pcapkit", "analyze", str(tmp_path / "nope.pcap")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("kaflow: error:") and not bad.stdout


def test_several_captures_and_a_folder_in_one_call(tmp_path: Path) -> None:
    folder = tmp_path / "caps"
    folder.mkdir()
    clean(folder)
    racy(folder)
    (folder / "notes.txt").write_text("not a capture, not picked up from a folder")
    r = runner.invoke(app, ["analyze", str(folder), "--jobs", "2"])
    assert r.exit_code == 1, r.output
    assert r.stdout.count("==> ") == 2 and "2 captures: 1 with findings, 1 without" in r.stdout
    doc = json.loads(runner.invoke(app, ["analyze", str(folder), "-f", "json"]).stdout)
    assert doc["schema"] == "kaflow.analyses/1"
    assert [a["schema"] for a in doc["analyses"]] == ["kaflow.analysis/1"] * 2
    assert [Path(a["capture"]["path"]).name for a in doc["analyses"]] == ["clean.pcap", "racy.pcap"]
    rows = list(
        csv.DictReader(
            io.StringIO(runner.invoke(app, ["analyze", str(folder), "-f", "csv"]).stdout)
        )
    )
    assert {Path(row["capture"]).name for row in rows} == {"clean.pcap", "racy.pcap"}


def test_several_captures_one_unreadable_exit_2(tmp_path: Path) -> None:
    r = runner.invoke(app, ["analyze", str(clean(tmp_path)), str(tmp_path / "gone.pcap")])
    assert r.exit_code == 2
    assert "gone.pcap" in r.stderr and "1 unreadable" in r.stdout


def test_analyze_many_in_parallel_matches_one_by_one(tmp_path: Path) -> None:
    from pcapkit import analyze
    from pcapkit.analysis import analyze_many

    paths = [clean(tmp_path), racy(tmp_path)]
    together = list(analyze_many(paths, jobs=2))
    assert [p for p, _ in together] == paths
    assert [a for _, a in together] == [analyze(p) for p in paths]


@pytest.mark.parametrize("wrap", ["plain", "gzip"])
def test_standard_input_is_read_as_a_stream(tmp_path: Path, wrap: str) -> None:
    """`tcpdump -w - | kaflow analyze -`: the same analysis as from the file, nothing seeked."""
    import gzip

    fixture = Path(__file__).parent.parent / "fixtures" / "idle-race-get" / "capture.pcap"
    data = fixture.read_bytes()
    piped = subprocess.run(
        [sys.executable, "-m", "pcapkit", "analyze", "-", "-f", "json"],
        input=gzip.compress(data) if wrap == "gzip" else data,
        capture_output=True,
        check=False,
    )
    assert piped.returncode == 1, piped.stderr  # the fixture has findings
    from_file = runner.invoke(app, ["analyze", str(fixture), "-f", "json"])
    got, want = json.loads(piped.stdout), json.loads(from_file.stdout)
    assert got["capture"]["path"] == "-"
    assert got["capture"]["format"] == want["capture"]["format"] + (
        " (gzip)" if wrap == "gzip" else ""
    )
    for doc in (got, want):
        doc.pop("generator", None)
        doc["capture"].pop("path")
        doc["capture"].pop("format")
    assert got == want


def test_the_clients_port_given_for_the_upstreams_is_said_with_the_right_one() -> None:
    # --port of nginx's side: every SYN leaves from it; analyzed that way round, nginx's SYNs
    # would be "never answered" and its requests responses
    capture = Path(__file__).resolve().parents[1] / "fixtures" / "idle-race-get" / "capture.pcap"
    truth = json.loads((capture.parent / "truth.json").read_text())
    client_port = truth["connections"][0]["client_port"]
    r = runner.invoke(app, ["analyze", str(capture), "--port", str(client_port)])
    assert r.exit_code == 2
    (line,) = r.stderr.splitlines()
    assert f"port {client_port} is the client's side" in line
    assert line.endswith("try --port 8080")


def test_a_few_connections_the_other_way_are_a_warning(tmp_path: Path) -> None:
    right = Conv(40000).handshake(T0).exchange(T0 + 1 * MS, get("/a"), ok())
    right.fin("c", T0 + 2 * MS).fin("s", T0 + 3 * MS)
    also = Conv(40002).handshake(T0 + 4 * MS).exchange(T0 + 5 * MS, get("/b"), ok())
    also.fin("c", T0 + 6 * MS).fin("s", T0 + 7 * MS)
    # a connection opened from port 8080 to port 9000 (the upstream calling out)
    out = Conv(8080, sport=9000).handshake(T0 + 8 * MS).fin("c", T0 + 9 * MS)
    path = write(tmp_path / "mixed.pcap", [right, also, out])
    r = runner.invoke(app, ["analyze", str(path)])
    assert r.exit_code in (0, 1)
    assert "1 connection attempt went the other way (SYNs from port 8080 to port 9000)" in (
        r.stderr
    )

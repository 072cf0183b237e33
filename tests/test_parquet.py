"""Parquet tables: the frames of the analysis, with capture and host, readable by DuckDB."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pcapkit import analyze
from pcapkit.report.parquet_report import TABLES, frames, write

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"


@pytest.mark.parametrize("name", ["idle-race-get", "agree", "accept-overflow"])
def test_parquet_round_trips_to_the_frames(name: str, tmp_path: Path) -> None:
    a = analyze(FIXTURES / name / "capture.pcap")
    write([(a, "web-1")], tmp_path)
    expect = {
        "connections": a.connections_frame().reset_index(),
        "events": a.events_frame().rename(columns={"host": "http_host"}),
        "findings": a.findings_frame(),
    }
    for table in TABLES:
        back = pd.read_parquet(tmp_path / f"{table}.parquet")
        assert list(back.columns[:2]) == ["capture", "host"]
        assert set(back["host"]) <= {"web-1"} and set(back["capture"]) <= {a.capture.path}
        pd.testing.assert_frame_equal(back.drop(columns=["capture", "host"]), expect[table])
        pd.testing.assert_frame_equal(back, frames(a, "web-1")[table])


def test_the_json_contract_fields_are_all_there(tmp_path: Path) -> None:
    """Every field of the JSON report's connections, events and findings has a column (the
    nested requests and anomalies excepted: counted instead; times once as a timestamp and,
    for events and findings, once as exact nanoseconds)."""
    import io
    import json

    from pcapkit.report import ReportOptions, reporter

    a = analyze(FIXTURES / "idle-race-get" / "capture.pcap")
    out = io.StringIO()
    reporter("json").render(a, out, ReportOptions())
    doc = json.loads(out.getvalue())
    write([(a, None)], tmp_path)
    cols = {t: set(pd.read_parquet(tmp_path / f"{t}.parquet").columns) for t in TABLES}
    rename = {"from": "side", "request": "request_index", "host": "http_host", "idle": "idle_s"}
    conn_keys = set(doc["connections"][0]) - {"requests", "events", "anomalies"}
    assert conn_keys - cols["connections"] == set()
    event_keys = {rename.get(k, k) for e in doc["connections"][4]["events"] for k in e}
    assert event_keys - cols["events"] == {"time"} - cols["events"]
    finding_keys = {k for f in doc["findings"] for k in f} - {"idle"}
    assert finding_keys - cols["findings"] == set()
    assert "idle_s" in cols["findings"]


def test_default_host_is_the_capture_file_name(tmp_path: Path) -> None:
    a = analyze(FIXTURES / "idle-close" / "capture.pcap")
    write([(a, None)], tmp_path)
    assert set(pd.read_parquet(tmp_path / "connections.parquet")["host"]) == {"capture.pcap"}


def test_duckdb_answers_a_fleet_question_over_two_captures(tmp_path: Path) -> None:
    """Two nginx hosts, each writing its own folder; one query over both, as docs/parquet.md
    shows: requests lost per host and upstream, and whether a client got an error."""
    import duckdb

    lake = tmp_path / "lake"
    for host, name in (("web-1", "idle-race-get"), ("web-2", "idle-race-post")):
        a = analyze(FIXTURES / name / "capture.pcap")
        write([(a, host)], lake / host)
    glob = str(lake / "*")
    rows = duckdb.execute(
        f"""
        SELECT c.host, c.server AS upstream,
               count(*) AS lost,
               count(*) FILTER (WHERE NOT f.retried) AS client_errors
        FROM read_parquet('{glob}/findings.parquet') f
        JOIN read_parquet('{glob}/connections.parquet') c
          ON c.host = f.host AND c.capture = f.capture AND c.id = f.connection
        WHERE f.type = 'request_lost_to_fin'
        GROUP BY ALL ORDER BY c.host
        """
    ).fetchall()
    assert rows == [("web-1", "127.0.0.1:8080", 1, 0), ("web-2", "127.0.0.1:8080", 1, 1)]
    ((timeout,),) = duckdb.execute(
        f"""
        SELECT round(median(idle_s), 1) FROM read_parquet('{glob}/findings.parquet')
        WHERE reason = 'idle_timeout'
        """
    ).fetchall()
    assert timeout == 1.0  # both Tomcats: keepAliveTimeout 1000 ms


def _kaflow(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pcapkit", "analyze", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )


def test_cli_writes_the_tables_with_the_host(tmp_path: Path) -> None:
    r = _kaflow(
        "fixtures/idle-race-get/capture.pcap",
        "-f",
        "parquet",
        "-o",
        str(tmp_path / "o"),
        "--host",
        "web-9",
    )
    assert r.returncode == 1, r.stderr  # findings
    assert r.stdout == "" and r.stderr == ""
    conns = pd.read_parquet(tmp_path / "o" / "connections.parquet")
    assert set(conns["host"]) == {"web-9"} and len(conns) == 6


def test_cli_parquet_several_captures_into_one_set(tmp_path: Path) -> None:
    r = _kaflow(
        "fixtures/idle-race-get/capture.pcap",
        "fixtures/agree/capture.pcap",
        "-f",
        "parquet",
        "-o",
        str(tmp_path),
        "-j",
        "1",
    )
    assert r.returncode == 1, r.stderr
    conns = pd.read_parquet(tmp_path / "connections.parquet")
    assert conns.groupby("capture").size().to_dict() == {
        "fixtures/agree/capture.pcap": 3,
        "fixtures/idle-race-get/capture.pcap": 6,
    }


def test_cli_parquet_needs_a_folder(tmp_path: Path) -> None:
    r = _kaflow("fixtures/agree/capture.pcap", "-f", "parquet")
    assert r.returncode == 2
    assert (
        r.stderr
        == "kaflow: error: --format parquet writes a folder of tables: name it with -o DIR\n"
    )
    f = tmp_path / "file"
    f.write_text("")
    r = _kaflow("fixtures/agree/capture.pcap", "-f", "parquet", "-o", str(f))
    assert r.returncode == 2 and "is a file" in r.stderr and "Traceback" not in r.stderr


def test_cli_parquet_without_pyarrow_names_the_extra(tmp_path: Path) -> None:
    """pyarrow hidden from the import system: one line naming the extra, exit 2."""
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(
        "import importlib.abc, sys\n"
        "class _No(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'pyarrow' or name.startswith('pyarrow.'):\n"
        "            raise ModuleNotFoundError(name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, _No())\n"
    )
    import os

    env = {**os.environ, "PYTHONPATH": str(hide)}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pcapkit",
            "analyze",
            "fixtures/agree/capture.pcap",
            "-f",
            "parquet",
            "-o",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=env,
    )
    assert r.returncode == 2
    assert r.stderr == (
        "kaflow: error: --format parquet needs pyarrow: pip install 'kaflow[parquet]'\n"
    )
    assert not (tmp_path / "o").exists()
    assert importlib.util.find_spec("pyarrow") is not None  # here it is installed


def test_help_imports_neither_pandas_nor_pyarrow() -> None:
    code = (
        "import sys\n"
        "from pcapkit.cli import app\n"
        "try:\n"
        "    app(['analyze', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in ('pandas', 'pyarrow', 'duckdb') if m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip().splitlines()[-1] == "[]"
    assert "parquet" in r.stdout and "--host" in r.stdout

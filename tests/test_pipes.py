"""Captures that arrive through a pipe: a named pipe (mkfifo), ``/dev/stdin``, gzip on either.
Nothing is seeked, so each gives what the file gives."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from pcapkit import analyze
from pcapkit.report.json_report import analysis_dict

FIXTURE = Path(__file__).parent.parent / "fixtures" / "idle-race-get" / "capture.pcap"


def body(doc: dict[str, Any]) -> dict[str, Any]:
    doc = dict(doc)
    doc.pop("generator")
    cap = dict(doc.pop("capture"))
    cap.pop("path")
    cap["format"] = cap["format"].removesuffix(" (gzip)")
    return {**doc, "capture": cap}


@contextmanager
def fifo_fed(tmp_path: Path, data: bytes) -> Iterator[Path]:
    """A named pipe that another process writes ``data`` into once it is opened."""
    fifo = tmp_path / "dump.fifo"
    os.mkfifo(fifo)
    source = tmp_path / "source"
    source.write_bytes(data)
    writer = subprocess.Popen(["sh", "-c", 'cat "$1" > "$2"', "sh", str(source), str(fifo)])
    try:
        yield fifo
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.wait(timeout=10)


@pytest.mark.parametrize("wrap", ["plain", "gzip"])
def test_a_named_pipe_is_read_as_the_file(tmp_path: Path, wrap: str) -> None:
    data = FIXTURE.read_bytes()
    with fifo_fed(tmp_path, gzip.compress(data) if wrap == "gzip" else data) as fifo:
        got = analysis_dict(analyze(fifo))
    assert got["capture"]["path"] == str(fifo)
    assert got["capture"]["format"] == "pcap" + (" (gzip)" if wrap == "gzip" else "")
    assert body(got) == body(analysis_dict(analyze(FIXTURE)))


@pytest.mark.parametrize("wrap", ["plain", "gzip"])
def test_dev_stdin_is_read_as_the_file(wrap: str) -> None:
    data = FIXTURE.read_bytes()
    run = subprocess.run(
        [sys.executable, "-m", "pcapkit", "analyze", "/dev/stdin", "-f", "json"],
        input=gzip.compress(data) if wrap == "gzip" else data,
        capture_output=True,
        check=False,
    )
    assert run.returncode == 1, run.stderr  # the fixture has findings
    got = json.loads(run.stdout)
    assert got["capture"]["path"] == "/dev/stdin"
    assert body(got) == body(analysis_dict(analyze(FIXTURE)))


def test_a_series_whose_last_piece_comes_through_a_pipe(tmp_path: Path) -> None:
    parts = tmp_path / "parts"
    parts.mkdir()
    subprocess.run(["editcap", "-c", "40", str(FIXTURE), str(parts / "p.pcap")], check=True)
    first, last = sorted(parts.iterdir())
    with fifo_fed(tmp_path, last.read_bytes()) as fifo:
        got = analyze([first, fifo])
    assert [f.path for f in got.capture.files] == [str(first), str(fifo)]
    assert body(analysis_dict(got))["findings"] == body(analysis_dict(analyze(FIXTURE)))["findings"]
    assert got.connections == analyze(FIXTURE).connections

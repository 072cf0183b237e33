"""``kaflow analyze --follow``: findings printed as a capture arrives, through a pipe or from a
file still being written, and the same findings as the whole capture gives."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from pcapkit import analyze
from pcapkit.follow import Follow, Tally
from pcapkit.model import Finding
from pcapkit.report.json_report import finding_dict

ROOT = Path(__file__).parent.parent
FIXTURES = sorted(p for p in (ROOT / "fixtures").glob("*/*.pcap*") if p.is_file())
RACE = ROOT / "fixtures" / "idle-race-get" / "capture.pcap"
KAFLOW = [sys.executable, "-m", "pcapkit"]


def same(f: Finding | dict[str, Any]) -> tuple[Any, ...]:
    d = finding_dict(f) if isinstance(f, Finding) else f
    return (d["type"], d["connection"], d["frame"], d["time"], d["message"])


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_followed_through_a_pipe_each_fixture_gives_the_whole_captures_findings(
    path: Path,
) -> None:
    whole = analyze(path).findings
    out = subprocess.run(
        [*KAFLOW, "analyze", "-", "--follow", "-f", "jsonl"],
        input=path.read_bytes(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == (1 if whole else 0), out.stderr
    docs = [json.loads(line) for line in out.stdout.splitlines()]
    found = [d for d in docs if d["schema"] == "kaflow.finding/1"]
    assert sorted(map(same, found)) == sorted(map(same, whole))
    assert [d["schema"] for d in docs[len(found) :]] == ["kaflow.tally/1"]
    tally = docs[-1]
    assert tally["final"] is True
    assert sum(tally["findings"].values()) == len(whole)


class Lines:
    """A process's stdout, read line by line with a deadline."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.proc, self.out, self.got = proc, proc.stdout, b""

    def until(self, want: str, timeout: float = 30.0) -> list[str]:
        """Lines up to and including the first holding ``want``."""
        lines: list[str] = []
        end = time.monotonic() + timeout
        while True:
            while b"\n" in self.got:
                line, self.got = self.got.split(b"\n", 1)
                lines.append(line.decode())
                if want in lines[-1]:
                    return lines
            left = end - time.monotonic()
            ready, _, _ = select.select([self.out], [], [], max(left, 0))
            if not ready:
                raise AssertionError(f"no {want!r} within {timeout} s; got {lines}")
            chunk = os.read(self.out.fileno(), 65536)
            if not chunk:
                raise AssertionError(f"output ended before {want!r}; got {lines}")
            self.got += chunk


def follow(source: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*KAFLOW, "analyze", source, "--follow", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "dump.fifo"
    os.mkfifo(path)
    yield path


def test_a_lost_request_is_printed_while_the_capture_goes_on(fifo: Path) -> None:
    """The race arrives and the pipe stays open: the loss, its retry and the upstream's close
    are printed without waiting for the input to end, in the order they happened."""
    proc = follow(str(fifo))
    writer: IO[bytes]
    with open(fifo, "wb") as writer:
        writer.write(RACE.read_bytes())
        writer.flush()
        lines = Lines(proc).until("retry")
        assert proc.poll() is None  # still following
    # the pipe is closed: the end of the capture, and its summary
    rest, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    kinds = [(line.split()[1], line.split()[2]) for line in lines]
    assert kinds[-3:] == [
        ("#5", "server_initiated_close"),
        ("#5", "request_lost_to_fin"),
        ("#6", "retry"),
    ]
    assert "nginx retried it" in lines[-2] and "on #6 (a new connection)" in lines[-2]
    assert rest.decode().splitlines()[-1].split("  ")[1].startswith("end of capture: 6 conn")


def test_a_connect_given_up_is_printed_while_the_capture_goes_on(fifo: Path) -> None:
    """nginx's SYNs into a full accept queue, never answered: each failed connect is printed
    once the attempt has gone quiet for longer than its next retransmission would take, with
    the pipe still open."""
    overflow = ROOT / "fixtures" / "accept-overflow" / "capture.pcap"
    want = [f for f in analyze(overflow).findings if f.type == "connect_failed"]
    proc = follow(str(fifo), "-f", "jsonl")
    with open(fifo, "wb") as writer:
        writer.write(overflow.read_bytes())
        writer.flush()
        lines = Lines(proc)
        got: list[dict[str, Any]] = []
        while len(got) < len(want):
            doc = json.loads(lines.until('"connect_failed"', timeout=60)[-1])
            got.append(doc)
        assert proc.poll() is None
    proc.communicate(timeout=30)
    assert sorted(map(same, got)) == sorted(map(same, want))


def test_sigterm_prints_the_summary_and_exits_as_for_a_file(fifo: Path) -> None:
    proc = follow(str(fifo), "-f", "jsonl")
    with open(fifo, "wb") as writer:
        writer.write(RACE.read_bytes())
        writer.flush()
        Lines(proc).until("request_lost_to_fin")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    last = json.loads(out.decode().splitlines()[-1])
    assert last["schema"] == "kaflow.tally/1" and last["final"] is True
    assert last["findings"]["request_lost_to_fin"] == 1


def test_a_file_still_being_written_is_followed_like_tail_f(tmp_path: Path) -> None:
    data = RACE.read_bytes()
    dump = tmp_path / "dump.pcap"
    half = _record_boundary(data, len(data) // 2)
    dump.write_bytes(data[:half])
    proc = follow(str(dump), "--every", "0.5")
    lines = Lines(proc)
    first = lines.until("server_initiated_close")
    assert "#1" in first[-1]
    assert "so far" in "\n".join(lines.until("so far"))  # the summary comes every 0.5 s
    with open(dump, "ab") as more:
        more.write(data[half:])
    lines.until("retry")
    assert proc.poll() is None  # a followed file never ends by itself
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    # the retry's connection is still open when the following stops: not counted as finished
    assert "end of capture: 5 connections finished" in out.decode()


def _record_boundary(data: bytes, near: int) -> int:
    """The offset of the first pcap record starting at or after ``near``."""
    at = 24
    while at < near:
        at += 16 + int.from_bytes(data[at + 8 : at + 12], "little")
    return at


def test_the_library_yields_findings_then_a_final_tally(fifo: Path) -> None:
    def feed() -> None:
        with open(fifo, "wb") as w:
            w.write(RACE.read_bytes())

    t = threading.Thread(target=feed)
    t.start()
    updates = list(Follow(fifo, every=3600))
    t.join()
    *found, tally = updates
    assert isinstance(tally, Tally) and tally.final
    assert all(isinstance(f, Finding) for f in found)
    assert sorted(map(same, found)) == sorted(map(same, analyze(RACE).findings))  # type: ignore[arg-type]
    assert tally.found == len(found) and tally.connections == 6 and tally.requests == 8


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["a.pcap", "b.pcap", "--follow"], "--follow reads one capture"),
        (["-", "--follow", "-f", "json"], "--format table or jsonl"),
        (["-", "-f", "jsonl"], "--format jsonl is --follow's"),
        (["-", "--follow", "--connection", "3"], "--follow prints findings only"),
        (["nowhere.pcap", "--follow"], "nowhere.pcap: no such file"),
    ],
)
def test_follow_usage_errors_are_one_line_and_exit_2(args: list[str], says: str) -> None:
    out = subprocess.run(
        [*KAFLOW, "analyze", *args], input=b"", capture_output=True, timeout=60, check=False
    )
    assert out.returncode == 2
    err = out.stderr.decode().strip()
    assert says in err and "\n" not in err, err


def test_follow_of_something_not_a_capture_is_one_line(tmp_path: Path) -> None:
    out = subprocess.run(
        [*KAFLOW, "analyze", "-", "--follow"],
        input=b"GET / HTTP/1.1\r\n" * 10,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 2
    err = out.stderr.decode().strip()
    assert err.startswith("kaflow: error: - is not a pcap") and "\n" not in err, err


def test_retry_pairing_keeps_only_the_last_seconds_requests() -> None:
    """Following for days holds the requests of the last LIVE_KEEP_NS only: fed 200 s of
    capture time at 500 requests a second, what is kept never exceeds ~11 s' worth."""
    from array import array

    from pcapkit.classify import LIVE_KEEP_NS, Live
    from pcapkit.client import Client

    live = Live()
    second = 1_000_000_000
    per_s = 500
    most = 0
    for s in range(200):
        rows = array("q")
        for k in range(per_s):
            cid = s * per_s + k
            rows.extend([k, s * second + k * (second // per_s), cid, 0, cid * 4, -1])
        live.requests(rows.tobytes())
        live.servers([s], ["127.0.0.1:8080"], s * second)
        if s % 2:
            assert live.settle(s * second, Client(), "unknown") == []
        else:
            live.forget(s * second)  # what following does while no loss waits
        most = max(most, live.kept())
    assert most <= (LIVE_KEEP_NS // second + 1) * per_s + per_s
    assert len(live._servers) <= LIVE_KEEP_NS // second + 2


def test_a_stream_cut_mid_record_is_warned_about_as_a_file_is() -> None:
    cut = RACE.read_bytes()[:5000]
    out = subprocess.run(
        [*KAFLOW, "analyze", "-", "--follow"], input=cut, capture_output=True, timeout=60
    )
    assert out.returncode == 1
    assert "kaflow: warning: the capture ends mid-record at byte 4,938" in out.stderr.decode()
    assert "end of capture: 5 connections" in out.stdout.decode().splitlines()[-1]

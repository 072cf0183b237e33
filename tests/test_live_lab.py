"""End to end on live software: real nginx and Tomcat, captured by real tcpdump, then kaflow.

Runs the lab's deterministic ``idle-close`` scenario (Tomcat closes each idle connection after
1 s, so every close is the upstream's) and holds kaflow's answer to nginx's and Tomcat's logs and
tshark's reading of the same capture. It needs what ``fixtures/lab/setup.sh`` installs and the
right to capture on loopback; without them it fails and says so, rather than skipping.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pcapkit import analyze
from pcapkit.report.json_report import finding_dict
from tests.truthcheck import mismatches

LAB = Path(__file__).parent.parent / "fixtures" / "lab" / "lab.py"


def _need_the_lab() -> None:
    missing = [t for t in ("nginx", "tcpdump", "tshark", "javac") if shutil.which(t) is None]
    if missing:
        pytest.fail(
            f"the live lab test needs {', '.join(missing)}: run `bash fixtures/lab/setup.sh`"
        )


def test_live_idle_close_scenario_agrees_with_nginx_logs(tmp_path: Path) -> None:
    _need_the_lab()
    out = tmp_path / "idle-close"
    proc = subprocess.run(
        [sys.executable, str(LAB), "run", "idle-close", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, (
        "the lab could not run nginx + Tomcat + tcpdump here (capturing on loopback needs root "
        f"or CAP_NET_RAW; port 8080/8081 must be free):\n{proc.stdout[-1500:]}{proc.stderr[-1500:]}"
    )
    truth = json.loads((out / "truth.json").read_text())
    result = analyze(out / "capture.pcap", port=truth["port"])
    assert mismatches(result, truth) == []
    # the scenario's point: Tomcat's 1 s idle timeout closes every connection first
    assert truth["first_close_by"]["server"] >= 1
    assert result.summary.closed_by_server == truth["first_close_by"]["server"]
    idle = [f.idle_ns for f in result.findings if f.reason == "idle_timeout"]
    assert idle and all(i is not None and 1.0e9 <= i < 3.0e9 for i in idle)
    cli = subprocess.run(
        [sys.executable, "-m", "pcapkit", "analyze", str(out / "capture.pcap"), "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert cli.returncode == 1 and "server_initiated_close" in cli.stdout


def test_live_race_followed_through_a_real_tcpdump_pipe(tmp_path: Path) -> None:
    """`tcpdump -U -w - | kaflow analyze - --follow -f jsonl` next to a real race: the pipe gives
    what the file captured at the same time gives, and the loss is printed while the capture
    goes on, after the upstream's close and before its retry. How soon is measured by
    ``benchmarks/follow.py latency``, not here."""
    _need_the_lab()
    out = tmp_path / "idle-race-get"
    proc = subprocess.run(
        [sys.executable, str(LAB), "run", "idle-race-get", "--follow", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, (
        f"the lab could not run the race here:\n{proc.stdout[-1500:]}{proc.stderr[-1500:]}"
    )
    truth = json.loads((out / "truth.json").read_text())
    whole = analyze(out / "capture.pcap", port=truth["port"])
    stamped = [json.loads(line) for line in (out / "follow.jsonl").read_text().splitlines()]
    docs = [json.loads(s["line"]) for s in stamped]
    found = [d for d in docs if d["schema"] == "kaflow.finding/1"]

    # two tcpdumps stamp the same packets a few microseconds apart: the timings in the messages
    # may differ, not what was found
    def key(d: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(d.get(k) for k in ("type", "connection", "request", "reason", "retried_on"))

    assert sorted(map(key, found), key=repr) == sorted(
        map(key, (finding_dict(f) for f in whole.findings)), key=repr
    )
    assert docs[-1]["schema"] == "kaflow.tally/1" and docs[-1]["final"] is True
    # the losses nginx logged, each printed before the capture ended, in the order it happened
    losses = [d for d in found if d["type"] == "request_lost_to_fin"]
    assert len(losses) == truth["prematurely_closed"] >= 1
    ended = stamped[-1]["arrived"]
    for loss in losses:
        at = found.index(loss)
        close = next(
            i
            for i, d in enumerate(found)
            if d["type"] == "server_initiated_close" and d["connection"] == loss["connection"]
        )
        assert close < at
        if loss["retried"]:
            retry = next(
                i
                for i, d in enumerate(found)
                if d["type"] == "retry" and d["retry_of"] == loss["connection"]
            )
            assert at < retry
        assert stamped[docs.index(loss)]["arrived"] < ended

"""Golden tests on real captures: kaflow against nginx's and Tomcat's own logs for the same run.

Each ``fixtures/<scenario>/`` holds a capture made by ``fixtures/lab/lab.py`` with real nginx,
Tomcat and tcpdump, and a ``truth.json`` derived from their logs (and tshark for who sent the
first FIN). See ``docs/fixtures.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pcapkit import analyze
from pcapkit.report import ReportOptions, reporter
from tests.truthcheck import mismatches

FIXTURES = Path(__file__).parent.parent / "fixtures"
SCENARIOS = sorted(p.parent.name for p in FIXTURES.glob("*/truth.json"))
GOLD = Path(__file__).parent / "gold"


def truth(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name / "truth.json").read_text())
    return data


def test_every_scenario_the_lab_promises_is_here() -> None:
    assert set(SCENARIOS) >= {
        "agree",
        "idle-close",
        "idle-race-get",
        "idle-race-post",
        "max-requests",
        "accept-overflow",
        "formats",
        "ipv6",
    }


@pytest.mark.parametrize("name", SCENARIOS)
def test_analysis_agrees_with_nginx_logs(name: str) -> None:
    a = analyze(FIXTURES / name / "capture.pcap", port=truth(name)["port"])
    assert mismatches(a, truth(name)) == []


def test_race_get_lost_request_pinned_to_fin_and_retry_to_its_connection() -> None:
    a = analyze(FIXTURES / "idle-race-get" / "capture.pcap")
    (lost,) = [f for f in a.findings if f.type == "request_lost_to_fin"]
    (retry,) = [f for f in a.findings if f.type == "retry"]
    conn = a.connection(lost.connection)
    fin = next(e for e in conn.events if e.type == "fin" and e.side == "server")
    assert lost.frame == fin.frame and conn.closed_by == "server"
    assert retry.retry_of == lost.connection and lost.retried_on == retry.connection
    # nginx's access log lists two upstream attempts for this request: "502, 200"
    assert lost.request in truth("idle-race-get")["retried_requests"]


def test_race_post_is_not_retried() -> None:
    a = analyze(FIXTURES / "idle-race-post" / "capture.pcap")
    (lost,) = [f for f in a.findings if f.type == "request_lost_to_fin"]
    assert lost.request is not None and lost.request.startswith("POST ")
    assert lost.retried is False and not [f for f in a.findings if f.type == "retry"]
    assert truth("idle-race-post")["client_status"].get("502") == 1


def test_agreeing_settings_every_connection_closed_by_nginx() -> None:
    a = analyze(FIXTURES / "agree" / "capture.pcap")
    assert a.connections and all(c.closed_by == "client" for c in a.connections)
    assert a.findings == ()


def test_idle_closes_show_the_upstream_timeout() -> None:
    a = analyze(FIXTURES / "idle-close" / "capture.pcap")
    idle = [f.idle_ns for f in a.findings if f.reason == "idle_timeout"]
    timeout_ms = truth("idle-close")["upstream"]["keepAliveTimeout"]
    assert idle and all(i is not None and timeout_ms * 1e6 <= i < timeout_ms * 3e6 for i in idle)


def test_max_requests_connection_close() -> None:
    a = analyze(FIXTURES / "max-requests" / "capture.pcap")
    limit = truth("max-requests")["upstream"]["maxKeepAliveRequests"]
    closing = [c for c in a.connections if any(r.connection_close for r in c.requests)]
    assert closing
    for c in closing:
        assert [r.connection_close for r in c.requests] == [False] * (limit - 1) + [True]


FORMATS = ["ethernet.pcap", "any.pcap", "sll1.pcap", "nano.pcap", "capture.pcapng", "snap64.pcap"]


@pytest.mark.parametrize("capture", FORMATS)
def test_same_traffic_in_every_format_gives_the_same_answer(capture: str) -> None:
    t = truth("formats")
    assert capture in t["captures"]
    a = analyze(FIXTURES / "formats" / capture)
    base = analyze(FIXTURES / "formats" / "ethernet.pcap")
    assert a.capture.link_types == (t["captures"][capture]["link_type"],)
    assert [(c.client, c.server, c.closed_by, c.close, c.state) for c in a.connections] == [
        (c.client, c.server, c.closed_by, c.close, c.state) for c in base.connections
    ]
    assert [(f.type, f.connection, f.reason) for f in a.findings] == [
        (f.type, f.connection, f.reason) for f in base.findings
    ]
    assert mismatches(a, t, payload=capture != "snap64.pcap") == []


def test_nanosecond_capture_keeps_nanoseconds() -> None:
    a = analyze(FIXTURES / "formats" / "nano.pcap")
    assert any(e.time_ns % 1000 for c in a.connections for e in c.events)


@pytest.mark.parametrize("name", ["idle-race-get", "accept-overflow"])
def test_table_report_matches_gold(name: str) -> None:
    """The terminal report, byte for byte; on a change, the new output is written beside the gold
    file (``*.failed.txt``) to diff and, if right, copy over it."""
    import io

    a = analyze(FIXTURES / name / "capture.pcap")
    buf = io.StringIO()
    reporter("table").render(a, buf, ReportOptions(connections="all"))
    text = buf.getvalue().replace(str(FIXTURES / name), f"fixtures/{name}")
    gold = GOLD / f"{name}.txt"
    if not gold.exists() or gold.read_text() != text:
        gold.with_suffix(".failed.txt").write_text(text)
    assert gold.exists(), f"no gold file yet: review {gold.with_suffix('.failed.txt')}"
    assert gold.read_text() == text

"""The severity-first view: findings ranked by what they cost, idle closes summed up."""

from __future__ import annotations

import io
import json
from pathlib import Path

from pcapkit import analyze
from pcapkit.model import CloseReason, Finding
from pcapkit.report import ReportOptions, reporter
from pcapkit.report.severity import TIERS, bin_width, histogram, rank, tier

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
S = 1_000_000_000


def _close(
    conn: int, t: int, reason: CloseReason = "idle_timeout", idle: int | None = S
) -> Finding:
    return Finding(
        "server_initiated_close",
        conn,
        t,
        t,
        "close",
        reason=reason,
        idle_ns=idle,
    )


def _lost(conn: int, t: int, retried: bool | None, on: int | None = None) -> Finding:
    return Finding(
        "request_lost_to_fin", conn, t, t, "lost", request="GET /x", retried=retried, retried_on=on
    )


def _retry(conn: int, t: int, of: int) -> Finding:
    return Finding("retry", conn, t, t, "retry", request="GET /x", retry_of=of)


def test_worst_first_and_each_retry_beside_its_loss() -> None:
    fs = [
        _close(1, 10),
        _close(2, 20, "request_in_flight"),
        _lost(2, 20, True, on=3),
        _retry(3, 21, of=2),
        _close(4, 30, "connection_close"),
        Finding("connect_failed", 5, 40, 40, "failed"),
        _close(6, 50, "request_in_flight"),
        _lost(6, 50, False),
        _close(7, 60, "reset"),
        _lost(8, 70, None),
        _close(8, 70, "request_in_flight"),
    ]
    r = rank(fs)
    assert [(f.type, f.connection) for f in r.ranked] == [
        ("request_lost_to_fin", 6),
        ("request_lost_to_fin", 8),
        ("request_lost_to_fin", 2),
        ("retry", 3),
        ("connect_failed", 5),
        ("server_initiated_close", 2),
        ("server_initiated_close", 6),
        ("server_initiated_close", 8),
        ("server_initiated_close", 4),
        ("server_initiated_close", 7),
    ]
    assert dict(r.counts) == {
        "lost_not_retried": 1,
        "lost_retry_unknown": 1,
        "lost_retried": 1,  # the retry is not counted again
        "connect_failed": 1,
        "close_in_flight": 3,
        "close_after_connection_close": 1,
        "close_reset": 1,
        "idle_close": 1,
    }
    # connections: by their worst finding; one that only carried a retry comes last
    assert r.worst == (6, 8, 2, 5, 4, 7, 1, 3)
    assert [t for t, _ in r.counts] == list(TIERS)
    assert tier(fs[3]) == "lost_retried"


def test_idle_closes_are_one_distribution_with_the_timeout_dominant() -> None:
    idle = [S + 2_000_000 + i * 10_000 for i in range(40)] + [5 * S, 12 * S // 10]
    fs = [_close(i, i * S, idle=x) for i, x in enumerate(idle, start=1)]
    fs.append(_close(99, 0, idle=None))
    r = rank(fs)
    assert r.ranked == () and r.idle.count == 43 and r.idle.unknown_idle == 1
    assert r.idle.connections == 43
    assert r.idle.first_ns == 0 and r.idle.last_ns == 42 * S
    assert r.idle.min_ns == S + 2_000_000 and r.idle.max_ns == 5 * S
    assert r.idle.dominant_ns is not None and abs(r.idle.dominant_ns - 1.0022 * S) < 1e6
    assert r.idle.dominant_share == 40 / 42
    assert sum(n for _, n in r.idle.bins) == 42
    lo = r.idle.bins[0][0]
    assert all(b[0] == lo + i * r.idle.bin_ns for i, b in enumerate(r.idle.bins))


def test_round_bins() -> None:
    assert bin_width(0, 40_000_000) == 1_000_000
    assert bin_width(0, 60 * S) == 2 * S
    assert bin_width(S, S) == 1_000_000
    assert histogram([]) == (0, ())
    assert histogram([3, 7, 25], 10) == (10, ((0, 2), (10, 0), (20, 1)))


def test_default_table_puts_the_502s_first(tmp_path: Path) -> None:
    from tests.test_benchmark_gen import SEED, gen

    path = tmp_path / "busy.pcap"
    gen.generate(path, 20_000, seed=SEED, concurrency=40, ports=(40000, 40099))
    a = analyze(path)
    out = io.StringIO()
    reporter("table").render(a, out, ReportOptions(limit=3))
    text = out.getvalue()
    findings = text[text.index("Findings, worst first") : text.index("Idle closes by the upstream")]
    rows = [ln for ln in findings.splitlines() if ln[:2].isdigit()]
    not_retried = [f for f in a.findings if f.type == "request_lost_to_fin" and not f.retried]
    assert not_retried, "the generated capture has a lost POST"
    assert all("request_lost_to_fin" in r for r in rows[: len(not_retried)])
    # idle closes are summed up, never listed one per line
    assert "idle timeout," not in findings
    assert f"{sum(1 for f in a.findings if f.reason == 'idle_timeout'):,} closes" in text
    first_timeline = int(text[text.index("\nConnection #") :].split()[1].lstrip("#"))
    assert first_timeline == min(f.connection for f in not_retried)


def test_json_summary_has_the_ranking() -> None:
    a = analyze(FIXTURES / "idle-race-get" / "capture.pcap")
    out = io.StringIO()
    reporter("json").render(a, out, ReportOptions())
    doc = json.loads(out.getvalue())
    s = doc["summary"]
    assert [x["tier"] for x in s["severity"]] == list(TIERS)
    assert {x["tier"]: x["count"] for x in s["severity"]}["idle_close"] == 5
    assert s["idle_closes"]["count"] == 5
    assert 1.0 <= s["idle_closes"]["idle"]["dominant"] < 1.01
    assert s["worst_connections"][0] == 5  # the one that lost GET /test/0/7
    assert {f["severity"] for f in doc["findings"]} == {
        "idle_close",
        "close_in_flight",
        "lost_retried",
    }

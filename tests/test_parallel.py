"""One capture shared out to several processes must give exactly the one-process analysis."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from pcapkit import analyze, cli
from pcapkit.capture import open_capture
from pcapkit.errors import NotACaptureError, NoUpstreamTrafficError
from pcapkit.parallel import share_of
from pcapkit.report import ReportOptions, reporter
from pcapkit.report.table import FirstFlagged
from pcapkit.store import FindingSpool
from tests.test_streaming import busy  # noqa: F401 - the generated capture fixture

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CAPTURES = sorted(p for p in FIXTURES.glob("*/*") if p.suffix in (".pcap", ".pcapng"))


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_fixtures_split_in_two_equal_one_process(path: Path) -> None:
    one, two = analyze(path), analyze(path, jobs=2)
    assert two.connections == one.connections
    assert (two.findings, two.summary, two.advice, two.capture) == (
        one.findings,
        one.summary,
        one.advice,
        one.capture,
    )


@pytest.mark.parametrize("jobs", [2, 3])
def test_busy_capture_split_equals_one_process(busy: Path, jobs: int) -> None:  # noqa: F811
    one = analyze(busy)
    many = analyze(busy, jobs=jobs)
    assert many.connections == one.connections
    assert many.findings == one.findings and many.summary == one.summary
    assert many.advice == one.advice and many.capture == one.capture
    # retries really crossed processes: some loss and its retry were in different shares
    share: dict[int, int] = {}
    with open_capture(busy) as cap:
        for b in cap:
            share.update(zip(b.frame.tolist(), share_of(b, jobs).tolist(), strict=True))
    part = {c.id: share[c.first_frame] for c in one.connections}
    assert any(
        f.type == "retry" and part[f.connection] != part[f.retry_of or 0] for f in one.findings
    )


def test_default_table_split_and_spooled_equals_one_process(busy: Path) -> None:  # noqa: F811
    def table(a: object) -> str:
        out = io.StringIO()
        reporter("table").render(a, out, ReportOptions(limit=5))  # type: ignore[arg-type]
        return out.getvalue()

    want = table(analyze(busy))
    assert table(analyze(busy, keep=FirstFlagged(5), spool=True, jobs=2)) == want


def test_split_and_spooled_findings_equal_one_process(busy: Path) -> None:  # noqa: F811
    one = analyze(busy)
    two = analyze(busy, spool=True, jobs=2)
    assert isinstance(two.findings, FindingSpool) and two.findings == one.findings
    assert two.summary == one.summary and two.advice == one.advice


def test_share_is_the_same_both_ways() -> None:
    path = FIXTURES / "agree" / "capture.pcap"
    with open_capture(path) as cap:
        b = next(iter(cap))
    swapped = type(b)(
        **{
            **{f: getattr(b, f) for f in b.__dataclass_fields__},
            "src_hi": b.dst_hi,
            "dst_hi": b.src_hi,
            "src_lo": b.dst_lo,
            "dst_lo": b.src_lo,
            "sport": b.dport,
            "dport": b.sport,
        }
    )
    for n in (2, 3, 7):
        assert np.array_equal(share_of(b, n), share_of(swapped, n))


def test_errors_cross_from_the_workers(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"not a capture at all" * 100)
    with pytest.raises(NotACaptureError):
        analyze(junk, jobs=2)
    with pytest.raises(NoUpstreamTrafficError, match="no traffic on port 9999"):
        analyze(FIXTURES / "agree" / "capture.pcap", port=9999, jobs=2)
    with pytest.raises(Exception, match="missing"):
        analyze(tmp_path / "missing.pcap", jobs=2)


def test_cli_splits_big_captures(busy: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    runner = CliRunner()
    one = runner.invoke(cli.app, ["analyze", str(busy), "-j", "1", "-f", "json"])
    calls: list[int] = []
    real = cli._split

    def spy(dump: Path, jobs: int | None) -> int:
        calls.append(real(dump, jobs))
        return calls[-1]

    monkeypatch.setattr(cli, "SPLIT_FROM", 0)
    monkeypatch.setattr(cli, "_split", spy)
    two = runner.invoke(cli.app, ["analyze", str(busy), "-j", "2", "-f", "json"])
    assert calls == [2]
    assert two.exit_code == one.exit_code == 1
    assert two.stdout == one.stdout


def test_progress_reaches_the_end_when_split(busy: Path) -> None:  # noqa: F811
    seen: list[tuple[int, int]] = []
    analyze(busy, jobs=2, progress=lambda done, size: seen.append((done, size)))
    size = busy.stat().st_size
    assert seen and seen[-1] == (size, size)
    assert all(s == size and 0 <= d <= size for d, s in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)

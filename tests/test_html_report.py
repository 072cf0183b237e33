"""The HTML page: self-contained, bounded in size, its SVG held to a golden skeleton, and
rendered by a real browser (Debian's chromium, headless) without a console error."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pcapkit import Analysis, analyze
from pcapkit.report import ReportOptions
from pcapkit.report import html_report as page
from pcapkit.report.html_report import HtmlReporter, PageKeep, sequence_svg, structure
from pcapkit.report.severity import rank
from tests.test_benchmark_gen import GEN, SEED, gen

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
GOLD = Path(__file__).parent / "gold"
# screenshots are kept here for people (and CI) to look at; build/ is ignored by git
ARTIFACTS = Path(os.environ.get("KAFLOW_ARTIFACTS", ROOT / "build" / "test-artifacts"))
# the benchmarks' 1M capture takes ~20 s to make and is 465 MB: made once, kept here
CACHE = Path(os.environ.get("KAFLOW_TEST_CACHE", ROOT / "build" / "test-cache"))
PAGE_BOUND = 3_000_000  # bytes: "a few MB at most" for a 1M-packet capture (2.03 MB measured)


def _page(a: Analysis, spans: page.Spans | None = None) -> str:
    out = io.StringIO()
    HtmlReporter(spans).render(a, out, ReportOptions())
    return out.getvalue()


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """More connections than the page draws one lane each, with losses and retries."""
    path = tmp_path_factory.mktemp("gen") / "busy.pcap"
    gen.generate(path, 60_000, seed=SEED, concurrency=40, ports=(40000, 40999))
    yield path


@pytest.fixture(scope="module")
def million() -> Path:
    """``benchmarks/gen.py --packets 1000000`` (seed 1), the capture the benchmarks and
    docs/html-report.md measure, with its truth beside it. Made on first use and cached under a
    name that changes with the generator's source, so a changed generator makes a new one."""
    key = hashlib.sha256(GEN.read_bytes()).hexdigest()[:12]
    path = CACHE / f"keepalive-1m-{key}.pcap"
    truth = path.with_name(path.name + ".truth.json")
    if not truth.exists():  # the truth is moved in last: its presence means the pair is whole
        for old in CACHE.glob("keepalive-1m-*"):
            old.unlink()  # a stale generator's capture: 465 MB not to leave behind
        for half in CACHE.glob("tmp-*"):
            shutil.rmtree(half)  # a run stopped while generating
        work = CACHE / f"tmp-{os.getpid()}"
        made = gen.generate(work / path.name, 1_000_000, seed=1)
        assert made["packets"] == 1_000_000
        os.replace(work / path.name, path)
        os.replace(work / truth.name, truth)
        work.rmdir()
    return path


def test_svg_structure_matches_gold() -> None:
    """The skeleton of every picture (elements, classes, which connection), not the pixels;
    on a change the new one is written beside the gold file (``*.failed.txt``) to review."""
    text = "\n".join(structure(_page(analyze(FIXTURES / "idle-race-get" / "capture.pcap"))))
    gold = GOLD / "idle-race-get.svg.txt"
    if not gold.exists() or gold.read_text() != text + "\n":
        gold.with_suffix(".failed.txt").write_text(text + "\n")
    assert gold.exists(), f"no gold file yet: review {gold.with_suffix('.failed.txt')}"
    assert gold.read_text() == text + "\n"


def test_page_is_self_contained_and_readable_without_script() -> None:
    a = analyze(FIXTURES / "idle-race-get" / "capture.pcap")
    html = _page(a)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", html)
    assert "<link" not in html and "@import" not in html and "url(http" not in html
    static = re.sub(r"<script>.*?</script>", "", html, flags=re.S)
    # findings, their ranking and the diagnosis are in the HTML itself, not drawn by the script
    assert static.count('<tr class="finding') == len(rank(a.findings).ranked) == 3
    assert "lost and retried: a client waited" in static
    assert "upstream idle timeout ≈ 1.002 s" in static
    assert all(x.topic in static for x in a.advice)
    assert static.count('class="lane ') == a.summary.connections
    assert static.count('class="retry-arrow"') == 1


def test_the_crossing_is_drawn_crossing() -> None:
    """On #5 nginx wrote GET /test/0/7 0.138 ms after the upstream's FIN reached it: the FIN's
    arrow must reach nginx below where the request's leaves, and leave the upstream above
    where the request arrives."""
    a = analyze(FIXTURES / "idle-race-get" / "capture.pcap")
    svg = sequence_svg(a.connection(5), a.findings_for(5))

    def line(cls: str) -> tuple[float, float, float, float]:
        m = re.search(
            rf'<line class="[^"]*{cls}[^"]*"[^>]*x1="([\d.]+)" y1="([\d.]+)" '
            rf'x2="([\d.]+)" y2="([\d.]+)"',
            svg,
        )
        assert m is not None, cls
        x1, y1, x2, y2 = map(float, m.groups())
        return x1, y1, x2, y2

    fin = line("fin-server")
    req = line("lost")
    assert fin[2] == req[0]  # both have their nginx end on nginx's lifeline
    assert fin[3] > req[1] and fin[1] < req[3]  # so the two segments cross
    assert "✗ lost, retried on #6" in svg


def test_many_connections_are_banded_and_the_page_stays_small(
    busy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(page, "MAX_LANES", 50)
    monkeypatch.setattr(page, "MAX_DIAGRAMS", 10)
    keep = PageKeep()
    kept = analyze(busy, keep=keep, spool=True)
    full = analyze(busy, spool=True)
    assert full.summary.connections > 50
    html = _page(kept, keep.spans)
    assert html == _page(full)  # the same page from the few connections kept
    assert len(kept.connections) < full.summary.connections  # it did not build them all
    assert html.count('class="lane by-') + html.count('class="lane open') == 50  # the worst
    # every loss drawn has its retry's lane right below it, and an arrow to it
    drawn_losses = [
        f
        for f in full.findings
        if f.type == "request_lost_to_fin" and f.retried and f'data-conn="{f.connection}"' in html
    ]
    assert drawn_losses
    for f in drawn_losses:
        assert f'data-from="{f.connection}" data-to="{f.retried_on}"' in html
    servers = {c.server for c in full.connections}
    assert html.count('class="bundle"') == len(servers)
    assert html.count('<article id="c') == 10
    assert f"This capture has {full.summary.connections:,} connections" in html
    worst = rank(full.findings).worst
    assert f'data-conn="{worst[0]}"' in html


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:  # as the live lab test: fail and say so, rather than skip
        pytest.fail("chromium is missing: bash fixtures/lab/setup.sh installs it")
    return exe


def _browse(html: Path, shot: Path) -> tuple[str, str]:
    """The DOM after the page's script ran, and the browser's log; a screenshot to ``shot``."""
    exe = _chromium()
    common = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=3000",
        "--window-size=1280,2400",
    ]
    url = html.resolve().as_uri()
    dom = subprocess.run(
        [*common, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True
    )
    shot.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [*common, f"--screenshot={shot}", url], capture_output=True, timeout=120, check=True
    )
    assert shot.stat().st_size > 10_000
    return dom.stdout, dom.stderr


def _console_errors(log: str) -> list[str]:
    return [ln for ln in log.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]


@pytest.mark.parametrize("name", ["idle-race-get", "accept-overflow"])
def test_browser_renders_a_fixture_report(name: str, tmp_path: Path) -> None:
    a = analyze(FIXTURES / name / "capture.pcap")
    report = tmp_path / f"{name}.html"
    report.write_text(_page(a), encoding="utf-8")
    dom, log = _browse(report, ARTIFACTS / f"report-{name}.png")
    assert _console_errors(log) == []
    assert 'data-ready="1"' in dom  # the script ran to its end
    assert f'data-findings="{len(a.findings)}"' in dom
    assert dom.count('class="lane ') == a.summary.connections
    retries = sum(1 for f in a.findings if f.type == "retry")
    assert dom.count('class="retry-arrow"') == retries
    assert dom.count('<tr class="finding') == len(rank(a.findings).ranked)
    # the axis labels were redrawn by the script (nine of them), and zoom buttons shown
    assert re.search(r'<p id="ov-controls">', dom)
    assert len(re.findall(r'<span style="left:[\d.]+%">', dom)) == 9


def test_browser_renders_a_busy_capture_report(busy: Path, tmp_path: Path) -> None:
    keep = PageKeep()
    a = analyze(busy, keep=keep, spool=True)
    report = tmp_path / "busy.html"
    report.write_text(_page(a, keep.spans), encoding="utf-8")
    dom, log = _browse(report, ARTIFACTS / "report-busy.png")
    assert _console_errors(log) == []
    assert 'data-ready="1"' in dom
    assert a.summary.connections > page.MAX_LANES  # so: bands, and a lane per flagged one
    assert dom.count('class="lane by-') + dom.count('class="lane open') == len(
        rank(a.findings).worst
    )
    retried = sum(1 for f in a.findings if f.type == "request_lost_to_fin" and f.retried)
    assert dom.count('class="retry-arrow"') == retried
    assert dom.count('class="bundle"') == len(keep.spans.servers) == 4  # the generator's upstreams
    assert dom.count('class="retry-arrow"') >= 1


def test_browser_renders_the_1m_capture_report(million: Path, tmp_path: Path) -> None:
    """The benchmarks' 1M-packet capture (10,862 connections), as ``kaflow analyze -f html``
    makes its page: bounded in size, rendered without a console error, and what the DOM holds
    counted back against the generator's truth, not against the page's own numbers."""
    truth = json.loads(million.with_name(million.name + ".truth.json").read_text())
    keep = PageKeep()
    a = analyze(million, keep=keep, spool=True)
    report = tmp_path / "1m.html"
    report.write_text(_page(a, keep.spans), encoding="utf-8")
    assert report.stat().st_size < PAGE_BOUND
    dom, log = _browse(report, ARTIFACTS / "report-1m.png")
    assert _console_errors(log) == []
    assert 'data-ready="1"' in dom
    assert f'data-connections="{truth["connections"]}"' in dom
    assert f"This capture has {truth['connections']:,} connections" in dom
    # every loss nginx retried is drawn with its arrow to the retry, none more
    assert dom.count('class="retry-arrow"') == len(truth["retries"]) > 0
    assert dom.count('class="bundle"') == 4  # the generator's four upstreams
    ranked = rank(a.findings)
    lanes = dom.count('class="lane by-') + dom.count('class="lane open')
    assert lanes == page.MAX_LANES < len(ranked.worst)
    # a retry whose connection is not among the worst drawn gets a stub lane under its loss
    drawn = set(ranked.worst[: page.MAX_LANES])
    stubs = {
        f.retried_on
        for f in a.findings
        if f.type == "request_lost_to_fin"
        and f.retried_on is not None
        and f.connection in drawn
        and f.retried_on not in drawn
    }
    assert dom.count('class="lane stub') == len(stubs) > 0
    assert dom.count('<article id="c') == page.MAX_DIAGRAMS
    assert dom.count('<tr class="finding') == page.MAX_ROWS < len(ranked.ranked)
    assert f'data-findings="{len(a.findings)}"' in dom
    lost = sum(1 for f in a.findings if f.type == "request_lost_to_fin")
    assert lost == len(truth["lost_requests"])
    assert len(re.findall(r'<span style="left:[\d.]+%">', dom)) == 9  # the script drew the axis


def test_the_browser_check_sees_a_script_error(tmp_path: Path) -> None:
    """The console check above can fail: a page whose script throws is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>nosuch();</script></body></html>")
    _, log = _browse_dom_only(bad)
    assert any("nosuch is not defined" in ln for ln in _console_errors(log))


def _browse_dom_only(html: Path) -> tuple[str, str]:
    exe = _chromium()
    run = subprocess.run(
        [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=3000",
            "--dump-dom",
            html.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return run.stdout, run.stderr


def test_cli_writes_the_page(tmp_path: Path) -> None:
    import sys

    out = tmp_path / "report.html"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pcapkit",
            "analyze",
            "fixtures/idle-race-get/capture.pcap",
            "-f",
            "html",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert run.returncode == 1 and run.stderr == ""  # findings
    a = analyze(FIXTURES / "idle-race-get" / "capture.pcap")
    assert out.read_text(encoding="utf-8") == _page(a).replace(
        str(FIXTURES / "idle-race-get"), "fixtures/idle-race-get"
    )
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "pcapkit",
            "analyze",
            "fixtures/agree/capture.pcap",
            "fixtures/idle-close/capture.pcap",
            "-f",
            "html",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert two.returncode == 2
    assert two.stderr == "kaflow: error: --format html shows one capture: give one capture\n"


def test_nginx_keepalive_timeout_read_off_its_own_closes() -> None:
    """In agree nginx's keepalive_timeout is 2 s and it closes all three connections itself."""
    html = _page(analyze(FIXTURES / "agree" / "capture.pcap"))
    m = re.search(r"nginx closed 3 idle connections itself after about (2\.00\d) s", html)
    assert m is not None
    assert page.nginx_keepalive([1, 2]) is None  # too few to tell
    spread = [i * 1_000_000_000 for i in range(1, 11)]
    assert page.nginx_keepalive(spread) is None  # no one value: not a timer


def test_browser_opens_a_shared_zoomed_view(tmp_path: Path) -> None:
    """``#view=FROM,TO`` (seconds since the capture began) zooms the overview: the script sets
    the SVG's viewBox and redraws the time axis, to the microsecond when zoomed in (ticks
    125 µs apart: milliseconds would not tell them apart)."""
    a = analyze(FIXTURES / "idle-race-get" / "capture.pcap")
    report = tmp_path / "zoom.html"
    report.write_text(_page(a), encoding="utf-8")
    exe = _chromium()
    run = subprocess.run(
        [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=3000",
            "--dump-dom",
            report.resolve().as_uri() + "#view=1,1.001",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert _console_errors(run.stderr) == []
    dom = run.stdout
    assert 'data-view="1.000000,1.001000"' in dom
    span_s = (a.capture.last_ts_ns or 0) - (a.capture.first_ts_ns or 0)
    m = re.search(r'<svg id="ov" viewBox="([\d.e-]+) 0 ([\d.e-]+) ', dom)
    assert m is not None
    x, w = map(float, m.groups())
    assert x == pytest.approx(1000 * 1e9 / span_s, rel=1e-5)  # SVG keeps single precision
    assert w == pytest.approx(1000 * 0.001e9 / span_s, rel=1e-5)  # SVG keeps single precision
    labels = re.findall(r'<span style="left:[\d.]+%">([^<]+)</span>', dom)
    assert labels[0] == "23:29:59.813065" and labels[-1] == "23:29:59.814065"
    assert labels[1] == "23:29:59.813190"

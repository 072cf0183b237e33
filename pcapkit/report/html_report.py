"""The HTML report: one self-contained page to look at instead of read.

Everything is inline (CSS, SVG, a little JavaScript), nothing is fetched, so the file can be
mailed, attached to a ticket and opened from ``file://``. The summary, the ranked findings, the
diagnosis and every picture are plain HTML and SVG written here; the script only adds zoom and
pan to the overview, so the page reads the same without it.

The pictures:

- the overview: every connection as a lane on one time axis, its SYN, requests, responses and
  FIN/RST marked, coloured by who closed it, each lost request joined to its retry by an arrow.
  Past :data:`MAX_LANES` connections a lane each would be unreadable and heavy, so the page
  draws every connection as density bands (open connections and the upstream's closes per time
  slice, one band per upstream) and a lane each only for the :data:`MAX_LANES` worst;
- a sequence diagram per flagged connection (the :data:`MAX_DIAGRAMS` worst), nginx and the
  upstream as two lifelines, where a request that crossed the upstream's FIN is drawn crossing;
- the idle-time histogram, with the upstream's idle timeout read off it and nginx's
  keepalive_timeout when nginx's own idle closes show it.

Size is bounded whatever the capture: lanes, diagrams, findings rows and marks per lane all have
a cap (the page says what it left out), so a capture of 10^5 connections gives a page of a few MB.
"""

from __future__ import annotations

import html
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import TextIO

from pcapkit import __version__
from pcapkit.model import Analysis, Connection, ConnectionRef, Event, Finding
from pcapkit.report import ReportOptions, pinned
from pcapkit.report.severity import (
    TITLES,
    IdleCloses,
    Ranking,
    bin_width,
    histogram,
    rank,
    tier,
)
from pcapkit.report.table import (
    WorstFirst,
    clock,
    duration,
    header,
    host_line,
    label,
    stamp,
)


def _asset(name: str) -> str:
    """The page's stylesheet or script, kept beside this module as plain files."""
    return (resources.files("pcapkit.report") / name).read_text(encoding="utf-8")


MAX_LANES = 400  # connections drawn one lane each
MAX_DIAGRAMS = 40  # sequence diagrams
MAX_ROWS = 500  # findings listed
MAX_MARKS = 60  # request/response marks on one lane (more: the lane shows its busy span)
SEQ_HEAD, SEQ_TAIL = 6, 34  # events of a long connection kept in its diagram
BINS = 600  # time slices of the density bands
WIDTH = 1000.0  # user units of the overview's time axis
LANE = 12.0  # height of a lane


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _f(x: float) -> str:
    """A coordinate: short, but fine enough for a 10^6-fold zoom."""
    return f"{x:.4f}".rstrip("0").rstrip(".") or "0"


@dataclass(slots=True)
class _Lane:
    conn: int
    server: str
    opened: int
    closed: int
    closed_by: str | None
    close: str | None
    title: str
    marks: list[tuple[str, int]] = field(default_factory=list)  # (kind, time)
    busy: tuple[int, int] | None = None  # first and last request, when the marks are capped
    stub: bool = False  # only a retry, drawn from its finding: the connection is not drawn


@dataclass(slots=True)
class _Bands:
    """Every connection as counts per time slice and upstream."""

    t0: int
    span: int
    open: dict[str, list[int]] = field(default_factory=dict)
    upstream_closes: dict[str, list[int]] = field(default_factory=dict)

    def slot(self, t: int) -> int:
        return min(BINS - 1, max(0, (t - self.t0) * BINS // self.span))


class Spans:
    """Where every connection sits in time, a few numbers each: enough for the density bands
    and nginx's idle closes without building the connections (see :class:`PageKeep`)."""

    def __init__(self) -> None:
        self.servers: dict[str, int] = {}
        self.server = array("i")
        self.opened = array("q")
        self.ended = array("q")
        self.upstream_closed = array("q")  # -1: not closed first by the upstream
        self.nginx_idle: list[int] = []

    def add(
        self,
        server: str,
        opened: int,
        closed_by: str | None,
        close: str | None,
        closed_at: int | None,
        last_seen: int,
        last_response: int | None,
    ) -> None:
        self.server.append(self.servers.setdefault(server, len(self.servers)))
        self.opened.append(opened)
        self.ended.append(closed_at if closed_at is not None else last_seen)
        up = closed_by == "server" and closed_at is not None
        self.upstream_closed.append(closed_at if up and closed_at is not None else -1)
        nginx_closed = closed_by == "client" and close == "fin"
        if nginx_closed and closed_at is not None and last_response is not None:
            self.nginx_idle.append(closed_at - last_response)

    def add_connection(self, c: Connection) -> None:
        self.add(
            c.server,
            c.opened_at_ns,
            c.closed_by,
            c.close,
            c.closed_at_ns,
            c.last_seen_ns,
            c.last_response_ns,
        )

    def __len__(self) -> int:
        return len(self.opened)

    def bands(self, t0: int, span: int) -> _Bands:
        b = _Bands(t0, span)
        names = {i: name for name, i in self.servers.items()}
        for name in self.servers:
            b.open[name] = [0] * (BINS + 1)
            b.upstream_closes[name] = [0] * BINS
        for i in range(len(self.opened)):
            name = names[self.server[i]]
            diff = b.open[name]
            diff[b.slot(self.opened[i])] += 1
            diff[b.slot(self.ended[i]) + 1] -= 1
            if self.upstream_closed[i] >= 0:
                b.upstream_closes[name][b.slot(self.upstream_closed[i])] += 1
        return b


class PageKeep:
    """``analyze(keep=)`` for the page: every connection while there are at most
    :data:`MAX_LANES` (each gets a lane), then only those that may be among the worst
    :data:`MAX_LANES` (:class:`~pcapkit.report.table.WorstFirst`); the span of every one is
    noted in :attr:`spans` for the density bands. The page then builds a few hundred
    connections, not all of them."""

    def __init__(self) -> None:
        self.spans = Spans()
        self._worst = WorstFirst(MAX_LANES)

    def __call__(self, ref: ConnectionRef, flagged: bool) -> bool:
        self.spans.add(
            ref.server,
            ref.opened_at_ns,
            ref.closed_by,
            ref.close,
            ref.closed_at_ns,
            ref.last_seen_ns,
            ref.last_response_ns,
        )
        worst = self._worst(ref, flagged)
        return worst or len(self.spans) <= MAX_LANES


@dataclass(slots=True)
class _Gathered:
    """What one pass over the connections (they may be on disk) leaves for the page."""

    lanes: list[_Lane]
    bands: _Bands | None
    diagrams: dict[int, Connection]
    nginx_idle: list[int]  # idle time before nginx's own FIN, on connections nginx closed
    total: int


def _lane(c: Connection, findings: Sequence[Finding], client: str = "nginx") -> _Lane:
    end = c.closed_at_ns if c.closed_at_ns is not None else c.last_seen_ns
    closer = {"client": client, "server": "the upstream"}.get(c.closed_by or "", "nobody")
    what = f" ({(c.close or '').upper()})" if c.closed_by else ""
    notes = "; ".join(f.message for f in findings)
    title = (
        f"#{c.id} {c.client} → {c.server}, {len(c.requests)} requests, closed by {closer}{what}"
        + (f"\n{notes}" if notes else "")
    )
    lane = _Lane(
        c.id, c.server, c.opened_at_ns, max(end, c.opened_at_ns), c.closed_by, c.close, title
    )
    data = [e for e in c.events if e.type in ("request", "response")]
    keep_data = len(data) <= MAX_MARKS
    marked = {
        f.request_index: "request lost" if f.type == "request_lost_to_fin" else "request retry"
        for f in findings
        if f.request_index is not None
    }
    for e in c.events:
        if e.type == "request" and e.request_index in marked:
            lane.marks.append((marked[e.request_index], e.time_ns))
        elif e.type in ("request", "response"):
            if keep_data:
                lane.marks.append((e.type, e.time_ns))
        else:
            lane.marks.append((f"{e.type}-{e.side}", e.time_ns))
    if not keep_data:
        lane.busy = (data[0].time_ns, data[-1].time_ns)
    return lane


def _gather(analysis: Analysis, ranking: Ranking, spans: Spans | None) -> _Gathered:
    """One pass over the connections kept: lanes and diagrams, and the spans of every one
    unless :class:`PageKeep` noted them already."""
    total = analysis.summary.connections
    cap = analysis.capture
    t0 = cap.first_ts_ns or 0
    span = max((cap.last_ts_ns or t0) - t0, 1)
    many = total > MAX_LANES
    detailed = set(ranking.worst[:MAX_LANES]) if many else None
    diagram_ids = set(ranking.worst[:MAX_DIAGRAMS])
    lanes: list[_Lane] = []
    diagrams: dict[int, Connection] = {}
    noted = spans is not None
    spans = spans if spans is not None else Spans()
    for c in analysis.connections:
        if not noted:
            spans.add_connection(c)
        if detailed is None or c.id in detailed:
            lanes.append(_lane(c, analysis.findings_for(c.id), analysis.client.name))
        if c.id in diagram_ids:
            diagrams[c.id] = c
    if detailed is not None:
        order = {cid: i for i, cid in enumerate(ranking.worst)}
        lanes.sort(key=lambda lane: order[lane.conn])
        lanes = _with_retries(lanes, ranking, detailed)
    bands = spans.bands(t0, span) if many else None
    return _Gathered(lanes, bands, diagrams, spans.nginx_idle, total)


def _with_retries(lanes: list[_Lane], ranking: Ranking, drawn: set[int]) -> list[_Lane]:
    """Lanes, each loss's retry right below it when its connection has no lane of its own: a
    stub lane with the retried request only, so that every loss drawn has its arrow."""
    retries = {
        (f.retry_of, f.connection, f.request): f for f in ranking.ranked if f.type == "retry"
    }
    below: dict[int, list[_Lane]] = {}
    for f in ranking.ranked:
        if f.type != "request_lost_to_fin" or f.retried_on is None or f.retried_on in drawn:
            continue
        retry = retries.get((f.connection, f.retried_on, f.request))
        if retry is None or f.connection not in drawn:
            continue
        title = (
            f"#{retry.connection}: {retry.message} (only the retry is drawn: "
            f"kaflow analyze --connection {retry.connection} shows the connection)"
        )
        stub = _Lane(retry.connection, "", retry.time_ns, retry.time_ns, None, None, title)
        stub.marks.append(("request retry", retry.time_ns))
        stub.stub = True
        below.setdefault(f.connection, []).append(stub)
        drawn = drawn | {retry.connection}
    out: list[_Lane] = []
    for lane in lanes:
        out.append(lane)
        out.extend(below.get(lane.conn, ()))
    return out


@dataclass(frozen=True, slots=True)
class _Timeout:
    """An idle timeout read off a distribution: its dominant value, and how sure."""

    value_ns: int
    share: float
    count: int


def nginx_keepalive(idle: list[int]) -> _Timeout | None:
    """nginx's keepalive_timeout, when its own idle closes cluster on one value (at least three,
    half of them within a hundredth of it): nginx also closes for other reasons (keepalive_requests,
    a reload), so a spread-out distribution says nothing."""
    if len(idle) < 3:
        return None
    known = sorted(idle)
    mid = known[len(known) // 2]
    width, bins = histogram(known, max(bin_width(known[0], known[-1]), bin_width(0, mid, 100)))
    lo, n = max(bins, key=lambda b: b[1])
    if n < 3 or n * 2 < len(known):
        return None
    inside = [v for v in known if lo <= v < lo + width]
    return _Timeout(inside[len(inside) // 2], n / len(known), n)


class HtmlReporter:
    """``-f html``: the page. The selection options do not apply: the page chooses by rank.

    Given the :class:`Spans` its :class:`PageKeep` noted, it reads only the connections kept;
    without, it reads every connection of the analysis."""

    def __init__(self, spans: Spans | None = None) -> None:
        self.spans = spans

    def render(self, analysis: Analysis, out: TextIO, options: ReportOptions) -> None:
        ranking = rank(analysis.findings)
        g = _gather(analysis, ranking, self.spans)
        cap = analysis.capture
        w = out.write
        w('<!doctype html>\n<html lang="en"><head><meta charset="utf-8">')
        w('<meta name="viewport" content="width=device-width, initial-scale=1">')
        w(f"<title>kaflow: {_e(cap.path)}</title><style>{_asset('page.css')}</style></head>\n")
        w(
            f'<body data-findings="{len(analysis.findings)}" '
            f'data-connections="{analysis.summary.connections}">\n'
        )
        w(f"<h1>kaflow: {_e(cap.path)}</h1>\n")
        w(f'<p class="note">{_e(_capture_line(analysis))}</p>\n')
        w(
            '<nav><a href="#findings">Findings</a><a href="#diagnosis">Diagnosis</a>'
            '<a href="#idle">Idle times</a><a href="#overview">Overview</a>'
            '<a href="#connections">Connections</a></nav>\n'
        )
        self._summary(analysis, out)
        self._findings(analysis, ranking, out)
        self._diagnosis(analysis, out)
        # nginx's keepalive_timeout is read off its own idle closes; another client's timer is
        # not nginx's setting
        nginx = analysis.client.kind == "nginx"
        self._idle(ranking.idle, nginx_keepalive(g.nginx_idle) if nginx else None, out, nginx)
        self._overview(analysis, ranking, g, out)
        self._diagrams(analysis, ranking, g, out)
        w(f'<p class="note">Written by kaflow {__version__}.</p>\n')
        w(f"<script>{_asset('page.js')}</script>\n</body></html>\n")

    def _summary(self, analysis: Analysis, out: TextIO) -> None:
        client = analysis.client
        s = analysis.summary
        rows = [
            ("connections", f"{s.connections:,} ({s.partial_connections:,} open when it began)"),
            (
                "requests",
                f"{s.requests:,}; answered {s.requests - s.unanswered_requests:,}, "
                f"unanswered {s.unanswered_requests:,}",
            ),
            (
                "first close by",
                f"{client.label} {s.closed_by_client:,}, upstream {s.closed_by_server:,}, "
                f"not closed {s.not_closed:,} (with RST: {s.closed_with_rst:,})",
            ),
            ("findings", ", ".join(f"{t} {n:,}" for t, n in s.findings)),
            ("client", f"{client.name} ({client.basis})"),
        ]
        out.write('<h2 id="summary">Summary</h2>\n<table class="summary">')
        for k, v in rows:
            out.write(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>")
        out.write("</table>\n")

    def _findings(self, analysis: Analysis, ranking: Ranking, out: TextIO) -> None:
        w = out.write
        w('<h2 id="findings">Findings, worst first</h2>\n')
        if not analysis.findings:
            w(
                "<p>No findings: every connection that closed was closed by "
                f"{_e(analysis.client.name)} first.</p>\n"
            )
            return
        w('<table class="tiers">')
        for t, n in ranking.counts:
            if n:
                w(f'<tr class="t-{t}"><td class="kind">{_e(TITLES[t])}</td>')
                w(f'<td class="num">{n:,}</td></tr>')
        w("</table>\n")
        if ranking.ranked:
            n = len(ranking.ranked)
            listed = f"the first {MAX_ROWS:,}" if n > MAX_ROWS else "all"
            w(f'<details class="findings"{" open" if n <= 30 else ""}><summary>')
            w(f"{n:,} findings besides the idle closes, worst first ({listed})</summary>\n")
            w('<table class="findings"><tr><th>time (UTC)</th><th>conn</th><th>finding</th>')
            w("<th>what happened</th></tr>\n")
            for f in ranking.ranked[:MAX_ROWS]:
                w(
                    f'<tr class="finding t-{tier(f)}" data-conn="{f.connection}">'
                    f'<td class="mono">{clock(f.time_ns)}</td>'
                    f'<td><a href="#c{f.connection}">#{f.connection}</a></td>'
                    f'<td class="kind">{_e(f.type)}</td><td>{_e(f.message)}</td></tr>\n'
                )
            w("</table>\n")
            if len(ranking.ranked) > MAX_ROWS:
                w(
                    f'<p class="note">… and {len(ranking.ranked) - MAX_ROWS:,} more of these: '
                    "the JSON, CSV and Parquet reports have every finding.</p>\n"
                )
            w("</details>\n")
        idle = ranking.idle
        if idle.count:
            w(
                f'<p class="idle-summary">{_e(_idle_sentence(idle))} '
                '<a href="#idle">Histogram below.</a></p>\n'
            )

    def _diagnosis(self, analysis: Analysis, out: TextIO) -> None:
        out.write('<h2 id="diagnosis">Diagnosis: what to change</h2>\n')
        if not analysis.advice:
            out.write("<p>Nothing to change that the capture shows.</p>\n")
            return
        out.write("<ul>")
        for a in analysis.advice:
            out.write(f'<li data-topic="{_e(a.topic)}">{_e(a.text)}</li>')
        out.write("</ul>\n")

    def _idle(
        self, idle: IdleCloses, nginx: _Timeout | None, out: TextIO, is_nginx: bool = True
    ) -> None:
        w = out.write
        w('<h2 id="idle">Idle time before the upstream closed</h2>\n')
        if not idle.bins or idle.dominant_ns is None:
            w("<p>No idle closes by the upstream with a known idle time.</p>\n")
            if nginx is not None:
                w(f"<p>{_e(_nginx_sentence(nginx))}</p>\n")
            return
        w(
            "<p>Each bar counts the upstream's idle-timeout closes by how long the connection "
            "had been idle (since the upstream's last response). The red line is where they "
            "bunch: the upstream's idle timeout. Requests race its FIN when "
            + (
                "nginx keeps idle connections longer than that (its keepalive_timeout, 60 s "
                "unless set)."
                if is_nginx
                else "the client keeps idle connections longer than that."
            )
            + "</p>\n"
        )
        W, H, L, B = 760.0, 220.0, 50.0, 40.0
        lo = idle.bins[0][0]
        hi = idle.bins[-1][0] + idle.bin_ns
        show_nginx = nginx is not None and nginx.value_ns <= hi * 1.5
        if show_nginx and nginx is not None:
            hi = max(hi, nginx.value_ns + idle.bin_ns)
        lo = min(lo, idle.dominant_ns)
        span = max(hi - lo, 1)
        top = max(n for _, n in idle.bins)

        def x(ns: int) -> float:
            return L + (ns - lo) / span * (W - L - 20)

        w(f'<svg class="hist" viewBox="0 0 {W:.0f} {H:.0f}" width="{W:.0f}" role="img" ')
        w('aria-label="histogram of idle times before the upstream\'s FIN">')
        for start, n in idle.bins:
            if not n:
                continue
            h = n / top * (H - B - 20)
            bw = max(x(start + idle.bin_ns) - x(start) - 1, 1)
            w(
                f'<rect class="bar" x="{x(start):.1f}" y="{H - B - h:.1f}" width="{bw:.1f}" '
                f'height="{h:.1f}"><title>{duration(start)} to '
                f"{duration(start + idle.bin_ns)}: {n:,}</title></rect>"
            )
        w(f'<line x1="{L}" x2="{W - 10}" y1="{H - B}" y2="{H - B}" stroke="#333"/>')
        for i in range(6):
            ns = lo + span * i // 5
            w(f'<text x="{x(ns):.1f}" y="{H - B + 16}" text-anchor="middle">{duration(ns)}</text>')
        w(f'<text x="{L - 6}" y="20" text-anchor="end">{top:,}</text>')
        dx = x(idle.dominant_ns)
        w(
            f'<line class="timeout" x1="{dx:.1f}" x2="{dx:.1f}" y1="10" y2="{H - B}"/>'
            f'<text x="{dx + (4 if dx < W / 2 else -4):.1f}" y="14" fill="#c62828" '
            f'text-anchor="{"start" if dx < W / 2 else "end"}">upstream idle timeout ≈ '
            f"{duration(idle.dominant_ns)}</text>"
        )
        if show_nginx and nginx is not None:
            nx = x(nginx.value_ns)
            w(
                f'<line class="nginx" x1="{nx:.1f}" x2="{nx:.1f}" y1="24" y2="{H - B}"/>'
                f'<text x="{nx + (4 if nx < W / 2 else -4):.1f}" y="30" fill="#1565c0" '
                f'text-anchor="{"start" if nx < W / 2 else "end"}">nginx keepalive_timeout ≈ '
                f"{duration(nginx.value_ns)}</text>"
            )
        w(f'<text x="{W / 2:.0f}" y="{H - 6}" text-anchor="middle">idle time before the FIN</text>')
        w("</svg>\n")
        w(f"<p>{_e(_idle_sentence(idle))}</p>\n")
        if nginx is not None:
            w(f"<p>{_e(_nginx_sentence(nginx))}</p>\n")
        elif is_nginx:
            w(
                "<p>nginx's keepalive_timeout does not show in this capture (nginx closed no "
                "idle connections on one timer): it is 60 s unless set.</p>\n"
            )

    def _overview(self, analysis: Analysis, ranking: Ranking, g: _Gathered, out: TextIO) -> None:
        w = out.write
        who = _e(analysis.client.label)
        cap = analysis.capture
        t0 = cap.first_ts_ns or 0
        span = max((cap.last_ts_ns or t0) - t0, 1)

        def x(ns: int) -> float:
            return (ns - t0) / span * WIDTH

        w('<h2 id="overview">Every connection on one time axis</h2>\n')
        if g.bands is not None:
            w(
                f'<p class="note included">This capture has {g.total:,} connections: a lane '
                f"each would be unreadable. The bands on top draw all of them, one per upstream: "
                f"how many were open in each of {BINS} time slices (darker: more) and, in red, "
                f"how many the upstream closed. Below them, one lane each for the "
                f"{sum(not lane.stub for lane in g.lanes):,} connections with the worst findings, "
                "worst first; under a lost request's lane, its retry (the retried request only, "
                "when that connection has no lane of its own).</p>\n"
            )
        else:
            w(
                f'<p class="note included">All {g.total:,} connections, one lane each in order '
                "of first packet.</p>\n"
            )
        w(
            '<p class="legend"><span><i class="sw" style="background:#ef9a9a"></i>closed by the '
            'upstream</span><span><i class="sw" style="background:#cfd8dc"></i>closed by '
            f'{who}</span><span><i class="sw" style="background:#b0bec5"></i>not closed</span>'
            '<span><i class="sw" style="background:#1565c0"></i>SYN</span>'
            '<span><i class="sw" style="background:#37474f"></i>request / response</span>'
            '<span><i class="sw" style="background:#c62828"></i>upstream FIN/RST</span>'
            f'<span><i class="sw" style="background:#546e7a"></i>{who} FIN/RST</span>'
            '<span><i class="sw" style="background:#d50000"></i>lost request</span>'
            '<span><i class="sw" style="background:#2e7d32"></i>→ its retry</span></p>\n'
        )
        w(
            '<p id="ov-controls" hidden><button data-zoom="0.5">zoom in</button>'
            '<button data-zoom="2">zoom out</button><button data-zoom="reset">all</button> '
            '<span class="note">drag to pan; Ctrl + wheel zooms where the pointer is</span></p>\n'
        )
        w('<div class="axis" id="ov-axis">')
        for i in range(9):
            w(f'<span style="left:{i * 12.5}%">{clock(t0 + span * i // 8)[:8]}</span>')
        w("</div>\n")
        rows: list[tuple[str, str]] = []  # (label, svg body) one per row
        if g.bands is not None:
            for server in sorted(g.bands.open):
                rows.append((server, self._band(g.bands, server)))
        lane_y: dict[int, float] = {}
        first_lane = len(rows)
        for i, lane in enumerate(g.lanes):
            lane_y[lane.conn] = (first_lane + i) * LANE
            name = f"#{lane.conn} ↻" if lane.stub else f"#{lane.conn}"
            rows.append((name, self._lane_svg(lane, x)))
        height = max(len(rows), 1) * LANE
        w('<div class="ovwrap"><div class="ovscroll"><svg class="ovlabels" ')
        w(f'viewBox="0 0 70 {height:.0f}" width="70" height="{height:.0f}">')
        for i, (text, _) in enumerate(rows):
            w(f'<text class="lbl" x="2" y="{i * LANE + 9:.0f}">{_e(text[:14])}</text>')
        w("</svg>")
        w(
            f'<div class="ovmain"><svg id="ov" viewBox="0 0 {WIDTH:.0f} {height:.0f}" '
            f'preserveAspectRatio="none" height="{height:.0f}" data-t0="{t0}" '
            f'data-span="{span}" data-lanes="{len(g.lanes)}">'
            '<defs><marker id="arr" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" '
            'markerHeight="6" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" '
            'fill="#2e7d32"/></marker></defs>'
        )
        for i, (_, body) in enumerate(rows):
            w(f'<g transform="translate(0,{i * LANE:.0f})"{body}</g>')
        lost_at = self._lost_at(analysis, ranking)
        for f in ranking.ranked:
            if f.type != "retry" or f.retry_of is None:
                continue
            if f.retry_of in lane_y and f.connection in lane_y:
                lost = lost_at.get((f.retry_of, f.connection, f.request))
                if lost is None:
                    continue
                w(
                    f'<line class="retry-arrow" vector-effect="non-scaling-stroke" '
                    f'data-from="{f.retry_of}" data-to="{f.connection}" '
                    f'x1="{_f(x(lost))}" y1="{lane_y[f.retry_of] + LANE / 2:.0f}" '
                    f'x2="{_f(x(f.time_ns))}" y2="{lane_y[f.connection] + LANE / 2:.0f}" '
                    'marker-end="url(#arr)"><title>'
                    f"{_e(f.message)}</title></line>"
                )
        w("</svg></div></div></div>\n")

    @staticmethod
    def _lost_at(analysis: Analysis, ranking: Ranking) -> dict[tuple[int, int, str | None], int]:
        """When each retried request was sent on the connection that lost it, by (lost on,
        retried on, request): where its arrow starts."""
        out: dict[tuple[int, int, str | None], int] = {}
        for f in ranking.ranked:
            if f.type != "request_lost_to_fin" or f.retried_on is None:
                continue
            at = f.time_ns
            try:
                conn = analysis.connection(f.connection)
            except KeyError:  # not kept: the arrow starts at the close that lost it
                conn = None
            if conn is not None and f.request_index is not None:
                at = conn.requests[f.request_index].sent_at_ns
            out[(f.connection, f.retried_on, f.request)] = at
        return out

    @staticmethod
    def _band(bands: _Bands, server: str) -> str:
        diff = bands.open[server]
        running, counts = 0, []
        for d in diff[:BINS]:
            running += d
            counts.append(running)
        top = max(max(counts), 1)
        step = WIDTH / BINS
        parts = [
            f' class="bundle" data-server="{_e(server)}"><title>{_e(server)}: '
            f"open connections per time slice (most {top:,})</title>"
        ]
        for i, n in enumerate(counts):
            if n:
                parts.append(
                    f'<rect class="heat" x="{_f(i * step)}" y="1" width="{_f(step)}" '
                    f'height="{LANE - 2:.0f}" fill-opacity="{0.15 + 0.85 * n / top:.2f}"/>'
                )
        closes = bands.upstream_closes[server]
        most = max(max(closes), 1)
        for i, n in enumerate(closes):
            if n:
                h = 2 + (LANE - 3) * n / most
                xi = _f((i + 0.5) * step)
                parts.append(
                    f'<line class="upclose" vector-effect="non-scaling-stroke" x1="{xi}" '
                    f'x2="{xi}" y1="{LANE - 1:.0f}" y2="{LANE - 1 - h:.1f}"/>'
                )
        return "".join(parts)

    @staticmethod
    def _lane_svg(lane: _Lane, x: Callable[[int], float]) -> str:
        by = "stub" if lane.stub else f"by-{lane.closed_by}" if lane.closed_by else "open"
        x0, x1 = x(lane.opened), x(lane.closed)
        parts = [
            f' class="lane {by}" data-conn="{lane.conn}"><title>{_e(lane.title)}</title>'
            f'<rect class="span" x="{_f(x0)}" y="3" width="{_f(max(x1 - x0, 0.0005))}" '
            f'height="{LANE - 6:.0f}"/>'
        ]
        if lane.busy is not None:
            b0, b1 = x(lane.busy[0]), x(lane.busy[1])
            parts.append(
                f'<rect class="busy" x="{_f(b0)}" y="5" width="{_f(max(b1 - b0, 0.0005))}" '
                f'height="{LANE - 10:.0f}"/>'
            )
        for kind, t in lane.marks:
            xi = _f(x(t))
            parts.append(
                f'<line class="m {kind}" vector-effect="non-scaling-stroke" x1="{xi}" '
                f'x2="{xi}" y1="1" y2="{LANE - 1:.0f}"/>'
            )
        return "".join(parts)

    def _diagrams(self, analysis: Analysis, ranking: Ranking, g: _Gathered, out: TextIO) -> None:
        w = out.write
        w('<h2 id="connections">Connections with findings, as sequence diagrams</h2>\n')
        ids = [i for i in ranking.worst[:MAX_DIAGRAMS] if i in g.diagrams]
        if not ids:
            w("<p>No connection has a finding.</p>\n")
            return
        more = len(ranking.worst) - len(ids)
        who = analysis.client.name
        w(
            f'<p class="note">{_e(analysis.client.title)} on the left, the upstream on the '
            "right, time downwards (evenly spaced; the left column gives the time since the "
            f"previous event). The capture was taken on {_e(who)}'s side, so each arrow's "
            f"{_e(analysis.client.label)} end is where the capture saw it. A request that "
            f"crossed the upstream's FIN is drawn crossing it: {_e(who)} wrote the request "
            "before it read the FIN."
            + (
                f" The {len(ids):,} connections with the worst findings are drawn; "
                f"{more:,} more have findings (kaflow analyze --connection ID shows any)."
                if more > 0
                else ""
            )
            + "</p>\n"
        )
        for cid in ids:
            conn = g.diagrams[cid]
            w(f'<article id="c{cid}" class="conn" data-conn="{cid}">')
            w(f"<h3>{_e(header(conn, analysis.client.label))}</h3>")
            w(sequence_svg(conn, analysis.findings_for(cid), analysis.client.label))
            w("</article>\n")


def _capture_line(analysis: Analysis) -> str:
    cap = analysis.capture
    span = ""
    if cap.first_ts_ns is not None and cap.last_ts_ns is not None:
        span = (
            f"; {stamp(cap.first_ts_ns)} to {clock(cap.last_ts_ns)} "
            f"({(cap.last_ts_ns - cap.first_ts_ns) / 1e9:.3f} s)"
        )
    ports = ", ".join(str(p) for p in cap.ports)
    host = f"; {host_line(cap.host)}" if cap.host is not None else ""
    return (
        f"{cap.format}, {', '.join(cap.link_types) or '?'}; {cap.packets:,} packets, "
        f"{cap.upstream_segments:,} on upstream port {ports}{span}{host}"
    )


def _idle_sentence(idle: IdleCloses) -> str:
    when = ""
    if idle.first_ns is not None and idle.last_ns is not None:
        when = f", from {clock(idle.first_ns)} to {clock(idle.last_ns)}"
    text = (
        f"The upstream closed {idle.count:,} idle connection{'s' if idle.count != 1 else ''}{when}."
    )
    if idle.dominant_ns is not None and idle.min_ns is not None and idle.max_ns is not None:
        known = idle.count - idle.unknown_idle
        text += (
            f" Idle time before its FIN: mostly {duration(idle.dominant_ns)} "
            f"({idle.dominant_share:.0%} of {known:,}), its idle timeout; shortest "
            f"{duration(idle.min_ns)}, longest {duration(idle.max_ns)}."
        )
    return text


def _nginx_sentence(t: _Timeout) -> str:
    return (
        f"nginx closed {t.count:,} idle connections itself after about {duration(t.value_ns)} "
        f"({t.share:.0%} of its closes): its keepalive_timeout."
    )


ROW = 26.0
SLANT = 14.0
NGINX_X, UPSTREAM_X = 190.0, 520.0
SEQ_W = 760.0


def _seq_events(conn: Connection) -> list[tuple[int, Event] | None]:
    """The events drawn, with their index; None stands for the ones left out in the middle."""
    events = list(enumerate(conn.events))
    if len(events) <= SEQ_HEAD + SEQ_TAIL:
        return list(events)
    return [*events[:SEQ_HEAD], None, *events[-SEQ_TAIL:]]


def sequence_svg(conn: Connection, findings: Sequence[Finding], client: str = "nginx") -> str:
    """One connection as a flow graph: the client's (nginx's) and the upstream's lifelines, a
    row per event."""
    pins = pinned(conn, tuple(findings))
    rows = _seq_events(conn)
    lost_close = {
        f.request_index: f.time_ns
        for f in findings
        if f.type == "request_lost_to_fin" and f.request_index is not None
    }
    # the upstream's FIN/RST that a lost request crossed: drawn reaching nginx after it
    late: dict[int, float] = {}
    y_of: dict[int, float] = {}
    top = 44.0
    for r, item in enumerate(rows):
        if item is not None:
            y_of[item[0]] = top + r * ROW
    for idx, e in (item for item in rows if item is not None):
        if e.type == "request" and e.request_index in lost_close:
            fin_at = lost_close[e.request_index]
            for jdx, other in (item for item in rows if item is not None):
                if (
                    other.side == "server"
                    and other.type in ("fin", "rst")
                    and other.time_ns == fin_at
                    and other.time_ns <= e.time_ns
                ):
                    late[jdx] = y_of[idx] + 10
    height = top + len(rows) * ROW + 10
    parts = [
        f'<svg class="seq" data-conn="{conn.id}" viewBox="0 0 {SEQ_W:.0f} {height:.0f}" '
        f'width="{SEQ_W:.0f}" role="img" aria-label="sequence diagram of connection #{conn.id}">'
        '<defs><marker id="sa" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" '
        'fill="context-stroke"/></marker></defs>',
        f'<text x="{NGINX_X}" y="16" text-anchor="middle" font-weight="600">{_e(client)} '
        f"{_e(conn.client)}</text>",
        f'<text x="{UPSTREAM_X}" y="16" text-anchor="middle" font-weight="600">upstream '
        f"{_e(conn.server)}</text>",
        f'<line class="life" x1="{NGINX_X}" x2="{NGINX_X}" y1="24" y2="{height - 4:.0f}"/>',
        f'<line class="life" x1="{UPSTREAM_X}" x2="{UPSTREAM_X}" y1="24" y2="{height - 4:.0f}"/>',
    ]
    prev: int | None = None
    for r, item in enumerate(rows):
        y = top + r * ROW
        if item is None:
            left = len(conn.events) - SEQ_HEAD - SEQ_TAIL
            parts.append(
                f'<text class="gap" x="{(NGINX_X + UPSTREAM_X) / 2:.0f}" y="{y + 4:.0f}" '
                f'text-anchor="middle">… {left:,} events not drawn …</text>'
            )
            prev = None
            continue
        idx, e = item
        since = (
            f"+{(e.time_ns - conn.opened_at_ns) / 1e9:.6f} s"
            if prev is None
            else f"+{duration(e.time_ns - prev)}"
        )
        prev = e.time_ns
        parts.append(f'<text class="gap" x="8" y="{y + 4:.0f}">{_e(since)}</text>')
        parts.append(
            f'<text class="gap" x="8" y="{y + 15:.0f}" font-size="9">{clock(e.time_ns)}</text>'
        )
        classes = ["msg", e.side, f"{e.type}-{e.side}"]
        if e.side == "client":
            x1, y1, x2, y2 = NGINX_X, y, UPSTREAM_X, y + SLANT
        else:
            x1, y1, x2, y2 = UPSTREAM_X, y - SLANT, NGINX_X, late.get(idx, y)
            if idx in late:
                classes.append("crossing")
        if e.type == "request" and e.request_index in lost_close:
            classes += ["lost", "crossing"]
        text = label(e, conn)
        parts.append(
            f'<line class="{" ".join(classes)}" data-event="{_e(e.type)}" x1="{x1:.0f}" '
            f'y1="{y1:.1f}" x2="{x2:.0f}" y2="{y2:.1f}" marker-end="url(#sa)">'
            f"<title>frame {e.frame}: {_e(text)}</title></line>"
        )
        parts.append(
            f'<text x="{(NGINX_X + UPSTREAM_X) / 2:.0f}" y="{(y1 + y2) / 2 - 3:.1f}" '
            f'text-anchor="middle">{_e(text[:60])}</text>'
        )
        for f in pins.get(idx, ()):
            parts.append(
                f'<text class="pin" data-finding="{_e(f.type)}" x="{UPSTREAM_X + 10:.0f}" '
                f'y="{y + 4:.0f}">{_e(_pin_text(f))}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def _pin_text(f: Finding) -> str:
    if f.type == "request_lost_to_fin":
        return "✗ lost" + (
            f", retried on #{f.retried_on}"
            if f.retried
            else ", not retried"
            if f.retried is False
            else ""
        )
    if f.type == "retry":
        return f"↻ retry of #{f.retry_of}"
    if f.type == "connect_failed":
        return "✗ connect failed"
    return f"⚠ upstream closed first ({(f.reason or '').replace('_', ' ')})"


def structure(page: str) -> list[str]:
    """The SVG skeleton of a page: each SVG element's tag and class, nesting shown by indent,
    no coordinates: what the golden test holds, so that a change of layout is noticed but a
    moved pixel is not."""
    from html.parser import HTMLParser

    lines: list[str] = []

    class _P(HTMLParser):
        depth = 0
        inside = 0

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = dict(attrs)
            if tag == "svg":
                self.inside += 1
            if self.inside:
                cls = a.get("class") or ""
                extra = "".join(
                    f" {k}={a[k]}"
                    for k in ("data-conn", "data-from", "data-to", "data-event")
                    if a.get(k)
                )
                lines.append("  " * self.depth + f"{tag}.{cls}{extra}".rstrip("."))
                self.depth += 1

        def handle_endtag(self, tag: str) -> None:
            if self.inside:
                self.depth -= 1
            if tag == "svg":
                self.inside -= 1

        def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.handle_starttag(tag, attrs)
            self.handle_endtag(tag)

    _P().feed(page)
    return [ln for ln in lines if not ln.lstrip().startswith(("title", "text"))]

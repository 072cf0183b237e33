"""The terminal report: summary, findings worst first, and per-connection timelines.

Findings are listed by what they cost (:mod:`pcapkit.report.severity`), the harmless idle closes
summed up in a few lines, so that the requests whose clients got a 502 come first even among
thousands of idle closes. The timeline is what an engineer otherwise writes by hand beside
``tcpdump -r dump | grep PORT``: each event with its absolute time, the time since the connection
opened, its direction, a label, and the finding it shows. By default only the ``limit``
connections with the worst findings get a timeline, so a capture of a busy hour stays readable.
"""

from __future__ import annotations

import heapq
import textwrap
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TextIO

from tabulate import tabulate

from pcapkit.model import (
    Analysis,
    CaptureFile,
    CaptureHost,
    Connection,
    ConnectionRef,
    Event,
    Finding,
)
from pcapkit.report import ReportOptions, pinned
from pcapkit.report.severity import TIERS, TITLES, IdleCloses, Ranking, connection_rank, rank


def _arrow(side: str, client: str) -> str:
    """The direction column: the client's name (nginx, HAProxy, 'client') and the upstream."""
    return f"{client} → upstream" if side == "client" else f"{client} ← upstream"


def _side(side: str | None, client: str) -> str:
    return {"client": client, "server": "upstream"}.get(side or "", "-")


_FINDING_LIMIT = 100


def clock(ns: int) -> str:
    """Time of day in UTC with microseconds, as tcpdump prints it (``-tttt`` without the date)."""
    dt = datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC)
    return f"{dt:%H:%M:%S}.{(ns % 1_000_000_000) // 1000:06d}"


def stamp(ns: int) -> str:
    dt = datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC)
    return f"{dt:%Y-%m-%d %H:%M:%S}.{(ns % 1_000_000_000) // 1000:06d} UTC"


def label(e: Event, conn: Connection) -> str:
    """What an event is, in the words one would write next to the packet."""
    if e.type == "syn":
        return "SYN" + (f" ({e.note})" if e.note else "")
    if e.type == "syn_ack":
        return "SYN-ACK" + (f" ({e.note})" if e.note else "")
    if e.type in ("fin", "rst"):
        # the upstream's TLS alert in its FIN's place says so in its note
        return e.note if e.note else e.type.upper()
    if e.type == "request":
        if e.method is None:
            return f"request ({e.note or 'payload not captured'})"
        return f"{e.method} {e.target}"
    unread = f"response ({e.note or 'payload not captured'})"
    status = unread if e.status is None else str(e.status)
    if e.connection_close:
        status += " Connection: close"
    if e.request_index is not None:
        req = conn.requests[e.request_index]
        took = duration(e.time_ns - req.sent_at_ns)
        status += f"  ← {req.label} ({took})" if req.method is not None else f" ({took})"
    elif conn.partial:
        status += "  (request before the capture)"
    else:
        status += "  (no request seen for it)"  # the capture has the connection's start
    if e.note is not None and e.status is not None:
        status += f"; {e.note}"  # e.g. the tunnel a 101 opened
    return status


def duration(ns: int) -> str:
    if ns >= 1_000_000_000:
        return f"{ns / 1e9:.3f} s"
    return f"{ns / 1e6:.1f} ms" if ns >= 100_000 else f"{ns / 1e3:.0f} µs"


def _pin(f: Finding) -> str:
    if f.type == "server_initiated_close":
        why = (f.reason or "").replace("_", " ")
        if f.idle_ns is not None:
            why += f", {duration(f.idle_ns)} after its last response"
        return f"⚠ upstream closed first ({why})"
    if f.type == "request_lost_to_fin":
        if f.retried:
            return f"✗ lost to the upstream's close; retried on #{f.retried_on}"
        if f.retried is False:
            return "✗ lost to the upstream's close; NOT retried"
        return "✗ lost to the upstream's close"
    if f.type == "retry":
        how = "new connection" if f.new_connection else "cached connection"
        return f"↻ retry of the request lost on #{f.retry_of} ({how})"
    return "✗ connect failed"


def timeline(conn: Connection, findings: tuple[Finding, ...], client: str = "nginx") -> str:
    """One connection's events as a table, findings pinned to the events that show them;
    ``client`` names the side that sent the requests (:attr:`Client.label`)."""
    pins = pinned(conn, findings)
    rows = []
    for i, e in enumerate(conn.events):
        rows.append(
            (
                clock(e.time_ns),
                f"+{(e.time_ns - conn.opened_at_ns) / 1e9:.6f}",
                _arrow(e.side, client),
                label(e, conn),
                "; ".join(_pin(f) for f in pins.get(i, ())),
            )
        )
    table = tabulate(
        rows,
        headers=("time (UTC)", "since open", "direction", "event", "finding"),
        tablefmt="simple",
        disable_numparse=True,
    )
    return table


def header(conn: Connection, client: str = "nginx") -> str:
    opened = f"opened by {client}" if conn.opened_by else "open before the capture began"
    closed = (
        f"closed by {_side(conn.closed_by, client)} ({(conn.close or '').upper()})"
        if conn.closed_by
        else "not closed in the capture"
    )
    reqs = len(conn.requests)
    sided = f"; only {_side(conn.one_sided, client)}'s packets captured" if conn.one_sided else ""
    return (
        f"Connection #{conn.id}  {conn.client} → {conn.server}  "
        f"[{conn.state} {conn.history}]  {opened}, {closed}; "
        f"{reqs} request{'s' if reqs != 1 else ''}, {conn.packets} packets{sided}"
    )


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _file_line(f: CaptureFile) -> str:
    """One file of a series: its range, its frames in the merged capture, the gap before it."""
    when = "no packets"
    if f.first_ts_ns is not None and f.last_ts_ns is not None:
        when = f"{stamp(f.first_ts_ns)} to {clock(f.last_ts_ns)}"
    gap = ""
    if f.gap_before_ns is not None:
        g = f.gap_before_ns / 1e9
        gap = f"; {g:.3f} s after the previous file" if g >= 0 else f"; overlaps it by {-g:.3f} s"
    frames = f"frames {f.first_frame:,}-{f.last_frame:,}" if f.packets else "no frames"
    return f"{f.path}: {when}, {_plural(f.packets, 'packet')} ({frames}){gap}"


def host_line(h: CaptureHost) -> str:
    """Which host the capture looks taken on, and the handshake times that tell."""
    if h.syn_to_syn_ack_ns is None or h.syn_ack_to_ack_ns is None:
        return "taken on: cannot tell (no handshake of nginx's in the capture)"
    n = "median" if h.handshakes == 1 else f"medians of {h.handshakes:,}"
    gaps = (
        f"SYN → SYN-ACK {h.syn_to_syn_ack_ns / 1e6:.3f} ms, SYN-ACK → ACK "
        f"{h.syn_ack_to_ack_ns / 1e6:.3f} ms ({n})"
    )
    if h.seen_from == "nginx":
        return f"taken on nginx's host, by its handshakes: {gaps}"
    if h.seen_from == "upstream":
        return (
            f"taken on the upstream's host, by its handshakes: {gaps}; nginx's packets are "
            "stamped as they arrived"
        )
    return (
        "taken on: cannot tell, no round trip in its handshakes (nginx and the upstream on one "
        f"host, or a link faster than they answer): {gaps}"
    )


class TableReporter:
    def render(self, analysis: Analysis, out: TextIO, options: ReportOptions) -> None:
        w = out.write
        cap, s = analysis.capture, analysis.summary
        ports = ", ".join(str(p) for p in cap.ports)
        w(f"kaflow: {cap.path} ({cap.format}, {', '.join(cap.link_types) or '?'}), ")
        w(f"upstream port {ports}\n")
        skipped = ", ".join(f"{n:,} {k.replace('_', ' ')}" for k, n in cap.skipped)
        w(f"  {_plural(cap.packets, 'packet')}, {cap.upstream_segments:,} on the upstream port")
        w(f"; skipped: {skipped}\n" if skipped else "\n")
        if cap.first_ts_ns is not None and cap.last_ts_ns is not None:
            span = (cap.last_ts_ns - cap.first_ts_ns) / 1e9
            w(f"  {stamp(cap.first_ts_ns)} to {clock(cap.last_ts_ns)} ({span:.3f} s)\n")
        if cap.host is not None:
            w(f"  {host_line(cap.host)}\n")
        if cap.series is not None:
            w(f"  {cap.series}:\n")
            for f in cap.files:
                w(f"    {_file_line(f)}\n")
        if cap.since_ns is not None or cap.until_ns is not None:
            since = stamp(cap.since_ns) if cap.since_ns is not None else "the start"
            until = stamp(cap.until_ns) if cap.until_ns is not None else "the end"
            w(f"  analyzed from {since} until {until} (connections open at the edges are ")
            w("partial)\n")
        for warning in cap.warnings:
            w(f"  warning: {warning}\n")
        client = analysis.client
        w(f"  client: {client.name} ({client.basis})\n")

        w("\nSummary\n")
        began = "the window" if cap.since_ns is not None else "the capture"
        partial = f" ({s.partial_connections:,} open when {began} began)"
        rows = [
            ("connections", f"{s.connections:,}" + (partial if s.partial_connections else "")),
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
        ]
        if analysis.logs is not None:
            j = analysis.logs
            rows.append(
                (
                    "nginx's logs",
                    f"{len(j.confirmed):,} findings confirmed, {len(j.log_only):,} log errors "
                    f"without packet evidence, {len(j.packet_only):,} findings not logged; "
                    f"clients' 5xx from the upstream's closes: {j.clients_5xx}",
                )
            )
        if s.retransmissions or s.anomalies:
            rows.append(
                ("also", f"{s.retransmissions:,} retransmissions, {s.anomalies:,} anomalies")
            )
        w(tabulate(rows, tablefmt="plain", disable_numparse=True) + "\n")

        ranking = rank(analysis.findings)
        if not analysis.findings:
            w(f"\nNo findings: every connection that closed was closed by {client.name} first")
            w(" and every request was answered.\n" if not s.unanswered_requests else ".\n")
        else:
            self._findings(ranking, out)
        if analysis.advice:
            out.write("\nDiagnosis\n")
            for advice in analysis.advice:
                out.write(
                    textwrap.fill(advice.text, 96, initial_indent="  - ", subsequent_indent="    ")
                    + "\n"
                )

        if analysis.logs is not None or analysis.configured:
            from pcapkit.report import nginx_section

            if analysis.logs is not None:
                nginx_section.write_table(analysis.logs, out)
            if analysis.configured:
                nginx_section.write_comparisons(analysis.configured, out)

        self._timelines(analysis, ranking, out, options)

    def _findings(self, ranking: Ranking, out: TextIO) -> None:
        out.write("\nFindings, worst first\n")
        counts = [(TITLES[t], f"{n:,}") for t, n in ranking.counts if n]
        out.write(tabulate(counts, tablefmt="plain", disable_numparse=True) + "\n")
        found = ranking.ranked
        if found:
            rows = [
                (clock(f.time_ns), f"#{f.connection}", f.type, f.message)
                for f in found[:_FINDING_LIMIT]
            ]
            out.write(
                "\n"
                + tabulate(
                    rows,
                    headers=("time (UTC)", "conn", "finding", "what happened"),
                    tablefmt="simple",
                    disable_numparse=True,
                    maxcolwidths=[None, None, None, 72],
                )
                + "\n"
            )
        if len(found) > _FINDING_LIMIT:
            out.write(
                f"  … {len(found) - _FINDING_LIMIT:,} more findings: "
                "use --format json or csv for all of them\n"
            )
        idle = ranking.idle
        if idle.count:
            out.write("\n" + idle_summary(idle) + "\n")

    def _timelines(
        self, analysis: Analysis, ranking: Ranking, out: TextIO, options: ReportOptions
    ) -> None:
        sel = options.connections
        total = analysis.summary.connections
        if sel == "all":
            conns: Iterable[Connection] = analysis.connections
            more = 0
        elif isinstance(sel, tuple):
            conns = [analysis.connection(i) for i in sel]
            more = 0
        else:
            flagged = ranking.worst
            limit = max(options.limit, 0)
            conns = (analysis.connection(i) for i in flagged[:limit])
            more = len(flagged) - limit
        who = analysis.client.label
        for conn in conns:
            out.write("\n" + header(conn, who) + "\n")
            out.write(timeline(conn, analysis.findings_for(conn.id), who) + "\n")
            for a in conn.anomalies:
                side = _side(a.side, who)
                out.write(f"  anomaly at {clock(a.time_ns)} (frame {a.frame}, {side}): ")
                out.write(a.what + "\n")
        if more > 0:
            out.write(
                f"\n… {more:,} more connections with findings (the worst are shown): "
                "--all shows every connection, --connection ID one of them\n"
            )
        if sel is None and not analysis.findings and total:
            out.write("\n(--all shows every connection's timeline)\n")


def _span(lo: int, width: int) -> str:
    return f"{duration(lo)} to {duration(lo + width)}"


def idle_summary(idle: IdleCloses) -> str:
    """The idle closes in a few lines: how many, when, and the idle time the upstream allows."""
    first, last = idle.first_ns, idle.last_ns
    when = f", {clock(first)} to {clock(last)}" if first is not None and last is not None else ""
    lines = [
        f"Idle closes by the upstream: {_plural(idle.count, 'close')} on "
        f"{_plural(idle.connections, 'connection')}{when}"
    ]
    if idle.dominant_ns is not None and idle.min_ns is not None and idle.max_ns is not None:
        known = idle.count - idle.unknown_idle
        lo, width = idle.dominant_from_ns, idle.dominant_width_ns
        inside = round(idle.dominant_share * known)
        lines.append(
            textwrap.fill(
                f"idle time before the upstream's FIN: mostly {duration(idle.dominant_ns)}, "
                f"the upstream's idle timeout ({inside:,} of {known:,} within "
                f"{_span(lo, width)}); shortest {duration(idle.min_ns)}, "
                f"longest {duration(idle.max_ns)}",
                96,
                initial_indent="  ",
                subsequent_indent="  ",
            )
        )
        outside = [b for b in idle.bins if b[1] and not lo <= b[0] < lo + width]
        others = sorted(sorted(outside, key=lambda b: -b[1])[:4])
        if others:
            lines.append(
                "  others: " + ", ".join(f"{_span(b, idle.bin_ns)}: {n:,}" for b, n in others)
            )
    if idle.unknown_idle:
        lines.append(f"  ({idle.unknown_idle:,} on connections silent since before the capture)")
    return "\n".join(lines)


class WorstFirst:
    """What the default table can show, chosen connection by connection (``analyze(keep=)``).

    The default report shows the timelines of the ``limit`` connections with the worst findings
    (:attr:`Ranking.worst <pcapkit.report.severity.Ranking.worst>`: by tier, then id). When a
    connection is finished its own findings are known, except whether its lost requests were
    retried: so every connection that lost a request is kept (the classifier holds each loss
    until the end anyway, and these wait on disk), and of the others the ``limit`` best-ranked
    so far. A connection whose only finding will be a retry ranks last; it can be shown only
    while fewer than ``limit`` connections have findings of their own, so until then every
    connection with requests is kept too.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._best: list[tuple[int, int]] = []  # max-heap (negated) of (rank, id) of the others
        self._own = 0  # connections with findings of their own so far

    def __call__(self, conn: ConnectionRef, flagged: bool) -> bool:
        if self.limit <= 0:
            return False
        if not conn.findings:
            return bool(conn.requests) and self._own < self.limit
        self._own += 1
        best = min(connection_rank(f) for f in conn.findings)
        if best == TIERS.index("close_in_flight"):
            return True  # lost requests: their tier is known only at the end
        key = (-best, -conn.id)
        if len(self._best) < self.limit:
            heapq.heappush(self._best, key)
            return True
        if key > self._best[0]:
            heapq.heapreplace(self._best, key)
            return True
        return False

"""``analyze()``: the pipeline from a capture file to an :class:`~pcapkit.model.Analysis`.

capture (SegmentBatch) → tcp (TcpConnection) → label: http + machine (Connection with events) →
classify (Finding) → Analysis. Each stage is its own module; this one only wires them together
and builds the public values. It never prints: progress goes to a callback the caller supplies.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from pcapkit import classify, diagnose
from pcapkit.capture import CaptureInfo, open_capture
from pcapkit.errors import KaflowError, NoUpstreamTrafficError
from pcapkit.label import build_connection
from pcapkit.model import (
    FINDING_TYPES,
    Analysis,
    CaptureSummary,
    Connection,
    Finding,
    Summary,
)
from pcapkit.tcp import Reconstructor, TcpConnection, TcpStats

DEFAULT_PORT = 8080

Progress = Callable[[int, int], None]
"""Called with (bytes read so far, file size) after each window of the capture."""


def summarize(connections: Iterable[Connection], findings: Iterable[Finding]) -> Summary:
    conns = list(connections)
    found = list(findings)
    reqs = [r for c in conns for r in c.requests]
    answered = sum(1 for r in reqs if r.answered)
    return Summary(
        connections=len(conns),
        partial_connections=sum(1 for c in conns if c.partial),
        requests=len(reqs),
        responses=sum(1 for c in conns for e in c.events if e.type == "response"),
        unanswered_requests=len(reqs) - answered,
        closed_by_client=sum(1 for c in conns if c.closed_by == "client"),
        closed_by_server=sum(1 for c in conns if c.closed_by == "server"),
        not_closed=sum(1 for c in conns if c.closed_by is None),
        closed_with_rst=sum(1 for c in conns if c.close == "rst"),
        retransmissions=sum(c.retransmissions for c in conns),
        anomalies=sum(len(c.anomalies) for c in conns),
        findings=tuple((t, sum(1 for f in found if f.type == t)) for t in FINDING_TYPES),
    )


def _capture_summary(info: CaptureInfo, stats: TcpStats, ports: tuple[int, ...]) -> CaptureSummary:
    skipped = dict(info.skipped)
    if stats.other_ports:
        skipped["other_ports"] = stats.other_ports
    return CaptureSummary(
        path=info.path,
        format=info.format,
        link_types=tuple(info.link_types),
        packets=info.packets,
        tcp_segments=info.tcp_segments,
        upstream_segments=stats.upstream_segments,
        skipped=tuple(sorted((k, v) for k, v in skipped.items() if v)),
        ports=ports,
        first_ts_ns=info.first_ts_ns,
        last_ts_ns=info.last_ts_ns,
        warnings=tuple(info.warnings),
    )


def _no_traffic(path: str, info: CaptureInfo, stats: TcpStats, ports: tuple[int, ...]) -> str:
    want = ", ".join(str(p) for p in ports)
    if info.tcp_segments == 0:
        why = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(info.skipped.items()))
        return f"{path}: no TCP traffic at all in {info.packets} packets ({why})"
    top = ", ".join(f"{p} ({n} packets)" for p, n in stats.other_port_counts.most_common(3))
    hint = stats.other_port_counts.most_common(1)[0][0]
    return f"{path}: no traffic on port {want}; ports seen most: {top} — try --port {hint}"


def analyze(
    path: str | os.PathLike[str],
    port: int | Iterable[int] = DEFAULT_PORT,
    *,
    progress: Progress | None = None,
) -> Analysis:
    """Analyze one capture of nginx↔upstream traffic.

    ``port`` is the upstream's port (or several): the side on it is the server. Raises a
    :class:`~pcapkit.errors.KaflowError` subclass, with a one-line message, for anything that is
    not a usable capture; never returns a half-read result silently (what was skipped, and why,
    is in ``Analysis.capture``).
    """
    ports = (port,) if isinstance(port, int) else tuple(sorted(set(port)))
    name = os.fspath(path)
    with open_capture(path) as cap:
        rec = Reconstructor(frozenset(ports))
        # label each connection as soon as it is finished: only the small result is kept
        connections: list[Connection] = []
        for batch in cap:
            connections.extend(build_connection(tc) for tc in rec.feed(batch))
            if progress is not None:
                progress(*cap.progress())
        connections.extend(build_connection(tc) for tc in rec.finish())
        info = cap.info
    if rec.stats.upstream_segments == 0:
        raise NoUpstreamTrafficError(_no_traffic(name, info, rec.stats, ports))
    return _conclude(connections, _capture_summary(info, rec.stats, ports))


def assemble(tcs: Iterable[TcpConnection], capture: CaptureSummary) -> Analysis:
    """The stages after TCP reconstruction: label, classify, diagnose, summarize."""
    return _conclude([build_connection(tc) for tc in tcs], capture)


def _conclude(built: list[Connection], capture: CaptureSummary) -> Analysis:
    """Classify, diagnose and summarize labelled connections.

    Connections are numbered here, 1-based in order of their first packet, so the ids do not
    depend on the order in which the reconstruction finished them.
    """
    built.sort(key=lambda c: c.first_frame)
    connections = tuple(c if c.id == i else replace(c, id=i) for i, c in enumerate(built, start=1))
    findings = tuple(classify.classify(connections))
    return Analysis(
        capture=capture,
        connections=connections,
        findings=findings,
        summary=summarize(connections, findings),
        advice=diagnose.diagnose(connections, findings),
    )


CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap", ".pcap.gz", ".pcapng.gz", ".cap.gz")


def expand(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The captures named: files as given, folders as the capture files directly inside them."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir() and any(
            c.name.endswith(CAPTURE_SUFFIXES) for c in p.iterdir() if c.is_file()
        ):
            out.extend(
                sorted(c for c in p.iterdir() if c.is_file() and c.name.endswith(CAPTURE_SUFFIXES))
            )
        else:
            out.append(p)  # a missing path or an empty folder fails in analyze(), with a message
    return out


def _one(path: Path, ports: tuple[int, ...]) -> Analysis | KaflowError:
    try:
        return analyze(path, ports)
    except KaflowError as e:
        return e


def analyze_many(
    paths: Iterable[str | os.PathLike[str]],
    port: int | Iterable[int] = DEFAULT_PORT,
    *,
    jobs: int | None = None,
) -> Iterator[tuple[Path, Analysis | KaflowError]]:
    """Analyze several captures, one per process, yielding each result in the order given.

    A capture that cannot be read yields its :class:`~pcapkit.errors.KaflowError` instead of
    stopping the others. ``jobs`` defaults to the number of CPUs (at most one per capture).
    """
    files = expand(paths)
    ports = (port,) if isinstance(port, int) else tuple(sorted(set(port)))
    workers = min(jobs or os.cpu_count() or 1, len(files))
    if workers <= 1:
        for f in files:
            yield f, _one(f, ports)
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_one, f, ports) for f in files]
        for f, fut in zip(files, futures, strict=True):
            yield f, fut.result()

"""``analyze()``: the pipeline from a capture file to an :class:`~pcapkit.model.Analysis`.

capture (SegmentBatch) → tcp (TcpConnection) → label: http + machine (Connection with events) →
classify (Finding) → Analysis. Each stage is its own module; this one only wires them together
and builds the public values. It never prints: progress goes to a callback the caller supplies.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from pcapkit import classify, diagnose
from pcapkit.capture import CaptureInfo, CaptureReader, FileBytes, SegmentBatch, open_capture
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
from pcapkit.store import FindingSpool, Spool, TextCodec, in_order
from pcapkit.tcp import Reconstructor, TcpConnection, TcpStats

DEFAULT_PORT = 8080

Progress = Callable[[int, int], None]
"""Called with (bytes read so far, file size) after each window of the capture."""


@dataclass(slots=True)
class _Totals:
    """The summary's counts, added up one connection at a time."""

    connections: int = 0
    partial: int = 0
    requests: int = 0
    responses: int = 0
    unanswered: int = 0
    by_client: int = 0
    by_server: int = 0
    not_closed: int = 0
    rst: int = 0
    retransmissions: int = 0
    anomalies: int = 0

    def add(self, c: Connection) -> None:
        self.connections += 1
        self.partial += c.partial
        reqs = c.requests
        self.requests += len(reqs)
        self.unanswered += sum(1 for r in reqs if r.responded_at_ns is None)
        self.responses += sum(1 for e in c.events if e.type == "response")
        if c.closed_by == "client":
            self.by_client += 1
        elif c.closed_by == "server":
            self.by_server += 1
        else:
            self.not_closed += 1
        self.rst += c.close == "rst"
        self.retransmissions += c.retransmissions
        self.anomalies += len(c.anomalies)

    def summary(self, findings: Iterable[Finding]) -> Summary:
        kinds = findings.kinds() if isinstance(findings, FindingSpool) else _kinds(findings)
        return Summary(
            connections=self.connections,
            partial_connections=self.partial,
            requests=self.requests,
            responses=self.responses,
            unanswered_requests=self.unanswered,
            closed_by_client=self.by_client,
            closed_by_server=self.by_server,
            not_closed=self.not_closed,
            closed_with_rst=self.rst,
            retransmissions=self.retransmissions,
            anomalies=self.anomalies,
            findings=tuple((t, kinds[t]) for t in FINDING_TYPES),
        )


def _kinds(findings: Iterable[Finding]) -> Counter[str]:
    return Counter(f.type for f in findings)


def summarize(connections: Iterable[Connection], findings: Iterable[Finding]) -> Summary:
    totals = _Totals()
    for c in connections:
        totals.add(c)
    return totals.summary(findings)


Keep = Callable[[Connection, bool], bool]
"""Whether to keep a connection in the result, asked once per connection as it is finished, with
whether it has a finding of its own (a retry is known only later). Summary, findings and advice
always cover every connection."""


class _Scan:
    """The stages after labelling, fed one connection at a time as the reconstruction ends it."""

    def __init__(
        self,
        keep: Keep | None,
        spool: bool | TextCodec,
        spool_path: str | None = None,
        spill: BinaryIO | None = None,
    ) -> None:
        self.keep = keep
        self.totals = _Totals()
        self.evidence = diagnose.Evidence()
        text = None if isinstance(spool, bool) else spool
        self.spool = Spool(path=spool_path, text=text) if spool else None
        found = None
        if spool:
            found = FindingSpool(path=None if spool_path is None else spool_path + ".findings")
        self.classifier = classify.Classifier(spill=spill, found=found)
        self.kept: list[Connection] = []

    def add(self, conn: Connection) -> None:
        self.totals.add(conn)
        self.evidence.add(conn)
        flagged = self.classifier.add(conn)
        if self.keep is None or self.keep(conn, flagged):
            if self.spool is not None:
                self.spool.add(conn)
            else:
                self.kept.append(conn)

    def conclude(self, capture: CaptureSummary) -> Analysis:
        kept = self.spool.seal() if self.spool is not None else in_order(self.kept)
        return finished(capture, kept, self.classifier.finish(), self.totals, self.evidence)


def finished(
    capture: CaptureSummary,
    connections: Sequence[Connection],
    findings: Sequence[Finding],
    totals: _Totals,
    evidence: diagnose.Evidence,
) -> Analysis:
    """The analysis, once every connection has been counted and classified."""
    return Analysis(
        capture=capture,
        connections=connections,
        findings=findings,
        summary=totals.summary(findings),
        advice=diagnose.advise(findings, evidence),
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


@contextmanager
def reconstructor(cap: CaptureReader, ports: tuple[int, ...]) -> Iterator[Reconstructor]:
    """The TCP stage for this capture: payloads are read back from a plain file when needed
    (memory then follows the open connections' packets, not their bytes), held otherwise."""
    where = cap.rereadable
    if where is None:
        yield Reconstructor(frozenset(ports))
        return
    with FileBytes(where) as source:
        yield Reconstructor(frozenset(ports), payloads=source)


def scan_file(
    path: str | os.PathLike[str],
    ports: tuple[int, ...],
    add: Callable[[Connection], None],
    *,
    after_batch: Callable[[CaptureReader], None] | None = None,
    select: Callable[[SegmentBatch], SegmentBatch] | None = None,
) -> tuple[CaptureInfo, TcpStats]:
    """Read the capture once and hand each labelled connection to ``add`` as soon as it ends.

    ``select`` narrows each batch first (a process's share of a split capture); ``after_batch``
    sees the reader after each batch (progress).
    """
    with open_capture(path) as cap, reconstructor(cap, ports) as rec:
        for batch in cap:
            for tc in rec.feed(batch if select is None else select(batch)):
                add(build_connection(tc))
            if after_batch is not None:
                after_batch(cap)
        for tc in rec.finish():
            add(build_connection(tc))
        return cap.info, rec.stats


def analyze(
    path: str | os.PathLike[str],
    port: int | Iterable[int] = DEFAULT_PORT,
    *,
    progress: Progress | None = None,
    keep: Keep | None = None,
    spool: bool | TextCodec = False,
    jobs: int = 1,
) -> Analysis:
    """Analyze one capture of nginx↔upstream traffic.

    ``port`` is the upstream's port (or several): the side on it is the server. Raises a
    :class:`~pcapkit.errors.KaflowError` subclass, with a one-line message, for anything that is
    not a usable capture; never returns a half-read result silently (what was skipped, and why,
    is in ``Analysis.capture``).

    Each connection is labelled and classified as soon as the reconstruction finishes it, and
    then dropped unless kept: ``keep`` chooses (default: all), ``spool=True`` keeps them in a
    temporary file instead of memory (or, given a :class:`~pcapkit.store.TextCodec`, as lines of
    text read back with ``connections.lines()``). With both, memory follows the connections open
    at once, not the size of the capture. ``jobs`` > 1 shares the connections out to that many
    processes (:mod:`pcapkit.parallel`); the result is the same.
    """
    ports = (port,) if isinstance(port, int) else tuple(sorted(set(port)))
    name = os.fspath(path)
    if jobs > 1:
        from pcapkit.parallel import analyze_split

        if not os.path.isfile(name):
            open_capture(path).close()  # the reader's one-line error for what is not a file
        return analyze_split(name, ports, jobs, progress=progress, keep=keep, spool=spool)
    scan = _Scan(keep, spool)
    report = None if progress is None else (lambda cap: progress(*cap.progress()))
    info, stats = scan_file(path, ports, scan.add, after_batch=report)
    if stats.upstream_segments == 0:
        raise NoUpstreamTrafficError(_no_traffic(name, info, stats, ports))
    return scan.conclude(_capture_summary(info, stats, ports))


def assemble(tcs: Iterable[TcpConnection], capture: CaptureSummary) -> Analysis:
    """The stages after TCP reconstruction, for connections at hand: label, classify, diagnose.

    Connections are numbered here, 1-based in order of their first packet, whatever order they
    come in (the reconstruction numbers them the same way as it goes).
    """
    built = sorted((build_connection(tc) for tc in tcs), key=lambda c: c.first_frame)
    scan = _Scan(None, spool=False)
    for i, c in enumerate(built, start=1):
        scan.add(c if c.id == i else replace(c, id=i))
    return scan.conclude(capture)


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


def _one(
    path: Path, ports: tuple[int, ...], keep: Callable[[], Keep] | None
) -> Analysis | KaflowError:
    try:
        return analyze(path, ports, keep=keep() if keep is not None else None)
    except KaflowError as e:
        return e


def analyze_many(
    paths: Iterable[str | os.PathLike[str]],
    port: int | Iterable[int] = DEFAULT_PORT,
    *,
    jobs: int | None = None,
    keep: Callable[[], Keep] | None = None,
) -> Iterator[tuple[Path, Analysis | KaflowError]]:
    """Analyze several captures, one per process, yielding each result in the order given.

    A capture that cannot be read yields its :class:`~pcapkit.errors.KaflowError` instead of
    stopping the others. ``jobs`` defaults to the number of CPUs (at most one per capture).
    ``keep`` makes a fresh ``analyze(keep=)`` choice for each capture (it must pickle).
    """
    files = expand(paths)
    ports = (port,) if isinstance(port, int) else tuple(sorted(set(port)))
    workers = min(jobs or os.cpu_count() or 1, len(files))
    if workers <= 1:
        for f in files:
            yield f, _one(f, ports, keep)
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_one, f, ports, keep) for f in files]
        for f, fut in zip(files, futures, strict=True):
            yield f, fut.result()

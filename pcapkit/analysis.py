"""``analyze()``: the pipeline from a capture file to an :class:`~pcapkit.model.Analysis`.

core (capture → TCP reconstruction → HTTP labelling, compiled: :mod:`pcapkit._core`) → columns →
connections (:class:`~pcapkit.model.Connection`) → classify (Finding) → diagnose (Advice) →
Analysis. This module only wires the stages together and builds the public values. It never
prints: progress goes to a callback the caller supplies.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from pcapkit import classify, diagnose, vantage
from pcapkit.client import ClientEvidence, ClientKind, given
from pcapkit.connections import Suspect, connections, suspects
from pcapkit.errors import (
    KaflowError,
    NotOneCaptureError,
    NoUpstreamTrafficError,
    WrongPortError,
)
from pcapkit.model import (
    FINDING_TYPES,
    Analysis,
    CaptureFile,
    CaptureSummary,
    Connection,
    ConnectionRef,
    Finding,
    Summary,
)
from pcapkit.series import Edge, describe, in_time_order, missing_warning, parse_edge
from pcapkit.store import FindingSpool, Spool, TextCodec, in_order

if TYPE_CHECKING:
    from pcapkit._core import Batch, CaptureFacts, Connections

DEFAULT_PORT = 8080

Progress = Callable[[int, int], None]
"""Called with (bytes of the file read so far, file size) as the core hands over connections."""

Paths = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
"""One capture file, or the files of one capture (a rotated series)."""


def _names(path: Paths) -> list[str]:
    """The files named, a folder standing for the captures in it."""
    given = [path] if isinstance(path, str | os.PathLike) else list(path)
    if not given:
        raise KaflowError("no capture file given")
    return [os.fspath(p) for p in expand(given)]


# a plain class, not a dataclass: a dataclass costs ~1 ms of start-up to create (Python 3.11
# compiles each of its methods), and nothing compares or prints this one
class Totals:
    """The summary's counts, added up a batch of columns at a time."""

    __slots__ = (
        "anomalies",
        "by_client",
        "by_server",
        "connections",
        "not_closed",
        "one_sided",
        "partial",
        "requests",
        "responses",
        "retransmissions",
        "rst",
        "unanswered",
    )

    def __init__(self) -> None:
        self.connections = 0
        self.partial = 0
        self.requests = 0
        self.responses = 0
        self.unanswered = 0
        self.by_client = 0
        self.by_server = 0
        self.not_closed = 0
        self.rst = 0
        self.retransmissions = 0
        self.anomalies = 0
        self.one_sided: Counter[str] = Counter()

    def add(self, c: Connections) -> None:
        self.connections += len(c.conn_id)
        self.partial += sum(c.conn_partial)
        self.requests += sum(c.conn_requests)
        self.unanswered += sum(c.conn_unanswered)
        self.responses += sum(c.conn_responses)
        by = c.conn_closed_by
        self.by_client += by.count("client")
        self.by_server += by.count("server")
        self.not_closed += by.count(None)
        self.rst += c.conn_close.count("rst")
        self.retransmissions += sum(c.conn_retransmissions)
        self.anomalies += sum(c.conn_anomalies)
        self.one_sided.update(s for s in c.conn_one_sided if s is not None)

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


Keep = Callable[[ConnectionRef, bool], bool]
"""Whether to keep a connection in the result, asked once per connection as it is finished, with
whether it has a finding of its own (a retry is known only later). Summary, findings and advice
always cover every connection; only the connections kept are built as objects."""


class _Scan:
    """The stages after labelling, fed one batch of finished connections at a time."""

    def __init__(
        self, keep: Keep | None, spool: bool | TextCodec, client: ClientKind | None = None
    ) -> None:
        self.keep = keep
        self.client = client
        self.totals = Totals()
        self.evidence = diagnose.Evidence()
        self.client_evidence = ClientEvidence()
        text = None if isinstance(spool, bool) else spool
        self.spool = Spool(text=text) if spool else None
        self.classifier = classify.Classifier(found=FindingSpool() if spool else None)
        self.kept: list[Connection] = []
        self.handshakes = vantage.Handshakes()

    def add(self, b: Batch) -> None:
        """Count, classify and keep a batch's connections: objects are built only for those
        that may have findings of their own and those kept."""
        c = b.connections
        self.totals.add(c)
        self.evidence.add(c)
        if self.client is None:
            self.client_evidence.add(c.conn_request_headers)
        self.classifier.index(b.request_rows())
        self.handshakes.add(c)
        self.classifier.servers(c.conn_id, c.conn_server)
        judged, looked = to_judge(b)
        own = {i: self.classifier.judge(f, looked.get(i)) for i, f in judged}
        keep = self.keep
        if keep is None:
            wanted: list[int] = list(range(len(c.conn_id)))
        else:
            refs = map(
                ConnectionRef,
                c.conn_id,
                c.conn_client_port,
                c.conn_requests,
                (own.get(i, ()) for i in range(len(c.conn_id))),
                c.conn_server,
                c.conn_opened_at_ns,
                c.conn_closed_by,
                c.conn_close,
                c.conn_closed_at_ns,
                c.conn_last_seen_ns,
                c.conn_last_response_ns,
            )
            wanted = [i for i, ref in enumerate(refs) if keep(ref, bool(ref.findings))]
        if self.spool is not None:
            self.spool.add_batch(b, wanted)  # objects only once read
            return
        self.kept.extend(connections(b, wanted))

    def conclude(self, capture: CaptureSummary) -> Analysis:
        kept = self.spool.seal() if self.spool is not None else in_order(self.kept)
        client = self.client_evidence.decide(self.client)
        host = self.handshakes.judge()
        capture = replace(capture, host=host)
        findings = self.classifier.finish(client, host.seen_from)
        sided = self.totals.one_sided
        if sided:
            capture = replace(capture, warnings=(*capture.warnings, _one_sided(sided, client.name)))
        return Analysis(
            capture=capture,
            connections=kept,
            findings=findings,
            summary=self.totals.summary(findings),
            advice=diagnose.advise(findings, self.evidence, client),
            client=client,
        )


def to_judge(b: Batch) -> tuple[list[tuple[int, classify.Facts]], dict[int, Suspect]]:
    """A batch's connections that may have findings of their own, by position with their
    facts, and as the rules read them those whose rules need more than the facts."""
    c = b.connections
    maybe = [
        i
        for i, (by, est) in enumerate(zip(c.conn_closed_by, c.conn_established_at_ns, strict=True))
        if classify.may_have_findings(by, est)
    ]
    judged = list(zip(maybe, classify.facts(c, maybe), strict=True))
    need = [i for i, f in judged if classify.needs_connection(f)]
    return judged, dict(zip(need, suspects(b, need), strict=True))


def _one_sided(sided: Counter[str], client: str = "nginx") -> str:
    """The warning for connections seen in one direction only."""
    parts = [
        f"{n:,} with only {client if side == 'client' else 'the upstream'}'s packets"
        for side, n in sorted(sided.items())
    ]
    n = sum(sided.values())
    return (
        f"one-sided capture: {n:,} connection{'s' if n != 1 else ''} seen in one direction only "
        f"({', '.join(parts)}): an asymmetric route or a mirror port? Requests there cannot be "
        f"paired with answers, and a SYN followed by {client}'s ACKs is not a failed connect"
    )


def capture_summary(
    facts: CaptureFacts, ports: tuple[int, ...], names: list[str], merged: bool
) -> CaptureSummary:
    warnings = list(facts.warnings)
    files: tuple[CaptureFile, ...] = ()
    series = None
    if len(names) > 1:
        files = in_time_order(
            [
                CaptureFile(
                    path=f.path,
                    format=f.format,
                    link_types=tuple(f.link_types),
                    packets=f.packets,
                    first_ts_ns=f.first_ts_ns,
                    last_ts_ns=f.last_ts_ns,
                    first_frame=f.first_frame,
                    last_frame=f.last_frame,
                    warnings=tuple(f.warnings),
                )
                for f in facts.files
            ]
        )
        series = describe(names, files, merged)
        missing = missing_warning(names)
        if missing is not None:
            warnings.append(missing)
    if facts.ts_backwards:
        n, back = facts.ts_backwards, facts.ts_max_back_ns
        warnings.append(
            f"{n:,} packet{'s' if n != 1 else ''} stamped earlier than one before "
            f"{'them' if n != 1 else 'it'} in the file (at most {back / 1e6:.3f} ms back): the "
            "capture wrote packets out of order (-i any, a multi-queue NIC); timelines follow "
            "the timestamps, and a SYN-ACK stamped before its SYN is put after it"
        )
    wrong = sum(n for _, n in facts.syns_from_upstream)
    if wrong:
        port = _where_syns_go(facts)
        want = ", ".join(str(p) for p in ports)
        warnings.append(
            f"{wrong} connection attempt{'s' if wrong != 1 else ''} went the other way (SYNs "
            f"from port {want} to port {port}): those connections are read with their roles "
            "reversed"
        )
    skipped = dict(facts.skipped)
    if facts.other_ports:
        skipped["other_ports"] = facts.other_ports
    if facts.outside_window:
        skipped["outside_window"] = facts.outside_window
    return CaptureSummary(
        path=files[0].path if files else facts.path,
        format=facts.format,
        link_types=tuple(facts.link_types),
        packets=facts.packets,
        tcp_segments=facts.tcp_segments,
        upstream_segments=facts.upstream_segments,
        skipped=tuple(sorted((k, v) for k, v in skipped.items() if v)),
        ports=ports,
        first_ts_ns=facts.first_ts_ns,
        last_ts_ns=facts.last_ts_ns,
        warnings=tuple(warnings),
        files=files,
        series=series,
        since_ns=facts.since_ns,
        until_ns=facts.until_ns,
    )


# Packets kaflow cannot look inside, by skip reason: what the error names when no TCP was found.
_UNREAD = {
    "gre_not_read": "TCP inside GRE carrying a protocol other than IP, Ethernet or ERSPAN",
    "udp_tunnel_not_read": "TCP inside GTP-U, L2TP, VXLAN-GPE or MPLS-over-UDP tunnels",
    "esp": "TCP inside IPsec ESP (encrypted)",
}


def _no_traffic(path: str, facts: CaptureFacts, ports: tuple[int, ...]) -> str:
    want = ", ".join(str(p) for p in ports)
    if facts.tcp_segments == 0:
        why = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(facts.skipped))
        unread = [what for k, what in _UNREAD.items() if dict(facts.skipped).get(k)]
        if unread:
            return (
                f"{path}: no TCP traffic read in {facts.packets} packets: {'; '.join(unread)} "
                f"is not read ({why})"
            )
        return f"{path}: no TCP traffic at all in {facts.packets} packets ({why})"
    seen = Counter(dict(facts.other_port_counts))
    top = ", ".join(f"{p} ({n} packets)" for p, n in seen.most_common(3))
    hint = seen.most_common(1)[0][0]
    return f"{path}: no traffic on port {want}; ports seen most: {top} — try --port {hint}"


def scan_file(
    path: Paths,
    ports: tuple[int, ...],
    add: Callable[[Batch], None],
    *,
    progress: Progress | None = None,
    merge: bool = False,
    since: Edge | None = None,
    until: Edge | None = None,
) -> CaptureSummary:
    """Run the core over the capture (its files merged in time order), handing each batch of
    labelled connections to ``add`` as soon as the core finishes them; the capture's summary at
    the end."""
    from pcapkit import _core

    names = _names(path)
    name = names[0] if len(names) == 1 else ", ".join(names)
    if not merge:
        _one_capture(names)
    scan = _core.Scan(names, ports, merge, since, until)
    for batch in scan:
        add(batch)
        if progress is not None:
            progress(*scan.progress())
    facts = scan.facts()
    check_facts(facts, name, ports)
    return capture_summary(facts, ports, names, merge)


def check_facts(facts: CaptureFacts, name: str, ports: tuple[int, ...]) -> None:
    """Raise the one-line error for a capture read to its end that holds nothing to analyze:
    no packet on the upstream port (in the time window), or the port given is the client's."""
    if facts.upstream_segments == 0 and facts.outside_window:
        raise NoUpstreamTrafficError(_none_inside(name, facts))
    if facts.upstream_segments == 0:
        raise NoUpstreamTrafficError(_no_traffic(name, facts, ports))
    wrong = sum(n for _, n in facts.syns_from_upstream)
    if wrong > facts.syns_to_upstream and facts.syn_acks_to_upstream:
        # handshakes the wrong way round, answered: not stray SYNs
        raise WrongPortError(_wrong_way(name, facts, ports, wrong))


def _one_capture(names: list[str]) -> None:
    """Files that cannot be pieces of one capture, whatever their times: two with one name (in
    different folders) were written by two captures — a series' pieces are named apart."""
    seen: dict[str, str] = {}
    for n in names:
        base = os.path.basename(n)
        if base in seen and n != "-":
            raise NotOneCaptureError(
                f"{seen[base]} and {n} have the same name: captures of two hosts, not pieces of "
                "one capture"
            )
        seen[base] = n


def _none_inside(path: str, facts: CaptureFacts) -> str:
    from datetime import UTC, datetime

    def at(ns: int | None) -> str:
        if ns is None:
            return "the end"
        return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S.%f UTC")

    return (
        f"{path}: no packets on the upstream port from {at(facts.since_ns)} to "
        f"{at(facts.until_ns)}; the capture runs from {at(facts.first_ts_ns)} to "
        f"{at(facts.last_ts_ns)}"
    )


def _where_syns_go(facts: CaptureFacts) -> int:
    """The port most SYNs sent from the upstream port went to (the lower on a tie)."""
    port, _ = max(facts.syns_from_upstream, key=lambda pn: (pn[1], -pn[0]))
    return port


def _wrong_way(path: str, facts: CaptureFacts, ports: tuple[int, ...], wrong: int) -> str:
    """Most handshakes start from the port given: it is the client's, and the upstream's port
    is where those SYNs go."""
    port = _where_syns_go(facts)
    want = ", ".join(str(p) for p in ports)
    return (
        f"{path}: port {want} is the client's side of these connections ({wrong} "
        f"SYN{'s leave' if wrong != 1 else ' leaves'} from it, {facts.syns_to_upstream} arrive "
        f"on it); they go to port {port}, the upstream's — try --port {port}"
    )


def analyze(
    path: Paths,
    port: int | Iterable[int] = DEFAULT_PORT,
    *,
    progress: Progress | None = None,
    keep: Keep | None = None,
    spool: bool | TextCodec = False,
    merge: bool = False,
    since: str | Edge | None = None,
    until: str | Edge | None = None,
    client: ClientKind | None = None,
) -> Analysis:
    """Analyze one capture of nginx↔upstream traffic.

    ``path`` is the capture file, or a list of the files one capture came in, or a folder of
    them (a rotated series: tcpdump ``-C``/``-G``/``-W``, ``editcap -c``, dumpcap's ring
    buffer): they are merged by timestamp, as one stream, so a connection spanning files is one
    connection. Files whose time ranges overlap, or two of which have the same name (captures of
    two hosts), raise :class:`~pcapkit.errors.NotOneCaptureError` unless ``merge=True``.
    ``since`` / ``until`` restrict the analysis to packets stamped in ``[since, until)``:
    ``"+10m"`` (after the capture's first packet) or an ISO 8601 time (local time without an
    offset); connections crossing the edges are partial, as at a capture's.

    ``client`` is the proxy that sent the requests ("nginx", "haproxy", "other"): its rules
    pair retries and word the findings. None: told by how the requests spell their header names
    (HAProxy 2 writes them in lower case), else nginx; ``Analysis.client`` says which, and how
    (see :mod:`pcapkit.client`).

    ``port`` is the upstream's port (or several): the side on it is the server. Raises a
    :class:`~pcapkit.errors.KaflowError` subclass, with a one-line message, for anything that is
    not a usable capture; never returns a half-read result silently (what was skipped, and why,
    is in ``Analysis.capture``).

    Each connection is labelled and classified as soon as the reconstruction finishes it, and
    then dropped unless kept: ``keep`` chooses (default: all), ``spool=True`` keeps them in a
    temporary file instead of memory (or, given a :class:`~pcapkit.store.TextCodec`, as a
    report's text read back with ``connections.records()``). With both, memory follows the
    connections open at once, not the size of the capture. The core reads and rebuilds
    connections on a thread of its own while Python classifies the ones it has finished.
    """
    ports = (port,) if isinstance(port, int) else tuple(sorted(set(port)))
    edges = [
        parse_edge(e, name) if isinstance(e, str) else e
        for e, name in ((since, "since"), (until, "until"))
    ]
    a, b = edges
    if a is not None and b is not None and a[0] == b[0] and a[1] >= b[1]:
        raise KaflowError("the time window is empty: since must come before until")
    if client is not None:
        given(client)  # a ValueError for a name it does not know, before the capture is read
    scan = _Scan(keep, spool, client)
    capture = scan_file(
        path, ports, scan.add, progress=progress, merge=merge, since=edges[0], until=edges[1]
    )
    return scan.conclude(capture)


CAPTURE_NAME = re.compile(r"\.(pcap|pcapng|cap)\d*(\.gz)?$")
"""A capture file's name in a folder: its suffix, numbered as tcpdump -C numbers a series
(``dump.pcap``, ``dump.pcap1``), gzip-compressed or not."""


def expand(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The captures named: files as given, folders as the capture files directly inside them."""
    out: list[Path] = []
    for p in map(Path, paths):
        found = (
            sorted(c for c in p.iterdir() if c.is_file() and CAPTURE_NAME.search(c.name))
            if p.is_dir()
            else []
        )
        if found:
            out.extend(found)
        else:
            out.append(p)  # a missing path or an empty folder fails in analyze(), with a message
    return out


def _one(
    path: Path,
    ports: tuple[int, ...],
    keep: Callable[[], Keep] | None,
    since: Edge | None = None,
    until: Edge | None = None,
    client: ClientKind | None = None,
) -> Analysis | KaflowError:
    try:
        k = keep() if keep is not None else None
        return analyze(path, ports, keep=k, since=since, until=until, client=client)
    except KaflowError as e:
        return e


def analyze_many(
    paths: Iterable[str | os.PathLike[str]],
    port: int | Iterable[int] = DEFAULT_PORT,
    *,
    jobs: int | None = None,
    keep: Callable[[], Keep] | None = None,
    since: Edge | None = None,
    until: Edge | None = None,
    client: ClientKind | None = None,
) -> Iterator[tuple[Path, Analysis | KaflowError]]:
    """Analyze several captures, each on its own (not as one: that is ``analyze([...])``), one
    per process, yielding each result in the order given.

    A capture that cannot be read yields its :class:`~pcapkit.errors.KaflowError` instead of
    stopping the others. ``jobs`` defaults to the number of CPUs (at most one per capture).
    ``keep`` makes a fresh ``analyze(keep=)`` choice for each capture (it must pickle).
    """
    files = expand(paths)
    ports = (port,) if isinstance(port, int) else tuple(sorted(set(port)))
    workers = min(jobs or os.cpu_count() or 1, len(files))
    if workers <= 1:
        for f in files:
            yield f, _one(f, ports, keep, since, until, client)
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_one, f, ports, keep, since, until, client) for f in files]
        for f, fut in zip(files, futures, strict=True):
            yield f, fut.result()

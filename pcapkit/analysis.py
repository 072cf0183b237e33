"""``analyze()``: the pipeline from a capture file to an :class:`~pcapkit.model.Analysis`.

capture (SegmentBatch) → tcp (TcpConnection) → http + machine (Connection with events) →
classify (Finding) → Analysis. Each stage is its own module; this one only wires them together
and builds the public values. It never prints: progress goes to a callback the caller supplies.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from pcapkit import classify, diagnose, machine
from pcapkit.capture import CaptureInfo, open_capture
from pcapkit.errors import KaflowError, NoUpstreamTrafficError
from pcapkit.http import HttpMessage, burst_starts, frame_requests, frame_responses
from pcapkit.model import (
    FINDING_TYPES,
    Analysis,
    Anomaly,
    CaptureSummary,
    CloseKind,
    Connection,
    Event,
    EventType,
    Finding,
    Request,
    Side,
    Summary,
)
from pcapkit.tcp import Flow, Reconstructor, TcpConnection, TcpStats

DEFAULT_PORT = 8080

Progress = Callable[[int, int], None]
"""Called with (bytes read so far, file size) after each window of the capture."""

_ORDER: dict[EventType, int] = {
    "syn": 0,
    "syn_ack": 1,
    "request": 2,
    "response": 3,
    "fin": 4,
    "rst": 5,
}


def _pair(requests: list[HttpMessage], responses: list[HttpMessage]) -> list[int | None]:
    """For each response, the index of the request it answers (HTTP/1.1 answers in order).

    A response earlier than every pending request answers one sent before the capture began;
    interim 1xx responses point at their request without using it up.
    """
    pending = deque(range(len(requests)))
    out: list[int | None] = []
    for resp in responses:
        head = pending[0] if pending else None
        if head is None or (requests[head].ts_ns, requests[head].frame) > (resp.ts_ns, resp.frame):
            out.append(None)
            continue
        out.append(head)
        if resp.status is None or resp.status >= 200:
            pending.popleft()
    return out


def _mark_events(flow: Flow, side: Side) -> list[Event]:
    out: list[Event] = []
    if flow.syn is not None:
        note = f"sent {flow.syn_count} times" if flow.syn_count > 1 else None
        kind: EventType = "syn" if side == "client" else "syn_ack"
        out.append(Event(flow.syn.ts_ns, kind, side, flow.syn.frame, note=note))
    if flow.fin is not None:
        out.append(Event(flow.fin.ts_ns, "fin", side, flow.fin.frame))
    if flow.rst is not None:
        out.append(Event(flow.rst.ts_ns, "rst", side, flow.rst.frame))
    return out


def _ignored_rsts(flow: Flow, side: Side, ts: int, frame: int) -> list[Anomaly]:
    if not flow.ignored_rsts:
        return []
    n = flow.ignored_rsts
    what = f"{n} RST{'s' if n != 1 else ''} far outside the stream ignored (blind resets?)"
    return [Anomaly(ts, frame, side, what)]


def build_connection(tc: TcpConnection) -> Connection:
    """Label one reconstructed TCP connection: HTTP messages, events, states, anomalies."""
    up, down = tc.to_server, tc.to_client
    reqs, req_notes = frame_requests(
        up.stream, burst_starts(up.stream, down.stream), midstream=tc.partial
    )
    resps, resp_notes = frame_responses(
        down.stream,
        [r.method for r in reqs],
        burst_starts(down.stream, up.stream),
        midstream=tc.partial,
    )
    answers = _pair(reqs, resps)
    final: dict[int, HttpMessage] = {}
    for resp, idx in zip(resps, answers, strict=True):
        if idx is not None and (resp.status is None or resp.status >= 200):
            final[idx] = resp

    blind = "payload not captured"
    events = _mark_events(up, "client") + _mark_events(down, "server")
    # positional construction: this runs once per HTTP message, millions of times on big captures
    events.extend(
        [
            Event(
                m.ts_ns,
                "request",
                "client",
                m.frame,
                m.method,
                m.target,
                m.host,
                None,
                False,
                i,
                m.length,
                None if m.parsed else blind,
            )
            for i, m in enumerate(reqs)
        ]
    )
    events.extend(
        [
            Event(
                m.ts_ns,
                "response",
                "server",
                m.frame,
                None,
                None,
                None,
                m.status,
                m.connection_close,
                idx,
                m.length,
                None if m.parsed else blind,
            )
            for m, idx in zip(resps, answers, strict=True)
        ]
    )
    if events:
        order = _ORDER
        events.sort(key=lambda e: (e.time_ns, e.frame, order[e.type]))

    requests = []
    for i, m in enumerate(reqs):
        r = final.get(i)
        if r is None:
            requests.append(
                Request(i, m.method, m.target, m.host, m.ts_ns, m.frame, None, None, None, False)
            )
        else:
            requests.append(
                Request(
                    i,
                    m.method,
                    m.target,
                    m.host,
                    m.ts_ns,
                    m.frame,
                    r.status,
                    r.ts_ns,
                    r.frame,
                    r.connection_close,
                )
            )

    start = machine.State.ESTABLISHED if tc.partial else machine.State.START
    run = machine.run(events, start)
    closes = [e for e in events if e.type in ("fin", "rst")]
    first_close = closes[0] if closes else None
    closed_by: Side | None = first_close.side if first_close else None
    close: CloseKind | None = None
    if first_close is not None:
        close = "fin" if first_close.type == "fin" else "rst"

    limit = (first_close.time_ns, first_close.frame) if first_close else None
    st = down.stream
    data_times = [
        t for t, f in zip(st.ts, st.frames, strict=True) if limit is None or (t, f) <= limit
    ]

    late = "data after its own FIN"
    anomalies = [
        *run.anomalies,
        *(Anomaly(m.ts_ns, m.frame, "client", late) for m in up.late_data),
        *(Anomaly(m.ts_ns, m.frame, "server", late) for m in down.late_data),
        *(Anomaly(n.ts_ns, n.frame, "client", n.what) for n in req_notes),
        *_ignored_rsts(up, "client", tc.first_ts_ns, tc.first_frame),
        *_ignored_rsts(down, "server", tc.first_ts_ns, tc.first_frame),
        *(Anomaly(n.ts_ns, n.frame, "server", n.what) for n in resp_notes),
    ]
    anomalies.sort(key=lambda a: (a.time_ns, a.frame))

    syn_ack = down.syn
    return Connection(
        id=tc.id,
        client=tc.client,
        server=tc.server,
        client_port=tc.client_port,
        ip_version=tc.ip_version,
        opened_at_ns=tc.first_ts_ns,
        first_frame=tc.first_frame,
        opened_by=None if tc.partial else "client",
        established_at_ns=syn_ack.ts_ns if syn_ack is not None and not tc.partial else None,
        closed_by=closed_by,
        close=close,
        closed_at_ns=first_close.time_ns if first_close else None,
        last_seen_ns=tc.last_ts_ns,
        last_response_ns=max(data_times) if data_times else None,
        partial=tc.partial,
        state=machine.zeek_state(events),
        history=machine.history(events),
        syn_count=up.syn_count,
        packets=up.packets + down.packets,
        client_bytes=up.bytes,
        server_bytes=down.bytes,
        retransmissions=up.retransmissions + down.retransmissions,
        requests=tuple(requests),
        events=tuple(events),
        anomalies=tuple(anomalies),
    )


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

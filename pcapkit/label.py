"""Labelling: one reconstructed TCP connection in, one :class:`~pcapkit.model.Connection` out.

tcp (TcpConnection) → **label** (HTTP messages, events, Zeek state and history, anomalies) →
classify. Everything here is about a single connection; nothing looks across connections, so a
connection can be labelled as soon as the reconstruction finishes it and its bytes dropped.
"""

from __future__ import annotations

from collections import deque

from pcapkit import machine
from pcapkit.http import HttpMessage, burst_starts, frame_requests, frame_responses
from pcapkit.model import Anomaly, CloseKind, Connection, Event, EventType, Request, Side
from pcapkit.tcp import Flow, TcpConnection

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

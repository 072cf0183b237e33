"""Labelling: one reconstructed TCP connection in, one :class:`~pcapkit.model.Connection` out.

tcp (TcpConnection) → **label** (HTTP messages, events, Zeek state and history, anomalies) →
classify. Everything here is about a single connection; nothing looks across connections, so a
connection can be labelled as soon as the reconstruction finishes it and its bytes dropped.

This runs once per HTTP message, millions of times on a big capture, so the messages stay plain
rows (:data:`pcapkit.http.Row`) until they become the :class:`Event` and :class:`Request` objects
the result keeps, and every pass over them is one comprehension or one loop.
"""

from __future__ import annotations

from operator import attrgetter

from pcapkit.model import Anomaly, CloseKind, Connection, Event, EventType, Request, Side
from tests.oracle import machine, tls
from tests.oracle.flows import Flow, Mark, Stream, TcpConnection
from tests.oracle.http import HttpNote, Row, frame_rows, header_raw, header_value

_BLIND = "payload not captured"
_REQUEST_ID_HEADERS = (b"x-request-id", b"x-correlation-id", b"request-id")
_LATE = "data after its own FIN"
_WHEN = attrgetter("time_ns", "frame")
_TIME = attrgetter("time_ns")
_FRAME = attrgetter("frame")


def _opening(flow: Flow, side: Side) -> list[Event]:
    """The SYN (client) or SYN-ACK (server) event, if the capture has it."""
    if flow.syn is None:
        return []
    note = f"sent {flow.syn_count} times" if flow.syn_count > 1 else None
    return [
        Event(
            flow.syn.ts_ns,
            "syn" if side == "client" else "syn_ack",
            side,
            flow.syn.frame,
            note=note,
        )
    ]


def _ignored_rsts(flow: Flow, side: Side, ts: int, frame: int) -> list[Anomaly]:
    if not flow.ignored_rsts:
        return []
    n = flow.ignored_rsts
    what = f"{n} RST{'s' if n != 1 else ''} far outside the stream ignored (blind resets?)"
    return [Anomaly(ts, frame, side, what)]


def _notes(notes: list[HttpNote], side: Side) -> list[Anomaly]:
    return [Anomaly(n.ts_ns, n.frame, side, n.what) for n in notes]


def _late(marks: tuple[Mark, ...], side: Side) -> list[Anomaly]:
    return [Anomaly(m.ts_ns, m.frame, side, _LATE) for m in marks]


def build_connection(tc: TcpConnection) -> Connection:
    """Label one reconstructed TCP connection: HTTP messages, events, states, anomalies."""
    up, down = tc.to_server, tc.to_client
    # one framer per connection: TLS when nginx opens with a TLS handshake, HTTP/1.x otherwise
    t = tls.read(up.stream, down.stream, tc.partial) if tls.detect(up.stream, tc.partial) else None
    req_notes: list[HttpNote] = []
    resp_notes: list[HttpNote] = []
    if t is not None:
        reqs, resps = t.requests, t.responses
    else:
        reqs, req_notes = frame_rows("request", up.stream, down.stream, midstream=tc.partial)
        resps, resp_notes = frame_rows(
            "response", down.stream, up.stream, [r[4] for r in reqs], midstream=tc.partial
        )
    pairs = _pairing(reqs, resps)
    tunnel = _tunnel(reqs, resps, pairs, down.stream)
    tunnel_note = None
    if tunnel is not None:
        qi, ri, kind = tunnel
        client_from = reqs[qi][0] + (reqs[qi][9] or 0)
        server_from = resps[ri][0] + (resps[ri][9] or 0)
        reqs, resps, pairs = reqs[: qi + 1], resps[: ri + 1], pairs[: ri + 1]
        req_notes = [n for n in req_notes if n.offset < client_from]
        resp_notes = [n for n in resp_notes if n.offset < server_from]
        up_bytes = max(0, up.stream.end - client_from)
        down_bytes = max(0, down.stream.end - server_from)
        tunnel_note = (
            f"{kind} tunnel from here: {up_bytes:,} bytes to the upstream, {down_bytes:,} from "
            "it, not read as HTTP"
        )

    # Positional construction throughout: keyword arguments cost a third more per object.
    req_events = [
        Event(ts, "request", "client", fr, me, ta, ho, None, cc, i, ln, _blind(r, req_notes))
        for i, r in enumerate(reqs)
        for _, ts, fr, _, me, ta, ho, _, cc, ln in [r]
    ]
    # the upstream's Keep-Alive header on its first (final, readable) answer
    first = next((r for r, (_, last) in zip(resps, pairs, strict=True) if last and r[3]), None)
    keep_alive = header_value(down.stream, first[0], b"keep-alive") if first else None
    server_header = header_raw(down.stream, first[0], b"server") if first else None
    resp_events, requests = _responses(reqs, resps, pairs, resp_notes)
    for rq in requests:
        q = reqs[rq.index]
        if q[3]:
            rq.request_id = header_raw(up.stream, q[0], *_REQUEST_ID_HEADERS)
    if t is not None:
        for rq in requests:
            rq.encrypted = True
        note = f"encrypted request ({t.version}): which one, the capture cannot tell"
        for ev in req_events:
            ev.note = note
        for ev in resp_events:
            ev.note = f"encrypted response ({t.version})"
    if tunnel is not None:
        resp_events[tunnel[1]].note = tunnel_note

    # Sorted by (time, frame), stably, so events that share a packet keep the order they are
    # listed in: SYN, SYN-ACK, requests, responses, FINs, RSTs. Two stable sorts on plain int
    # keys (frame, then time) give that order without building a key tuple per event.
    # The upstream's TLS alert before its FIN or RST (uvicorn: close_notify, no FIN): its close
    alert = t.server_alert if t is not None else None
    if alert is not None and any(
        m is not None and (m.ts_ns, m.frame) <= (alert.ts_ns, alert.frame)
        for m in (down.fin, down.rst)
    ):
        alert = None
    server_fin = down.fin if alert is None else Mark(alert.ts_ns, alert.frame, alert.offset)
    closing: tuple[tuple[EventType, Side, Mark | None], ...] = (
        ("fin", "client", up.fin),
        ("fin", "server", server_fin),
        ("rst", "client", up.rst),
        ("rst", "server", down.rst),
    )
    closes = [Event(m.ts_ns, kind, side, m.frame) for kind, side, m in closing if m is not None]
    if alert is not None and t is not None:
        what = (
            "TLS alert (encrypted)"
            if t.version == "TLS 1.2"
            else "TLS 1.3 alert-sized record (encrypted)"
        )
        after = (
            f"; its FIN came {(down.fin.ts_ns - alert.ts_ns) // 1000} µs later"
            if down.fin is not None
            else "; no FIN"
        )
        for ev in closes:
            if ev.type == "fin" and ev.side == "server":
                ev.note = f"{what}: close_notify at a close, a fatal alert looks the same{after}"
    events = _opening(up, "client") + _opening(down, "server")
    events += req_events
    events += resp_events
    events += closes
    # a SYN-ACK captured before the SYN it answers goes right after it: TCP's order, not the file's
    syn, syn_ack = up.syn, down.syn
    if (
        not tc.partial
        and syn is not None
        and syn_ack is not None
        and (syn_ack.ts_ns, syn_ack.frame) < (syn.ts_ns, syn.frame)
    ):
        at = (syn.ts_ns, syn.frame)
        events.sort(key=lambda e: at if e.type == "syn_ack" else (e.time_ns, e.frame))
    else:
        events.sort(key=_FRAME)
        events.sort(key=_TIME)

    one_sided: Side | None = None
    if down.packets == 0 and up.packets > up.syn_count:
        one_sided = "client"  # nginx's ACKs and requests after its SYN: the handshake happened
    elif up.packets == 0 and down.packets > 0:
        one_sided = "server"
    if not tc.partial:
        start = machine.State.START
    elif one_sided == "server" and down.syn is not None:
        start = machine.State.SYN_SENT  # its SYN-ACK answers a SYN the capture did not hold
    else:
        start = machine.State.ESTABLISHED
    unexpected = machine.describe(events, start)
    first_close = min(closes, key=_WHEN) if closes else None
    closed_by: Side | None = None
    close_kind: CloseKind | None = None
    closed_at: int | None = None
    if first_close is not None:
        closed_by = first_close.side
        close_kind = "fin" if first_close.type == "fin" else "rst"
        if alert is not None and first_close.type == "fin" and first_close.side == "server":
            close_kind = "close_notify"
        closed_at = first_close.time_ns

    anomalies = [
        *unexpected,
        *_late(up.late_data, "client"),
        *_late(down.late_data, "server"),
        *_notes(req_notes, "client"),
        *_ignored_rsts(up, "client", tc.first_ts_ns, tc.first_frame),
        *_ignored_rsts(down, "server", tc.first_ts_ns, tc.first_frame),
        *_notes(resp_notes, "server"),
    ]
    anomalies.sort(key=_WHEN)

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
        handshake_ack_ns=None if tc.partial else tc.handshake_ack_ns,
        closed_by=closed_by,
        close=close_kind,
        closed_at_ns=closed_at,
        last_seen_ns=tc.last_ts_ns,
        last_response_ns=_last_data(down, first_close, alert),
        partial=tc.partial,
        state=tc.zeek_state,
        history=tc.zeek_history,
        syn_count=up.syn_count,
        packets=up.packets + down.packets,
        client_bytes=up.bytes,
        server_bytes=down.bytes,
        retransmissions=up.retransmissions + down.retransmissions,
        tunnel=tunnel[2] if tunnel is not None else None,
        keep_alive=keep_alive,
        server_header=server_header,
        one_sided=one_sided,
        tls=t.version if t is not None else None,
        requests=tuple(requests),
        events=tuple(events),
        anomalies=tuple(anomalies),
    )


def _pairing(reqs: list[Row], resps: list[Row]) -> list[tuple[int | None, bool]]:
    """For each response, the request it answers (None: one sent before the capture began) and
    whether it is that request's final answer.

    HTTP/1.1 answers in order, so each response answers the oldest request not yet answered. A
    response earlier than every pending request answers one sent before the capture began;
    interim 1xx responses point at their request without using it up, except 101 Switching
    Protocols, the last HTTP on the connection.
    """
    out: list[tuple[int | None, bool]] = []
    head = 0
    for _, ts, fr, _, _, _, _, status, _, _ in resps:
        if head < len(reqs) and (reqs[head][1], reqs[head][2]) <= (ts, fr):
            last = status is None or status >= 200 or status == 101
            out.append((head, last))
            head += last
        else:
            out.append((None, False))
    return out


def _tunnel(
    reqs: list[Row], resps: list[Row], pairs: list[tuple[int | None, bool]], down: Stream
) -> tuple[int, int, str] | None:
    """(request, response, kind) where the connection stops carrying HTTP: a request answered
    101 Switching Protocols (kind: the protocol its Upgrade names), or a CONNECT answered 2xx."""
    for i, (r, (q, last)) in enumerate(zip(resps, pairs, strict=True)):
        status = r[7]
        if q is None or not last or status is None:
            continue
        if status == 101:
            named = header_value(down, r[0], b"upgrade")
            first = named.split(",")[0].strip() if named is not None else ""
            return q, i, first or "upgrade"
        if 200 <= status < 300 and reqs[q][4] == "CONNECT":
            return q, i, "connect"
    return None


def _blind(row: Row, notes: list[HttpNote]) -> str | None:
    """Why a message could not be read: the framer's note at the same place says whether its
    bytes were there but not HTTP/1.x, or not captured."""
    if row[3]:
        return None
    for n in notes:
        if n.offset == row[0] and n.what.startswith("not an HTTP/1.x"):
            if ": TLS" in n.what:
                return "not HTTP: TLS, encrypted"
            if ": HTTP/2" in n.what:
                return "not HTTP/1.x: HTTP/2"
            return "not HTTP"
    return _BLIND


def _responses(
    reqs: list[Row],
    resps: list[Row],
    pairs: list[tuple[int | None, bool]],
    notes: list[HttpNote],
) -> tuple[list[Event], list[Request]]:
    """The response events, and every request with the final response that answered it."""
    events: list[Event] = []
    requests: list[Request] = []
    for r, (idx, last) in zip(resps, pairs, strict=True):
        _, ts, fr, _, _, _, _, status, close, length = r
        if idx is not None and last:
            q = reqs[idx]
            requests.append(Request(idx, q[4], q[5], q[6], q[1], q[2], status, ts, fr, close))
        events.append(
            Event(
                ts, "response", "server", fr, None, None, None, status, close, idx, length,
                _blind(r, notes),
            )
        )  # fmt: skip
    head = len(requests)
    requests += [
        Request(i, q[4], q[5], q[6], q[1], q[2], None, None, None, False)
        for i, q in enumerate(reqs[head:], head)
    ]
    return events, requests


def _last_data(
    down: Flow, first_close: Event | None, alert: tls.Record | None = None
) -> int | None:
    """The upstream's last data segment at or before the first closing segment (by time, then
    frame): where its keepalive idle timer starts; over TLS, before the alert that closed it."""
    st = down.stream
    if not st.ts:
        return None
    last = max(st.ts)
    if first_close is None or last < first_close.time_ns:
        return last
    limit = (first_close.time_ns, first_close.frame)
    if alert is not None:
        limit = min(limit, (alert.ts_ns, max(0, alert.frame - 1)))
    times = [t for t, f in zip(st.ts, st.frames, strict=True) if (t, f) <= limit]
    return max(times) if times else None

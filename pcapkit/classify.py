"""Findings: the rules that turn reconstructed connections into what an operator must know.

Each rule is a small pure function of the connections, so each can be read, tested and documented
on its own (``docs/findings.md``). The rules encode nginx's documented behaviour:

- nginx closes an idle cached connection as soon as it reads the upstream's FIN, so a request is
  lost only when nginx wrote it just before reading that FIN, or while the FIN was in flight;
- the failed attempt is passed to the next one (``proxy_next_upstream error``) for idempotent
  methods, on a new connection or another cached one; POST, LOCK and PATCH are not retried.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pcapkit.model import CloseReason, Connection, Event, Finding, Request

# How long after the loss nginx's retry can come and still be taken for one. nginx retries as
# soon as it reads the upstream's EOF: microseconds on loopback, a round trip elsewhere.
RETRY_WINDOW_NS = 1_000_000_000

# Methods nginx never passes to the next upstream unless proxy_next_upstream has non_idempotent.
NOT_RETRIED = frozenset({"POST", "LOCK", "PATCH"})


def _first(events: Sequence[Event], side: str, types: tuple[str, ...]) -> Event | None:
    for ev in events:
        if ev.side == side and ev.type in types:
            return ev
    return None


def server_close(conn: Connection) -> Event | None:
    """The upstream's first FIN or RST, if it came before nginx's (the connection's first close).

    A SYN refused with RST is a failed connect, not a close: only established connections count.
    """
    if conn.closed_by != "server" or (not conn.partial and conn.established_at_ns is None):
        return None
    return _first(conn.events, "server", ("fin", "rst"))


def _ms(ns: int) -> str:
    """A duration the way an operator reads it: seconds above one, milliseconds below."""
    if abs(ns) >= 1_000_000_000:
        return f"{ns / 1e9:.3f} s"
    return f"{ns / 1e6:.3f} ms" if abs(ns) >= 1_000 else f"{ns / 1e3:.1f} µs"


@dataclass(frozen=True, slots=True)
class Loss:
    """A request that got no answer because the upstream closed first."""

    conn: Connection
    request: Request
    close: Event  # the upstream's FIN/RST that lost it


def lost_requests(conns: Sequence[Connection]) -> list[Loss]:
    """Requests left unanswered on a connection the upstream closed first.

    If nginx closed first instead (its proxy_read_timeout, say), nginx gave up on the request:
    that is not a loss to the upstream's FIN.
    """
    out: list[Loss] = []
    for conn in conns:
        close = server_close(conn)
        if close is None:
            continue
        for req in conn.requests:
            if not req.answered:
                out.append(Loss(conn, req, close))
    return out


def _close_reason(conn: Connection, lost: bool) -> tuple[CloseReason, int | None]:
    idle = None
    close = server_close(conn)
    assert close is not None
    if conn.last_response_ns is not None:
        idle = close.time_ns - conn.last_response_ns
    elif conn.established_at_ns is not None:
        idle = close.time_ns - conn.established_at_ns
    if lost:
        return "request_in_flight", idle
    answered = [r for r in conn.requests if r.answered]
    if answered and answered[-1].connection_close:
        return "connection_close", idle
    if close.type == "rst":
        return "reset", idle
    return "idle_timeout", idle


def server_initiated_closes(conns: Sequence[Connection], losses: Sequence[Loss]) -> list[Finding]:
    """The upstream's FIN or RST was the connection's first closing segment."""
    lost_on = {loss.conn.id for loss in losses}
    out: list[Finding] = []
    for conn in conns:
        close = server_close(conn)
        if close is None:
            continue
        reason, idle = _close_reason(conn, conn.id in lost_on)
        what = "FIN" if close.type == "fin" else "RST"
        idle_txt = f"{_ms(idle)} after its last response" if idle is not None else ""
        if reason == "request_in_flight":
            msg = f"upstream sent {what} first, {idle_txt}, with a request in flight"
        elif reason == "connection_close":
            msg = f"upstream sent {what} first after answering with Connection: close"
        elif reason == "reset":
            msg = f"upstream reset the connection first, {idle_txt}"
        else:
            msg = f"upstream sent {what} first: idle timeout, {idle_txt}"
        out.append(
            Finding(
                type="server_initiated_close",
                connection=conn.id,
                time_ns=close.time_ns,
                frame=close.frame,
                message=msg.replace(", ,", ","),
                reason=reason,
                idle_ns=idle,
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class _Retry:
    loss: Loss
    conn: Connection
    request: Request
    new_connection: bool


def match_retries(conns: Sequence[Connection], losses: Sequence[Loss]) -> list[_Retry]:
    """Pair each lost request with the same request sent next on another connection.

    "The same" is method, target and Host; the retry must follow the loss within
    :data:`RETRY_WINDOW_NS` of the upstream's close. Each request can be the retry of one loss.
    Requests whose bytes were not captured cannot be matched and are never taken for retries.
    """
    wanted = {
        (x.request.method, x.request.target, x.request.host)
        for x in losses
        if x.request.method is not None
    }
    by_key: dict[tuple[str, str, str | None], list[tuple[Connection, Request]]] = {}
    if wanted:
        for conn in conns:
            for req in conn.requests:
                key = (req.method, req.target, req.host)
                if key in wanted:
                    by_key.setdefault(key, []).append((conn, req))  # type: ignore[arg-type]
    used: set[tuple[int, int]] = set()
    out: list[_Retry] = []
    for loss in sorted(losses, key=lambda x: x.request.sent_at_ns):
        req = loss.request
        if req.method is None or req.target is None:
            continue
        start = max(req.sent_at_ns, loss.close.time_ns)
        best: tuple[Connection, Request] | None = None
        for conn, cand in by_key.get((req.method, req.target, req.host), ()):
            if conn.id == loss.conn.id or (conn.id, cand.index) in used:
                continue
            if cand.sent_at_ns <= req.sent_at_ns or cand.sent_at_ns - start > RETRY_WINDOW_NS:
                continue
            if best is None or cand.sent_at_ns < best[1].sent_at_ns:
                best = (conn, cand)
        if best is None:
            continue
        conn, cand = best
        used.add((conn.id, cand.index))
        fresh = not conn.partial and conn.opened_at_ns > req.sent_at_ns
        out.append(_Retry(loss, conn, cand, fresh))
    return out


def _loss_findings(losses: Sequence[Loss], retries: Sequence[_Retry]) -> list[Finding]:
    retried = {(r.loss.conn.id, r.loss.request.index): r for r in retries}
    out: list[Finding] = []
    for loss in losses:
        req, close = loss.request, loss.close
        gap = close.time_ns - req.sent_at_ns
        what = "FIN" if close.type == "fin" else "RST"
        if gap >= 0:
            timing = f"upstream's {what} came {_ms(gap)} after it"
        else:
            timing = f"it crossed the upstream's {what}, sent {_ms(-gap)} after it"
        r = retried.get((loss.conn.id, req.index))
        if r is not None:
            how = "a new connection" if r.new_connection else "a cached connection"
            after = _ms(r.request.sent_at_ns - req.sent_at_ns)
            tail = f"nginx retried it {after} later on #{r.conn.id} ({how})"
        elif req.method is None:
            tail = "payload not captured: retry unknown"
        elif req.method in NOT_RETRIED:
            tail = f"not retried (nginx does not retry {req.method}): its client got a 502"
        else:
            tail = "not retried: its client got an error (502)"
        out.append(
            Finding(
                type="request_lost_to_fin",
                connection=loss.conn.id,
                time_ns=close.time_ns,
                frame=close.frame,
                message=f"{req.label} got no response: {timing}; {tail}",
                request=req.label if req.method is not None else None,
                retried=r is not None if req.method is not None else None,
                retried_on=r.conn.id if r is not None else None,
                request_index=req.index,
            )
        )
    return out


def _retry_findings(retries: Sequence[_Retry]) -> list[Finding]:
    out: list[Finding] = []
    for r in retries:
        how = "new connection" if r.new_connection else "cached connection"
        out.append(
            Finding(
                type="retry",
                connection=r.conn.id,
                time_ns=r.request.sent_at_ns,
                frame=r.request.frame,
                message=f"{r.request.label} retried on a {how} after it was lost on "
                f"#{r.loss.conn.id}",
                request=r.request.label,
                retry_of=r.loss.conn.id,
                new_connection=r.new_connection,
                request_index=r.request.index,
            )
        )
    return out


def connect_failures(conns: Sequence[Connection]) -> list[Finding]:
    """nginx's SYN never answered, or answered with RST."""
    out: list[Finding] = []
    for conn in conns:
        if conn.opened_by != "client" or conn.established_at_ns is not None:
            continue
        rst = _first(conn.events, "server", ("rst",))
        times = f" (sent {conn.syn_count} times)" if conn.syn_count > 1 else ""
        if rst is not None:
            msg = f"SYN{times} answered with RST: nothing listening, or the upstream refused it"
        else:
            msg = f"SYN{times} never answered: the upstream's accept queue was likely full"
        syn = conn.events[0]
        out.append(
            Finding(
                type="connect_failed",
                connection=conn.id,
                time_ns=syn.time_ns,
                frame=syn.frame,
                message=msg,
            )
        )
    return out


def classify(conns: Sequence[Connection]) -> list[Finding]:
    """Every finding, ordered by time (then connection)."""
    losses = lost_requests(conns)
    retries = match_retries(conns, losses)
    findings = [
        *server_initiated_closes(conns, losses),
        *_loss_findings(losses, retries),
        *_retry_findings(retries),
        *connect_failures(conns),
    ]
    findings.sort(key=lambda f: (f.time_ns, f.connection, f.frame))
    return findings

"""Compare an analysis with what nginx, Tomcat and tshark recorded for the same run.

Used by the golden tests on the committed fixtures and by the live lab test, so both hold kaflow
to the same standard: nginx's own logs, not kaflow's earlier output.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pcapkit import Analysis


def mismatches(a: Analysis, truth: dict[str, Any], *, payload: bool = True) -> list[str]:
    """Every way the analysis disagrees with the run's logs (empty when it agrees).

    ``payload`` False for captures without HTTP bytes (``-s 64``): requests are then known only
    as data bursts, so only counts, closers and connections are compared.
    """
    out: list[str] = []

    def check(what: str, got: object, want: object) -> None:
        if got != want:
            out.append(f"{what}: kaflow {got!r}, logs {want!r}")

    lost = [f for f in a.findings if f.type == "request_lost_to_fin"]
    retries = [f for f in a.findings if f.type == "retry"]
    # nginx logs one "upstream prematurely closed connection" per request lost to a FIN, or
    # "recv() failed (104: Connection reset by peer)" when the upstream's RST reached it first
    reset = truth.get("reset_by_peer", 0)
    check(
        "lost requests (error log 'prematurely closed' and 'reset by peer')",
        len(lost),
        truth["prematurely_closed"] + reset,
    )
    check(
        "connect failures (error log 'timed out ... connecting')",
        sum(1 for f in a.findings if f.type == "connect_failed"),
        truth["connect_timeouts"],
    )

    # who sent the first FIN/RST, per connection, as tshark saw it
    def none(v: str | None) -> str | None:
        return None if v in (None, "none") else v

    def first_close(c: dict[str, Any]) -> tuple[Any, ...]:
        # over TLS the upstream's close_notify (tshark decrypts it) before any FIN or RST is its
        # close: uvicorn sends no FIN, and nginx's RST that follows is not the first close
        notify = c.get("close_notify_frame")
        if (
            c.get("close_notify_by") == "server"
            and notify is not None
            and (c["first_close"] is None or notify < c["first_close_frame"])
        ):
            return (c["client_port"], "server", "close_notify")
        return (c["client_port"], none(c["first_close_by"]), none(c["first_close"]))

    want_close = Counter(first_close(c) for c in truth["connections"])
    got_close = Counter((c.client_port, c.closed_by, c.close) for c in a.connections)
    check("first closer per connection (tshark)", got_close, want_close)
    by_side = Counter(side for _, side, _ in want_close.elements())
    s = a.summary
    check(
        "closes by side",
        (s.closed_by_client, s.closed_by_server, s.not_closed),
        (by_side["client"], by_side["server"], by_side[None]),
    )

    # every upstream attempt that reached the upstream is a request on the wire
    check(
        "requests on the wire (access log upstream attempts that connected)",
        s.requests,
        truth["upstream_attempts"] - truth["connect_timeouts"],
    )
    by_id: dict[str, int] | None = truth.get("answered_by_id")
    check(
        "requests answered (upstream's access log; X-Request-IDs answered, where nginx sends it)",
        sum(1 for c in a.connections for r in c.requests if r.answered),
        len(truth["upstream_answered"]) if by_id is None else len(by_id),
    )
    if not payload:
        return out
    if truth["nginx"].get("proxy_pass", "").startswith("https"):
        # TLS: no request can be named; each loss on its connection, retried or not
        return out + _tls_losses(a, truth["losses"])

    check(
        "lost requests by name",
        Counter(f.request for f in lost),
        Counter(truth["prematurely_closed_requests"] + truth.get("reset_by_peer_requests", [])),
    )
    check(
        "retried requests (access log '502, 200')",
        Counter(f.request for f in retries),
        Counter(truth["retried_requests"]),
    )
    check(
        "lost and not retried (client got 502)",
        Counter(f.request for f in lost if f.retried is False),
        Counter(truth["not_retried_failures"]),
    )
    if by_id is not None:
        # every answered request on the connection its X-Request-ID was answered on (tshark):
        # request lines may repeat (the busy run's shared URLs), ids do not
        got = {
            r.request_id: c.client_port
            for c in a.connections
            for r in c.requests
            if r.answered and r.request_id is not None
        }
        check("connection of each answered request (X-Request-ID)", got, by_id)
        out += _losses(a, truth["losses"])
        return out
    # the retry is on the connection the upstream answered it on (Tomcat's %{remote}p)
    conns = {c.id: c for c in a.connections}
    for f in retries:
        port = truth["upstream_answered"].get(f.request)
        check(f"connection of the retry of {f.request}", conns[f.connection].client_port, port)
    # and every answered request is on the connection the upstream says it answered it on
    answered = {r.label: c.client_port for c in a.connections for r in c.requests if r.answered}
    check("connection of each answered request", answered, truth["upstream_answered"])
    return out


def _tls_losses(a: Analysis, losses: list[dict[str, Any]]) -> list[str]:
    """Over TLS: the lost requests, on the connections their X-Request-IDs went unanswered on
    (tshark, decrypting with the upstream's key log), encrypted, retried or not as nginx's
    access log says, the retry on the connection that answered it."""
    conns = {c.id: c for c in a.connections}
    lost = [f for f in a.findings if f.type == "request_lost_to_fin"]
    retries = {(f.retry_of, f.connection) for f in a.findings if f.type == "retry"}
    got = Counter(
        (
            conns[f.connection].client_port,
            f.retried,
            next(
                (conns[t].client_port for o, t in retries if o == f.connection and f.retried),
                None,
            ),
        )
        for f in lost
    )
    want = Counter(
        (x["lost_on_port"], x["retried"], x["answered_on_port"] if x["retried"] else None)
        for x in losses
    )
    out: list[str] = []
    if got != want:
        out.append(f"TLS losses (port, retried, retry's port): kaflow {got!r}, logs {want!r}")
    for f in lost:
        req = conns[f.connection].requests[f.request_index or 0]
        if not req.encrypted or req.label != "(encrypted request)":
            out.append(f"loss on #{f.connection} not labelled an encrypted request: {req.label}")
    return out


# truth.json's word for each of nginx's two messages for a lost request
NGINX_MESSAGE = {
    "prematurely closed": "upstream prematurely closed connection",
    "reset by peer": "recv() failed (104: Connection reset by peer)",
}


def _losses(a: Analysis, losses: list[dict[str, Any]]) -> list[str]:
    """Every loss nginx logged, found by its X-Request-ID (tshark): on the connection it was
    lost on, with the message nginx logged among those kaflow says, and its retry on the
    connection that answered it, to the server nginx's $upstream_addr names."""
    out: list[str] = []
    by_id = {c.id: c for c in a.connections}
    by_port = {c.client_port: c for c in a.connections}
    found = {(f.connection, f.request): f for f in a.findings if f.type == "request_lost_to_fin"}
    retries = {(f.connection, f.request): f for f in a.findings if f.type == "retry"}
    for x in losses:
        req, port = x["request"], x["lost_on_port"]
        conn = by_port.get(port)
        f = found.get((conn.id, req)) if conn is not None else None
        if conn is None or f is None:
            out.append(f"{req}: no loss found on nginx's port {port} (X-Request-ID)")
            continue
        ids = [r.request_id for r in conn.requests if r.label == req and not r.answered]
        if ids != [x["request_id"]]:
            out.append(f"{req}: request id {ids}, logged {x['request_id']}")
        said = NGINX_MESSAGE[x["nginx_error"]]
        if not any(m.startswith(said) for m in f.nginx_errors):
            out.append(f"{req}: nginx logged '{said}', kaflow says {f.nginx_errors}")
        if f.retried is not x["retried"]:
            out.append(f"{req}: retried {f.retried}, the access log says {x['retried']}")
        if not x["retried"]:
            continue
        retry_conn = by_port.get(x["answered_on_port"])
        if retry_conn is None or f.retried_on != retry_conn.id:
            out.append(
                f"{req}: retried on #{f.retried_on}, answered on port {x['answered_on_port']}"
            )
            continue
        r = retries.get((retry_conn.id, req))
        if r is None or r.retry_of != conn.id:
            out.append(f"{req}: no retry of #{conn.id} on #{retry_conn.id}")
            continue
        servers = x["upstream_addr"]
        want = servers[-1] if len(set(servers)) > 1 else None
        if r.other_server != want:
            out.append(f"{req}: retry to other server {r.other_server}, $upstream_addr {servers}")
        if by_id[r.connection].server != servers[-1]:
            out.append(f"{req}: retried on {by_id[r.connection].server}, logged {servers[-1]}")
    return out

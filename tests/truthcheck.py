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
    # nginx logs one "upstream prematurely closed connection" per request lost to a FIN
    check("lost requests (error log 'prematurely closed')", len(lost), truth["prematurely_closed"])
    check(
        "connect failures (error log 'timed out ... connecting')",
        sum(1 for f in a.findings if f.type == "connect_failed"),
        truth["connect_timeouts"],
    )

    # who sent the first FIN/RST, per connection, as tshark saw it
    def none(v: str | None) -> str | None:
        return None if v in (None, "none") else v

    want_close = Counter(
        (c["client_port"], none(c["first_close_by"]), none(c["first_close"]))
        for c in truth["connections"]
    )
    got_close = Counter((c.client_port, c.closed_by, c.close) for c in a.connections)
    check("first closer per connection (tshark)", got_close, want_close)
    fc = truth["first_close_by"]
    s = a.summary
    check(
        "closes by side",
        (s.closed_by_client, s.closed_by_server, s.not_closed),
        (fc["client"], fc["server"], fc["none"]),
    )

    # every upstream attempt that reached the upstream is a request on the wire
    check(
        "requests on the wire (access log upstream attempts that connected)",
        s.requests,
        truth["upstream_attempts"] - truth["connect_timeouts"],
    )
    check(
        "requests answered (upstream's access log)",
        sum(1 for c in a.connections for r in c.requests if r.answered),
        len(truth["upstream_answered"]),
    )
    if not payload:
        return out

    check(
        "lost requests by name",
        Counter(f.request for f in lost),
        Counter(truth["prematurely_closed_requests"]),
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
    # the retry is on the connection the upstream answered it on (Tomcat's %{remote}p)
    by_id = {c.id: c for c in a.connections}
    for f in retries:
        port = truth["upstream_answered"].get(f.request)
        check(f"connection of the retry of {f.request}", by_id[f.connection].client_port, port)
    # and every answered request is on the connection the upstream says it answered it on
    answered = {r.label: c.client_port for c in a.connections for r in c.requests if r.answered}
    check("connection of each answered request", answered, truth["upstream_answered"])
    return out

"""From findings to the setting to change: what the capture says about both sides' configuration.

Findings say what happened; operators then have to work out *why*. The capture shows enough to
answer for the common causes: the upstream's idle timeout can be read off the idle time before
its FINs, its max-keep-alive-requests off the request count on connections it ended with
``Connection: close``, a full accept queue off unanswered SYNs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from statistics import median

from pcapkit.model import Advice, Connection, Finding


def _idle(findings: Sequence[Finding]) -> Advice | None:
    idle = [f.idle_ns for f in findings if f.reason == "idle_timeout" and f.idle_ns is not None]
    raced = [
        f.idle_ns for f in findings if f.reason == "request_in_flight" and f.idle_ns is not None
    ]
    if not idle:
        return None
    mid, low = median(idle) / 1e9, min(idle) / 1e9
    race = f", and {len(raced)} with a request in flight" if raced else ""
    return Advice(
        "upstream_idle_timeout",
        f"The upstream closes connections idle for about {mid:.3f} s (shortest {low:.3f} s; "
        f"{len(idle)} idle closes{race}). nginx keeps idle upstream connections for its "
        "keepalive_timeout (60 s by default), so the two race: make the upstream's idle timeout "
        "longer than nginx's keepalive_timeout (Tomcat keepAliveTimeout, Spring Boot "
        "server.tomcat.keep-alive-timeout, Node server.keepAliveTimeout, gunicorn --keep-alive), "
        "or lower nginx's keepalive_timeout well below it.",
        value=round(mid, 6),
        evidence=len(idle) + len(raced),
    )


@dataclass(slots=True)
class Evidence:
    """What the diagnosis needs of the connections, gathered one connection at a time.

    Kept apart from the connections so that a capture of millions of them can be diagnosed
    without holding them: a count of requests per connection ended with Connection: close, and
    a count of refused connects.
    """

    closed_after: Counter[int] = field(default_factory=Counter)
    refused: int = 0

    def add(self, c: Connection) -> None:
        reqs = c.requests
        if (
            not c.partial
            and reqs
            and reqs[-1].connection_close
            and all(r.responded_at_ns is not None for r in reqs)
        ):
            self.closed_after[len(reqs)] += 1
        if c.opened_by == "client" and c.established_at_ns is None and c.state == "REJ":
            self.refused += 1


def _max_requests(ev: Evidence) -> Advice | None:
    counts = ev.closed_after
    if not counts:
        return None
    # the most common count; on a tie the larger (order-free: connections come in any order)
    limit, n = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
    total = sum(counts.values())
    return Advice(
        "upstream_max_requests",
        f"The upstream ended {total} connection{'s' if total != 1 else ''} with "
        f"'Connection: close', {n} of them after {limit} request{'s' if limit != 1 else ''}: its "
        f"limit of requests per connection (Tomcat maxKeepAliveRequests, {limit} here; 100 by "
        "default) is below nginx's keepalive_requests (1000 by default). Raise it above nginx's "
        "(-1 is unlimited in Tomcat), or lower keepalive_requests in nginx's upstream block.",
        value=float(limit),
        evidence=total,
    )


def _lost(findings: Sequence[Finding]) -> Advice | None:
    lost = [f for f in findings if f.type == "request_lost_to_fin"]
    if not lost:
        return None
    retried = sum(1 for f in lost if f.retried)
    failed = [f for f in lost if f.retried is False]
    methods = sorted({(f.request or "").split(" ")[0] for f in failed})
    parts = [f"{len(lost)} request{'s' if len(lost) != 1 else ''} lost to the upstream's close"]
    if retried:
        parts.append(f"{retried} retried by nginx (its client saw only the delay)")
    if failed:
        parts.append(
            f"{len(failed)} not retried ({', '.join(methods)}): their clients got a 502 and "
            "nginx logged 'upstream prematurely closed connection'"
        )
    return Advice(
        "lost_requests", "; ".join(parts) + ".", value=float(len(lost)), evidence=len(lost)
    )


def _connect(findings: Sequence[Finding], ev: Evidence) -> Advice | None:
    failed = [f for f in findings if f.type == "connect_failed"]
    if not failed:
        return None
    refused = ev.refused
    silent = len(failed) - refused
    parts = []
    if silent:
        parts.append(
            f"{silent} SYN{'s' if silent != 1 else ''} never answered: the upstream's accept queue "
            "was full (Tomcat acceptCount / maxConnections / maxThreads; the kernel's somaxconn); "
            "nginx answers 504 after proxy_connect_timeout"
        )
    if refused:
        parts.append(
            f"{refused} SYN{'s' if refused != 1 else ''} refused with RST: nothing was listening "
            "(nginx logs 'connect() failed (111: Connection refused)')"
        )
    return Advice(
        "connect_failed", "; ".join(parts) + ".", value=float(len(failed)), evidence=len(failed)
    )


def advise(findings: Sequence[Finding], evidence: Evidence) -> tuple[Advice, ...]:
    """Every conclusion the capture supports, most consequential first."""
    found = (
        _lost(findings),
        _idle(findings),
        _max_requests(evidence),
        _connect(findings, evidence),
    )
    return tuple(a for a in found if a is not None)


def diagnose(conns: Iterable[Connection], findings: Sequence[Finding]) -> tuple[Advice, ...]:
    """:func:`advise`, for connections at hand."""
    ev = Evidence()
    for c in conns:
        ev.add(c)
    return advise(findings, ev)

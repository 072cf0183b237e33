"""From findings to the setting to change: what the capture says about both sides' configuration.

Findings say what happened; operators then have to work out *why*. The capture shows enough to
answer for the common causes: the upstream's idle timeout can be read off the idle time before
its FINs, its max-keep-alive-requests off the request count on connections it ended with
``Connection: close``, a full accept queue off unanswered SYNs.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from statistics import median
from typing import TYPE_CHECKING

from pcapkit.model import Advice, Finding

if TYPE_CHECKING:
    from pcapkit._core import Connections


@dataclass(slots=True)
class _Gathered:
    """What the advice needs of the findings, gathered in one pass (they may be on disk)."""

    idle: list[int] = field(default_factory=list)  # idle time before each idle-timeout close
    raced: list[int] = field(default_factory=list)  # ... before a close with a request in flight
    lost: int = 0
    retried: int = 0
    failed: int = 0  # lost and not retried
    methods: set[str] = field(default_factory=set)  # of those not retried
    connect_failed: int = 0

    @classmethod
    def of(cls, findings: Iterable[Finding]) -> _Gathered:
        g = cls()
        for f in findings:
            if f.type == "server_initiated_close" and f.idle_ns is not None:
                if f.reason == "idle_timeout":
                    g.idle.append(f.idle_ns)
                elif f.reason == "request_in_flight":
                    g.raced.append(f.idle_ns)
            elif f.type == "request_lost_to_fin":
                g.lost += 1
                g.retried += bool(f.retried)
                if f.retried is False:
                    g.failed += 1
                    g.methods.add((f.request or "").split(" ")[0])
            elif f.type == "connect_failed":
                g.connect_failed += 1
        return g


def _announced(ev: Evidence) -> str:
    """What the upstream's own Keep-Alive headers said, when they said a timeout."""
    if not ev.announced:
        return ""
    timeout, n = max(ev.announced.items(), key=lambda kv: (kv[1], kv[0]))
    return (
        f" It announces its timeout: 'Keep-Alive: timeout={timeout}' on {n} connection"
        f"{'s' if n != 1 else ''} (Node closes about 1 s after the timeout it announces)."
    )


def _idle(g: _Gathered, ev: Evidence) -> Advice | None:
    idle, raced = g.idle, g.raced
    if not idle:
        return None
    mid, low = median(idle) / 1e9, min(idle) / 1e9
    race = f", and {len(raced)} with a request in flight" if raced else ""
    return Advice(
        "upstream_idle_timeout",
        f"The upstream closes connections idle for about {mid:.3f} s (shortest {low:.3f} s; "
        f"{len(idle)} idle closes{race}).{_announced(ev)} nginx keeps idle upstream connections "
        "for its keepalive_timeout (60 s by default), so the two race: make the upstream's idle "
        "timeout longer than nginx's keepalive_timeout (Tomcat keepAliveTimeout, Spring Boot "
        "server.tomcat.keep-alive-timeout, Node server.keepAliveTimeout, gunicorn --keep-alive), "
        "or lower nginx's keepalive_timeout well below it.",
        value=round(mid, 6),
        evidence=len(idle) + len(raced),
    )


_TIMEOUT = re.compile(r"\btimeout\s*=\s*(\d{1,9})\b")


@dataclass(slots=True)
class Evidence:
    """What the diagnosis needs of the connections, gathered a batch of columns at a time.

    Kept apart from the connections so that a capture of millions of them can be diagnosed
    without building them: a count of requests per connection ended with Connection: close
    (every request answered, the last answer saying so, the connection seen from its start),
    and a count of refused connects.
    """

    closed_after: Counter[int] = field(default_factory=Counter)
    refused: int = 0
    # the timeouts the upstream's Keep-Alive headers announce (seconds), by connections
    announced: Counter[int] = field(default_factory=Counter)

    def add(self, c: Connections) -> None:
        self.announced.update(
            int(m.group(1))
            for v in c.conn_keep_alive
            if v is not None and (m := _TIMEOUT.search(v)) is not None
        )
        self.closed_after.update(
            n
            for partial, n, unanswered, last_close in zip(
                c.conn_partial, c.conn_requests, c.conn_unanswered, c.conn_last_close, strict=True
            )
            if last_close and not partial and not unanswered
        )
        self.refused += sum(
            1
            for by, est, state in zip(
                c.conn_opened_by, c.conn_established_at_ns, c.conn_state, strict=True
            )
            if by == "client" and est is None and state == "REJ"
        )


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


def _lost(g: _Gathered) -> Advice | None:
    lost = g.lost
    if not lost:
        return None
    parts = [f"{lost} request{'s' if lost != 1 else ''} lost to the upstream's close"]
    if g.retried:
        parts.append(f"{g.retried} retried by nginx (its client saw only the delay)")
    if g.failed:
        parts.append(
            f"{g.failed} not retried ({', '.join(sorted(g.methods))}): their clients got a 502 "
            "and nginx logged 'upstream prematurely closed connection'"
        )
    return Advice("lost_requests", "; ".join(parts) + ".", value=float(lost), evidence=lost)


def _connect(g: _Gathered, ev: Evidence) -> Advice | None:
    failed = g.connect_failed
    if not failed:
        return None
    refused = ev.refused
    silent = failed - refused
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
    return Advice("connect_failed", "; ".join(parts) + ".", value=float(failed), evidence=failed)


def advise(findings: Iterable[Finding], evidence: Evidence) -> tuple[Advice, ...]:
    """Every conclusion the capture supports, most consequential first (one pass over the
    findings, which may be read back from disk)."""
    g = _Gathered.of(findings)
    found = (_lost(g), _idle(g, evidence), _max_requests(evidence), _connect(g, evidence))
    return tuple(a for a in found if a is not None)

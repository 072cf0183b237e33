"""What the capture measured, held against what the configs say (``analyze --nginx-conf``).

A capture shows the timers that really fire: the upstream's idle close time, the requests after
which it says ``Connection: close``, nginx's own idle closes. When they differ from the files,
the files are not the whole story — another layer (a load balancer, a container proxy) closes
connections, or the config read is not the one running.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import median
from typing import Literal

from pcapkit.config.model import Backend, NginxConfig, Upstream, seconds_text
from pcapkit.model import Analysis

Measure = Literal["upstream_idle_timeout", "upstream_max_requests", "nginx_keepalive_timeout"]


@dataclass(frozen=True, slots=True)
class Comparison:
    """One measured value against its configured one."""

    what: Measure
    measured: float
    evidence: int  # connections it is drawn from
    configured: float | None  # None: unlimited / never
    setting: str  # "keepAliveTimeout (server.xml <Connector port=\"8080\">)"
    agrees: bool
    text: str


def _timer_agrees(measured: float, configured: float) -> bool:
    # timers fire late (Tomcat's poller: up to ~1 s; Node adds a 1 s buffer), never early
    return configured - 0.05 <= measured <= configured * 1.1 + 1.1


def _upstream_for(nginx: NginxConfig, ports: Sequence[int]) -> Upstream | None:
    for u in nginx.upstreams:
        if u.ports & set(ports):
            return u
    return nginx.upstreams[0] if len(nginx.upstreams) == 1 else None


def compare(
    analysis: Analysis, nginx: NginxConfig | None, backends: Sequence[Backend] = ()
) -> tuple[Comparison, ...]:
    """The capture's measured timers against the configured ones, where both are known."""
    out: list[Comparison] = []
    ports = analysis.capture.ports
    backend = next((b for b in backends if b.port in ports), backends[0] if backends else None)
    up = _upstream_for(nginx, ports) if nginx is not None else None
    advice = {a.topic: a for a in analysis.advice}

    idle = advice.get("upstream_idle_timeout")
    if idle is not None and idle.value is not None:
        m = idle.value
        if backend is not None:
            c = backend.idle_timeout
            where = f"{c.setting} ({c.source})"
            if c.value is None:
                ok, text = (
                    False,
                    (
                        f"the upstream closed idle connections after {m:.3f} s; {where} sets "
                        "no idle timeout: another layer — a load balancer, a container proxy — "
                        "is closing them"
                    ),
                )
            elif _timer_agrees(m, c.value):
                ok, text = (
                    True,
                    (
                        f"the upstream closed idle connections after {m:.3f} s, as {where} says "
                        f"({seconds_text(c.value)})"
                    ),
                )
            elif m < c.value:
                ok, text = (
                    False,
                    (
                        f"the upstream closed idle connections after {m:.3f} s; {where} says "
                        f"{seconds_text(c.value)}: another layer — a load balancer, a container "
                        "proxy — is closing them, or that config is not the one running"
                    ),
                )
            else:
                ok, text = (
                    False,
                    (
                        f"the upstream closed idle connections after {m:.3f} s, later than {where} "
                        f"({seconds_text(c.value)}): that config is not the one running"
                    ),
                )
            out.append(
                Comparison("upstream_idle_timeout", m, idle.evidence, c.value, where, ok, text)
            )
        elif up is not None:
            kt = up.keepalive_timeout
            where = f"nginx keepalive_timeout ({kt.source})"
            ok = m > kt.value
            out.append(
                Comparison(
                    "upstream_idle_timeout",
                    m,
                    idle.evidence,
                    kt.value,
                    where,
                    ok,
                    f"the upstream closed idle connections after {m:.3f} s, "
                    + ("after" if ok else "before")
                    + f" {where}, {seconds_text(kt.value)}"
                    + ("" if ok else ": the two race"),
                )
            )

    maxr = advice.get("upstream_max_requests")
    if maxr is not None and maxr.value is not None and backend is not None:
        n = int(maxr.value)
        c2 = backend.max_requests
        where = f"{c2.setting} ({c2.source})"
        ok = c2.value == n
        out.append(
            Comparison(
                "upstream_max_requests",
                float(n),
                maxr.evidence,
                None if c2.value is None else float(c2.value),
                where,
                ok,
                f"the upstream said Connection: close after {n} requests"
                + (f", as {where} says" if ok else f"; {where} says {c2.value or 'unlimited'}"),
            )
        )

    if up is not None:
        idles = [
            (c.closed_at_ns - c.last_response_ns) / 1e9
            for c in analysis.connections
            if c.closed_by == "client"
            and c.closed_at_ns is not None
            and c.last_response_ns is not None
            and not any(r.connection_close for r in c.requests)
            # a WebSocket tunnel ends when its peers say so, not on nginx's idle timer
            and getattr(c, "tunnel", None) is None
            and c.closed_at_ns - c.last_response_ns >= 500_000_000
        ]
        if idles:
            m = median(idles)
            kt = up.keepalive_timeout
            where = f"keepalive_timeout ({kt.source})"
            ok = _timer_agrees(m, kt.value)
            out.append(
                Comparison(
                    "nginx_keepalive_timeout",
                    m,
                    len(idles),
                    kt.value,
                    where,
                    ok,
                    f"nginx closed idle connections after {m:.3f} s"
                    + (
                        f", as its {where} says"
                        if ok
                        else f"; its {where} says {seconds_text(kt.value)}: that config is not "
                        "the one running"
                    ),
                )
            )
    return tuple(out)

"""What the capture measured, held against what the configs say (``analyze --nginx-conf``).

A capture shows the timers that really fire: the upstream's idle close time, the requests after
which it says ``Connection: close``, nginx's own idle closes. When they differ from the files,
the files are not the whole story — another layer (a load balancer, a container proxy) closes
connections, or the config read is not the one running.

The upstream may also say its own timers: Node, Apache and others answer with ``Keep-Alive:
timeout=N, max=M``. An announced timeout at or below nginx's keepalive_timeout makes the race
certain — the upstream says it will close idle connections nginx still means to reuse — whatever
the config files say.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import median
from typing import Literal

from pcapkit.config.model import Backend, NginxConfig, Upstream, seconds_text
from pcapkit.model import Analysis

Measure = Literal[
    "upstream_idle_timeout",
    "upstream_max_requests",
    "nginx_keepalive_timeout",
    "upstream_announced_timeout",
    "announced_timeout_vs_nginx",
    "upstream_announced_max",
]


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


_TIMEOUT = re.compile(r"\btimeout\s*=\s*(\d{1,9})\b")
_MAX = re.compile(r"\bmax\s*=\s*(\d{1,9})\b")


def announced(values: Iterable[str | None]) -> tuple[Counter[int], Counter[int]]:
    """The timeouts (seconds) and request limits the upstream's Keep-Alive headers announce,
    each counted by the connections announcing it."""
    timeouts: Counter[int] = Counter()
    limits: Counter[int] = Counter()
    for v in values:
        if v is None:
            continue
        if (m := _TIMEOUT.search(v)) is not None:
            timeouts[int(m.group(1))] += 1
        if (m := _MAX.search(v)) is not None:
            limits[int(m.group(1))] += 1
    return timeouts, limits


def _most(c: Counter[int]) -> tuple[int, int]:
    """The most common value and its count; on a tie the larger (order-free)."""
    return max(c.items(), key=lambda kv: (kv[1], kv[0]))


def _announcements(
    analysis: Analysis, backend: Backend | None, up: Upstream | None
) -> list[Comparison]:
    timeouts, limits = announced(c.keep_alive for c in analysis.connections)
    out: list[Comparison] = []
    if timeouts:
        t, n = _most(timeouts)
        said = f"the upstream announces 'Keep-Alive: timeout={t}'"
        if backend is not None:
            c = backend.idle_timeout
            where = f"{c.setting} ({c.source})"
            ok = c.value is not None and abs(c.value - t) < 1
            out.append(
                Comparison(
                    "upstream_announced_timeout",
                    float(t),
                    n,
                    c.value,
                    where,
                    ok,
                    f"{said}, as {where} says"
                    if ok
                    else f"{said}; {where} says {seconds_text(c.value)}: that config is not the "
                    "one running, or another server answers",
                )
            )
        if up is not None:
            kt = up.keepalive_timeout
            where = f"nginx keepalive_timeout ({kt.source})"
            ok = t > kt.value
            out.append(
                Comparison(
                    "announced_timeout_vs_nginx",
                    float(t),
                    n,
                    kt.value,
                    where,
                    ok,
                    f"{said}, longer than {where}, {seconds_text(kt.value)}: nginx closes idle "
                    "connections first"
                    if ok
                    else f"{said}, but {where} is {seconds_text(kt.value)}: nginx keeps idle "
                    f"connections longer than the upstream says it will, so the race is certain — "
                    f"every connection idle past {t} s is closed under nginx; make the upstream's "
                    f"timeout longer than {seconds_text(kt.value)}, or keepalive_timeout well "
                    f"below {t} s",
                )
            )
    if limits:
        m, n = _most(limits)
        said = f"the upstream announces 'Keep-Alive: max={m}'"
        if backend is not None:
            c2 = backend.max_requests
            where = f"{c2.setting} ({c2.source})"
            ok = c2.value is not None and c2.value >= m
            configured = None if c2.value is None else float(c2.value)
            text = (
                f"{said} (requests left on the connection, at most its limit), within {where}, "
                f"{c2.value}"
                if ok
                else f"{said}; {where} says {c2.value or 'unlimited'}: that config is not the "
                "one running, or another server answers"
            )
        elif up is not None:
            kr = up.keepalive_requests
            where = f"nginx keepalive_requests ({kr.source})"
            ok = m > kr.value
            configured = float(kr.value)
            text = (
                f"{said}, more than {where}, {kr.value}: nginx ends busy connections first"
                if ok
                else f"{said}, not more than {where}, {kr.value}: the upstream ends busy "
                "connections (with Connection: close when it says so; nothing is lost then)"
            )
        else:
            return out
        out.append(Comparison("upstream_announced_max", float(m), n, configured, where, ok, text))
    return out


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

    out.extend(_announcements(analysis, backend, up))

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

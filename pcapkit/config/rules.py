"""The compatibility rules between nginx's upstream keepalive and the upstream's own.

One function per rule, each returning its problems with the reason and the fix written in the
settings' own names and units. The race they guard against: nginx writes a request into a cached
connection just as the upstream closes it; the request is lost (``upstream prematurely closed
connection``) and only idempotent requests are retried.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence

from pcapkit.config.model import (
    Backend,
    CheckResult,
    NginxConfig,
    Problem,
    Upstream,
    UpstreamCheck,
    seconds_text,
)
from pcapkit.config.nginx import KEEPALIVE_TIME, version_tuple


def _suggest(nginx_timeout: float) -> float:
    """An upstream idle timeout safely above nginx's: the FIN must never be in flight while
    nginx still thinks the connection is good, and timers fire late under load."""
    x = max(nginx_timeout + 5, nginx_timeout * 1.25)
    step = 5 if x >= 10 else 1
    return float(math.ceil(x / step) * step)


def idle_timeout(up: Upstream, b: Backend) -> Iterator[Problem]:
    ours = up.keepalive_timeout
    theirs = b.idle_timeout
    if theirs.value is None or theirs.value > ours.value:
        return
    same = "equal to" if theirs.value == ours.value else "shorter than"
    half = min(ours.value, theirs.value) / 2
    lower = float(math.floor(half)) if half >= 1 else half
    yield Problem(
        "idle_timeout",
        "problem",
        up.name,
        f"{b.kind} closes idle connections after {seconds_text(theirs.value)} ({theirs.setting}, "
        f"{theirs.source}), {same} nginx's keepalive_timeout {seconds_text(ours.value)} "
        f"({ours.source}): nginx can write a request into a connection the upstream is closing "
        "(upstream prematurely closed connection; POSTs get a 502)"
        + (" — equal timers still race" if same == "equal to" else ""),
        f"set {theirs.setting} to {theirs.written(_suggest(ours.value))} "
        f"(more than {seconds_text(ours.value)}), or keepalive_timeout in upstream {up.name} "
        f"to {ours.written(lower)} (well below {seconds_text(theirs.value)})",
    )


def max_requests(up: Upstream, b: Backend) -> Iterator[Problem]:
    ours = up.keepalive_requests
    theirs = b.max_requests
    if theirs.value is None or theirs.value > ours.value or not b.keeps_alive:
        return
    how = (
        "ends the connection with Connection: close on that response, so nothing is lost, but "
        "nginx reconnects every "
        f"{theirs.value} requests"
        if b.announces_close
        else "then closes connections without warning nginx: a request can be in flight"
    )
    yield Problem(
        "max_requests",
        "problem",
        up.name,
        f"{b.kind} serves at most {theirs.value} requests per connection ({theirs.setting}, "
        f"{theirs.source}), not more than nginx's keepalive_requests {ours.value} "
        f"({ours.source}): the upstream, not nginx, ends busy connections; it {how}",
        f"set {theirs.setting} above {ours.value} (e.g. {ours.value * 2}, or -1: unlimited), "
        f"or keepalive_requests in upstream {up.name} below {theirs.value}",
    )


def capacity(up: Upstream, b: Backend, workers: int | None, auto: bool) -> Iterator[Problem]:
    if up.keepalive.value is None or workers is None:
        return
    need = workers * up.keepalive.value
    how = f"worker_processes {'auto (' + str(workers) + ' CPUs)' if auto else workers}"
    mc = b.max_connections
    if mc is not None and mc.value is not None and mc.value < need:
        yield Problem(
            "capacity",
            "problem",
            up.name,
            f"nginx keeps up to {need} idle connections to it ({how} x keepalive "
            f"{up.keepalive.value}), but {b.kind} accepts {mc.value} ({mc.setting}, {mc.source}): "
            "the rest wait in the accept queue or are refused (nginx: upstream timed out while "
            "connecting, 504)",
            f"raise {mc.setting} to at least {need}, or lower keepalive in upstream {up.name}",
        )
    threads, queue = b.max_threads, b.accept_count
    if (
        threads is not None
        and queue is not None
        and threads.value is not None
        and queue.value is not None
        and threads.value + queue.value < need
    ):
        yield Problem(
            "capacity",
            "note",
            up.name,
            f"a burst on all {need} connections nginx may keep exceeds {b.kind}'s "
            f"{threads.setting} {threads.value} + {queue.setting} {queue.value}: requests wait",
            f"raise {threads.setting} or {queue.setting}",
        )


def worker_connections(up: Upstream, nginx: NginxConfig) -> Iterator[Problem]:
    """Cached upstream connections count against worker_connections with the clients'."""
    wc = nginx.worker_connections
    if up.keepalive.value is not None and up.keepalive.value * 2 > wc.value:
        yield Problem(
            "capacity",
            "note",
            up.name,
            f"keepalive {up.keepalive.value} takes more than half of worker_connections "
            f"{wc.value} ({wc.source}): each client being proxied needs a connection of its own "
            "too",
            f"raise worker_connections above {up.keepalive.value * 4}",
        )


def not_in_effect(up: Upstream) -> Iterator[Problem]:
    if up.keepalive.value is None:
        return
    for loc in up.locations:
        if loc.keepalive_in_effect:
            continue
        why = []
        if loc.http_version.value != "1.1":
            why.append(
                f"proxy_http_version is {loc.http_version.value} ({loc.http_version.source})"
            )
        if loc.connection_closes:
            header = loc.connection_header
            why.append(
                f"nginx sends Connection: close ({header.source})"
                if header.value is None
                else f"proxy_set_header Connection {header.value or chr(34) * 2} "
                f"({header.source}) sends close"
            )
        sent = loc.connection_header.value
        if sent is not None and sent.startswith("$") and loc.connection_closes:
            fix = (
                f"in the map that sets {sent}, map '' to \"\" instead of close: WebSocket "
                "upgrades still work and plain requests keep the connection"
            )
        else:
            fix = (
                "in that location (or its server{}/http{}): proxy_http_version 1.1; and "
                'proxy_set_header Connection "";'
            )
        yield Problem(
            "keepalive_not_in_effect",
            "problem",
            up.name,
            f"upstream {up.name} has keepalive {up.keepalive.value} ({up.keepalive.source}), but "
            f"location {loc.path} of {loc.server}: {'; '.join(why)}: every upstream connection "
            "closes after one request",
            fix,
            loc.path,
        )


def non_idempotent(up: Upstream) -> Iterator[Problem]:
    for loc in up.locations:
        if not loc.keepalive_in_effect:
            continue
        nu = loc.next_upstream.value
        if "off" in nu or "error" not in nu:
            yield Problem(
                "non_idempotent",
                "problem",
                up.name,
                f"location {loc.path}: proxy_next_upstream {' '.join(nu)} "
                f"({loc.next_upstream.source}): "
                "no request lost to the upstream's close is retried; every client gets a 502",
                "proxy_next_upstream error timeout; (the default)",
                loc.path,
            )
        elif "non_idempotent" not in nu:
            yield Problem(
                "non_idempotent",
                "problem",
                up.name,
                f"location {loc.path}: POST, PATCH and LOCK requests lost to the race are not "
                f"retried (proxy_next_upstream {' '.join(nu)}, {loc.next_upstream.source}): "
                "their clients get a 502",
                "remove the race (above); add non_idempotent to proxy_next_upstream only if a "
                "repeated POST is harmless",
                loc.path,
            )


def max_fails(up: Upstream) -> Iterator[Problem]:
    live = [s for s in up.servers if not s.down]
    if len(live) < 2:
        return  # nginx never marks the only server of a group unavailable
    counting = [s for s in live if s.max_fails > 0]
    if not counting:
        return
    each = ", ".join(
        f"{s.address} max_fails={s.max_fails} fail_timeout={s.fail_timeout:g}s" for s in counting
    )
    yield Problem(
        "max_fails",
        "problem",
        up.name,
        f"every request lost to the race counts as a failure of its server ({each}): a few races "
        "mark servers down (upstream server temporarily disabled); all of them down: no live "
        "upstreams (502, never retried)",
        "remove the race; or set max_fails=0 on these servers (never marked down) or raise it",
    )


def next_upstream_tries(up: Upstream, race: bool | None) -> Iterator[Problem]:
    """``proxy_next_upstream_tries`` does not limit the retry of a request lost to the race:
    nginx gives the try back when a *cached* connection fails with an error
    (``ngx_http_upstream_next``: ``if (u->peer.cached && ft_type == ..._FT_ERROR)
    u->peer.tries++``). That is why one server, whose requests get one try, still sees
    ``502, 200``. It does limit the failures that use a try: a connect refused or timed out."""
    live = [s for s in up.servers if not s.down and not s.backup]
    for loc in up.locations:
        tries = loc.next_upstream_tries
        if tries.default or tries.value == 0:
            continue
        if tries.value < len(live):
            others = (
                "no other server"
                if tries.value == 1
                else f"at most {tries.value - 1} of the other {len(live) - 1}"
            )
            yield Problem(
                "next_upstream_tries",
                "problem" if tries.value == 1 else "note",
                up.name,
                f"location {loc.path}: proxy_next_upstream_tries {tries.value} ({tries.source}) "
                f"with {len(live)} servers: a connect refused or timed out (a full accept queue, "
                f"a restart) is passed to {others}: its client gets a 502 or 504 while another "
                "server could answer. Requests lost to the idle-close race are retried all the "
                "same: a failure on a cached connection gives nginx its try back",
                f"proxy_next_upstream_tries 0; (no limit, the default) or at least {len(live)}",
                loc.path,
            )
        elif tries.value == 1 and race and loc.keepalive_in_effect:
            yield Problem(
                "next_upstream_tries",
                "note",
                up.name,
                f"location {loc.path}: proxy_next_upstream_tries 1 ({tries.source}) does not stop "
                "nginx retrying a request lost to the idle-close race: a failure on a cached "
                "connection gives its try back (one server gets one try anyway), so lost GETs "
                "are still retried and the race stays hidden from their clients",
                "",
                loc.path,
            )


TIMEOUT_FLOOR = 1.0
"""Below this, proxy_next_upstream_timeout can expire before nginx learns its request was lost:
it learns it when the upstream's FIN or RST arrives, a round trip after the request at best,
later on a loaded upstream or a distant one."""


def next_upstream_timeout(up: Upstream) -> Iterator[Problem]:
    """nginx passes a failed request on only while ``proxy_next_upstream_timeout`` has not
    passed since its first try began (``u->peer.start_time``, set once per request)."""
    for loc in up.locations:
        t = loc.next_upstream_timeout
        if t.value is None or not loc.keepalive_in_effect or t.value >= TIMEOUT_FLOOR:
            continue
        yield Problem(
            "next_upstream_timeout",
            "problem",
            up.name,
            f"location {loc.path}: proxy_next_upstream_timeout {t.written(t.value)} "
            f"({t.source}): nginx stops passing a failed request on once that long has passed "
            "since its first try began, and it learns a request was lost to the upstream's close "
            "only when the FIN or RST comes back, a round trip or more after sending it: a lost "
            "GET can end as a 502 instead of being retried",
            f"proxy_next_upstream_timeout 0; (no limit, the default) or at least "
            f"{t.written(TIMEOUT_FLOOR * 10)}",
            loc.path,
        )


def request_buffering(up: Upstream) -> Iterator[Problem]:
    """With ``proxy_request_buffering off`` a request's body is streamed upstream as it comes,
    and nginx never passes a request it has sent so to another try (``ngx_http_upstream_next``:
    ``u->request_sent && r->request_body_no_buffering``). Only a request without a body escapes
    it (nginx turns the streaming off for one)."""
    for loc in up.locations:
        rb = loc.request_buffering
        if rb.value or not loc.keepalive_in_effect:
            continue
        yield Problem(
            "request_buffering",
            "problem",
            up.name,
            f"location {loc.path}: proxy_request_buffering off ({rb.source}): a request with a "
            "body (PUT, PATCH, a DELETE with one; POST even with non_idempotent) is streamed to "
            "the upstream, and nginx never retries a request it sent that way: lost to the "
            "race, its client gets a 502",
            "proxy_request_buffering on; (the default) in that location unless it streams "
            "uploads; otherwise remove the race (above)",
            loc.path,
        )


def keepalive_time(up: Upstream, nginx: NginxConfig, b: Backend | None) -> Iterator[Problem]:
    """``keepalive_time`` is a connection's longest life (nginx 1.19.10+): checked when a
    response ends, and nginx then closes the connection itself — never an idle timeout, so it
    neither causes nor prevents the idle-close race (``keepalive_timeout`` is the idle timer)."""
    kt = up.keepalive_time
    if kt.default or up.keepalive.value is None:
        return
    ver = version_tuple(nginx.version) if nginx.version else None
    if ver is not None and ver < KEEPALIVE_TIME:
        yield Problem(
            "keepalive_time",
            "problem",
            up.name,
            f"keepalive_time ({kt.source}) came with nginx 1.19.10; nginx {nginx.version} "
            'stops at it (unknown directive "keepalive_time"): this config does not load',
            f"remove keepalive_time from upstream {up.name}, or upgrade nginx",
        )
        return
    if kt.value is None:
        return
    if kt.value < TIMEOUT_FLOOR:
        yield Problem(
            "keepalive_time",
            "problem",
            up.name,
            f"keepalive_time {kt.written(kt.value)} ({kt.source}): nginx closes a connection "
            "after the first response that ends more than that after it opened: upstream "
            "keepalive is all but off (a new connection for nearly every request)",
            f"keepalive_time 1h; (the default) in upstream {up.name}: it is a connection's "
            "longest life; the idle timeout is keepalive_timeout",
        )
        return
    idle = b.idle_timeout.value if b is not None else None
    if kt.value < up.keepalive_timeout.value or (idle is not None and kt.value <= idle):
        race = (
            f" It does not keep connections from idling past {b.kind}'s idle timeout "
            f"({seconds_text(idle)}): only keepalive_timeout does"
            if b is not None and idle is not None and up.keepalive_timeout.value >= idle
            else ""
        )
        yield Problem(
            "keepalive_time",
            "note",
            up.name,
            f"keepalive_time {kt.written(kt.value)} ({kt.source}) is a connection's longest "
            "life, checked when a response ends (nginx then closes it itself: nothing is "
            f"lost), not an idle timeout: connections are reopened every {seconds_text(kt.value)} "
            f"and idle ones wait keepalive_timeout {seconds_text(up.keepalive_timeout.value)}."
            + race,
        )


def _match(up: Upstream, backends: Sequence[Backend], claimed: set[int]) -> Backend | None:
    """The upstream config that serves this upstream{}: the one listening on one of its
    servers' ports; else, when only one was given and it serves no upstream{} by port (a port
    mapped by a container, a port not known), that one."""
    by_port = [b for b in backends if b.port is not None and b.port in up.ports]
    if by_port:
        return by_port[0]
    if len(backends) == 1 and backends[0].port not in claimed:
        return backends[0]
    return None


def check(nginx: NginxConfig, backends: Sequence[Backend]) -> CheckResult:
    """Hold each ``upstream{}`` of ``nginx`` against the upstream config that serves it."""
    wp = nginx.worker_processes
    auto = wp.value is None
    workers = os.cpu_count() if auto else wp.value
    checks: list[UpstreamCheck] = []
    problems: list[Problem] = []
    claimed = {p for up in nginx.upstreams for p in up.ports}
    for up in nginx.upstreams:
        found: list[Problem] = []
        b = _match(up, backends, claimed)
        active = up.keepalive.value is not None and (
            not up.locations or any(loc.keepalive_in_effect for loc in up.locations)
        )
        found.extend(not_in_effect(up))
        found.extend(worker_connections(up, nginx))
        race: bool | None
        if up.keepalive.value is None:
            race = False
            found.append(
                Problem(
                    "keepalive_off",
                    "note",
                    up.name,
                    f"upstream keepalive is off ({up.keepalive.source}): every request opens a "
                    "new connection, so no idle connection can be raced",
                )
            )
        elif up.keepalive.default:
            found.append(
                Problem(
                    "keepalive_default",
                    "note",
                    up.name,
                    f"no keepalive directive, but since nginx 1.29.7 upstream keepalive is on by "
                    f"default (keepalive 32 local, HTTP/1.1): {up.keepalive.source}",
                )
            )
        if b is None:
            race = None if active else False
            if active:
                found.append(
                    Problem(
                        "no_upstream_config",
                        "note",
                        up.name,
                        "no upstream config given for it: its idle timeout is unknown (the "
                        "defaults of Tomcat 60 s, Node 5 s, gunicorn 2 s, uvicorn 5 s are all "
                        f"≤ nginx's keepalive_timeout {seconds_text(up.keepalive_timeout.value)})",
                    )
                )
        elif active and b.keeps_alive:
            idle = list(idle_timeout(up, b))
            race = bool(idle) or (not b.announces_close and bool(list(max_requests(up, b))))
            found.extend(idle)
            found.extend(max_requests(up, b))
            found.extend(capacity(up, b, workers, auto))
        else:
            race = False
            if b is not None and active:
                found.extend(capacity(up, b, workers, auto))
        found.extend(keepalive_time(up, nginx, b))
        found.extend(next_upstream_tries(up, race))
        if race:
            found.extend(non_idempotent(up))
            found.extend(next_upstream_timeout(up))
            found.extend(request_buffering(up))
            found.extend(max_fails(up))
        checks.append(UpstreamCheck(up, b, race, workers, tuple(found)))
        problems.extend(found)
    return CheckResult(nginx, tuple(backends), tuple(checks), tuple(problems))

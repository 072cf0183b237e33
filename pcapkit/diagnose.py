"""From findings to the setting to change: what the capture says about both sides' configuration.

Findings say what happened; operators then have to work out *why*. The capture shows enough to
answer for the common causes: the upstream's idle timeout can be read off the idle time before
its FINs, its max-keep-alive-requests off the request count on connections it ended with
``Connection: close``, a full accept queue off unanswered SYNs. What to change on the client's
side, and what it logs, are the client's own (:class:`~pcapkit.client.Client`): nginx's
directives and messages are named only when the client is nginx.
"""

from __future__ import annotations

import operator
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import repeat
from typing import TYPE_CHECKING, NamedTuple

from pcapkit._median import median
from pcapkit.client import Client
from pcapkit.model import Advice, Finding

if TYPE_CHECKING:
    from pcapkit._core import Connections


# a plain class, not a dataclass: a dataclass costs ~1 ms of start-up to create (Python 3.11
# compiles each of its methods), and nothing compares or prints this one
class _Gathered:
    """What the advice needs of the findings, gathered in one pass (they may be on disk)."""

    __slots__ = (
        "connect_failed",
        "failed",
        "idle",
        "lost",
        "methods",
        "nginx_alt",
        "nginx_errors",
        "other_server",
        "raced",
        "retried",
    )

    def __init__(self) -> None:
        self.idle: list[int] = []  # idle time before each idle-timeout close
        self.raced: list[int] = []  # ... before a close with a request in flight
        self.lost = 0
        self.retried = 0
        self.failed = 0  # lost and not retried
        self.methods: set[str] = set()  # of those not retried
        self.connect_failed = 0
        # what nginx's error log says for the losses: its likelier message -> losses, and the
        # other one it may say instead (a FIN followed by the upstream's RST) -> losses
        self.nginx_errors: Counter[str] = Counter()
        self.nginx_alt: Counter[str] = Counter()
        self.other_server: Counter[str] = Counter()  # retries, by the server taken

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
                g.nginx_errors.update(f.nginx_errors[:1])
                g.nginx_alt.update(f.nginx_errors[1:])
                if f.retried is False:
                    g.failed += 1
                    # over TLS no method is known
                    g.methods.add((f.request or "").split(" ")[0] or "encrypted")
            elif f.type == "connect_failed":
                g.connect_failed += 1
            elif f.type == "retry" and f.other_server is not None:
                g.other_server[f.other_server] += 1
        return g


# a NamedTuple, not a frozen dataclass: a dataclass costs ~1 ms of start-up to create (Python 3.11
# compiles each of its methods), a NamedTuple a tenth of that
class Server(NamedTuple):
    """An upstream server kaflow can name, and its own idle-timeout and per-connection limits."""

    name: str
    idle_setting: str  # where its idle timeout is set, with its default
    default_idle_s: float | None
    max_requests_setting: str | None = None  # its limit of requests per connection, if any
    note: str = ""


NODE = Server(
    "Node.js",
    "server.keepAliveTimeout (5 s by default, 65 s from Node 26; idle sockets really close about "
    "1 s later, its keepAliveTimeoutBuffer)",
    5.0,
    "server.maxRequestsPerSocket (0, unlimited, by default)",
    " Raise server.headersTimeout with it: it must stay above keepAliveTimeout.",
)
TOMCAT = Server(
    "Tomcat",
    "the Connector's keepAliveTimeout (Spring Boot server.tomcat.keep-alive-timeout; it "
    "defaults to connectionTimeout: 20 s in Tomcat's shipped server.xml, 60 s otherwise)",
    None,
    "the Connector's maxKeepAliveRequests (Spring Boot server.tomcat.max-keep-alive-requests; "
    "100 by default, -1 unlimited)",
)

# The Server header's first word (lower-cased) -> the server. Tomcat sends none unless its
# Connector's `server` attribute is set; older ones sent Apache-Coyote/1.1.
KNOWN_SERVERS: dict[str, Server] = {
    "gunicorn": Server(
        "gunicorn",
        "--keep-alive (keepalive in gunicorn.conf.py; 2 s by default; sync workers never keep "
        "a connection alive)",
        2.0,
    ),
    "uvicorn": Server(
        "uvicorn",
        "--timeout-keep-alive (timeout_keep_alive; 5 s by default, gunicorn's --keep-alive "
        "under its UvicornWorker)",
        5.0,
    ),
    "jetty": Server(
        "Jetty",
        "the connector's idleTimeout (Spring Boot server.jetty.connection-idle-timeout; 30 s by "
        "default)",
        30.0,
    ),
    "apache": Server(
        "Apache httpd",
        "KeepAliveTimeout (5 s by default)",
        5.0,
        "MaxKeepAliveRequests (100 by default, 0 unlimited)",
    ),
    "kestrel": Server(
        "Kestrel",
        "KestrelServerLimits.KeepAliveTimeout (130 s by default)",
        130.0,
    ),
    "puma": Server("Puma", "persistent_timeout (20 s by default)", 20.0),
    "nginx": Server(
        "nginx",
        "its keepalive_timeout (75 s by default)",
        75.0,
        "its keepalive_requests (1000 by default)",
    ),
    "apache-coyote": TOMCAT,
    "tomcat": TOMCAT,
}

# Node closes an idle socket at keepAliveTimeout + 1 s: its default shows as ~6.0 s idle closes.
NODE_DEFAULT_IDLE = (5.95, 6.1)


def _server_of(header: str) -> Server | None:
    word = re.split(r"[/\s(;]", header.strip().lower(), maxsplit=1)[0]
    return KNOWN_SERVERS.get(word)


def identify(ev: Evidence, idle_s: float | None) -> tuple[Server | None, str]:
    """The upstream, and how it was told: its Server header, else a Keep-Alive header of
    Node's shape (a timeout, no max), else idle closes at Node's default (5 s + its 1 s
    buffer). None when nothing tells."""
    if ev.servers:
        header, _ = max(ev.servers.items(), key=lambda kv: (kv[1], kv[0]))
        server = _server_of(header)
        if server is not None:
            return server, f"its Server header says '{header}'"
        return None, f"its Server header says '{header}'"
    if ev.node_shaped:
        return NODE, "it sends 'Keep-Alive: timeout=N' without a Server header, as Node does"
    if idle_s is not None and NODE_DEFAULT_IDLE[0] <= idle_s <= NODE_DEFAULT_IDLE[1]:
        return NODE, (
            f"its idle closes come {idle_s:.3f} s after the last response, Node's default "
            "keepAliveTimeout of 5 s plus its 1 s buffer"
        )
    return None, ""


def _announced(ev: Evidence, server: Server | None) -> str:
    """What the upstream's own Keep-Alive headers said, when they said a timeout."""
    if not ev.announced:
        return ""
    timeout, n = max(ev.announced.items(), key=lambda kv: (kv[1], kv[0]))
    node = " (Node closes about 1 s after the timeout it announces)" if server is NODE else ""
    return (
        f" It announces its timeout: 'Keep-Alive: timeout={timeout}' on {n} connection"
        f"{'s' if n != 1 else ''}{node}."
    )


def _client_keeps(client: Client, what: str) -> str:
    """How long the client keeps an idle connection to the upstream, and the fix, in its own
    settings: the other half of the race."""
    if client.kind == "nginx":
        return (
            "nginx keeps idle upstream connections for its keepalive_timeout (60 s by default), "
            f"so the two race: make {what} longer than nginx's keepalive_timeout, or lower "
            "nginx's keepalive_timeout well below it."
        )
    if client.kind == "haproxy":
        return (
            "HAProxy keeps idle server connections in its pool for reuse (http-reuse) and "
            "closes them only as pool-purge-delay (5 s by default) purges them, so the two race: "
            f"make {what} longer than pool-purge-delay, or lower pool-purge-delay (in 'global') "
            "well below it; timeout http-keep-alive is the wait for a client's next request, not "
            "the server side's idle time."
        )
    return (
        "The client keeps idle connections to the upstream longer than that, so the two race: "
        f"make {what} longer than the client's idle timeout for upstream connections, or lower "
        "the client's well below it."
    )


def _idle(g: _Gathered, ev: Evidence, client: Client) -> Advice | None:
    idle, raced = g.idle, g.raced
    if not idle:
        return None
    mid, low = median(idle) / 1e9, min(idle) / 1e9
    race = f", and {len(raced)} with a request in flight" if raced else ""
    server, how = identify(ev, mid)
    if server is not None:
        named = (
            f" The upstream is {server.name} ({how}): its idle timeout is {server.idle_setting}."
        )
        what, after = "it", server.note
    else:
        told = f" ({how}, not a server kaflow knows)" if how else ""
        if ev.tls and not how:
            told = " (over TLS its Server and Keep-Alive headers are encrypted)"
        named = ""
        what = "the upstream's idle timeout"
        after = (
            f" Which server it is, the capture does not tell{told}: the setting is its own "
            "(Tomcat keepAliveTimeout, Node server.keepAliveTimeout, gunicorn --keep-alive, "
            "uvicorn --timeout-keep-alive, Go http.Server.IdleTimeout, Jetty idleTimeout, "
            "Apache KeepAliveTimeout, ...)."
        )
    return Advice(
        "upstream_idle_timeout",
        f"The upstream closes connections idle for about {mid:.3f} s (shortest {low:.3f} s; "
        f"{len(idle)} idle closes{race}).{_announced(ev, server)}{named} "
        f"{_client_keeps(client, what)}{after}",
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
    # the upstream's Server headers, by connections
    servers: Counter[str] = field(default_factory=Counter)
    # connections whose upstream sent Node's shape: Keep-Alive with a timeout and no max, and
    # no Server header
    node_shaped: int = 0
    # the upstream addresses seen (a handful: the servers of nginx's upstream block)
    addresses: Counter[str] = field(default_factory=Counter)
    # connections with requests; of those, with exactly one; of those, whose one request
    # asked to close (HTTP/1.0 or Connection: close)
    connections: int = 0
    one_request: int = 0
    asked_close: int = 0
    # connections carrying TLS (proxy_pass https://): their headers are encrypted
    tls: int = 0

    def add(self, c: Connections) -> None:
        # a batch's connections share a few Keep-Alive texts: each is searched once
        shapes = Counter(
            zip(
                c.conn_keep_alive,
                map(operator.is_, c.conn_server_header, repeat(None)),
                strict=True,
            )
        )
        for (keep_alive, no_server), n in shapes.items():
            if keep_alive is None or (m := _TIMEOUT.search(keep_alive)) is None:
                continue
            self.announced[int(m.group(1))] += n
            if no_server and "max=" not in keep_alive:
                self.node_shaped += n
        self.servers.update(v for v in c.conn_server_header if v)
        self.addresses.update(c.conn_server)
        self.tls += sum(1 for v in c.conn_tls if v is not None)
        for n, closing in zip(c.conn_requests, c.conn_requests_close, strict=True):
            if n:
                self.connections += 1
                if n == 1:
                    self.one_request += 1
                    self.asked_close += closing == 1
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


def _keepalive_off(ev: Evidence, client: Client) -> Advice | None:
    """Every connection carried one request that asked to close (HTTP/1.0, or Connection:
    close): the client is not keeping upstream connections alive at all."""
    one = ev.one_request
    if one < 2 or one != ev.connections or ev.asked_close != one:
        return None
    fix = {
        "nginx": "nginx speaks HTTP/1.0 to the upstream unless told otherwise: with 'keepalive "
        "N' in the upstream block, set 'proxy_http_version 1.1;' and 'proxy_set_header "
        'Connection "";\' where it proxies (both are the default from nginx 1.29.7 on).',
        "haproxy": "HAProxy asks the server to close with 'option http-server-close' or "
        "'option httpclose': use 'option http-keep-alive' (the default) in the backend.",
        "other": "Make the client speak HTTP/1.1 to the upstream without 'Connection: close'.",
    }[client.kind]
    return Advice(
        "keepalive_not_in_effect",
        f"Upstream keepalive is not in effect: each of the {one} connections carried one "
        f"request, and {client.name}'s requests asked to close (HTTP/1.0, or 'Connection: "
        f"close'). {fix}",
        value=float(one),
        evidence=one,
    )


def _max_requests(ev: Evidence, client: Client) -> Advice | None:
    counts = ev.closed_after
    if not counts or _keepalive_off(ev, client) is not None:
        return None
    # the most common count; on a tie the larger (order-free: connections come in any order)
    limit, n = max(counts.items(), key=lambda kv: (kv[1], kv[0]))
    total = sum(counts.values())
    server, how = identify(ev, None)
    if server is not None and server.max_requests_setting is not None:
        setting = f"{server.name}'s ({how}) {server.max_requests_setting}, {limit} here"
    else:
        setting = (
            f"{limit} here; the capture does not tell which server it is: Tomcat "
            "maxKeepAliveRequests, Apache MaxKeepAliveRequests, Node server.maxRequestsPerSocket"
            ", ..."
        )
    return Advice(
        "upstream_max_requests",
        f"The upstream ended {total} connection{'s' if total != 1 else ''} with "
        f"'Connection: close', {n} of them after {limit} request{'s' if limit != 1 else ''}: its "
        f"limit of requests per connection ({setting}) {_request_limit(client)}",
        value=float(limit),
        evidence=total,
    )


def _request_limit(client: Client) -> str:
    """The client's own limit of requests per upstream connection, to compare with."""
    if client.kind == "nginx":
        return (
            "is below nginx's keepalive_requests (1000 by default). Raise it above nginx's, or "
            "lower keepalive_requests in nginx's upstream block."
        )
    if client.kind == "haproxy":
        return (
            "is below the requests HAProxy sends on one connection (no limit unless the "
            "server's max-reuse sets one). Raise it, or set max-reuse on the server line below "
            "it."
        )
    return "is below the client's. Raise it above the client's, or lower the client's."


def _client_logs(g: _Gathered, client: Client) -> str:
    """What the client logs for the losses: nginx's messages, HAProxy's termination state."""
    lost = g.lost
    if client.kind == "haproxy":
        text = ""
        if g.failed:
            text += (
                " HAProxy logs a lost request it does not resend with termination state SH-- "
                "(the server aborted) and status 502 when it is its client connection's first; "
                "a later one it drops by closing the client's connection."
            )
        return text + (
            " 'retry-on conn-failure empty-response' makes HAProxy replay such a request on a "
            "new connection (a POST too: 'http-request disable-l7-retry if METH_POST' keeps "
            "those from being sent twice); 'http-reuse safe' (the default) sends a client "
            "connection's first request on a connection of its own, so that a loss on a reused "
            "one closes a client connection its browser may retry on."
        )
    if client.kind != "nginx":
        return ""
    text = ""
    if len(g.nginx_errors) == 1:
        (message,) = g.nginx_errors
        text += f" nginx logs {'it' if lost == 1 else 'each'} as '{message}'"
    elif g.nginx_errors:
        said = " or ".join(
            f"'{m}' ({n} of them)"
            for m, n in sorted(g.nginx_errors.items(), key=lambda kv: (-kv[1], kv[0]))
        )
        text += f" nginx logs them as {said}"
    for m, n in sorted(g.nginx_alt.items()):
        which = "" if lost == 1 else f" for {n} of them"
        text += (
            f" (or as '{m}'{which}, if the upstream's RST, which followed its FIN, reached "
            "nginx first)"
        )
    if g.nginx_errors:
        text += "."
    return text


def _lost(g: _Gathered, ev: Evidence, client: Client) -> Advice | None:
    lost = g.lost
    if not lost:
        return None
    parts = [f"{lost} request{'s' if lost != 1 else ''} lost to the upstream's close"]
    if g.retried:
        by = "sent again by the client" if client.kind == "other" else f"retried by {client.name}"
        parts.append(f"{g.retried} {by} (its client saw only the delay)")
    if g.failed:
        got = {
            "nginx": "their clients got a 502",
            "haproxy": "their clients got a 502 or a closed connection",
            "other": "unless the client retried them elsewhere, their clients got an error",
        }[client.kind]
        parts.append(f"{g.failed} not retried ({', '.join(sorted(g.methods))}): {got}")
    text = "; ".join(parts) + "." + _client_logs(g, client)
    servers = len(ev.addresses)
    if servers > 1 and client.kind != "nginx":
        moved = sum(g.other_server.values())
        if moved:
            text += (
                f" {moved} retr{'ies' if moved != 1 else 'y'} went to another upstream server "
                f"({', '.join(sorted(g.other_server))})."
            )
    elif servers > 1:
        moved = sum(g.other_server.values())
        if moved:
            text += (
                f" {moved} retr{'ies' if moved != 1 else 'y'} went to another upstream server "
                f"({', '.join(sorted(g.other_server))})."
            )
        text += (
            f" With {servers} upstream servers (addresses in the capture), each loss counts as a "
            "failure of its server: with max_fails=1 (the default) in fail_timeout 10s, one race "
            "marks it 'upstream server temporarily disabled' ([warn]) and nginx sends it nothing "
            "for 10 s; when every server is disabled, requests fail with 'no live upstreams' "
            "(502, not retried). Ending the race ends this; until then max_fails=0 on the "
            "servers keeps a race from disabling one."
        )
    return Advice("lost_requests", text, value=float(lost), evidence=lost)


def _connect(g: _Gathered, ev: Evidence, client: Client) -> Advice | None:
    failed = g.connect_failed
    if not failed:
        return None
    refused = ev.refused
    silent = failed - refused
    nginx = client.kind == "nginx"
    parts = []
    if silent:
        parts.append(
            f"{silent} SYN{'s' if silent != 1 else ''} never answered: the upstream's accept queue "
            "was full (Tomcat acceptCount / maxConnections / maxThreads; the kernel's somaxconn); "
            + {
                "nginx": "nginx answers 504 after proxy_connect_timeout",
                "haproxy": "HAProxy gives up after timeout connect (and its retries) with a 503",
                "other": "the client gives up after its connect timeout",
            }[client.kind]
        )
    if refused:
        parts.append(
            f"{refused} SYN{'s' if refused != 1 else ''} refused with RST: nothing was listening"
            + (" (nginx logs 'connect() failed (111: Connection refused)')" if nginx else "")
        )
    return Advice("connect_failed", "; ".join(parts) + ".", value=float(failed), evidence=failed)


def advise(
    findings: Iterable[Finding], evidence: Evidence, client: Client | None = None
) -> tuple[Advice, ...]:
    """Every conclusion the capture supports, most consequential first (one pass over the
    findings, which may be read back from disk), in the settings of ``client`` (nginx when
    None)."""
    client = client or Client()
    g = _Gathered.of(findings)
    found = (
        _lost(g, evidence, client),
        _keepalive_off(evidence, client),
        _idle(g, evidence, client),
        _max_requests(evidence, client),
        _connect(g, evidence, client),
    )
    return tuple(a for a in found if a is not None)

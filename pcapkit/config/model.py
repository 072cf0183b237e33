"""The values ``kaflow check`` works with: settings as their users wrote them, and what was found.

Every number carries the name its user knows it by and where it came from, because a problem is
only useful when its fix names the setting to change, in the file where it lives, in that file's
units. Times are float seconds here (config files speak seconds and milliseconds, not the
capture's nanoseconds); ``None`` means "no limit" where a value can be unlimited.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

T = TypeVar("T", covariant=True)  # a Value[int] is a Value[int | None]: values are frozen

MAX_SECONDS = 1e10
"""Longer than any timer (300 years): a larger value is a typo or an attack, not a setting."""

Unit = Literal["nginx_time", "ms", "s", "duration", "count"]
Severity = Literal["problem", "note"]
Rule = Literal[
    "idle_timeout",
    "max_requests",
    "capacity",
    "keepalive_not_in_effect",
    "non_idempotent",
    "max_fails",
    "keepalive_off",
    "keepalive_default",
    "no_upstream_config",
    "unresolved",
    "next_upstream_tries",
    "next_upstream_timeout",
    "keepalive_time",
    "request_buffering",
]


@dataclass(frozen=True, slots=True)
class Value(Generic[T]):
    """One effective setting: its value, the name its user writes, where it was read.

    ``default`` is True when nobody set it and the documented default applies; ``source`` then
    says whose default ("default of nginx 1.22.1").
    """

    value: T
    setting: str
    source: str
    default: bool = False
    unit: Unit = "count"

    def written(self, x: float | None) -> str:
        """``x`` written the way this setting is written in its own file."""
        return write(x, self.unit)


def write(x: float | None, unit: Unit) -> str:
    if x is None:
        return "-1"
    if unit == "ms":
        return str(round(x * 1000))
    if unit in ("nginx_time", "duration"):
        return f"{x:g}s" if x >= 1 or x == 0 else f"{round(x * 1000)}ms"
    if unit == "s":
        return f"{x:g}"
    return str(int(x))


def seconds_text(x: float | None) -> str:
    if x is None:
        return "no limit"
    return f"{x:g} s"


@dataclass(frozen=True, slots=True)
class UpstreamServer:
    """A ``server`` line of an ``upstream{}`` block."""

    address: str
    max_fails: int
    fail_timeout: float
    backup: bool = False
    down: bool = False

    @property
    def port(self) -> int | None:
        tail = self.address.rsplit(":", 1)
        if len(tail) == 2 and tail[1].isdigit():
            return int(tail[1])
        return None if self.address.startswith("unix:") else 80


@dataclass(frozen=True, slots=True)
class Location:
    """A ``location`` that passes requests to an ``upstream{}``, with its effective proxy_*
    settings (inherited from ``server{}`` and ``http{}`` as nginx inherits them)."""

    server: str  # "127.0.0.1:8081" (its listen) or its server_name
    path: str
    source: str
    http_version: Value[str]
    connection_header: Value[str | None]  # None: not set (nginx's default for the version)
    connection_closes: bool  # what is sent makes the upstream connection close after a response
    next_upstream: Value[tuple[str, ...]]
    next_upstream_tries: Value[int]
    keepalive_in_effect: bool
    # None: no limit (0, nginx's default)
    next_upstream_timeout: Value[float | None] = Value(
        None, "proxy_next_upstream_timeout", "nginx default", True, "nginx_time"
    )
    # proxy_request_buffering: off streams a request's body, and a request sent so is never
    # passed to another try
    request_buffering: Value[bool] = Value(True, "proxy_request_buffering", "nginx default", True)
    # the if{} it sits in ("if ($request_method = POST)"), when the proxy_pass is in one: the
    # upstream is used only for the requests the condition picks
    condition: str | None = None


@dataclass(frozen=True, slots=True)
class Upstream:
    """An ``upstream{}`` block with its effective keepalive settings and the locations using it.

    ``keepalive`` is None when upstream keepalive is off (no directive, nginx before 1.29.7);
    ``keepalive_time`` is None before nginx 1.19.10, which had no limit on a connection's life.
    """

    name: str
    source: str
    servers: tuple[UpstreamServer, ...]
    keepalive: Value[int | None]
    keepalive_timeout: Value[float]
    keepalive_requests: Value[int]
    keepalive_time: Value[float | None]
    locations: tuple[Location, ...] = ()

    @property
    def ports(self) -> set[int]:
        return {p for s in self.servers if (p := s.port) is not None}


@dataclass(frozen=True, slots=True)
class NginxConfig:
    """What ``kaflow check`` needs of an nginx configuration, effective values resolved."""

    files: tuple[str, ...]
    version: str | None
    version_source: str  # "--nginx-version", "nginx -T", or "unknown"
    worker_processes: Value[int | None]  # None: "auto", one per CPU of the nginx host
    worker_connections: Value[int]
    upstreams: tuple[Upstream, ...]
    log_formats: tuple[tuple[str, str], ...] = ()  # (name, format string), combined included
    access_logs: tuple[tuple[str, str], ...] = ()  # (path, format name)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Backend:
    """The upstream application server's keepalive settings, as its users configure them.

    ``idle_timeout`` None: it never closes idle connections; ``max_requests`` None: unlimited.
    ``keeps_alive`` False: it closes after every response (gunicorn's sync workers, Tomcat's
    maxKeepAliveRequests 1), so no idle connection can be raced.
    """

    kind: str
    source: str
    port: int | None
    idle_timeout: Value[float | None]
    max_requests: Value[int | None]
    max_connections: Value[int | None] | None = None
    accept_count: Value[int | None] | None = None
    max_threads: Value[int | None] | None = None
    keeps_alive: bool = True
    announces_close: bool = True  # its max-requests close comes with Connection: close
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Problem:
    """A rule's verdict: why the two sides disagree, and the fix in the user's setting names.

    ``severity`` "problem" makes ``kaflow check`` exit 1; a "note" only informs.
    """

    rule: Rule
    severity: Severity
    upstream: str
    message: str
    fix: str = ""
    location: str | None = None


@dataclass(frozen=True, slots=True)
class UpstreamCheck:
    upstream: Upstream
    backend: Backend | None
    race_possible: bool | None  # None: the upstream's idle timeout is not known
    workers: int | None
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The result of :func:`pcapkit.config.check`."""

    nginx: NginxConfig
    backends: tuple[Backend, ...]
    upstreams: tuple[UpstreamCheck, ...]
    problems: tuple[Problem, ...] = field(default=())

    @property
    def compatible(self) -> bool:
        return not any(p.severity == "problem" for p in self.problems)

"""``kaflow check``: nginx's upstream keepalive settings held against the upstream's own.

Stages, one module each: :mod:`~pcapkit.config.nginx` reads nginx's configuration (files with
their includes, or ``nginx -T`` output) into effective values; :mod:`~pcapkit.config.upstream`
reads the upstream server's settings from its users' files and command lines;
:mod:`~pcapkit.config.rules` holds the two against each other. Values are
:mod:`~pcapkit.config.model` dataclasses; every unreadable input is a
:class:`~pcapkit.errors.ConfigError` with one line saying where and why.
"""

from __future__ import annotations

from collections.abc import Sequence

from pcapkit.config.model import Backend, CheckResult, NginxConfig, Problem
from pcapkit.config.nginx import read_nginx
from pcapkit.config.rules import check
from pcapkit.config.upstream import by_hand, command, defaults, read_upstream

__all__ = [
    "Backend",
    "CheckResult",
    "NginxConfig",
    "Problem",
    "backends",
    "check",
    "check_files",
    "read_nginx",
]


def backends(
    paths: Sequence[str] = (),
    *,
    commands: Sequence[str] = (),
    kind: str | None = None,
    idle_timeout: float | None = None,
    max_requests: int | None = None,
    max_connections: int | None = None,
) -> list[Backend]:
    """The upstream servers described by files, command lines, a kind's defaults, and values
    given by hand (which override the first of the others, or stand alone)."""
    found: list[Backend] = []
    for p in paths:
        found.extend(read_upstream(p))
    found.extend(command(c) for c in commands)
    if kind is not None:
        found.append(defaults(kind, f"--upstream {kind}"))
    if idle_timeout is not None or max_requests is not None or max_connections is not None:
        base = found.pop(0) if found else None
        found.insert(0, by_hand(base, idle_timeout, max_requests, max_connections))
    return found


def check_files(
    nginx: str,
    upstream: Sequence[str] = (),
    *,
    nginx_text: str | None = None,
    version: str | None = None,
    commands: Sequence[str] = (),
    kind: str | None = None,
    idle_timeout: float | None = None,
    max_requests: int | None = None,
    max_connections: int | None = None,
) -> CheckResult:
    """Read nginx's configuration (``nginx_text``: ``nginx -T`` output already read, e.g. from
    stdin) and the upstream's, and check them against each other."""
    conf = read_nginx(nginx, text=nginx_text, version=version)
    found = backends(
        upstream,
        commands=commands,
        kind=kind,
        idle_timeout=idle_timeout,
        max_requests=max_requests,
        max_connections=max_connections,
    )
    return check(conf, found)

"""nginx's configuration: read with crossplane, includes followed by us, effective values resolved.

crossplane (nginx's own Python parser) lexes and nests one file at a time (``single=True``); the
``include``s are resolved here, because a config is untrusted input: an include cycle, a glob that
pulls in thousands of files, a file of gigabytes or a block nested thousands deep must end in one
clear :class:`~pcapkit.errors.ConfigError`, never a hang. The same code reads ``nginx -T`` output,
whose ``# configuration file PATH:`` headers give every file's text: its includes are matched
against those paths, never against this machine's file system.

Defaults follow nginx's version: upstream keepalive is on (``keepalive 32 local``, HTTP/1.1, no
``Connection: close``) since 1.29.7; ``keepalive_requests`` is 1000 since 1.19.10 (100 before).
"""

from __future__ import annotations

import fnmatch
import glob
import math
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pcapkit.config.model import MAX_SECONDS, Location, NginxConfig, Upstream, UpstreamServer, Value
from pcapkit.errors import ConfigError

MAX_FILE_BYTES = 4 << 20
"""Largest config file read: crossplane lexes about 0.5 MB a second, and real files are KBs."""
MAX_TOTAL_BYTES = 16 << 20
MAX_FILES = 2000
MAX_INCLUDE_DEPTH = 16

KEEPALIVE_BY_DEFAULT = (1, 29, 7)
KEEPALIVE_REQUESTS_1000 = (1, 19, 10)
KEEPALIVE_TIME = (1, 19, 10)  # keepalive_time came with 1.19.10; before, a connection lived on

COMBINED = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent"'
)

_DUMP_HEADER = re.compile(r"^# configuration file (.+):\s*$", re.MULTILINE)
_VERSION = re.compile(r"nginx version: nginx/(\d+\.\d+\.\d+)")
_TIME = re.compile(r"(\d+)(ms|s|m|h|d|w|M|y)?")
_UNITS = {
    "ms": 0.001,
    "s": 1,
    None: 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 604800,
    "M": 2592000,
    "y": 31536000,
}


def version_tuple(version: str | None) -> tuple[int, ...] | None:
    if version is None:
        return None
    m = re.fullmatch(r"(\d+)\.(\d+)(?:\.(\d+))?", version.strip())
    if m is None:
        raise ConfigError(f"--nginx-version {version!r}: give a version such as 1.24.0")
    return tuple(int(x or 0) for x in m.groups())


def nginx_time(text: str) -> float:
    """An nginx time (``60s``, ``1m30s``, ``500ms``, ``75``) in seconds."""
    pos, total = 0, 0.0
    text = text.strip()
    while pos < len(text):
        m = _TIME.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(text)
        try:
            total += int(m.group(1)) * _UNITS[m.group(2)]
        except OverflowError:
            raise ValueError(text) from None
        pos = m.end()
    if not text or not math.isfinite(total) or total > MAX_SECONDS:
        raise ValueError(text)
    return total


@dataclass(frozen=True, slots=True)
class Directive:
    name: str
    args: tuple[str, ...]
    file: str
    line: int
    block: tuple[Directive, ...] | None = None

    @property
    def where(self) -> str:
        return f"{Path(self.file).name}:{self.line}"


class _Sources:
    """Where file texts come from: the disk, or the files of an ``nginx -T`` dump."""

    def __init__(self, dump: dict[str, str] | None, root: str) -> None:
        self.dump = dump
        self.root = root
        self.total = 0
        self.read: list[str] = []

    def resolve(self, pattern: str, where: str) -> list[str]:
        if not os.path.isabs(pattern):
            pattern = os.path.join(self.root, pattern)
        if self.dump is not None:
            names = sorted(n for n in self.dump if fnmatch.fnmatchcase(n, pattern))
            if not names and not glob.has_magic(pattern):
                raise ConfigError(f"{where}: include {pattern}: not in the nginx -T output")
            return names
        if glob.has_magic(pattern):
            return sorted(glob.glob(pattern))
        return [pattern]

    def text(self, name: str, where: str | None) -> str:
        if self.dump is not None:
            data = self.dump[name]
            size = len(data)
        else:
            try:
                size = os.path.getsize(name)
                if size > MAX_FILE_BYTES:
                    raise ConfigError(_too_big(name, size))
                with open(name, "rb") as fh:
                    data = fh.read(MAX_FILE_BYTES + 1).decode("utf-8", "replace")
            except OSError as e:
                prefix = f"{where}: include " if where else ""
                raise ConfigError(f"{prefix}{name}: {e.strerror or e}") from None
        if size > MAX_FILE_BYTES:
            raise ConfigError(_too_big(name, size))
        self.total += size
        if self.total > MAX_TOTAL_BYTES:
            raise ConfigError(
                f"{name}: the configuration passes {MAX_TOTAL_BYTES >> 20} MiB in all; "
                "is an include pulling in more than config files?"
            )
        self.read.append(name)
        if len(self.read) > MAX_FILES:
            raise ConfigError(f"{name}: more than {MAX_FILES} files included; giving up")
        return data


def _too_big(name: str, size: int) -> str:
    return (
        f"{name}: {size / 1e6:.1f} MB is past the {MAX_FILE_BYTES >> 20} MiB a config file may "
        "have; is it really nginx's configuration?"
    )


def _parse_text(text: str, name: str) -> list[dict[str, Any]]:
    """One file's directives, as crossplane nests them (includes not followed)."""
    import crossplane

    with tempfile.TemporaryDirectory(prefix="kaflow-") as tmp:
        path = os.path.join(tmp, "nginx.conf")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        payload = crossplane.parse(
            path, single=True, check_ctx=False, check_args=False, catch_errors=False
        )
    if payload["status"] != "ok":
        err = payload["errors"][0]
        why = str(err.get("error") or "unexpected end of file (an unterminated quote?)")
        why = why.replace(path, name).split(" in " + name)[0]
        if "recursion" in why:
            why = "blocks nested too deeply"
        line = f":{err['line']}" if err.get("line") else ""
        raise ConfigError(f"{name}{line}: {why}")
    parsed: list[dict[str, Any]] = payload["config"][0]["parsed"]
    return parsed


def _directives(
    sources: _Sources, name: str, stack: tuple[str, ...], where: str | None
) -> tuple[Directive, ...]:
    if name in stack:
        cycle = " → ".join(Path(n).name for n in (*stack[stack.index(name) :], name))
        raise ConfigError(f"{where}: include cycle: {cycle}")
    if len(stack) >= MAX_INCLUDE_DEPTH:
        raise ConfigError(f"{where}: includes nested more than {MAX_INCLUDE_DEPTH} deep")
    raw = _parse_text(sources.text(name, where), name)
    return tuple(_build(sources, raw, name, (*stack, name)))


def _build(
    sources: _Sources, raw: list[dict[str, Any]], name: str, stack: tuple[str, ...]
) -> Iterator[Directive]:
    for d in raw:
        args = tuple(str(a) for a in d["args"])
        line = int(d["line"])
        if d["directive"] == "include" and args:
            where = f"{name}:{line}"
            for included in sources.resolve(args[0], where):
                yield from _directives(sources, included, stack, where)
            continue
        block = tuple(_build(sources, d["block"], name, stack)) if "block" in d else None
        yield Directive(d["directive"], args, name, line, block)


def split_dump(text: str) -> tuple[dict[str, str], str | None] | None:
    """The files of ``nginx -T`` output (path → text) and the version it names, or None if
    ``text`` is not such output."""
    heads = list(_DUMP_HEADER.finditer(text))
    if not heads:
        return None
    files: dict[str, str] = {}
    for i, m in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        body = text[m.end() : end]
        files[m.group(1).strip()] = body[1:] if body.startswith("\n") else body
    version = _VERSION.search(text[: heads[0].start()])
    return files, version.group(1) if version else None


def read_nginx(path: str, *, text: str | None = None, version: str | None = None) -> NginxConfig:
    """Read an nginx configuration: a main file with its includes, or ``nginx -T`` output (given
    as ``text``, e.g. read from stdin, or in the file). ``version`` overrides the one in the
    output; without either the defaults of nginx before 1.29.7 apply, and the result says so."""
    if text is None:
        sources = _Sources(None, str(Path(path).parent))
        head = sources.text(path, None)
    else:
        head = text
        if len(text) > MAX_TOTAL_BYTES:
            raise ConfigError(f"{path}: more than {MAX_TOTAL_BYTES >> 20} MiB")
    dump = split_dump(head)
    from_dump: str | None = None
    if dump is not None:
        files, from_dump = dump
        main = next(iter(files))
        sources = _Sources(files, str(Path(main).parent))
        top = _directives(sources, main, (), None)
    else:
        if text is not None:
            raise ConfigError(
                f"{path}: not nginx -T output (no '# configuration file' line): give a config "
                "file by its path, so that its includes can be found"
            )
        top = tuple(_build(sources, _parse_text(head, path), path, (path,)))
    chosen = version or from_dump
    origin = "--nginx-version" if version else ("nginx -T" if from_dump else "unknown")
    return _evaluate(top, tuple(sources.read), chosen, origin)


# --- effective values -------------------------------------------------------------------------


def _first(block: tuple[Directive, ...], name: str) -> Directive | None:
    for d in block:
        if d.name == name:
            return d
    return None


def _all(block: tuple[Directive, ...], name: str) -> list[Directive]:
    return [d for d in block if d.name == name]


def _int(d: Directive, what: str) -> int:
    try:
        return int(d.args[0])
    except (IndexError, ValueError):
        raise ConfigError(f"{d.file}:{d.line}: {what} {' '.join(d.args)}: not a number") from None


def _time(d: Directive) -> float:
    try:
        return nginx_time(d.args[0])
    except (IndexError, ValueError):
        raise ConfigError(f"{d.file}:{d.line}: {d.name} {' '.join(d.args)}: not a time") from None


@dataclass(frozen=True, slots=True)
class _Proxy:
    """The inheritable proxy_* settings in force at one level of http → server → location."""

    http_version: Value[str]
    headers: tuple[tuple[str, str], ...] | None  # None: nothing set at any level yet
    headers_source: str
    next_upstream: Value[tuple[str, ...]]
    tries: Value[int]
    timeout: Value[float | None]
    buffering: Value[bool]

    def under(self, block: tuple[Directive, ...]) -> _Proxy:
        hv = _first(block, "proxy_http_version")
        # proxy_set_header is all or nothing: a level that sets one inherits none of the others
        sets = [d for d in _all(block, "proxy_set_header") if d.args]
        nu = _first(block, "proxy_next_upstream")
        tr = _first(block, "proxy_next_upstream_tries")
        to = _first(block, "proxy_next_upstream_timeout")
        rb = _first(block, "proxy_request_buffering")
        return _Proxy(
            http_version=(
                Value(hv.args[0] if hv.args else "1.0", "proxy_http_version", hv.where)
                if hv
                else self.http_version
            ),
            headers=(
                tuple((s.args[0].lower(), s.args[1] if len(s.args) > 1 else "") for s in sets)
                if sets
                else self.headers
            ),
            headers_source=sets[0].where if sets else self.headers_source,
            next_upstream=Value(tuple(nu.args), "proxy_next_upstream", nu.where)
            if nu
            else self.next_upstream,
            tries=Value(_int(tr, tr.name), tr.name, tr.where) if tr else self.tries,
            # 0 turns the limit off, as nginx reads it
            timeout=Value(_time(to) or None, to.name, to.where, unit="nginx_time")
            if to
            else self.timeout,
            buffering=Value(not (rb.args and rb.args[0] == "off"), rb.name, rb.where)
            if rb
            else self.buffering,
        )


def _evaluate(
    top: tuple[Directive, ...], files: tuple[str, ...], version: str | None, origin: str
) -> NginxConfig:
    ver = version_tuple(version)
    assumed = ver is None
    ver = ver or (1, 22, 0)  # the newest behaviour before keepalive became the default
    whose = f"default of nginx {version}" if version else "nginx default (version unknown)"
    notes: list[str] = []
    if assumed:
        notes.append(
            "nginx's version is unknown (give --nginx-version, or nginx -T output with "
            "nginx -V): the defaults of nginx before 1.29.7 are assumed, upstream keepalive off"
        )
    on_by_default = ver >= KEEPALIVE_BY_DEFAULT

    wp = _first(top, "worker_processes")
    if wp is None:
        workers: Value[int | None] = Value(1, "worker_processes", whose, default=True)
    elif wp.args and wp.args[0] == "auto":
        workers = Value(None, "worker_processes", wp.where)
    else:
        workers = Value(_int(wp, wp.name), "worker_processes", wp.where)
    events = _first(top, "events")
    wc = _first(events.block or (), "worker_connections") if events else None
    worker_connections = (
        Value(_int(wc, wc.name), wc.name, wc.where)
        if wc
        else Value(512, "worker_connections", whose, default=True)
    )

    http = _first(top, "http")
    hblock = http.block or () if http else ()
    default_version = "1.1" if on_by_default else "1.0"
    proxy = _Proxy(
        Value(default_version, "proxy_http_version", whose, default=True),
        None,
        whose,
        Value(("error", "timeout"), "proxy_next_upstream", whose, default=True),
        Value(0, "proxy_next_upstream_tries", whose, default=True),
        Value(None, "proxy_next_upstream_timeout", whose, True, "nginx_time"),
        Value(True, "proxy_request_buffering", whose, default=True),
    ).under(hblock)
    maps = _maps(hblock)
    map_values = _map_values(hblock)

    upstreams: dict[str, Upstream] = {}
    for u in _all(hblock, "upstream"):
        upstreams[u.args[0] if u.args else ""] = _upstream(u, ver, whose, on_by_default)
    used: dict[str, list[Location]] = {name: [] for name in upstreams}
    for server in _all(hblock, "server"):
        sblock = server.block or ()
        listen = _first(sblock, "listen")
        names = _first(sblock, "server_name")
        label = (
            " ".join(names.args)
            if names and any(names.args)
            else (listen.args[0] if listen and listen.args else "server")
        )
        sproxy = proxy.under(sblock)
        for loc, where, lproxy in _locations(sblock, sproxy, ""):
            lblock = loc.block or ()
            # proxy_pass may sit in the location or in an if{} inside it; an if{} is a nested
            # location that inherits every proxy_* setting of its location (nginx allows none
            # of the keepalive ones inside it), so only its target differs
            passes: list[tuple[Directive, str | None]] = [
                (pp, None) for pp in _all(lblock, "proxy_pass") if pp.args
            ]
            for cond in _all(lblock, "if"):
                within = f"if ({' '.join(cond.args)})"
                passes.extend(
                    (pp, within) for pp in _all(cond.block or (), "proxy_pass") if pp.args
                )
            for pp, test in passes:
                for target, how in _targets(pp, lblock, sblock, map_values, notes):
                    if target not in upstreams:
                        if how:
                            notes.append(
                                f"{pp.where}: proxy_pass {pp.args[0]}: {how} gives {target}, "
                                "which no upstream{} names: nginx resolves it per request and "
                                "keeps no connections to it (no keepalive, no race)"
                            )
                        continue
                    used[target].append(
                        _location(
                            upstreams[target],
                            label,
                            where,
                            loc,
                            lproxy,
                            maps,
                            on_by_default,
                            test,
                        )
                    )
                    if test is not None:
                        notes.append(
                            f"{pp.where}: location {where}: proxy_pass to {target} inside "
                            f"{test}: only the requests it picks go there; they take the "
                            "location's proxy settings, checked as such"
                        )
                    if how:
                        notes.append(
                            f"{pp.where}: location {where}: proxy_pass {pp.args[0]}: {how} can "
                            f"give upstream {target}: the location is checked against it"
                        )
    resolved = tuple(
        Upstream(
            u.name,
            u.source,
            u.servers,
            u.keepalive,
            u.keepalive_timeout,
            u.keepalive_requests,
            u.keepalive_time,
            tuple(used[name]),
        )
        for name, u in upstreams.items()
    )
    formats = {"combined": COMBINED}
    for lf in _all(hblock, "log_format"):
        args = [a for a in lf.args[1:] if not a.startswith("escape=")]
        if lf.args:
            formats[lf.args[0]] = "".join(args)
    access = tuple(
        (a.args[0], a.args[1] if len(a.args) > 1 else "combined")
        for a in _walk(hblock)
        if a.name == "access_log" and a.args and a.args[0] != "off"
    )
    return NginxConfig(
        files=files,
        version=version,
        version_source=origin,
        worker_processes=workers,
        worker_connections=worker_connections,
        upstreams=resolved,
        log_formats=tuple(formats.items()),
        access_logs=access,
        notes=tuple(notes),
    )


def _walk(block: tuple[Directive, ...]) -> Iterator[Directive]:
    for d in block:
        yield d
        if d.block:
            yield from _walk(d.block)


def _maps(block: tuple[Directive, ...]) -> dict[str, str | None]:
    """``map`` variables → what they give for a request without the source variable ('' key):
    the common WebSocket map sends ``Connection: close`` to every plain request."""
    out: dict[str, str | None] = {}
    for m in _all(block, "map"):
        if len(m.args) < 2 or not m.block:
            continue
        values = {d.name: (d.args[0] if d.args else "") for d in m.block}
        out[m.args[1]] = values.get("", values.get("default"))
    return out


def _map_values(block: tuple[Directive, ...]) -> dict[str, tuple[str, Directive]]:
    """``map`` variables → (every value they can take, space-separated; the map), for a
    ``proxy_pass`` whose host is a variable."""
    out: dict[str, tuple[str, Directive]] = {}
    for m in _all(block, "map"):
        if len(m.args) < 2 or not m.block:
            continue
        values = dict.fromkeys(d.args[0] for d in m.block if d.args and d.name != "hostnames")
        out[m.args[1]] = (" ".join(values), m)
    return out


_PASS = re.compile(r"^(?:[^:/]+://)?(\[[^\]]*\]|[^/:]+)(?::[^/]*)?(?:/.*)?$")
_VAR = re.compile(r"^\$\{?(\w+)\}?$")


def _targets(
    pp: Directive,
    location: tuple[Directive, ...],
    server: tuple[Directive, ...],
    map_values: dict[str, tuple[str, Directive]],
    notes: list[str],
) -> Iterator[tuple[str, str]]:
    """The hosts a ``proxy_pass`` can send to, each with how a variable gave it ('' when
    written out). A variable is followed through a ``set`` in the location or its server, or a
    ``map``; one that cannot be followed is said in ``notes``."""
    m = _PASS.match(pp.args[0])
    if m is None:
        notes.append(f"{pp.where}: proxy_pass {pp.args[0]}: not a URL kaflow reads; not checked")
        return
    host = m.group(1)
    var = _VAR.match(host)
    if "$" not in host:
        yield host, ""
        return
    if var is None:
        notes.append(
            f"{pp.where}: proxy_pass {pp.args[0]}: its host is built from variables at request "
            "time; kaflow cannot tell which upstream{} it names, so this location is not checked"
        )
        return
    name = "$" + var.group(1)
    for block, level in ((location, "location"), (server, "server")):
        sets = [d for d in _all(block, "set") if len(d.args) >= 2 and d.args[0] == name]
        if sets:
            value = sets[-1].args[1]
            if "$" in value:
                break
            host_of = _PASS.match(value)
            if host_of is not None:
                yield host_of.group(1), f"{name} (set at {sets[-1].where}, in its {level})"
            return
    if name in map_values:
        values, mp = map_values[name]
        for value in values.split():
            host_of = _PASS.match(value)
            if "$" not in value and host_of is not None:
                yield host_of.group(1), f"{name} (map at {mp.where})"
        return
    notes.append(
        f"{pp.where}: proxy_pass {pp.args[0]}: {name} is set at request time (no set or map "
        "kaflow can read): this location is not checked; give the upstream{} by name, or check "
        "the config each value gives"
    )


def _locations(
    block: tuple[Directive, ...], proxy: _Proxy, outer: str
) -> Iterator[tuple[Directive, str, _Proxy]]:
    for d in block:
        if d.name != "location" or d.block is None:
            continue
        path = " ".join(d.args)
        here = proxy.under(d.block)
        yield d, f"{outer} > {path}" if outer else path, here
        yield from _locations(d.block, here, path)


def _upstream(u: Directive, ver: tuple[int, ...], whose: str, on_by_default: bool) -> Upstream:
    block = u.block or ()
    servers = []
    for s in _all(block, "server"):
        params = dict(a.split("=", 1) for a in s.args[1:] if "=" in a)
        flags = set(a for a in s.args[1:] if "=" not in a)
        try:
            servers.append(
                UpstreamServer(
                    address=s.args[0],
                    max_fails=int(params.get("max_fails", "1")),
                    fail_timeout=nginx_time(params.get("fail_timeout", "10s")),
                    backup="backup" in flags,
                    down="down" in flags,
                )
            )
        except (ValueError, IndexError):
            raise ConfigError(f"{s.file}:{s.line}: server {' '.join(s.args)}: unreadable") from None
    ka = _first(block, "keepalive")
    if ka is not None:
        keepalive: Value[int | None] = Value(_int(ka, ka.name), "keepalive", ka.where)
    elif on_by_default:
        keepalive = Value(32, "keepalive", whose, default=True)
    else:
        keepalive = Value(None, "keepalive", whose, default=True)
    kt = _first(block, "keepalive_timeout")
    kr = _first(block, "keepalive_requests")
    ktime = _first(block, "keepalive_time")
    return Upstream(
        name=u.args[0] if u.args else "",
        source=u.where,
        servers=tuple(servers),
        keepalive=keepalive,
        keepalive_timeout=Value(_time(kt), kt.name, kt.where, unit="nginx_time")
        if kt
        else Value(60.0, "keepalive_timeout", whose, True, "nginx_time"),
        keepalive_requests=Value(_int(kr, kr.name), kr.name, kr.where)
        if kr
        else Value(
            1000 if ver >= KEEPALIVE_REQUESTS_1000 else 100, "keepalive_requests", whose, True
        ),
        keepalive_time=Value(_time(ktime), ktime.name, ktime.where, unit="nginx_time")
        if ktime
        else Value(
            3600.0 if ver >= KEEPALIVE_TIME else None, "keepalive_time", whose, True, "nginx_time"
        ),
    )


def _location(
    up: Upstream,
    server: str,
    path: str,
    loc: Directive,
    proxy: _Proxy,
    maps: dict[str, str | None],
    on_by_default: bool,
    condition: str | None = None,
) -> Location:
    header: str | None = None
    for name, value in proxy.headers or ():
        if name == "connection":
            header = value
    if header is None:
        closes = not on_by_default  # nginx sends "Connection: close" unless told otherwise
    elif header.startswith("$") and header in maps:
        closes = (maps[header] or "").lower() == "close"
    else:
        closes = header.strip().lower() == "close"
    http11 = proxy.http_version.value == "1.1"
    return Location(
        server=server,
        path=path,
        source=loc.where,
        http_version=proxy.http_version,
        connection_header=Value(
            header,
            'proxy_set_header Connection ""',
            proxy.headers_source if header is not None else "not set",
            default=header is None,
        ),
        connection_closes=closes,
        next_upstream=proxy.next_upstream,
        next_upstream_tries=proxy.tries,
        keepalive_in_effect=up.keepalive.value is not None and http11 and not closes,
        next_upstream_timeout=proxy.timeout,
        request_buffering=proxy.buffering,
        condition=condition,
    )

"""The upstream's keepalive settings, read from what its users write.

Spring Boot ``application.yaml``/``.properties``, Tomcat ``server.xml``, ``gunicorn.conf.py``
(read with :mod:`ast`, never executed) and command lines of gunicorn, uvicorn and others. Every
value unset takes the server's documented default, and says so: the default is usually the
problem (Tomcat's keepAliveTimeout falls back to connectionTimeout, 20 s in its shipped
server.xml and 60 s otherwise — equal to nginx's keepalive_timeout, which still races).

All of these are untrusted files: XML is parsed by defusedxml with DTDs refused (no entity can
expand), YAML with aliases refused before anything is built, Python only as a syntax tree.
"""

from __future__ import annotations

import ast
import math
import re
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pcapkit.config.model import MAX_SECONDS, Backend, Unit, Value
from pcapkit.errors import ConfigError

MAX_BYTES = 4 << 20

KINDS = ("tomcat", "spring-boot", "gunicorn", "uvicorn", "node", "jetty", "puma", "go")

# kind → (idle timeout s, its setting, unit; max requests, its setting)
_DEFAULTS: dict[str, tuple[float | None, str, Unit, int | None, str]] = {
    # Tomcat's keepAliveTimeout falls back to connectionTimeout: 60000 when server.xml is silent
    "tomcat": (60.0, "keepAliveTimeout", "ms", 100, "maxKeepAliveRequests"),
    "spring-boot": (
        60.0,
        "server.tomcat.keep-alive-timeout",
        "duration",
        100,
        "server.tomcat.max-keep-alive-requests",
    ),
    "node": (5.0, "server.keepAliveTimeout", "ms", None, "server.maxRequestsPerSocket"),
    "jetty": (30.0, "jetty.http.idleTimeout", "ms", None, "-"),
    "puma": (20.0, "persistent_timeout", "s", None, "-"),
    "go": (None, "http.Server.IdleTimeout", "s", None, "-"),
    "uvicorn": (5.0, "--timeout-keep-alive", "s", None, "--limit-max-requests"),
}
_NOTES = {
    "node": "Node's default keepAliveTimeout is 5 s (65 s from Node 26); sockets close about 1 s "
    "later (keepAliveTimeoutBuffer); headersTimeout must stay above keepAliveTimeout",
    "go": "Go's IdleTimeout falls back to ReadTimeout; with neither set idle connections stay open",
}


def _read(path: str) -> str:
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise ConfigError(f"{path}: {size / 1e6:.1f} MB is too large for a config file")
        return p.read_bytes().decode("utf-8", "replace")
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror or e}") from None


def _finite(text: str) -> float:
    """A number of a command line or file: inf, nan and negatives are not timeouts."""
    x = float(text)
    if not math.isfinite(x) or x < 0 or x > MAX_SECONDS * 1000:
        raise ValueError(text)
    return x


# --- durations ---------------------------------------------------------------------------------

_SPRING = re.compile(r"^([-+]?\d+(?:\.\d+)?)\s*(ns|us|ms|s|m|h|d)?$", re.IGNORECASE)
_SPRING_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_ISO = re.compile(
    r"^([-+]?)P(?:([-+]?\d+)D)?(?:T(?:([-+]?\d+)H)?(?:([-+]?\d+)M)?(?:([-+]?\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)


def spring_duration(text: str, default_unit: str = "ms") -> float | None:
    """A Spring Boot duration in seconds: ``20s``, ``PT20S``, ``20000`` (the property's default
    unit, milliseconds for Tomcat's timeouts). Negative: no timeout (None)."""
    t = text.strip()
    m = _SPRING.match(t)
    if m:
        value = float(m.group(1)) * _SPRING_UNITS[(m.group(2) or default_unit).lower()]
    else:
        iso = _ISO.match(t)
        if iso is None or t.upper() in ("P", "PT"):
            raise ValueError(text)
        sign, d, h, mi, s = iso.groups()
        value = (
            float(d or 0) * 86400 + float(h or 0) * 3600 + float(mi or 0) * 60 + float(s or 0)
        ) * (-1 if sign == "-" else 1)
    if not math.isfinite(value) or value > MAX_SECONDS:
        raise ValueError(text)
    return None if value < 0 else value


# --- Spring Boot ---------------------------------------------------------------------------------


def _canon(key: str) -> str:
    """Spring's relaxed binding: case, dashes and underscores do not matter."""
    return re.sub(r"[-_]", "", key).lower()


def _properties(text: str) -> dict[str, tuple[str, int]]:
    out: dict[str, tuple[str, int]] = {}
    pending = ""
    start = 0
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip() if not pending else raw.lstrip()
        if not pending and (not line or line[0] in "#!"):
            continue
        if not pending:
            start = n
        if line.endswith("\\") and not line.endswith("\\\\"):
            pending += line[:-1]
            continue
        line, pending = pending + line, ""
        m = re.match(r"((?:\\.|[^=:\s])+)\s*[=:\s]\s*(.*)$", line)
        if m:
            out[m.group(1)] = (m.group(2).strip(), start)
        else:
            out[line] = ("", start)
    return out


def _yaml(text: str, path: str) -> dict[str, tuple[str, int]]:
    """Flattened ``a.b.c`` keys of every document that applies without a profile, each with
    its line."""
    import yaml

    try:
        # an alias can stand for a whole tree: a few lines can stand for billions of nodes
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                mark = event.start_mark
                line = mark.line + 1 if mark else "?"
                raise ConfigError(f"{path}:{line}: YAML aliases (*name) are not read")
        docs = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: not YAML ({getattr(e, 'problem', e)})") from None
    except RecursionError:
        raise ConfigError(f"{path}: YAML nested too deeply") from None
    out: dict[str, tuple[str, int]] = {}
    for doc in docs:
        if not isinstance(doc, yaml.MappingNode):
            continue
        flat: dict[str, tuple[str, int]] = {}
        _flatten(doc, "", flat, 0)
        if any(_canon(k) in ("spring.config.activate.onprofile", "spring.profiles") for k in flat):
            continue  # a profile's document applies only with that profile active
        out.update(flat)
    return out


def _flatten(node: Any, prefix: str, out: dict[str, tuple[str, int]], depth: int) -> None:
    import yaml

    if depth > 64:
        raise ConfigError("YAML nested more than 64 deep")
    for k, v in node.value:
        key = f"{prefix}{k.value}"
        if isinstance(v, yaml.MappingNode):
            _flatten(v, key + ".", out, depth + 1)
        elif isinstance(v, yaml.ScalarNode):
            out[key] = ("" if v.value in ("~", "null") else str(v.value), v.start_mark.line + 1)


_PLACEHOLDER = re.compile(r"^\$\{[^:}]+(?::([^}]*))?\}$")


def spring_boot(path: str) -> Backend:
    """Spring Boot's embedded Tomcat from ``application.properties`` or ``application.yaml``."""
    text = _read(path)
    props = _yaml(text, path) if path.endswith((".yaml", ".yml")) else _properties(text)
    canon = {_canon(k): (k, v, line) for k, (v, line) in props.items()}
    notes: list[str] = []
    name = Path(path).name

    def get(*keys: str) -> tuple[str, str, str] | None:
        for key in keys:
            hit = canon.get(_canon(key))
            if hit is not None:
                k, v, line = hit
                m = _PLACEHOLDER.match(v)
                if m:
                    if m.group(1) is None:
                        notes.append(f"{k} = {v}: a placeholder without a default; not read")
                        continue
                    notes.append(f"{k} = {v}: read as its default {m.group(1)}")
                    v = m.group(1)
                return k, v, f"{name}:{line}" if line else name
        return None

    def duration(*keys: str) -> Value[float | None] | None:
        hit = get(*keys)
        if hit is None:
            return None
        k, v, where = hit
        try:
            return Value(spring_duration(v), k, where, unit="duration")
        except ValueError:
            raise ConfigError(f"{where}: {k} = {v}: not a duration (20s, PT20S, 20000)") from None

    def count(key: str, default: int, *aliases: str) -> Value[int | None]:
        hit = get(key, *aliases)
        if hit is None:
            return Value(default, key, "Spring Boot default", default=True)
        k, v, where = hit
        try:
            n = int(v)
        except ValueError:
            raise ConfigError(f"{where}: {k} = {v}: not a number") from None
        return Value(None if n < 0 else n, k, where)

    conn = duration("server.tomcat.connection-timeout", "server.connection-timeout")
    keep = duration("server.tomcat.keep-alive-timeout")
    if keep is None:
        base = conn or Value(60.0, "server.tomcat.connection-timeout", "Tomcat default", True)
        keep = Value(
            base.value,
            "server.tomcat.keep-alive-timeout",
            f"unset: = {base.setting} ({base.source})",
            default=True,
            unit="duration",
        )
    port_hit = get("server.port")
    port = int(port_hit[1]) if port_hit and port_hit[1].isdigit() else 8080
    max_requests = count("server.tomcat.max-keep-alive-requests", 100)
    return Backend(
        kind="Spring Boot (Tomcat)",
        source=path,
        port=port,
        idle_timeout=keep,
        max_requests=max_requests,
        max_connections=count("server.tomcat.max-connections", 8192),
        accept_count=count("server.tomcat.accept-count", 100),
        max_threads=count("server.tomcat.threads.max", 200, "server.tomcat.max-threads"),
        keeps_alive=max_requests.value != 1,
        notes=tuple(notes),
    )


# --- Tomcat server.xml ---------------------------------------------------------------------------


def tomcat(path: str) -> list[Backend]:
    """Every HTTP ``<Connector>`` of a Tomcat ``server.xml`` (AJP connectors are not HTTP)."""
    from xml.etree.ElementTree import ParseError

    import defusedxml
    from defusedxml.ElementTree import fromstring

    data = _read(path)
    try:
        root = fromstring(data.encode("utf-8"), forbid_dtd=True)
    except defusedxml.DefusedXmlException as e:
        raise ConfigError(f"{path}: refused: {e} (a DTD or entity in server.xml)") from None
    except ParseError as e:
        raise ConfigError(f"{path}: not XML ({e})") from None
    executors = {e.get("name", ""): e.get("maxThreads", "200") for e in root.iter("Executor")}
    out = [
        _connector(c, path, executors)
        for c in root.iter("Connector")
        if "ajp" not in c.get("protocol", "HTTP/1.1").lower()
    ]
    if not out:
        raise ConfigError(f"{path}: no HTTP <Connector> in it")
    return out


def _connector(c: Any, path: str, executors: dict[str, str]) -> Backend:
    """One ``<Connector>``: unset attributes take Tomcat's documented defaults."""
    port = c.get("port", "")
    where = f'{Path(path).name} <Connector port="{port}">'
    notes: list[str] = []

    def attr(key: str) -> str | None:
        v = c.get(key)
        if v is not None and "${" in v:
            notes.append(f'{key}="{v}": a property placeholder; its default is assumed')
            return None
        return v

    def ms(key: str, default: Value[float | None]) -> Value[float | None]:
        v = attr(key)
        if v is None:
            return default
        try:
            n = float(v)
            if not math.isfinite(n) or n > MAX_SECONDS * 1000:
                raise ValueError(v)
        except ValueError:
            raise ConfigError(f'{where}: {key}="{v}": not a number') from None
        return Value(None if n < 0 else n / 1000, key, where, unit="ms")

    def count(key: str, default: int, fallback: str | None = None) -> Value[int | None]:
        v = attr(key) or fallback
        if v is None:
            return Value(default, key, "Tomcat default", default=True)
        try:
            n = int(v)
        except ValueError:
            raise ConfigError(f'{where}: {key}="{v}": not a number') from None
        return Value(None if n < 0 else n, key, where)

    conn = ms("connectionTimeout", Value(60.0, "connectionTimeout", "Tomcat default", True, "ms"))
    keep = ms(
        "keepAliveTimeout",
        Value(
            conn.value,
            "keepAliveTimeout",
            f"unset: = connectionTimeout ({conn.source})",
            True,
            "ms",
        ),
    )
    executor = executors.get(c.get("executor", ""))
    max_requests = count("maxKeepAliveRequests", 100)
    return Backend(
        kind="Tomcat",
        source=path,
        port=int(port) if port.isdigit() else None,
        idle_timeout=keep,
        max_requests=max_requests,
        max_connections=count("maxConnections", 8192),
        accept_count=count("acceptCount", 100),
        max_threads=count("maxThreads", 200, executor),
        keeps_alive=max_requests.value != 1,
        notes=tuple(notes),
    )


# --- gunicorn ------------------------------------------------------------------------------------

_GUNICORN_FLAGS = {
    "--keep-alive": "keepalive",
    "--max-requests": "max_requests",
    "-k": "worker_class",
    "--worker-class": "worker_class",
    "-w": "workers",
    "--workers": "workers",
    "--threads": "threads",
    "--worker-connections": "worker_connections",
    "--backlog": "backlog",
    "-b": "bind",
    "--bind": "bind",
    "-c": "config",
    "--config": "config",
}


def _gunicorn_file(path: str) -> tuple[dict[str, object], list[str]]:
    text = _read(path)
    try:
        tree = ast.parse(text, filename=path)
    except SyntaxError as e:
        raise ConfigError(f"{path}:{e.lineno}: not Python ({e.msg})") from None
    except (RecursionError, MemoryError, ValueError):
        raise ConfigError(f"{path}: not a gunicorn config kaflow can read") from None
    values: dict[str, object] = {}
    notes: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        else:
            continue
        if not isinstance(target, ast.Name):
            continue
        try:
            values[target.id] = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
            notes.append(f"{Path(path).name}:{node.lineno}: {target.id} is computed; not read")
    return values, notes


def _port_of(bind: object) -> int | None:
    text = bind[0] if isinstance(bind, list | tuple) and bind else bind
    if isinstance(text, str):
        m = re.search(r":(\d+)$", text)
        return int(m.group(1)) if m else None
    return None


def gunicorn(path: str | None = None, command: list[str] | None = None) -> Backend:
    """gunicorn from ``gunicorn.conf.py`` (never run) and/or its command line (which wins)."""
    values: dict[str, object] = {}
    notes: list[str] = []
    where: dict[str, str] = {}
    if command:
        opts = _flags(command, _GUNICORN_FLAGS)
        path = str(opts.pop("config", path or "")) or None
    else:
        opts = {}
    if path:
        values, notes = _gunicorn_file(path)
        where = {k: Path(path).name for k in values}
    for k, v in opts.items():
        values[k] = v
        where[k] = "command line"

    def num(key: str, default: float, flag: str) -> Value[float | None]:
        v = values.get(key)
        if v is None:
            return Value(default, flag, "gunicorn default", default=True, unit="s")
        try:
            x = float(str(v))
            if not math.isfinite(x) or x < 0 or x > MAX_SECONDS:
                raise ValueError(v)
            return Value(x, key if where[key] != "command line" else flag, where[key], unit="s")
        except ValueError:
            raise ConfigError(f"{where[key]}: {key} = {v!r}: not a number") from None

    def count(key: str, default: int) -> int:
        v = values.get(key, default)
        try:
            return int(float(str(v)))
        except (ValueError, OverflowError):
            raise ConfigError(f"{where.get(key, '')}: {key} = {v!r}: not a number") from None

    keepalive = num("keepalive", 2.0, "--keep-alive")
    max_req = num("max_requests", 0, "--max-requests")
    worker = str(values.get("worker_class", "sync"))
    threads = count("threads", 1)
    if worker == "sync" and threads > 1:
        worker = "gthread"  # gunicorn switches to gthread by itself
    keeps_alive = worker != "sync"
    if not keeps_alive:
        notes.append(
            "sync workers close the connection after every response (no keepalive): use "
            "gthread (--threads N) or gevent for keepalive to the upstream"
        )
    if "uvicorn" in worker.lower():
        notes.append("UvicornWorker takes gunicorn's keepalive as its keep-alive timeout")
    max_requests: Value[int | None] = Value(
        None if not max_req.value else int(max_req.value),
        max_req.setting,
        max_req.source,
        max_req.default,
    )
    return Backend(
        kind=f"gunicorn ({worker})",
        source=path or "command line",
        port=_port_of(values.get("bind", "127.0.0.1:8000")),
        idle_timeout=keepalive,
        max_requests=max_requests,
        max_connections=None,
        accept_count=Value(
            count("backlog", 2048),
            "backlog",
            where.get("backlog", "gunicorn default"),
            "backlog" not in values,
        ),
        keeps_alive=keeps_alive,
        announces_close=False,  # max_requests restarts the worker: its idle connections just close
        notes=tuple(notes),
    )


def _flags(argv: list[str], known: Mapping[str, str]) -> dict[str, object]:
    """``--flag value`` / ``--flag=value`` options of a command line that we know."""
    out: dict[str, object] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        flag, eq, value = arg.partition("=")
        if flag in known:
            if not eq:
                if i + 1 >= len(argv):
                    raise ConfigError(f"command line: {flag} needs a value")
                value = argv[i + 1]
                i += 1
            out[known[flag]] = value
        elif len(arg) > 2 and arg[:2] in known and arg[1] != "-":
            out[known[arg[:2]]] = arg[2:]  # -w4
        i += 1
    return out


# --- uvicorn and the others, from a command line -------------------------------------------------

_UVICORN_FLAGS = {
    "--timeout-keep-alive": "timeout_keep_alive",
    "--limit-max-requests": "limit_max_requests",
    "--backlog": "backlog",
    "--port": "port",
}


def defaults(kind: str, source: str = "default") -> Backend:
    """A server known only by its kind: its documented defaults."""
    if kind == "gunicorn":
        return gunicorn(None, [])
    idle, idle_name, unit, maxr, maxr_name = _DEFAULTS[kind]
    notes = (_NOTES[kind],) if kind in _NOTES else ()
    tomcat = kind in ("tomcat", "spring-boot")
    prefix = "server.tomcat." if kind == "spring-boot" else ""
    whose = f"{kind} default"

    def tc(name: str, n: int) -> Value[int | None] | None:
        return Value(n, prefix + name, whose, default=True) if tomcat else None

    return Backend(
        kind={
            "node": "Node.js",
            "jetty": "Jetty",
            "puma": "Puma",
            "go": "Go net/http",
            "tomcat": "Tomcat",
            "spring-boot": "Spring Boot (Tomcat)",
        }.get(kind, kind),
        source=source,
        port=None,
        idle_timeout=Value(idle, idle_name, whose, default=True, unit=unit),
        max_requests=Value(maxr, maxr_name, whose, default=True),
        max_connections=tc("max-connections" if prefix else "maxConnections", 8192),
        accept_count=tc("accept-count" if prefix else "acceptCount", 100),
        max_threads=tc("threads.max" if prefix else "maxThreads", 200),
        notes=notes,
    )


def command(line: str) -> Backend:
    """An upstream server's command line: gunicorn, uvicorn, node, java -jar (Jetty), puma."""
    try:
        argv = shlex.split(line)
    except ValueError as e:
        raise ConfigError(f"command line {line!r}: {e}") from None
    if not argv:
        raise ConfigError("empty upstream command line")
    # `env VAR=value ... server ...`: the server is the first word after the assignments
    lead = 0
    if Path(argv[0]).name == "env":
        lead = 1 + next((i for i, a in enumerate(argv[1:]) if "=" not in a), len(argv) - 1)
    words = [Path(a).name for a in argv[: max(3, lead + 2)]]
    first = Path(argv[lead]).name if lead < len(argv) else ""
    if "gunicorn" in words:
        return gunicorn(None, argv[1:])
    if "uvicorn" in words:
        opts = _flags(argv[1:], _UVICORN_FLAGS)
        base = defaults("uvicorn", "command line")
        try:
            idle = (
                Value(
                    _finite(str(opts["timeout_keep_alive"])),
                    "--timeout-keep-alive",
                    "command line",
                    unit="s",
                )
                if "timeout_keep_alive" in opts
                else base.idle_timeout
            )
            maxr = (
                Value(int(str(opts["limit_max_requests"])), "--limit-max-requests", "command line")
                if "limit_max_requests" in opts
                else base.max_requests
            )
            port = int(str(opts.get("port", 8000)))
        except ValueError:
            raise ConfigError(f"command line {line!r}: a value is not a number") from None
        return Backend(
            kind="uvicorn",
            source="command line",
            port=port,
            idle_timeout=idle,
            max_requests=maxr,
            announces_close=False,
        )
    if first in ("node", "nodejs"):
        return defaults("node", "command line")
    if first == "puma":
        return defaults("puma", "command line")
    if first == "java":
        for a in argv:
            if a.startswith("jetty.http.idleTimeout="):
                try:
                    ms = _finite(a.split("=", 1)[1])
                except ValueError:
                    raise ConfigError(f"{a}: not a number") from None
                b = defaults("jetty", "command line")
                return Backend(
                    b.kind,
                    b.source,
                    None,
                    Value(ms / 1000, "jetty.http.idleTimeout", "command line", unit="ms"),
                    b.max_requests,
                )
        if any("jetty" in a.lower() for a in argv):
            return defaults("jetty", "command line")
    raise ConfigError(
        f"command line {line!r}: not a server kaflow knows (gunicorn, uvicorn, node, puma, "
        "java -jar jetty); give --upstream-idle-timeout and --upstream-max-requests instead"
    )


def by_hand(
    base: Backend | None,
    idle_timeout: float | None,
    max_requests: int | None,
    max_connections: int | None,
) -> Backend:
    """Values given on kaflow's own command line, over ``base`` (or a server of unknown kind)."""
    if base is None:
        base = Backend(
            kind="upstream",
            source="given by hand",
            port=None,
            idle_timeout=Value(None, "idle timeout", "unknown", True, "s"),
            max_requests=Value(None, "max requests per connection", "unknown", True),
        )
    idle = (
        Value(
            idle_timeout,
            base.idle_timeout.setting,
            "--upstream-idle-timeout",
            unit=base.idle_timeout.unit,
        )
        if idle_timeout is not None
        else base.idle_timeout
    )
    maxr = (
        Value(max_requests or None, base.max_requests.setting, "--upstream-max-requests")
        if max_requests is not None
        else base.max_requests
    )
    conns = (
        Value(max_connections, "max connections", "--upstream-max-connections")
        if max_connections is not None
        else base.max_connections
    )
    return Backend(
        kind=base.kind,
        source=base.source,
        port=base.port,
        idle_timeout=idle,
        max_requests=maxr,
        max_connections=conns,
        accept_count=base.accept_count,
        max_threads=base.max_threads,
        keeps_alive=base.keeps_alive,
        announces_close=base.announces_close,
        notes=base.notes,
    )


_PUMA = re.compile(r"^\s*(persistent_timeout|port|bind)\s*\(?\s*['\"]?([^'\")\s#]+)", re.M)


def puma(path: str) -> Backend:
    """Puma's ``config/puma.rb``: its ``persistent_timeout`` and ``port``/``bind`` lines, read as
    text (Ruby is never run; a value computed from ENV is not read)."""
    text = _read(path)
    base = defaults("puma", path)
    idle = base.idle_timeout
    port: int | None = None
    for m in _PUMA.finditer(text):
        key, value = m.groups()
        line = text.count("\n", 0, m.start()) + 1
        if key == "persistent_timeout":
            try:
                idle = Value(float(value), key, f"{Path(path).name}:{line}", unit="s")
            except ValueError:
                continue
        elif value.isdigit():
            port = int(value)
        elif (found := re.search(r":(\d+)$", value)) is not None:
            port = int(found.group(1))
    return Backend(base.kind, path, port, idle, base.max_requests, notes=base.notes)


_READERS: dict[str, Callable[[str], list[Backend]]] = {
    ".rb": lambda p: [puma(p)],
    ".xml": tomcat,
    ".yaml": lambda p: [spring_boot(p)],
    ".yml": lambda p: [spring_boot(p)],
    ".properties": lambda p: [spring_boot(p)],
    ".py": lambda p: [gunicorn(p)],
}


def read_upstream(path: str) -> list[Backend]:
    """The settings in one upstream config file, its kind told by its name."""
    reader = _READERS.get(Path(path).suffix.lower())
    if reader is None:
        raise ConfigError(
            f"{path}: not an upstream config kaflow reads (server.xml, application.yaml or "
            ".properties, gunicorn.conf.py, puma.rb); for others give --upstream-command or "
            "--upstream-idle-timeout"
        )
    return reader(path)

"""nginx's error and access logs, read line by line into typed values.

Real logs are rotated, gzipped, shared by virtual hosts and upstreams we were not asked about,
full of messages that do not concern us, and cut off mid-line when copied while nginx writes.
None of that stops the reading: each line is parsed, or counted under the reason it was not.
Only the lines that can concern the upstream are kept (an error log of a busy day has millions
of lines; the join needs a few).

The error log's time has a one-second resolution and no zone (nginx writes local time); the
access log's ``$msec`` is epoch seconds, ``$time_local`` carries its zone — which is also the
error log's, the same nginx's.
"""

from __future__ import annotations

import gzip
import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Literal

from pcapkit.errors import LogError

ErrorKind = Literal[
    "prematurely_closed",
    "prematurely_closed_body",
    "reset",
    "broken_pipe",
    "connect_timeout",
    "read_timeout",
    "refused",
    "no_live_upstreams",
    "server_disabled",
]
LOST_KINDS: frozenset[str] = frozenset(
    {"prematurely_closed", "prematurely_closed_body", "reset", "broken_pipe"}
)
CONNECT_KINDS: frozenset[str] = frozenset({"connect_timeout", "refused"})

MAX_LINE = 64 * 1024
"""Longer lines are counted as unparsed: no nginx line we read comes near it."""

OVERLONG = "<a line longer than 64 KiB>"

COMBINED = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent"'
)
MAIN = COMBINED + ' "$http_x_forwarded_for"'  # the "main" format of nginx's packaged nginx.conf

_ERROR = re.compile(
    r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[(\w+)\] (\d+)#(\d+): (?:\*(\d+) )?(.*)$", re.DOTALL
)
_FIELDS = re.compile(
    r', (client|server|request|upstream|host|referrer|subrequest): ("(?:[^"\\]|\\.)*"|[^,]*)'
)
_KINDS: tuple[tuple[re.Pattern[str], ErrorKind], ...] = (
    (
        re.compile(r"^upstream prematurely closed connection while reading response header"),
        "prematurely_closed",
    ),
    (re.compile(r"^upstream prematurely closed connection"), "prematurely_closed_body"),
    (re.compile(r"^\w+\(\) failed \(104: Connection reset by peer\)"), "reset"),
    (re.compile(r"^\w+\(\) failed \(32: Broken pipe\)"), "broken_pipe"),
    (re.compile(r"^upstream timed out \(110: [^)]*\) while connecting"), "connect_timeout"),
    (re.compile(r"^upstream timed out \(110"), "read_timeout"),
    (re.compile(r"^connect\(\) failed \(111: Connection refused\)"), "refused"),
    (re.compile(r"^no live upstreams"), "no_live_upstreams"),
    (re.compile(r"^upstream server temporarily disabled"), "server_disabled"),
)
_UPSTREAM_URL = re.compile(r"^[a-z]+://(\[[^\]]*\]|[^/:]+)(?::(\d+))?(/.*)?$")


@dataclass(frozen=True, slots=True)
class ErrorLine:
    """An error-log line about the upstream.

    ``local_s`` is the logged time read as if it were UTC (nginx writes local time without a
    zone): subtract the log's UTC offset for the real time. ``upstream`` is ``host:port`` of the
    upstream URL nginx names (``[::1]:8080`` for IPv6), or the group's name for
    ``no live upstreams``.
    """

    file: str
    line: int
    local_s: int
    level: str
    connection: int | None  # nginx's "*N": the client connection's serial number
    kind: ErrorKind
    request: str | None  # "GET /test/0/7 HTTP/1.1", as the client sent it
    upstream: str | None
    upstream_path: str | None  # the URI sent upstream
    text: str

    @property
    def method_target(self) -> str | None:
        """``"GET /test/0/7"``: the request as the capture labels it (the upstream URI's path
        when nginx names it: proxy_pass may rewrite the client's)."""
        if self.request is None:
            return None
        parts = self.request.split(" ")
        if len(parts) < 2:
            return None
        return f"{parts[0]} {self.upstream_path or parts[1]}"


@dataclass(frozen=True, slots=True)
class AccessEntry:
    """An access-log entry where the upstream failed at least once, or the client got a 5xx.

    ``upstream_statuses`` and ``upstream_addrs`` list the attempts in order (``502, 200``: the
    first attempt failed, nginx retried and the second answered).
    """

    file: str
    line: int
    time_ns: int | None  # when nginx logged it (the request's end), if the format says
    status: int | None
    request: str | None
    upstream_addrs: tuple[str, ...]
    upstream_statuses: tuple[str, ...]
    request_time: float | None
    connection: int | None
    request_id: str | None
    text: str

    @property
    def method_target(self) -> str | None:
        if self.request is None:
            return None
        parts = self.request.split(" ")
        return f"{parts[0]} {parts[1]}" if len(parts) >= 2 else None

    @property
    def failed_attempts(self) -> int:
        """Attempts that ended in an error nginx made up itself (502 bad gateway, 504 timeout)
        rather than an upstream response: what the error log has a line for."""
        return sum(1 for s in self.upstream_statuses if s in ("502", "504"))


@dataclass(slots=True)
class FileCounts:
    """What one log file held, every line accounted for."""

    path: str
    kind: Literal["error", "access"]
    compressed: bool = False
    lines: int = 0
    kept: int = 0  # lines about the upstream, kept for the join
    other: int = 0  # well-formed lines that do not concern the join (other messages, 200s)
    other_upstreams: int = 0  # about an upstream not in the capture
    unparsed: int = 0
    partial_last_line: bool = False
    truncated: str | None = None  # why reading stopped early (a cut gzip stream)
    log_format: str | None = None  # access: the format the lines were read with
    utc_offset_s: int | None = None  # access: the zone $time_local / $time_iso8601 gives
    samples: list[str] = field(default_factory=list)  # a few unparsed lines, for the message


def _lines(path: str) -> Iterator[tuple[int, str, bool]]:
    """``(number, text, complete)`` for each line; gzip read when the file is gzip."""
    try:
        raw: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed below, wrapped maybe
    except OSError as e:
        raise LogError(f"{path}: {e.strerror or e}") from None
    with raw:
        head = raw.read(2)
        raw.seek(0)
        fh: IO[bytes] = raw
        if head == b"\x1f\x8b":
            fh = gzip.GzipFile(fileobj=raw)  # type: ignore[assignment]
        n = 0
        while True:
            chunk = fh.readline(MAX_LINE)
            if not chunk:
                return
            n += 1
            complete = chunk.endswith(b"\n")
            if not complete and len(chunk) >= MAX_LINE:
                while True:  # skip the rest of an overlong line
                    more = fh.readline(MAX_LINE)
                    if not more or more.endswith(b"\n"):
                        break
                yield n, OVERLONG, True
                continue
            yield n, chunk.decode("utf-8", "replace").rstrip("\r\n"), complete


def _read_all(path: str, counts: FileCounts) -> Iterator[tuple[int, str, bool]]:
    """:func:`_lines`, but a cut or corrupt gzip stream ends the file with a note."""
    try:
        yield from _lines(path)
    except (EOFError, gzip.BadGzipFile, OSError) as e:
        gz = isinstance(e, EOFError | gzip.BadGzipFile) or "CRC" in str(e)
        if not gz:
            raise LogError(f"{path}: {getattr(e, 'strerror', None) or e}") from None
        counts.truncated = f"gzip stream cut or corrupt ({e})"


def is_error_log(path: str) -> bool:
    """Whether the file looks like an error log (its first dated lines say so)."""
    seen = 0
    for _, text, _ in _read_all(path, FileCounts(path, "error")):
        if not text.strip():
            continue
        if _ERROR.match(text):
            return True
        seen += 1
        if seen >= 20:
            return False
    return False


def _local_s(stamp: str) -> int:
    dt = datetime.strptime(stamp, "%Y/%m/%d %H:%M:%S")
    return int((dt - datetime(1970, 1, 1)).total_seconds())


def _host_port(url: str) -> tuple[str | None, str | None]:
    m = _UPSTREAM_URL.match(url)
    if m is None:
        return None, None
    host, port, path = m.groups()
    if port is None:
        return host, path  # a group name (no live upstreams) or a default port
    return f"{host}:{port}", path


def parse_error_line(text: str, file: str = "", number: int = 0) -> ErrorLine | str | None:
    """An error-log line: an :class:`ErrorLine` if it is about an upstream, ``"other"`` if it
    is another well-formed line, None if it is not an error-log line at all."""
    m = _ERROR.match(text)
    if m is None:
        return None
    stamp, level, _pid, _tid, conn, message = m.groups()
    kind = next((k for rx, k in _KINDS if rx.match(message)), None)
    if kind is None:
        return "other"
    fields = {k: v[1:-1] if v.startswith('"') else v for k, v in _FIELDS.findall(message)}
    upstream, path = _host_port(fields.get("upstream", ""))
    try:
        local = _local_s(stamp)
    except ValueError:
        return None
    return ErrorLine(
        file=file,
        line=number,
        local_s=local,
        level=level,
        connection=int(conn) if conn else None,
        kind=kind,
        request=fields.get("request"),
        upstream=upstream,
        upstream_path=path,
        text=text[:2000],
    )


def read_error_log(path: str, ports: Sequence[int]) -> tuple[list[ErrorLine], FileCounts]:
    """The error lines about an upstream on one of ``ports`` (or naming none: ``no live
    upstreams``), and the counts of everything else."""
    counts = FileCounts(path, "error")
    kept: list[ErrorLine] = []
    want = {str(p) for p in ports}
    for n, text, complete in _read_all(path, counts):
        counts.lines += 1
        if not text.strip():
            counts.other += 1
            continue
        got = parse_error_line(text, path, n)
        if not complete:
            # the line nginx was writing when the file was copied: counted, never trusted
            counts.partial_last_line = True
            continue
        if got is None:
            counts.unparsed += 1
            if len(counts.samples) < 3:
                counts.samples.append(text[:200])
            continue
        if isinstance(got, str):
            counts.other += 1
            continue
        port = got.upstream.rsplit(":", 1)[-1] if got.upstream and ":" in got.upstream else None
        if port is not None and port not in want:
            counts.other_upstreams += 1
            continue
        kept.append(got)
        counts.kept += 1
    counts.compressed = _gzipped(path)
    return kept, counts


def _gzipped(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(2) == b"\x1f\x8b"
    except OSError:
        return False


# --- access logs ---------------------------------------------------------------------------------

_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_SPACEY = {
    "request",
    "http_user_agent",
    "http_referer",
    "upstream_addr",
    "upstream_status",
    "upstream_response_time",
    "upstream_connect_time",
    "upstream_header_time",
    "upstream_bytes_received",
    "upstream_bytes_sent",
    "upstream_response_length",
    "time_local",
}
_PORTS = re.compile(r":(\d+)(?=$|[,\s])")
_LIST = r"[^\s,]+(?:(?:, | : )[^\s,]+)*"  # attempts joined by ", ", upstream groups by " : "
_SPECIFIC = {
    "msec": r"\d+(?:\.\d+)?",
    "status": r"\d{3}",
    "request_time": r"[\d.]+|-",
    "connection": r"\d+",
    "connection_requests": r"\d+",
}


def compile_format(fmt: str) -> re.Pattern[str]:
    """A ``log_format`` string as an anchored regex with a named group per variable.

    A variable followed by a quote or a bracket takes everything up to it (nginx escapes quotes
    in values); one that may hold spaces (``$upstream_status`` is ``502, 200``) takes the fewest
    characters that let the rest match; any other stops at a space. No pattern can backtrack
    more than a line's length per such variable.
    """
    parts: list[str] = []
    pos = 0
    seen: set[str] = set()
    matches = list(_VAR.finditer(fmt))
    for i, m in enumerate(matches):
        parts.append(re.escape(fmt[pos : m.start()]))
        name = m.group(1) or m.group(2)
        nxt = fmt[m.end() : m.end() + 1]
        if name in _SPECIFIC:
            body = _SPECIFIC[name]
        elif nxt in ('"', "'", "]"):
            body = f"[^{re.escape(nxt)}]*"
        elif not nxt and i == len(matches) - 1:
            body = ".*"
        elif name.startswith("upstream_"):
            body = _LIST
        elif name in _SPACEY:
            body = ".*?"
        else:
            body = r"\S*"
        parts.append(f"(?P<{name}>{body})" if name not in seen else f"(?:{body})")
        seen.add(name)
        pos = m.end()
    parts.append(re.escape(fmt[pos:]))
    return re.compile("^" + "".join(parts) + "$")


_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_TIME_LOCAL = re.compile(r"^(\d\d)/(\w{3})/(\d{4}):(\d\d):(\d\d):(\d\d) ([-+])(\d\d)(\d\d)$")
_ISO = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)([-+])(\d\d):(\d\d)$")


def _zoned(text: str) -> tuple[int, int] | None:
    """``$time_local`` or ``$time_iso8601`` as (epoch ns, UTC offset s)."""
    m = _TIME_LOCAL.match(text)
    if m:
        d, mon, y, hh, mm, ss, sign, oh, om = m.groups()
        month = _MONTHS.get(mon)
        if month is None:
            return None
        parts = (int(y), month, int(d), int(hh), int(mm), int(ss))
    else:
        m = _ISO.match(text)
        if m is None:
            return None
        y, mo, d, hh, mm, ss, sign, oh, om = m.groups()
        parts = (int(y), int(mo), int(d), int(hh), int(mm), int(ss))
    offset = (int(oh) * 3600 + int(om) * 60) * (-1 if sign == "-" else 1)
    try:
        local = int((datetime(*parts) - datetime(1970, 1, 1)).total_seconds())
    except ValueError:
        return None
    return (local - offset) * 1_000_000_000, offset


def _split(value: str | None) -> tuple[str, ...]:
    """An ``$upstream_*`` list: attempts joined by ", ", upstream groups by " : "."""
    if not value or value == "-":
        return ()
    return tuple(p for p in re.split(r",\s*|\s+:\s+", value.strip()) if p)


def _entry(m: re.Match[str], file: str, number: int, text: str) -> tuple[AccessEntry, int | None]:
    g = m.groupdict()
    time_ns: int | None = None
    offset: int | None = None
    if g.get("msec"):
        sec, _, frac = g["msec"].partition(".")
        time_ns = int(sec) * 1_000_000_000 + int((frac + "000000000")[:9])
    for key in ("time_iso8601", "time_local"):
        if g.get(key):
            z = _zoned(g[key])
            if z is not None:
                offset = z[1]
                if time_ns is None:
                    time_ns = z[0]
    status = g.get("status")
    rt = g.get("request_time")
    conn = g.get("connection")
    try:
        request_time = float(rt) if rt and rt != "-" else None
    except ValueError:
        request_time = None
    return (
        AccessEntry(
            file=file,
            line=number,
            time_ns=time_ns,
            status=int(status) if status and status.isdigit() else None,
            request=g.get("request"),
            upstream_addrs=_split(g.get("upstream_addr")),
            upstream_statuses=_split(g.get("upstream_status")),
            request_time=request_time,
            connection=int(conn) if conn and conn.isdigit() else None,
            request_id=g.get("request_id") or g.get("http_x_request_id") or None,
            text=text[:2000],
        ),
        offset,
    )


def choose_format(path: str, formats: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """The format (name, string) that reads most of the file's first lines."""
    lines = (t for _, t, _ in _read_all(path, FileCounts(path, "access")) if t.strip())
    sample = list(itertools.islice(lines, 200))
    if not sample:
        return formats[0]
    scored = []
    for name, fmt in formats:
        rx = compile_format(fmt)
        scored.append((sum(1 for t in sample if rx.match(t)), name, fmt))
    best = max(scored, key=lambda s: s[0])
    if best[0] == 0:
        names = ", ".join(n for n, _ in formats)
        raise LogError(
            f"{path}: no line matches the access log format ({names}); give the log_format "
            "string with --log-format, or the config with --nginx-conf"
        )
    return best[1], best[2]


def read_access_log(
    path: str, ports: Sequence[int], formats: Sequence[tuple[str, str]]
) -> tuple[list[AccessEntry], FileCounts]:
    """The access entries where the upstream failed or the client got a 5xx (on an upstream
    of ``ports``), and the counts of the others."""
    name, fmt = choose_format(path, formats)
    rx = compile_format(fmt)
    counts = FileCounts(path, "access", log_format=name)
    want = {str(p) for p in ports}
    kept: list[AccessEntry] = []
    for n, text, complete in _read_all(path, counts):
        counts.lines += 1
        if not text.strip():
            counts.other += 1
            continue
        m = rx.match(text)
        if m is None:
            if not complete:
                counts.partial_last_line = True
            else:
                counts.unparsed += 1
                if len(counts.samples) < 3:
                    counts.samples.append(text[:200])
            continue
        # most lines are fine: decided from two groups, before any object is built
        g = m.groupdict()
        addrs = g.get("upstream_addr")
        if addrs and addrs != "-":
            ports_seen = _PORTS.findall(addrs)
            if ports_seen and not any(p in want for p in ports_seen):
                counts.other_upstreams += 1
                continue
        tried = g.get("upstream_status")
        if tried and tried != "-":
            interesting = "502" in tried or "504" in tried
        else:
            interesting = g.get("status") in ("502", "504")
        if counts.utc_offset_s is None and (g.get("time_local") or g.get("time_iso8601")):
            counts.utc_offset_s = _entry(m, path, n, text)[1]
        if not interesting:
            counts.other += 1
            continue
        entry, _ = _entry(m, path, n, text)
        kept.append(entry)
        counts.kept += 1
    counts.compressed = _gzipped(path)
    return kept, counts

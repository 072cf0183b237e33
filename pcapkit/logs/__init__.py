"""nginx's error and access logs, read (:mod:`~pcapkit.logs.parse`) and joined to a capture's
findings (:mod:`~pcapkit.logs.join`): which findings nginx confirms, which log errors the capture
does not explain, which findings nginx did not log, and how many clients got a 5xx from them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

from pcapkit.errors import LogError
from pcapkit.logs.join import Confirmation, LogJoin, Unexplained, join
from pcapkit.logs.parse import (
    COMBINED,
    MAIN,
    AccessEntry,
    ErrorLine,
    FileCounts,
    is_error_log,
    read_access_log,
    read_error_log,
)
from pcapkit.model import Analysis

__all__ = [
    "AccessEntry",
    "Confirmation",
    "ErrorLine",
    "FileCounts",
    "LogJoin",
    "Unexplained",
    "join",
    "join_logs",
    "utc_offset",
]

_OFFSET = re.compile(r"^(?:UTC|GMT)?([-+])(\d{1,2})(?::?(\d\d))?$")


def utc_offset(tz: str, at_ns: int | None = None) -> int:
    """``--log-tz``: ``+02:00``, ``-0500``, ``UTC``, or a zone name (``Europe/Berlin``, taken
    at ``at_ns``, the capture's start: its summer or winter time) → seconds east of UTC."""
    text = tz.strip()
    if text.upper() in ("UTC", "GMT", "Z"):
        return 0
    m = _OFFSET.match(text)
    if m:
        sign, hh, mm = m.groups()
        return (int(hh) * 3600 + int(mm or 0) * 60) * (-1 if sign == "-" else 1)
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        zone = ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise LogError(
            f"--log-tz {tz!r}: give +02:00, UTC or a zone name like Europe/Berlin"
        ) from None
    when = datetime.fromtimestamp((at_ns or 0) // 1_000_000_000, tz=UTC)
    delta = when.astimezone(zone).utcoffset()
    return int(delta.total_seconds()) if delta is not None else 0


def join_logs(
    analysis: Analysis,
    paths: Sequence[str],
    *,
    log_format: str | None = None,
    formats: Sequence[tuple[str, str]] = (),
    tz: str | None = None,
) -> LogJoin:
    """Read nginx's logs (error and access, told apart by their lines; rotated and gzipped
    files welcome) and join them to ``analysis``' findings.

    The access log's format: ``log_format`` (a format string, or the name of one in
    ``formats``), else whichever of ``formats`` (from the nginx config) and the standard
    ``combined``/``main`` reads the file best.
    """
    ports = analysis.capture.ports
    known = dict(formats)
    candidates: list[tuple[str, str]]
    if log_format is not None:
        if log_format in known:
            candidates = [(log_format, known[log_format])]
        elif log_format in ("combined", "main"):
            candidates = [(log_format, COMBINED if log_format == "combined" else MAIN)]
        else:
            candidates = [("--log-format", log_format)]
    else:
        candidates = [*formats, ("combined", COMBINED), ("main", MAIN)]
    errors: list[ErrorLine] = []
    access: list[AccessEntry] = []
    files: list[FileCounts] = []
    for path in paths:
        if is_error_log(path):
            kept, counts = read_error_log(path, ports)
            errors.extend(kept)
        else:
            entries, counts = read_access_log(path, ports, candidates)
            access.extend(entries)
        files.append(counts)
    offset = utc_offset(tz, analysis.capture.first_ts_ns) if tz is not None else None
    return join(analysis, errors, access, files, utc_offset_s=offset)

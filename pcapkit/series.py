"""Several files as one capture: what their names and time ranges say about them, and the
time window (``--since`` / ``--until``) as the core takes it.

The merge itself happens in the core (``crates/kaflow-core/src/capture/merge.rs``); this module
only words what is known of the files and parses the window's edges.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal, NamedTuple

from pcapkit.errors import KaflowError
from pcapkit.model import CaptureFile

Edge = tuple[Literal["at", "after_start"], int]
"""A window edge as the core takes it: nanoseconds since the epoch, or after the first packet."""

_LEADING_DIGITS = re.compile(r"\d+")


# a NamedTuple, not a frozen dataclass: a dataclass costs ~1 ms of start-up to create (Python 3.11
# compiles each of its methods), a NamedTuple a tenth of that
class Numbering(NamedTuple):
    """The numbers a series' names carry (tcpdump ``-C``/``-W``: ``dump.pcap``, ``dump.pcap1``;
    ``-G``/dumpcap/editcap: a counter or a time in the name), in the order given."""

    numbers: tuple[int, ...]

    @property
    def counter(self) -> bool:
        """The numbers count files (few holes), rather than stamp times (-G's %H%M%S jumps
        from 59 to 100)."""
        return max(self.numbers) - min(self.numbers) + 1 <= 2 * len(self.numbers)

    @property
    def missing(self) -> tuple[int, ...]:
        """Numbers between the lowest and the highest that no file has (at most 10)."""
        have = set(self.numbers)
        gaps = (n for n in range(min(have), max(have)) if n not in have)
        return tuple(n for _, n in zip(range(10), gaps, strict=False))


def _common_start(texts: Sequence[str]) -> str:
    """The characters every text starts with."""
    first, last = min(texts), max(texts)
    n = 0
    while n < min(len(first), len(last)) and first[n] == last[n]:
        n += 1
    return first[:n]


def numbering(paths: Sequence[str]) -> Numbering | None:
    """The files' numbers when their names differ only by a number (the first file of a tcpdump
    ``-C`` series has none: it is 0), else None."""
    names = [os.path.basename(p) for p in paths]
    if len(names) < 2 or len(set(names)) != len(names):
        return None
    prefix = _common_start(names)
    suffix = _common_start([n[len(prefix) :][::-1] for n in names])[::-1]
    # a common run of digits belongs to the numbers (dump.pcap1, dump.pcap10)
    prefix = prefix.rstrip("0123456789")
    suffix = suffix.lstrip("0123456789")
    numbers: list[int] = []
    for n in names:
        middle = n[len(prefix) : len(n) - len(suffix)]
        if not middle:
            numbers.append(0)
            continue
        m = _LEADING_DIGITS.match(middle)
        if m is None:
            return None
        numbers.append(int(m.group()))
    if len(set(numbers)) != len(numbers):
        return None
    return Numbering(tuple(numbers))


def in_time_order(files: Sequence[CaptureFile]) -> tuple[CaptureFile, ...]:
    """The files by their first packet, each with the gap since the previous one's last."""
    ordered = sorted(files, key=lambda f: (f.first_ts_ns is None, f.first_ts_ns or 0))
    out: list[CaptureFile] = []
    last: int | None = None
    for f in ordered:
        gap = None
        if out and last is not None and f.first_ts_ns is not None:
            gap = f.first_ts_ns - last
        out.append(
            CaptureFile(
                path=f.path,
                format=f.format,
                link_types=f.link_types,
                packets=f.packets,
                first_ts_ns=f.first_ts_ns,
                last_ts_ns=f.last_ts_ns,
                first_frame=f.first_frame,
                last_frame=f.last_frame,
                gap_before_ns=gap,
                warnings=f.warnings,
            )
        )
        if f.last_ts_ns is not None:
            last = f.last_ts_ns if last is None else max(last, f.last_ts_ns)
    return tuple(out)


def describe(paths: Sequence[str], files: Sequence[CaptureFile], merged: bool) -> str:
    """One line for the report's header: how the files were taken as one capture."""
    n = len(files)
    overlap = any(f.gap_before_ns is not None and f.gap_before_ns < 0 for f in files)
    if merged and overlap:
        how = "their time ranges overlap: merged as asked"
    else:
        how = "consecutive in time"
    numbers = numbering(paths)
    named = ""
    if numbers is not None:
        named = f", named as a numbered series ({min(numbers.numbers)} to {max(numbers.numbers)})"
    return f"one capture in {n} files, merged in time order: {how}{named}"


def missing_warning(paths: Sequence[str]) -> str | None:
    """A warning when the names are numbered and numbers are missing among them."""
    numbers = numbering(paths)
    if numbers is None or not numbers.counter or not numbers.missing:
        return None
    gone = ", ".join(str(n) for n in numbers.missing)
    return (
        f"the files are numbered {min(numbers.numbers)} to {max(numbers.numbers)} but {gone} "
        "is missing: packets may have been lost there (a ring buffer overwrote it, or it was "
        "not given)"
    )


_UNITS_NS = {"ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_OFFSET = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_edge(text: str, option: str) -> Edge:
    """``+10m``, ``+1h30m``, ``+90s``, ``+250ms`` (after the capture's first packet), or an ISO
    8601 time: ``2026-12-03T02:57:01Z`` or with an offset is absolute, one without an offset is
    local time. Raises :class:`KaflowError` with a one-line message otherwise."""
    t = text.strip()
    if t.startswith("+"):
        rest = t[1:]
        parts = _OFFSET.findall(rest)
        if rest and "".join(a + u for a, u in parts) == rest:
            ns = sum(round(float(a) * _UNITS_NS[u]) for a, u in parts)
            return ("after_start", ns)
        raise KaflowError(
            f"{option} {text!r}: an offset from the capture's start is +10m, +1h30m, +90s or +250ms"
        )
    try:
        when = datetime.fromisoformat(t)
    except ValueError:
        raise KaflowError(
            f"{option} {text!r}: give a time such as 2026-12-03T02:57:01Z (UTC), "
            "2026-12-03 03:57:01 (local time) or +10m (after the capture's start)"
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()  # local time, as the operator's clock shows it
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    return ("at", ns)

"""nginx's logs joined to the capture's findings: what confirms what, and what each side missed.

A request lost to the upstream's FIN should have an ``upstream prematurely closed connection``
line (or ``recv() failed (104)`` for an RST, ``writev() failed (32)`` for a write into the closed
socket) and an access entry whose ``$upstream_status`` begins with ``502``; a SYN never answered
an ``upstream timed out (110) while connecting`` line and a 504. nginx has no variable for its
upstream connection's port, so lines meet findings by time, request and upstream port. The
error log's time is local with no zone and one-second resolution: its offset is taken from
``--log-tz``, the access log's ``$time_local`` zone, or the matches themselves.

The access log tells the *outcome*: nginx logs the error before it retries, so only the access
entry says whether the client saw a 5xx.

When nginx sends its ``$request_id`` upstream (``proxy_set_header X-Request-ID $request_id``) and
the access log writes it, an entry meets the lost requests that carried its id exactly — a retry
lost too carries the same one — and the error lines of its ``*N`` with them; time and request
line join the rest. Two ids that differ never meet.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass

from pcapkit.logs.parse import CONNECT_KINDS, LOST_KINDS, AccessEntry, ErrorLine, FileCounts
from pcapkit.model import Analysis, Finding

NS = 1_000_000_000
QUARTER_HOUR = 900  # every UTC offset in use is a multiple of 15 minutes
LOST_SLACK_S = 2  # the error log's second may trail the FIN by nginx's cached clock
CONNECT_TIMEOUT_MAX_S = 75  # nginx: proxy_connect_timeout "usually cannot exceed 75 seconds"


@dataclass(frozen=True, slots=True)
class Confirmation:
    """A packet finding and the log lines that confirm it."""

    finding: Finding
    errors: tuple[ErrorLine, ...]
    access: tuple[AccessEntry, ...]
    by_request_id: bool = False  # the access entry was paired by the request's X-Request-ID


@dataclass(frozen=True, slots=True)
class Unexplained:
    """A log line about an upstream failure that the capture shows nothing of.

    ``why`` gives the likely reason: the failure was not a close (a read timeout, no live
    upstreams), or it happened outside the capture's time or on a connection it does not hold.
    """

    error: ErrorLine | None
    access: AccessEntry | None
    time_ns: int | None
    why: str
    # logged while the capture ran: a failure it should have shown, not one of another hour
    # (only these make ``kaflow analyze`` exit 1 when nothing else does)
    in_capture: bool = False


@dataclass(frozen=True, slots=True)
class LogJoin:
    """The join of nginx's logs with one capture's findings."""

    files: tuple[FileCounts, ...]
    utc_offset_s: int
    offset_source: str  # "--log-tz", "access log $time_local", "matches", "assumed UTC"
    confirmed: tuple[Confirmation, ...]
    log_only: tuple[Unexplained, ...]  # log errors with no packet evidence
    packet_only: tuple[Finding, ...]  # findings nginx did not log in the error log
    error_lines: int  # upstream error lines kept (of the capture's upstream)
    access_failures: int  # access entries with a failed upstream attempt or a 502/504
    clients_5xx: int | None  # clients who got a 5xx because of the upstream's closes
    clients_5xx_source: str  # "access log" or "capture" (lost and not retried)
    clients_5xx_connect: int  # clients who got a 5xx because a connect failed (access log)
    kinds: tuple[tuple[str, int], ...]  # error lines by kind

    @property
    def unmatched(self) -> int:
        return len(self.log_only) + len(self.packet_only)

    @property
    def unexplained_in_capture(self) -> int:
        """Log errors with no packet evidence logged while the capture ran."""
        return sum(1 for u in self.log_only if u.in_capture)


def _infer_offset(
    errors: Sequence[ErrorLine], lost: Sequence[Finding], access: Sequence[AccessEntry]
) -> int | None:
    """The offset (s) that lines the error log up with the capture; None if nothing meets.

    nginx's connection number (``*N`` = ``$connection``) with the same request pairs an error
    line with an access entry exactly; failing that, each error line votes for the offsets
    (multiples of 15 minutes) at which a finding or access entry of its request falls within a
    second or two, its one vote shared among them: a request seen once settles it, one repeated
    every second spreads its vote over every offset and says nothing.
    """
    exact: Counter[int] = Counter()
    by_conn: dict[tuple[int | None, str | None], int] = {
        (a.connection, a.request): a.time_ns // NS
        for a in access
        if a.connection is not None and a.time_ns is not None
    }
    for e in errors:
        t = by_conn.get((e.connection, e.request))
        if t is not None:
            exact[round((e.local_s - t) / QUARTER_HOUR) * QUARTER_HOUR] += 1
    if exact:
        return exact.most_common(1)[0][0]
    by_label: dict[str, list[int]] = {}
    for f in lost:
        if f.request is not None:
            by_label.setdefault(f.request, []).append(f.time_ns // NS)
    for a in access:
        if a.time_ns is not None and a.method_target is not None:
            by_label.setdefault(a.method_target, []).append(a.time_ns // NS)
    for times in by_label.values():
        times.sort()
    votes: dict[int, float] = {}
    # a few hundred lines settle it; every zone is within 14 hours of UTC
    for e in errors[:300]:
        times = by_label.get(e.method_target or "", [])
        lo = bisect_left(times, e.local_s - 14 * 3600 - 60)
        hi = bisect_right(times, e.local_s + 14 * 3600 + 60)
        offsets = set()
        for t in times[lo:hi]:
            off = round((e.local_s - t) / QUARTER_HOUR) * QUARTER_HOUR
            if abs(e.local_s - t - off) <= LOST_SLACK_S:
                offsets.add(off)
        for off in offsets:
            votes[off] = votes.get(off, 0.0) + 1.0 / len(offsets)
    if not votes:
        return None
    return max(votes, key=lambda off: (votes[off], -abs(off)))


class _TimeIndex:
    """Findings by a key (their request), each key's in time order, for window look-ups: a
    capture of a bad hour has thousands of losses, a log thousands of lines about them."""

    def __init__(self, findings: Sequence[Finding], key: Callable[[Finding], str | None]) -> None:
        self.lists: dict[str | None, tuple[list[int], list[Finding]]] = {}
        for f in sorted(findings, key=lambda f: f.time_ns):
            times, items = self.lists.setdefault(key(f), ([], []))
            times.append(f.time_ns // NS)
            items.append(f)

    def first(
        self,
        keys: Iterable[str | None],
        lo: int,
        hi: int,
        taken: Container[int],
        request_id: str | None = None,
    ) -> Finding | None:
        """The earliest finding under one of ``keys`` within [lo, hi] seconds not yet taken,
        and not of a request whose id differs from ``request_id``."""
        best: Finding | None = None
        for k in keys:
            times, items = self.lists.get(k, ([], []))
            for pos in range(bisect_left(times, lo), bisect_right(times, hi)):
                f = items[pos]
                if id(f) not in taken and _same_request(f, request_id):
                    if best is None or f.time_ns < best.time_ns:
                        best = f
                    break
        return best


def _same_request(f: Finding, request_id: str | None) -> bool:
    """Not known to be two requests: one side has no id, or both have the same."""
    return request_id is None or f.request_id is None or f.request_id == request_id


def _near(e: ErrorLine, offset: int, t_ns: int, before: int, after: int) -> bool:
    utc = e.local_s - offset
    t = t_ns // NS
    return utc - before <= t <= utc + after


def join(
    analysis: Analysis,
    errors: Sequence[ErrorLine],
    access: Sequence[AccessEntry],
    files: Iterable[FileCounts],
    *,
    utc_offset_s: int | None = None,
) -> LogJoin:
    """Join log lines (already read and filtered to the capture's upstream ports) to the
    analysis' findings. ``utc_offset_s`` is the error log's zone if known (``--log-tz``)."""
    files = tuple(files)
    findings = list(analysis.findings)
    lost = [f for f in findings if f.type == "request_lost_to_fin"]
    failed = [f for f in findings if f.type == "connect_failed"]
    retries = {(f.retry_of, f.request): f for f in findings if f.type == "retry"}

    source = "--log-tz"
    offset = utc_offset_s
    if offset is None:
        zoned = next((c.utc_offset_s for c in files if c.utc_offset_s is not None), None)
        if zoned is not None:
            offset, source = zoned, "access log $time_local"
        else:
            offset = _infer_offset(errors, lost, access)
            source = "matches"
            if offset is None:
                offset, source = 0, "assumed UTC"

    errs = sorted(errors, key=lambda e: (e.local_s, e.line))
    entries = sorted(access, key=lambda a: (a.time_ns or 0, a.line))
    by_finding: dict[int, list[ErrorLine]] = {}
    matched_err: set[int] = set()
    access_of: dict[int, list[AccessEntry]] = {}
    explained_access: set[int] = set()
    used_err: set[int] = set()
    exact = _by_request_id(lost, errs, entries, by_finding, access_of)
    explained_access |= exact.entries
    matched_err |= exact.errors
    used_err |= exact.errors

    # error lines ↔ findings, one to one, earliest first
    lost_by = _TimeIndex(lost, key=lambda f: f.request)
    failed_by = _TimeIndex(failed, key=lambda f: None)
    for i, e in enumerate(errs):
        if i in matched_err:
            continue
        utc = e.local_s - offset
        if e.kind in LOST_KINDS:
            # a finding whose request is unknown (no payload captured) meets any request
            hit = lost_by.first(
                (e.method_target, None), utc - LOST_SLACK_S, utc + LOST_SLACK_S, by_finding
            )
        elif e.kind in CONNECT_KINDS:
            hit = failed_by.first((None,), utc - CONNECT_TIMEOUT_MAX_S - 1, utc + 1, by_finding)
        else:
            continue
        if hit is not None:
            by_finding[id(hit)] = [e]
            matched_err.add(i)

    # access entries ↔ error lines (same request; nginx's connection number when both logs
    # have it) and, when no error line is there, ↔ findings directly
    err_finding = {id(e): f for f in findings for e in by_finding.get(id(f), ())}
    errs_by_request: dict[str, tuple[list[int], list[int]]] = {}  # request → (local_s, index)
    for i, e in enumerate(errs):
        if e.request is not None:
            at, idx = errs_by_request.setdefault(e.request, ([], []))
            at.append(e.local_s)
            idx.append(i)
    for j, a in enumerate(entries):
        if j in exact.entries:
            continue
        hits: list[Finding] = []
        wanted = max(a.failed_attempts, 1)
        span = int(a.request_time or 0) + LOST_SLACK_S
        taken = 0
        at, idx = errs_by_request.get(a.request or "", ([], []))
        window = range(len(idx))
        if a.time_ns is not None:
            t = a.time_ns // NS + offset  # the entry's time as the error log writes it
            window = range(bisect_left(at, t - span), bisect_right(at, t + 1))
        for i in (idx[k] for k in window):
            if taken >= wanted:
                break
            e = errs[i]
            if i in used_err:
                continue
            if a.connection is not None and e.connection not in (None, a.connection):
                continue
            # logged before the entry, which nginx writes when the request ends
            if a.time_ns is not None and not _near(e, offset, a.time_ns, 1, span):
                continue
            used_err.add(i)
            explained_access.add(j)
            taken += 1
            hit = err_finding.get(id(e))
            if hit is not None and _same_request(hit, a.request_id):
                hits.append(hit)
        if not taken and a.time_ns is not None:
            # no error line (the log level, an error.log not given): meet the finding directly
            t = a.time_ns // NS
            found: Finding | None = lost_by.first(
                (a.method_target, None), t - span, t + 1, access_of, a.request_id
            )
            if found is None and a.status == 504:
                found = failed_by.first((None,), t - span - CONNECT_TIMEOUT_MAX_S, t + 1, access_of)
            if found is not None:
                hits.append(found)
                explained_access.add(j)
        for f in hits:
            access_of.setdefault(id(f), []).append(a)

    confirmed: list[Confirmation] = []
    packet_only: list[Finding] = []
    for f in lost + failed:
        es = tuple(by_finding.get(id(f), ()))
        acc = tuple(access_of.get(id(f), ()))
        if es or acc:
            confirmed.append(Confirmation(f, es, acc, id(f) in exact.findings))
        if not es:
            packet_only.append(f)
    for c in list(confirmed):
        if c.finding.type != "request_lost_to_fin" or not c.access:
            continue
        r = retries.get((c.finding.connection, c.finding.request))
        if r is not None and any(len(a.upstream_statuses) > 1 for a in c.access):
            # the retry sent the id its loss had: the entry names it as exactly
            confirmed.append(Confirmation(r, (), c.access, c.by_request_id))

    log_only: list[Unexplained] = []
    for i, e in enumerate(errs):
        if i in matched_err:
            continue
        if e.kind == "server_disabled":
            continue  # follows another error line: its own line is what counts
        t_ns = (e.local_s - offset) * NS
        log_only.append(
            Unexplained(e, None, t_ns, _why(e, analysis, offset), _during(analysis, t_ns, 0))
        )
    for j, a in enumerate(entries):
        if j in explained_access:
            continue
        # logged when the request ended: it began up to $request_time before
        began = int((a.request_time or 0) * NS)
        during = a.time_ns is not None and _during(analysis, a.time_ns, began)
        log_only.append(
            Unexplained(
                None,
                a,
                a.time_ns,
                "no error line and no packet finding for it: "
                + ("" if during else "outside the capture, or ")
                + "not a close (an upstream that answered 502/504 itself)",
                during,
            )
        )

    def attached(pool: Sequence[Finding]) -> set[int]:
        return {id(x) for f in pool for x in access_of.get(id(f), ())}

    if access or any(c.kind == "access" for c in files):
        to_lost = attached(lost)
        clients = sum(1 for a in entries if (a.status or 0) >= 500 and id(a) in to_lost)
        clients_source = "access log"
    else:
        clients = sum(1 for f in lost if f.retried is False)
        clients_source = "capture (lost and not retried)"
    to_failed = attached(failed)
    connect_5xx = sum(1 for a in entries if (a.status or 0) >= 500 and id(a) in to_failed)
    kinds = Counter(e.kind for e in errs)
    return LogJoin(
        files=files,
        utc_offset_s=offset,
        offset_source=source,
        confirmed=tuple(sorted(confirmed, key=lambda c: (c.finding.time_ns, c.finding.connection))),
        log_only=tuple(log_only),
        packet_only=tuple(packet_only),
        error_lines=len(errs),
        access_failures=len(entries),
        clients_5xx=clients,
        clients_5xx_source=clients_source,
        clients_5xx_connect=connect_5xx,
        kinds=tuple(sorted(kinds.items())),
    )


@dataclass(frozen=True, slots=True)
class _Exact:
    """What the request-id pass paired: entries and error lines by index, findings by id()."""

    entries: set[int]
    errors: set[int]
    findings: set[int]


def _by_request_id(
    lost: Sequence[Finding],
    errs: Sequence[ErrorLine],
    entries: Sequence[AccessEntry],
    by_finding: dict[int, list[ErrorLine]],
    access_of: dict[int, list[AccessEntry]],
) -> _Exact:
    """Access entries ↔ lost requests by the request id both carry; then the entry's error
    lines (its ``*N`` and request: one per failed attempt, in time order) ↔ those losses."""
    out = _Exact(set(), set(), set())
    with_id: dict[str, list[Finding]] = {}
    for f in sorted(lost, key=lambda f: (f.time_ns, f.connection)):
        if f.request_id is not None:
            with_id.setdefault(f.request_id, []).append(f)
    if not with_id:
        return out
    errs_of: dict[tuple[int, str | None], list[int]] = {}
    for i, e in enumerate(errs):
        if e.connection is not None and e.kind in LOST_KINDS:
            errs_of.setdefault((e.connection, e.request), []).append(i)
    for j, a in enumerate(entries):
        fs = [f for f in with_id.get(a.request_id or "", ()) if id(f) not in out.findings]
        if not fs:
            continue
        out.entries.add(j)
        for f in fs:
            out.findings.add(id(f))
            access_of.setdefault(id(f), []).append(a)
        if a.connection is None:
            continue
        free = [i for i in errs_of.get((a.connection, a.request), ()) if i not in out.errors]
        for f, i in zip(fs, free, strict=False):
            by_finding[id(f)] = [errs[i]]
            out.errors.add(i)
    return out


def _during(analysis: Analysis, t_ns: int, before_ns: int) -> bool:
    """Whether a line logged at ``t_ns`` (about something up to ``before_ns`` earlier) falls in
    the capture's time, within the second the error log's stamps are rounded to."""
    first, last = analysis.capture.first_ts_ns, analysis.capture.last_ts_ns
    if first is None or last is None:
        return False
    return first - NS <= t_ns and t_ns - before_ns <= last + NS


def _why(e: ErrorLine, analysis: Analysis, offset: int) -> str:
    t = (e.local_s - offset) * NS
    cap = analysis.capture
    first, last = cap.first_ts_ns, cap.last_ts_ns
    if first is not None and last is not None and (t + NS < first or t - NS > last):
        return "outside the capture's time"
    if e.kind == "read_timeout":
        return "a timeout waiting for the upstream's answer, not a close"
    if e.kind == "no_live_upstreams":
        return "nginx sent nothing: every server was marked down (max_fails)"
    if e.kind == "connect_timeout":
        return "no unanswered SYN in the capture near it"
    if e.kind == "refused":
        return "no refused SYN in the capture near it"
    return "no lost request in the capture near it: another connection, or not captured"

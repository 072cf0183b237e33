"""The join's matching rules on hand-built lines and findings: many identical requests, a retry
lost too, unlabeled findings (a capture without payload), and its speed at scale."""

from __future__ import annotations

import itertools
import random
import time
from dataclasses import replace
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pcapkit import analyze
from pcapkit.logs import AccessEntry, ErrorLine, join
from pcapkit.model import Analysis, Finding

FIXTURES = Path(__file__).parent.parent / "fixtures"
NS = 1_000_000_000
T0 = 1_795_563_000  # 2026-11-24 23:30:00 UTC


def base() -> Analysis:
    return analyze(FIXTURES / "idle-close" / "capture.pcap")


def lost(conn: int, t: float, request: str | None, retried: bool | None = True) -> Finding:
    return Finding(
        "request_lost_to_fin",
        conn,
        int(t * NS),
        conn * 10,
        "lost",
        request=request,
        retried=retried,
        retried_on=conn + 1 if retried else None,
    )


def error(line: int, t: float, request: str, conn: int | None = None, offset: int = 0) -> ErrorLine:
    path = request.split(" ")[1]
    return ErrorLine(
        file="error.log",
        line=line,
        local_s=int(t) + offset,
        level="error",
        connection=conn,
        kind="prematurely_closed",
        request=f"{request} HTTP/1.1",
        upstream="127.0.0.1:8080",
        upstream_path=path,
        text="...",
    )


def entry(line: int, t: float, request: str, statuses: tuple[str, ...], status: int) -> AccessEntry:
    return AccessEntry(
        file="access.log",
        line=line,
        time_ns=int(t * NS),
        status=status,
        request=f"{request} HTTP/1.1",
        upstream_addrs=("127.0.0.1:8080",) * len(statuses),
        upstream_statuses=statuses,
        request_time=0.01,
        connection=None,
        request_id=None,
        text="...",
    )


def test_thousands_of_the_same_request_pair_one_to_one_and_fast() -> None:
    n = 3000
    rng = random.Random(14)
    at = list(itertools.accumulate(rng.expovariate(0.5) + 0.01 for _ in range(n)))
    req = "POST /api/orders"
    findings = [lost(2 * i + 1, T0 + t, req, False) for i, t in enumerate(at)]
    errors = [error(i + 1, T0 + t, req, offset=3600) for i, t in enumerate(at)]
    access = [entry(i + 1, T0 + t + 0.01, req, ("502",), 502) for i, t in enumerate(at)]
    a = replace(base(), findings=tuple(findings))
    start = time.monotonic()
    j = join(a, errors, access, [])
    took = time.monotonic() - start
    assert took < 5, took
    assert j.utc_offset_s == 3600 and j.offset_source == "matches"
    assert j.log_only == () and j.packet_only == ()
    assert len(j.confirmed) == n and j.clients_5xx == n
    # each line confirms the finding of its own moment, not merely one of the same request
    for c in j.confirmed:
        (e,) = c.errors
        assert abs((e.local_s - 3600) - c.finding.time_ns // NS) <= 1


def test_a_request_repeated_every_second_is_lined_up_by_connection_numbers() -> None:
    n = 600
    req = "GET /health"
    findings = [lost(2 * i + 1, T0 + i * 1.3 + 0.2, req) for i in range(n)]
    errors = [error(i + 1, T0 + i * 1.3 + 0.2, req, conn=i, offset=3600) for i in range(n)]
    # alone, the times fit every zone; nginx's connection numbers pair the two logs exactly
    access = [
        replace(entry(i + 1, T0 + i * 1.3 + 0.3, req, ("502", "200"), 200), connection=i)
        for i in range(n)
    ]
    j = join(replace(base(), findings=tuple(findings)), errors, access, [])
    assert j.utc_offset_s == 3600 and j.log_only == () and j.packet_only == ()


def test_a_retry_lost_too_is_two_error_lines_and_one_entry() -> None:
    findings = [
        lost(1, T0 + 0.1, "GET /a", True),
        lost(2, T0 + 0.1004, "GET /a", True),
        Finding("retry", 2, int((T0 + 0.1002) * NS), 21, "retry", request="GET /a", retry_of=1),
        Finding("retry", 3, int((T0 + 0.1006) * NS), 31, "retry", request="GET /a", retry_of=2),
    ]
    errors = [error(1, T0, "GET /a", conn=7), error(2, T0, "GET /a", conn=7)]
    access = [
        replace(entry(1, T0 + 0.2, "GET /a", ("502", "502", "200"), 200), connection=7),
    ]
    j = join(replace(base(), findings=tuple(findings)), errors, access, [])
    assert j.log_only == () and j.packet_only == ()
    losses = [c for c in j.confirmed if c.finding.type == "request_lost_to_fin"]
    assert sorted(c.finding.connection for c in losses) == [1, 2]
    assert all(len(c.errors) == 1 and len(c.access) == 1 for c in losses)
    assert j.clients_5xx == 0  # the third attempt answered


def test_unlabeled_findings_meet_lines_by_time_alone() -> None:
    # a capture taken with -s 64: requests are bursts of bytes without a method or target
    findings = [lost(1, T0 + 5.5, None, None), lost(3, T0 + 40.2, None, None)]
    errors = [error(1, T0 + 5, "GET /x"), error(2, T0 + 40, "PUT /y"), error(3, T0 + 90, "GET /z")]
    j = join(replace(base(), findings=tuple(findings)), errors, [], [], utc_offset_s=0)
    assert [c.finding.connection for c in j.confirmed] == [1, 3]
    (alone,) = j.log_only
    assert alone.error is not None and alone.error.request == "GET /z HTTP/1.1"


def test_a_line_of_another_moment_is_not_a_match() -> None:
    findings = [lost(1, T0 + 10, "GET /a")]
    errors = [error(1, T0 + 20, "GET /a")]
    j = join(replace(base(), findings=tuple(findings)), errors, [], [], utc_offset_s=0)
    assert len(j.log_only) == 1 and len(j.packet_only) == 1 and j.confirmed == ()


KINDS = ["prematurely_closed", "reset", "connect_timeout", "refused", "read_timeout",
         "no_live_upstreams", "server_disabled"]  # fmt: skip
REQS = ["GET /a", "GET /b", "POST /c"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 30), st.sampled_from([*REQS, None]), st.booleans()), max_size=12
    ),
    st.lists(
        st.tuples(
            st.integers(-2, 32),
            st.sampled_from(KINDS),
            st.sampled_from(REQS),
            st.one_of(st.none(), st.integers(1, 4)),
        ),
        max_size=12,
    ),
    st.lists(
        st.tuples(
            st.integers(0, 33),
            st.sampled_from(REQS),
            st.sampled_from([("502",), ("502", "200"), ("504",), ("502", "502", "200")]),
            st.one_of(st.none(), st.integers(1, 4)),
        ),
        max_size=12,
    ),
    st.sampled_from([None, 0, 3600]),
)
def test_every_line_and_every_finding_is_accounted_for(
    found: list[tuple[int, str | None, bool]],
    errs: list[tuple[int, str, str, int | None]],
    entries: list[tuple[int, str, tuple[str, ...], int | None]],
    offset: int | None,
) -> None:
    """Whatever the lines and findings, each error line is either confirming a finding or
    listed as unexplained, each access entry likewise, and each loss or failed connect is either
    logged or listed as not logged; nothing is counted twice."""
    findings = []
    for i, (t, req, connect) in enumerate(found):
        if connect:
            findings.append(Finding("connect_failed", i + 1, (T0 + t) * NS, i, "syn"))
        else:
            findings.append(lost(i + 1, T0 + t + 0.5, req, False))
    errors = [
        replace(error(i + 1, T0 + t, req, conn), kind=kind)  # type: ignore[arg-type]
        for i, (t, kind, req, conn) in enumerate(errs)
    ]
    access = [
        replace(
            entry(i + 1, T0 + t + 0.4, req, st_, 200 if st_[-1] == "200" else 502), connection=conn
        )
        for i, (t, req, st_, conn) in enumerate(entries)
    ]
    j = join(replace(base(), findings=tuple(findings)), errors, access, [], utc_offset_s=offset)
    confirming = [e for c in j.confirmed for e in c.errors]
    unexplained = [u.error for u in j.log_only if u.error is not None]
    assert len({id(e) for e in confirming}) == len(confirming)
    counted = {id(e) for e in confirming} | {id(e) for e in unexplained}
    assert {id(e) for e in errors if e.kind != "server_disabled"} <= counted
    assert not ({id(e) for e in confirming} & {id(e) for e in unexplained})
    judged = [c.finding for c in j.confirmed if c.finding.type != "retry"]
    for f in findings:
        logged = any(f is g and c.errors for c in j.confirmed for g in [c.finding])
        assert logged != any(f is p for p in j.packet_only)
        assert sum(1 for g in judged if g is f) <= 1
    listed = {id(u.access) for u in j.log_only if u.access is not None}
    for a in access:
        attached = any(a is x for c in j.confirmed for x in c.access)
        via_error = any(a.request == e.request for e in errors)
        assert attached or id(a) in listed or via_error

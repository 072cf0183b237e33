"""Findings ranked by what they cost, and the harmless idle closes summed up.

A busy capture has thousands of ``server_initiated_close`` findings that are the upstream's idle
timer doing its job, and a few dozen requests whose clients got a 502. In time order the second
are lost among the first; every report (table, JSON, HTML) therefore reads the findings through
:func:`rank`: the ones that hurt, worst first, and the idle closes as one distribution whose
dominant value is the upstream's idle timeout.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

from pcapkit._median import median
from pcapkit.model import Finding

Tier = Literal[
    "lost_not_retried",
    "lost_retry_unknown",
    "lost_retried",
    "connect_failed",
    "close_in_flight",
    "close_after_connection_close",
    "close_reset",
    "idle_close",
]

TIERS: tuple[Tier, ...] = get_args(Tier)
"""Worst first: a client got an error; a client waited for a retry; nginx could not connect;
the upstream closed with a request in flight, after ``Connection: close`` or with a RST; the
upstream closed an idle connection (harmless unless a request races it)."""

TITLES: dict[Tier, str] = {
    "lost_not_retried": "lost, not retried: a client got an error",
    "lost_retry_unknown": "lost, retry unknown (payload not captured)",
    "lost_retried": "lost and retried: a client waited",
    "connect_failed": "connect failed",
    "close_in_flight": "upstream closed with a request in flight",
    "close_after_connection_close": "upstream closed after Connection: close",
    "close_reset": "upstream reset the connection",
    "idle_close": "upstream closed an idle connection",
}


def tier(f: Finding) -> Tier:
    """The tier of one finding; a retry shares its lost request's (it is listed beside it)."""
    if f.type == "request_lost_to_fin":
        if f.retried is None:
            return "lost_retry_unknown"
        return "lost_retried" if f.retried else "lost_not_retried"
    if f.type == "retry":
        return "lost_retried"
    if f.type == "connect_failed":
        return "connect_failed"
    return {
        "request_in_flight": "close_in_flight",
        "connection_close": "close_after_connection_close",
        "reset": "close_reset",
    }.get(f.reason or "", "idle_close")  # type: ignore[return-value]


def connection_rank(f: Finding) -> int:
    """How bad one finding makes its connection (lower is worse).

    A retry is where a lost request finally succeeded, so on its own it ranks a connection last;
    the connection that lost the request ranks by the loss.
    """
    return len(TIERS) if f.type == "retry" else TIERS.index(tier(f))


@dataclass(frozen=True, slots=True)
class IdleCloses:
    """The upstream's idle-timeout closes as one distribution of idle time before its FIN.

    ``bins`` is a histogram of ``bin_ns``-wide bins (about 40 over the range) from
    ``bins[0][0]``, every bin up to the last non-empty one (empty ones included). The dominant
    value is found with coarser bins, a hundredth of the typical idle time wide: a timer set to
    1 s fires at 1.001-1.003 s, and those are one value. ``dominant_ns`` is the median of the
    fullest of those (``dominant_from_ns`` + ``dominant_width_ns``): where the upstream's idle
    timer fires, its timeout plus a scheduling delay.
    """

    count: int = 0
    connections: int = 0
    unknown_idle: int = 0  # closes of connections silent since before the capture
    first_ns: int | None = None
    last_ns: int | None = None
    min_ns: int | None = None
    median_ns: int | None = None
    max_ns: int | None = None
    dominant_ns: int | None = None
    dominant_share: float = 0.0  # of the closes with a known idle time, in the fullest bin
    dominant_from_ns: int = 0
    dominant_width_ns: int = 0
    bin_ns: int = 0
    bins: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Ranking:
    """Every finding but the idle closes, worst first, plus the idle closes summed up."""

    # findings of every tier, zeros included, worst first; retries are not counted (each is
    # listed beside the loss it retried, which is)
    counts: tuple[tuple[Tier, int], ...]
    ranked: tuple[Finding, ...]  # a retry right after the loss it retried
    idle: IdleCloses
    worst: tuple[int, ...]  # connections with findings, worst first (then by id)

    @property
    def shown(self) -> int:
        return len(self.ranked)


_NICE = (1, 2, 5)


def bin_width(lo: int, hi: int, bins: int = 40) -> int:
    """A round width (1, 2 or 5 times a power of ten nanoseconds, at least 1 ms) that cuts
    ``lo..hi`` into about ``bins`` bins: idle timeouts are set in round numbers."""
    span = max(hi - lo, 1)
    step = 1_000_000
    while True:
        for m in _NICE:
            if span / (step * m) <= bins:
                return step * m
        step *= 10


def histogram(
    values: list[int], width: int | None = None
) -> tuple[int, tuple[tuple[int, int], ...]]:
    """(bin width, bins from the first non-empty one to the last) of ``values`` (ns)."""
    if not values:
        return 0, ()
    lo, hi = min(values), max(values)
    w = width or bin_width(lo, hi)
    start = lo // w * w
    counts = [0] * ((hi - start) // w + 1)
    for v in values:
        counts[(v - start) // w] += 1
    return w, tuple((start + i * w, n) for i, n in enumerate(counts))


def idle_closes(closes: list[Finding], connections: int) -> IdleCloses:
    """The distribution of ``closes`` (idle-timeout findings)."""
    if not closes:
        return IdleCloses()
    known = sorted(f.idle_ns for f in closes if f.idle_ns is not None)
    times = [f.time_ns for f in closes]
    out = IdleCloses(
        count=len(closes),
        connections=connections,
        unknown_idle=len(closes) - len(known),
        first_ns=min(times),
        last_ns=max(times),
    )
    if not known:
        return out
    coarse = max(bin_width(known[0], known[-1]), bin_width(0, int(median(known)), 100))
    _, wide = histogram(known, coarse)
    fullest = max(wide, key=lambda b: b[1])
    inside = [v for v in known if fullest[0] <= v < fullest[0] + coarse]
    width, bins = histogram(known)
    return IdleCloses(
        count=out.count,
        connections=connections,
        unknown_idle=out.unknown_idle,
        first_ns=out.first_ns,
        last_ns=out.last_ns,
        min_ns=known[0],
        median_ns=int(median(known)),
        max_ns=known[-1],
        dominant_ns=int(median(inside)),
        dominant_share=len(inside) / len(known),
        dominant_from_ns=fullest[0],
        dominant_width_ns=coarse,
        bin_ns=width,
        bins=bins,
    )


def rank(findings: Iterable[Finding]) -> Ranking:
    """One pass over the findings (they may be on disk): the ranking every report shows."""
    listed: list[tuple[int, Finding]] = []
    retries: dict[tuple[int, int, str | None], Finding] = {}
    idle: list[Finding] = []
    counts = dict.fromkeys(TIERS, 0)
    conn_rank: dict[int, int] = {}
    for f in findings:
        t = tier(f)
        counts[t] += f.type != "retry"  # a retry is listed with its loss, counted once there
        r = connection_rank(f)
        if r < conn_rank.get(f.connection, len(TIERS) + 1):
            conn_rank[f.connection] = r
        if f.type == "retry":
            if f.retry_of is not None:
                retries[(f.retry_of, f.connection, f.request)] = f
            else:
                listed.append((TIERS.index(t), f))
        elif t == "idle_close":
            idle.append(f)
        else:
            listed.append((TIERS.index(t), f))
    listed.sort(key=lambda x: (x[0], x[1].time_ns, x[1].connection, x[1].frame))
    ranked: list[Finding] = []
    for _, f in listed:
        ranked.append(f)
        if f.type == "request_lost_to_fin" and f.retried_on is not None:
            retry = retries.pop((f.connection, f.retried_on, f.request), None)
            if retry is not None:
                ranked.append(retry)
    # a retry whose loss is not among the findings (never, from analyze(); kept all the same)
    ranked.extend(sorted(retries.values(), key=lambda f: (f.time_ns, f.connection, f.frame)))
    worst = sorted(conn_rank, key=lambda c: (conn_rank[c], c))
    return Ranking(
        counts=tuple((t, counts[t]) for t in TIERS),
        ranked=tuple(ranked),
        idle=idle_closes(idle, len({f.connection for f in idle})),
        worst=tuple(worst),
    )

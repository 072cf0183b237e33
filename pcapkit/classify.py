"""Findings: the rules that turn reconstructed connections into what an operator must know.

Each rule is a small pure function of the connections, so each can be read, tested and documented
on its own (``docs/findings.md``). The rules encode nginx's documented behaviour (another
client's where :mod:`pcapkit.client` says the requests are not nginx's):

- nginx closes an idle cached connection as soon as it reads the upstream's FIN, so a request is
  lost only when nginx wrote it just before reading that FIN, or while the FIN was in flight;
- the failed attempt is passed to the next one (``proxy_next_upstream error``) for idempotent
  methods, on a new connection or another cached one; POST, LOCK and PATCH are not retried.
"""

from __future__ import annotations

import tempfile
import weakref
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, BinaryIO, NamedTuple, TypeVar

from pcapkit import _core
from pcapkit._core import request_key
from pcapkit.client import NGINX_NOT_RETRIED, Client
from pcapkit.connections import Suspect
from pcapkit.model import (
    CloseKind,
    CloseReason,
    Connection,
    Event,
    Finding,
    Request,
    Side,
    Vantage,
)
from pcapkit.store import FindingSpool

if TYPE_CHECKING:
    from pcapkit._core import Connections

_T = TypeVar("_T")

# How long after the loss nginx's retry can come and still be taken for one. nginx retries as
# soon as it reads the upstream's EOF: microseconds on loopback, a round trip elsewhere.
RETRY_WINDOW_NS = 1_000_000_000
# Over TLS no request can be named, so a retry is only told by timing: nginx sends it at once
# (connecting and a TLS handshake at most), a client's next request comes later. A request on
# another connection this soon after an encrypted loss is taken for its retry; none: not retried.
TLS_RETRY_WINDOW_NS = 200_000_000

# Identical requests (no request id to tell them apart) sent this close to the first one after a
# loss cannot be told from nginx's retry by timing: the retry is then said to be ambiguous.
AMBIGUOUS_NS = 1_000_000

# Methods nginx never passes to the next upstream unless proxy_next_upstream has non_idempotent.
NOT_RETRIED = NGINX_NOT_RETRIED


class Facts(NamedTuple):
    """What the close rules read of a connection: one row of the core's per-connection columns
    (:class:`pcapkit._core.Connections`), so that they run without building the connection."""

    id: int
    partial: bool
    opened_by: Side | None
    established_at_ns: int | None
    closed_by: Side | None
    last_response_ns: int | None
    unanswered: int  # requests no response came for
    last_answered_close: bool  # the last answered request's response said Connection: close
    tunnel: str | None  # what the connection became after its last HTTP message
    server_close: CloseKind | None  # the upstream's first FIN or RST event...
    server_close_ns: int | None
    server_close_frame: int | None


def facts(c: Connections, which: Sequence[int]) -> list[Facts]:
    """The facts of a batch's connections at these positions."""

    def pick(col: Sequence[_T]) -> list[_T]:
        return [col[i] for i in which]

    return list(
        map(
            Facts,
            pick(c.conn_id),
            pick(c.conn_partial),
            pick(c.conn_opened_by),
            pick(c.conn_established_at_ns),
            pick(c.conn_closed_by),
            pick(c.conn_last_response_ns),
            pick(c.conn_unanswered),
            pick(c.conn_last_answered_close),
            pick(c.conn_tunnel),
            pick(c.conn_server_close),
            pick(c.conn_server_close_ns),
            pick(c.conn_server_close_frame),
        )
    )


class Close(NamedTuple):
    """The upstream's FIN or RST that closed a connection first."""

    type: CloseKind
    time_ns: int
    frame: int


def may_have_findings(closed_by: str | None, established_at_ns: int | None) -> bool:
    """Whether a connection can have a finding of its own, from two of its columns: only one
    the upstream closed first (:func:`server_close`) or that never got a SYN-ACK
    (:func:`connect_failure`) can. The rules decide; this spares looking at the others."""
    return closed_by == "server" or established_at_ns is None


def needs_connection(f: Facts) -> bool:
    """Whether judging this connection needs more than its facts (the connection, or its
    :class:`~pcapkit.connections.Suspect`): its unanswered requests may be lost
    (:func:`lost_requests`), or its connect may have failed (:func:`connect_failure`)."""
    lost = f.unanswered > 0 and f.closed_by == "server"
    return lost or (f.opened_by == "client" and f.established_at_ns is None)


def server_close(f: Facts) -> Close | None:
    """The upstream's first FIN or RST, if it came before nginx's (the connection's first close).

    A SYN refused with RST is a failed connect, not a close: only established connections count.
    """
    if f.closed_by != "server" or (not f.partial and f.established_at_ns is None):
        return None
    if f.server_close is None or f.server_close_ns is None or f.server_close_frame is None:
        return None
    return Close(f.server_close, f.server_close_ns, f.server_close_frame)


def _ms(ns: int) -> str:
    """A duration the way an operator reads it: seconds above one, milliseconds below."""
    if abs(ns) >= 1_000_000_000:
        return f"{ns / 1e9:.3f} s"
    return f"{ns / 1e6:.3f} ms" if abs(ns) >= 1_000 else f"{ns / 1e3:.1f} µs"


# a NamedTuple, not a frozen dataclass: a dataclass costs ~1 ms of start-up to create (Python 3.11
# compiles each of its methods), a NamedTuple a tenth of that
class Loss(NamedTuple):
    """A request that got no answer because the upstream closed first.

    Holds what the findings need, not the connection: a loss waits for its retry until the end of
    the capture, and must not keep its connection's events alive meanwhile.
    """

    conn_id: int
    request: Request
    close: Close  # the upstream's FIN/RST that lost it
    # the upstream's RST after that FIN (its answer to bytes that came after it closed): nginx
    # reads the reset instead of the end of the stream if the RST reaches it first
    reset_after: bool = False
    server: str = ""  # the upstream server ("ip:port") of its connection


# What nginx's error log says for a lost request (at [error], then ", client: ..."): the
# upstream's FIN read as the end of the stream, or its RST as a failed recv().
NGINX_PREMATURELY_CLOSED = (
    "upstream prematurely closed connection while reading response header from upstream"
)
NGINX_RESET = (
    "recv() failed (104: Connection reset by peer) while reading response header from upstream"
)


def nginx_errors(loss: Loss) -> tuple[str, ...]:
    """What nginx logs for this loss, the likelier first: a RST-first close is always a reset;
    a FIN followed by the upstream's RST is either, depending on which nginx read first."""
    if loss.close.type == "rst":
        return (NGINX_RESET,)
    if loss.reset_after:
        return (NGINX_PREMATURELY_CLOSED, NGINX_RESET)
    return (NGINX_PREMATURELY_CLOSED,)


def lost_requests(
    f: Facts, requests: Sequence[Request], events: Sequence[Event] = (), server: str = ""
) -> list[Loss]:
    """Requests left unanswered on a connection the upstream closed first.

    If nginx closed first instead (its proxy_read_timeout, say), nginx gave up on the request:
    that is not a loss to the upstream's FIN. ``events`` (the connection's) tell whether the
    upstream also reset the connection after its FIN.
    """
    close = server_close(f)
    if close is None or not f.unanswered:
        return []
    reset = close.type != "rst" and any(
        e.side == "server" and e.type == "rst" and e.time_ns >= close.time_ns for e in events
    )
    return [Loss(f.id, req, close, reset, server) for req in requests if not req.answered]


def _close_reason(f: Facts, lost: bool, close: Close) -> tuple[CloseReason, int | None]:
    idle = None
    if f.last_response_ns is not None:
        idle = close.time_ns - f.last_response_ns
    elif f.established_at_ns is not None:
        idle = close.time_ns - f.established_at_ns
    if lost:
        return "request_in_flight", idle
    if f.tunnel is not None:
        return "tunnel", idle
    if f.last_answered_close:
        return "connection_close", idle
    if close.type == "rst":
        return "reset", idle
    return "idle_timeout", idle


# How a close is named in findings: the upstream's TLS alert is the close_notify it most
# likely is (see tls.rs: a fatal alert looks the same)
_CLOSE_WORD = {"fin": "FIN", "rst": "RST", "close_notify": "TLS close_notify"}


def server_initiated_close(f: Facts, lost: bool) -> Finding | None:
    """The upstream's FIN or RST was the connection's first closing segment."""
    close = server_close(f)
    if close is None:
        return None
    reason, idle = _close_reason(f, lost, close)
    what = _CLOSE_WORD[close.type]
    # the idle time, when the capture shows where it started (not for a connection open and
    # silent since before the capture began)
    idle_txt = f", {_ms(idle)} after its last response" if idle is not None else ""
    if reason == "request_in_flight":
        msg = f"upstream sent {what} first{idle_txt}, with a request in flight"
    elif reason == "connection_close":
        msg = f"upstream sent {what} first after answering with Connection: close"
    elif reason == "tunnel":
        idle_txt = f", {_ms(idle)} after its last data" if idle is not None else ""
        msg = f"upstream ended the {f.tunnel} tunnel first with {what}{idle_txt}"
    elif reason == "reset":
        msg = f"upstream reset the connection first{idle_txt}"
    else:
        msg = f"upstream sent {what} first: idle timeout{idle_txt}"
    return Finding(
        type="server_initiated_close",
        connection=f.id,
        time_ns=close.time_ns,
        frame=close.frame,
        message=msg,
        reason=reason,
        idle_ns=idle,
    )


def connect_failure(conn: Connection | Suspect) -> Finding | None:
    """nginx's SYN never answered, or answered with RST.

    Not when the capture holds nginx's side only and nginx went on after its SYN (ACKs,
    requests, a FIN): the SYN-ACK came, on a path the capture did not see."""
    if conn.opened_by != "client" or conn.established_at_ns is not None:
        return None
    if conn.one_sided == "client":
        return None
    rst = next((e for e in conn.events if e.side == "server" and e.type == "rst"), None)
    times = f" (sent {conn.syn_count} times)" if conn.syn_count > 1 else ""
    if rst is not None:
        msg = f"SYN{times} answered with RST: nothing listening, or the upstream refused it"
    else:
        msg = f"SYN{times} never answered: the upstream's accept queue was likely full"
    syn = conn.events[0]
    return Finding(
        type="connect_failed",
        connection=conn.id,
        time_ns=syn.time_ns,
        frame=syn.frame,
        message=msg,
    )


class _Candidate(NamedTuple):
    """A request that may be the retry of a loss: what the retry finding needs of it."""

    conn_id: int
    request_index: int
    sent_at_ns: int
    frame: int
    fresh_after_ns: int | None  # the connection opened then (None: open before the capture)


class _Retry(NamedTuple):
    loss: Loss
    cand: _Candidate
    new_connection: bool
    # other identical requests sent within AMBIGUOUS_NS of this one, any of which may have been
    # the retry (never with a request id: the id names the retry)
    alike: int = 0


class Classifier:
    """The findings of a stream of connections, taken one batch at a time in any order.

    Connections arrive as the reconstruction finishes them. What each one shows on its own is
    decided by :meth:`judge`, from its :class:`Facts` (and the connection itself for the few
    whose requests may be lost or whose connect may have failed); a loss is paired with its
    retry at :meth:`finish`, when every request that could be the retry has been indexed
    (:meth:`index`). Memory: the losses, and the findings unless ``found`` keeps them on disk.

    A retry can sit on a connection finished long before or long after the lost one, so every
    request must stay findable until the end; held in memory that would follow the file. The
    core gives each batch's requests as rows of six int64s (key, sent at, connection, index,
    frame, opened: :meth:`pcapkit._core.Batch.request_rows`) that go to a temporary file as they
    are; at the end, one pass over it takes the few whose key is a loss's. Keys are 64-bit
    hashes of (method, target, Host): a false match needs a hash collision, and then still the
    same window of time.
    """

    def __init__(self, found: FindingSpool | None = None) -> None:
        spill = tempfile.TemporaryFile()  # noqa: SIM115 - closed by finish(), or when dropped
        self._spill = spill
        weakref.finalize(self, spill.close)
        self._found: list[Finding] | FindingSpool = [] if found is None else found
        self._losses: list[Loss] = []
        # each connection's upstream server, as an index into _names: 2 bytes a connection, so
        # that a retry can be told to have gone to another server of nginx's upstream block
        self._names: dict[str, int] = {}
        self._server_of = array("H")

    def servers(self, ids: Sequence[int], servers: Sequence[str]) -> None:
        """Take a batch's connection ids and their upstream servers ("ip:port")."""
        names, of = self._names, self._server_of
        for cid, server in zip(ids, servers, strict=True):
            k = names.setdefault(server, len(names) + 1) if len(names) < 0xFFFE else 0
            if cid >= len(of):
                of.frombytes(bytes(2 * (cid + 1 - len(of) + 1024)))
            of[cid] = k

    def judge(self, f: Facts, conn: Connection | Suspect | None) -> tuple[Finding, ...]:
        """Take one connection's own findings, and return the close and failed connect among
        them: empty if it has none (retries come later; a loss comes with its close).

        ``conn`` is the connection (built, or as a :class:`~pcapkit.connections.Suspect`),
        which the rules need when :func:`needs_connection` says so (None otherwise)."""
        own, losses = judge(f, conn)
        self._found.extend(own)
        self._losses.extend(losses)
        return own

    def index(self, rows: bytes) -> None:
        """Take a batch's request rows, for retry matching."""
        self._spill.write(rows)

    def finish(
        self, client: Client | None = None, seen_from: Vantage = "unknown"
    ) -> Sequence[Finding]:
        """Every finding, ordered by time (then connection): a tuple, or the sealed spool.

        ``client`` (nginx when None) decides which lost requests can have a retry, and words
        the findings; ``seen_from``: the host the capture was taken on (``pcapkit.vantage``),
        which words the losses' times as sent or as arrived."""
        out = self._spill
        out.flush()
        out.seek(0)
        try:
            cands = _candidates(out, loss_keys(self._losses))
        finally:
            out.close()
        names = {k: name for name, k in self._names.items()}
        of = self._server_of

        def server(cid: int) -> str | None:
            return names.get(of[cid]) if 0 <= cid < len(of) else None

        return conclude(self._found, self._losses, cands, server, client or Client(), seen_from)


def judge(f: Facts, conn: Connection | Suspect | None) -> tuple[tuple[Finding, ...], list[Loss]]:
    """One connection's own findings (its close, its failed connect) and its lost requests,
    whose findings wait for their retries. ``conn``: the connection (built, or as a
    :class:`~pcapkit.connections.Suspect`), when :func:`needs_connection` says the rules need
    it (None otherwise)."""
    losses = lost_requests(f, conn.requests, conn.events, conn.server) if conn is not None else []
    close = server_initiated_close(f, bool(losses))
    failed = connect_failure(conn) if conn is not None else None
    return tuple(x for x in (close, failed) if x is not None), losses


class Live:
    """Losses paired with their retries while a capture is followed (``kaflow analyze
    --follow``), in bounded memory: the same pairing as :func:`conclude`, over the requests of
    the last few seconds instead of the whole capture.

    A loss is decided as soon as its retry is among the requests seen (the core hands on each
    request as soon as it is framed, on connections still open too), or as soon as it cannot
    have one (a method the client never retries, a request whose bytes were not captured), or
    once :data:`RETRY_WINDOW_NS` of capture time has passed after its close.
    Requests older than :data:`LIVE_KEEP_NS` are forgotten: no retry can be that late.
    """

    def __init__(self) -> None:
        self._pending: list[Loss] = []
        # the requests as the core gives them, a batch's rows at a time with the latest time
        # among them: the core's bytes, looked through (by the core) only while a loss waits
        # (rarely), so that hundreds of thousands of requests a minute cost no object each
        self._rows: deque[tuple[int, bytes]] = deque()
        # requests taken for a retry (a request is the retry of one loss), with when sent
        self._used: dict[tuple[int, int], int] = {}
        # each connection's upstream server, and when it was finished
        self._servers: dict[int, str] = {}
        self._finished: dict[int, int] = {}
        self._oldest = 0

    def losses(self, losses: Iterable[Loss]) -> None:
        self._pending.extend(losses)

    def servers(self, ids: Sequence[int], servers: Sequence[str], now_ns: int) -> None:
        self._servers.update(zip(ids, servers, strict=True))
        self._finished.update((cid, now_ns) for cid in ids)

    def requests(self, rows: bytes) -> None:
        """Take request rows (:meth:`pcapkit._core.Batch.request_rows` or
        ``open_request_rows``). A request told while its connection was open comes again
        when it is finished: it is one candidate (:meth:`_candidates`)."""
        whole = rows[: len(rows) // 48 * 48]
        cols = array("q")
        cols.frombytes(whole)
        if cols:
            self._rows.append((max(cols[1::6]), whole))

    def _candidates(self, key: int) -> list[tuple[int, _Candidate]]:
        """The requests kept whose key is ``key``, each once, not yet taken for a retry."""
        out: dict[tuple[int, int], tuple[int, _Candidate]] = {}
        for _, rows in self._rows:
            hits = array("q")
            hits.frombytes(_core.keyed_rows(rows, {key}))
            for i in range(0, len(hits), 6):
                found = _candidate(hits[i : i + 6])
                at = (found[1].conn_id, found[1].request_index)
                if at not in self._used:
                    out.setdefault(at, found)
        return list(out.values())

    def waiting(self) -> bool:
        """Whether a loss waits for its retry."""
        return bool(self._pending)

    def settle(
        self, now_ns: int, client: Client, seen_from: Vantage, end: bool = False
    ) -> list[Finding]:
        """The findings of every loss decided by ``now_ns`` (capture time; ``end``: the
        capture ended, all of them), each loss followed by its retry's."""
        out: list[Finding] = []
        waiting: list[Loss] = []
        for loss in sorted(self._pending, key=lambda x: (x.request.sent_at_ns, x.conn_id)):
            req = loss.request
            retries = match_retries([loss], self._candidates(_key(req)), client.never_retried)
            window = TLS_RETRY_WINDOW_NS if req.encrypted else RETRY_WINDOW_NS
            hopeless = not req.encrypted and (
                req.method is None or req.target is None or req.method in client.never_retried
            )
            late = now_ns > max(req.sent_at_ns, loss.close.time_ns) + window
            if not (retries or hopeless or late or end):
                waiting.append(loss)
                continue
            other: dict[tuple[int, int], str] = {}
            for r in retries:
                self._used[(r.cand.conn_id, r.cand.request_index)] = r.cand.sent_at_ns
                to = self._servers.get(r.cand.conn_id)
                if to is not None and loss.server and to != loss.server:
                    other[(r.cand.conn_id, r.cand.request_index)] = to
            out += _loss_findings([loss], retries, other, client, seen_from)
            out += _retry_findings(retries, other, client)
        self._pending = waiting
        self.forget(now_ns)
        return out

    def forget(self, now_ns: int) -> None:
        """Drop what no retry can need any more at ``now_ns``: requests sent, and connections
        finished, :data:`LIVE_KEEP_NS` before (looked at once a second's worth has gone by)."""
        before_ns = now_ns - LIVE_KEEP_NS
        if before_ns < self._oldest + 1_000_000_000:
            return
        self._oldest = before_ns
        while self._rows and self._rows[0][0] < before_ns:
            self._rows.popleft()
        gone = [cid for cid, at in self._finished.items() if at < before_ns]
        for cid in gone:
            del self._finished[cid]
            self._servers.pop(cid, None)
        self._used = {u: at for u, at in self._used.items() if at >= before_ns}

    def kept(self) -> int:
        """Requests kept for retry pairing now (told twice: counted twice)."""
        return sum(len(rows) // 48 for _, rows in self._rows)


# Following a capture, requests are kept this long (capture time) for retry pairing: a retry
# comes within RETRY_WINDOW_NS of its loss's close, whose connection leaves the core within a
# second of its last packet.
LIVE_KEEP_NS = 10_000_000_000


def _candidate(row: Sequence[int]) -> tuple[int, _Candidate]:
    """One request row (:meth:`pcapkit._core.Batch.request_rows`) as (key, candidate)."""
    key, sent, cid, idx, frame, fresh = row
    return key, _Candidate(cid, idx, sent, frame, None if fresh < 0 else fresh)


def _key(req: Request) -> int:
    if req.encrypted:
        return 0  # the core's key for every request it could not read (batch.rs request_rows)
    return request_key(req.method or "", req.target or "", req.host, req.request_id)


def loss_keys(losses: Iterable[Loss]) -> set[int]:
    return {
        _key(x.request)
        for x in losses
        if x.request.encrypted or (x.request.method is not None and x.request.target is not None)
    }


def _candidates(fh: BinaryIO, keys: set[int]) -> list[tuple[int, _Candidate]]:
    out: list[tuple[int, _Candidate]] = []
    if not keys:
        return out
    # a few MiB at a time; the core keeps the rows with those keys
    while len(chunk := fh.read(48 << 17)) >= 48:
        rows = array("q")
        rows.frombytes(_core.keyed_rows(chunk, keys))
        out.extend(_candidate(rows[i : i + 6]) for i in range(0, len(rows), 6))
    return out


def conclude(
    found: Iterable[Finding] | FindingSpool,
    losses: Sequence[Loss],
    cands: Sequence[tuple[int, _Candidate]],
    server: Callable[[int], str | None] | None = None,
    client: Client | None = None,
    seen_from: Vantage = "unknown",
) -> Sequence[Finding]:
    """Per-connection findings, plus losses paired with their retries, in report order: a tuple,
    or ``found`` itself sealed if it is a spool. ``server`` gives a connection's upstream
    server, to say when a retry went to another one; ``client`` (nginx when None) whose rules
    pair retries and word the findings."""
    client = client or Client()
    retries = match_retries(losses, cands, client.never_retried)
    other: dict[tuple[int, int], str] = {}
    if server is not None:
        for r in retries:
            to = server(r.cand.conn_id)
            if to is not None and r.loss.server and to != r.loss.server:
                other[(r.cand.conn_id, r.cand.request_index)] = to
    more = [
        *_loss_findings(losses, retries, other, client, seen_from),
        *_retry_findings(retries, other, client),
    ]
    if isinstance(found, FindingSpool):
        found.extend(more)
        return found.seal()
    findings = [*found, *more]
    findings.sort(key=finding_order)
    return tuple(findings)


def finding_order(f: Finding) -> tuple[int, int, int]:
    """The order of a report's findings: by time, then connection, then frame."""
    return (f.time_ns, f.connection, f.frame)


def _order(c: _Candidate) -> tuple[int, int, int]:
    return (c.sent_at_ns, c.conn_id, c.request_index)


def match_retries(
    losses: Sequence[Loss],
    cands: Sequence[tuple[int, _Candidate]],
    never: frozenset[str] = NOT_RETRIED,
) -> list[_Retry]:
    """Pair each lost request with the same request sent next on another connection.

    "The same" is method, target and Host, and the request id header when the request has one
    (nginx resends it as is, so the id names the retry exactly); the retry must follow the
    upstream's close (nginx retries once it has read the FIN or RST: a request sent before that
    is another client's) by at most :data:`RETRY_WINDOW_NS`. The first such request is taken;
    when other identical ones came within :data:`AMBIGUOUS_NS` of it, the pairing is kept but
    said to be ambiguous (``alike``). Each request can be the retry of one loss. A request the
    client does not retry (``never``: nginx's :data:`NOT_RETRIED`; HAProxy's ``retry-on
    empty-response`` replays any method) is never paired: the same POST sent just after is
    another client's. Requests whose bytes were not captured cannot be matched and are never
    taken for retries. A retry lost in its turn is a loss of its own, paired the same way, so a
    chain ("502, 502, 200") is followed to its end.
    """
    by_key: dict[int, list[_Candidate]] = {}
    for key, cand in cands:
        by_key.setdefault(key, []).append(cand)
    used: set[tuple[int, int]] = set()
    out: list[_Retry] = []
    # in send order, ties by connection and request: the same pairs whatever order the
    # connections came in
    for loss in sorted(losses, key=lambda x: (x.request.sent_at_ns, x.conn_id, x.request.index)):
        req = loss.request
        window = TLS_RETRY_WINDOW_NS if req.encrypted else RETRY_WINDOW_NS
        if not req.encrypted and (req.method is None or req.target is None or req.method in never):
            continue
        start = max(req.sent_at_ns, loss.close.time_ns)
        eligible = [
            cand
            for cand in by_key.get(_key(req), ())
            if cand.conn_id != loss.conn_id
            and (cand.conn_id, cand.request_index) not in used
            and start < cand.sent_at_ns <= start + window
        ]
        if not eligible:
            continue
        best = min(eligible, key=_order)
        alike = 0
        if req.request_id is None and not req.encrypted:  # over TLS, timing is all there is
            alike = sum(
                1
                for c in eligible
                if c is not best and c.sent_at_ns - best.sent_at_ns <= AMBIGUOUS_NS
            )
        used.add((best.conn_id, best.request_index))
        fresh = best.fresh_after_ns is not None and best.fresh_after_ns > req.sent_at_ns
        out.append(_Retry(loss, best, fresh, alike))
    return out


# how the client would send a request id upstream, in its own configuration
_ID_HINT = {
    "nginx": ", e.g. X-Request-ID $request_id,",
    "haproxy": ", e.g. 'http-request set-header X-Request-ID %[unique-id]',",
    "other": "",
}


def _not_retried(client: Client, method: str) -> str:
    """What became of a lost request no retry was found for, by the client's rules."""
    if client.kind == "nginx":
        if method in NOT_RETRIED:
            return f"not retried (nginx does not retry {method}): its client got a 502"
        return "not retried: its client got an error (502)"
    if client.kind == "haproxy":
        # HAProxy answers 502 SH-- on a client connection's first request; a later one on a
        # kept-alive client connection it drops by closing that connection
        return (
            "not resent (HAProxy replays a lost request only with retry-on empty-response; its "
            "default, conn-failure, does not): its client got a 502 (logged SH--) or a closed "
            "connection"
        )
    return "not sent again: unless the client retried it elsewhere, its client got an error"


def _crossing(gap: int, what: str, seen_from: Vantage) -> str:
    """How the lost request and the upstream's close met, in this capture's host's terms
    (``gap``: the close's time minus the request's). A capture's times are when each packet
    left or arrived at its host: on nginx's host the request's are sends and the close's
    arrivals, on the upstream's host the other way round; on an unknown host (one host,
    loopback) the two are the same."""
    if seen_from == "upstream":
        if gap < 0:
            return f"it arrived {_ms(-gap)} after the upstream's {what} left"
        return f"it arrived {_ms(gap)} before the upstream's {what} left"
    if seen_from == "nginx":
        if gap >= 0:
            return f"sent {_ms(gap)} before the upstream's {what} arrived"
        return f"sent {_ms(-gap)} after the upstream's {what} arrived"
    if gap >= 0:
        return f"upstream's {what} came {_ms(gap)} after it"
    return f"it crossed the upstream's {what}, sent {_ms(-gap)} after it"


def _loss_findings(
    losses: Sequence[Loss],
    retries: Sequence[_Retry],
    other: dict[tuple[int, int], str],
    client: Client,
    seen_from: Vantage = "unknown",
) -> list[Finding]:
    retried = {(r.loss.conn_id, r.loss.request.index): r for r in retries}
    lost = {(x.conn_id, x.request.index) for x in losses}
    out: list[Finding] = []
    for loss in losses:
        req, close = loss.request, loss.close
        gap = close.time_ns - req.sent_at_ns
        what = _CLOSE_WORD[close.type]
        if loss.reset_after:
            what = f"{what} (then RST)"
        timing = _crossing(gap, what, seen_from)
        r = retried.get((loss.conn_id, req.index))
        if r is not None:
            how = "a new connection" if r.new_connection else "a cached connection"
            to = other.get((r.cand.conn_id, r.cand.request_index))
            if to is not None:
                how += f" to another server, {to}"
            after = _ms(r.cand.sent_at_ns - req.sent_at_ns)
            did = {
                "nginx": "nginx retried it",
                "haproxy": "HAProxy resent it (its retry-on has empty-response)",
                "other": "the client sent it again",
            }[client.kind]
            tail = f"{did} {after} later on #{r.cand.conn_id} ({how})"
            if seen_from == "upstream":
                tail = f"{did}: the retry arrived {after} later on #{r.cand.conn_id} ({how})"
            if req.encrypted:
                tail = (
                    f"an encrypted request went out {after} later on #{r.cand.conn_id} ({how}): "
                    f"{client.name}'s retry, by its timing (which request it was, TLS hides)"
                )
            if r.alike:
                tail += (
                    f", or on one of {r.alike} identical request{'s' if r.alike != 1 else ''} "
                    f"sent within {_ms(AMBIGUOUS_NS)} of it (the capture cannot tell which: "
                    f"a request id header{_ID_HINT[client.kind]} would)"
                )
            tail += _chain(r, retried, lost)
        elif req.encrypted:
            tail = (
                "no request followed within "
                f"{_ms(TLS_RETRY_WINDOW_NS)}: not retried, its client likely got a 502 "
                + (
                    "(a POST, or nginx's retries used up; TLS hides which request it was)"
                    if client.kind == "nginx"
                    else "(TLS hides which request it was)"
                )
            )
        elif req.method is None:
            tail = "payload not captured: retry unknown"
        else:
            tail = _not_retried(client, req.method)
        out.append(
            Finding(
                type="request_lost_to_fin",
                connection=loss.conn_id,
                time_ns=close.time_ns,
                frame=close.frame,
                message=f"{req.label} got no response: {timing}; {tail}",
                request=req.label if req.method is not None else None,
                retried=r is not None if req.method is not None or req.encrypted else None,
                retried_on=r.cand.conn_id if r is not None else None,
                retry_ambiguous=bool(r.alike) if r is not None else None,
                request_index=req.index,
                # only nginx logs nginx's messages
                nginx_errors=nginx_errors(loss) if client.kind == "nginx" else (),
                request_id=req.request_id,
            )
        )
    return out


def _chain(r: _Retry, retried: dict[tuple[int, int], _Retry], lost: set[tuple[int, int]]) -> str:
    """Where a retry that was lost in its turn went next, to the end of the chain."""
    out = ""
    seen: set[tuple[int, int]] = set()
    at = (r.cand.conn_id, r.cand.request_index)
    while at in lost and at not in seen:
        seen.add(at)
        nxt = retried.get(at)
        if nxt is None:
            return out + f"; lost there too (#{at[0]}), and not retried: its client got an error"
        out += f"; lost there too, retried on #{nxt.cand.conn_id}"
        at = (nxt.cand.conn_id, nxt.cand.request_index)
    return out


def _retry_findings(
    retries: Sequence[_Retry], other: dict[tuple[int, int], str], client: Client
) -> list[Finding]:
    out: list[Finding] = []
    for r in retries:
        how = "new connection" if r.new_connection else "cached connection"
        to = other.get((r.cand.conn_id, r.cand.request_index))
        if to is not None:
            how += f" to another server ({to}; lost on {r.loss.server})"
        label = r.loss.request.label  # the same method and target: that is what matched
        out.append(
            Finding(
                type="retry",
                connection=r.cand.conn_id,
                time_ns=r.cand.sent_at_ns,
                frame=r.cand.frame,
                message=(
                    f"{label} {'retried' if client.kind != 'other' else 'sent again'} on a {how} "
                    f"after it was lost on #{r.loss.conn_id}"
                )
                + (f" (or one of {r.alike} identical requests sent with it)" if r.alike else ""),
                request=label,
                retry_of=r.loss.conn_id,
                retry_ambiguous=bool(r.alike),
                new_connection=r.new_connection,
                request_index=r.cand.request_index,
                other_server=to,
                # paired by method, target and Host; the client resends the lost one's header
                request_id=r.loss.request.request_id,
            )
        )
    return out

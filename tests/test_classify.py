"""The findings rules of ``pcapkit.classify``, one at a time, on connections built by hand.

Pins down which segment each finding is pinned to (time, frame, connection), every close
``reason`` and the idle time it measures, the texts an operator reads, the connect-failure
messages, and how a lost request is paired with its retry: same request on another connection,
after the loss and within :data:`RETRY_WINDOW_NS` of the upstream's close, new or cached
connection, whatever order the connections arrive in. The last test holds the same rules to what
``pcapkit.analyze()`` finds in the real captures of ``fixtures/``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from itertools import permutations
from pathlib import Path

import pytest

from pcapkit import analyze
from pcapkit import classify as rules
from pcapkit.analysis import _Scan
from pcapkit.classify import (
    NOT_RETRIED,
    RETRY_WINDOW_NS,
    Close,
    Loss,
    connect_failure,
    finding_order,
)
from pcapkit.model import CloseKind, Connection, ConnectionRef, Event, Finding, Request, Side
from tests.oracle.batch import _NO_CAPTURE as NO_CAPTURE
from tests.oracle.batch import batch, classify, facts

SEC = 1_000_000_000
MS = 1_000_000
US = 1_000
T0 = 1_800_000_000 * SEC  # an arbitrary epoch: every time below is an offset from it

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


# --- the close rules, on a connection's facts ----------------------------------------------


def server_close(c: Connection) -> Close | None:
    return rules.server_close(facts(c))


def lost_requests(c: Connection) -> list[Loss]:
    return rules.lost_requests(facts(c), c.requests)


def server_initiated_close(c: Connection, lost: bool) -> Finding | None:
    return rules.server_initiated_close(facts(c), lost)


# --- building connections ------------------------------------------------------------------


def syn(t: int, frame: int) -> Event:
    return Event(t, "syn", "client", frame)


def syn_ack(t: int, frame: int) -> Event:
    return Event(t, "syn_ack", "server", frame)


def req(t: int, frame: int, index: int, target: str = "/a", method: str | None = "GET") -> Event:
    return Event(
        t,
        "request",
        "client",
        frame,
        method=method,
        target=target if method is not None else None,
        host="backend",
        request_index=index,
    )


def resp(t: int, frame: int, index: int, *, close: bool = False) -> Event:
    return Event(
        t, "response", "server", frame, status=200, connection_close=close, request_index=index
    )


def fin(side: Side, t: int, frame: int) -> Event:
    return Event(t, "fin", side, frame)


def rst(side: Side, t: int, frame: int) -> Event:
    return Event(t, "rst", side, frame)


def conn(cid: int, *events: Event, syn_count: int = 1) -> Connection:
    """The connection the reconstruction would give for these events.

    Only what the rules read is derived with care: who opened and first closed it, when it was
    established, the upstream's last response before its close, the requests and their answers.
    A connection whose first event is not a SYN was open before the capture started.
    """
    evs = tuple(sorted(events, key=lambda e: (e.time_ns, e.frame)))
    first = evs[0]
    partial = first.type != "syn"
    acked = next((e for e in evs if e.type == "syn_ack"), None)
    close = next((e for e in evs if e.type in ("fin", "rst")), None)
    answers = {e.request_index: e for e in evs if e.type == "response"}
    requests: list[Request] = []
    for i, e in enumerate(ev for ev in evs if ev.type == "request"):
        a = answers.get(i)
        requests.append(
            Request(
                index=i,
                method=e.method,
                target=e.target,
                host=e.host,
                sent_at_ns=e.time_ns,
                frame=e.frame,
                status=a.status if a else None,
                responded_at_ns=a.time_ns if a else None,
                response_frame=a.frame if a else None,
                connection_close=a.connection_close if a else False,
            )
        )
    before_close = [
        e.time_ns
        for e in evs
        if e.type == "response" and (close is None or e.time_ns < close.time_ns)
    ]
    if partial:
        state = "OTH"
    elif acked is None:
        state = "REJ" if any(e.type == "rst" and e.side == "server" for e in evs) else "S0"
    else:
        state = "SF"
    return Connection(
        id=cid,
        client=f"127.0.0.1:{40000 + cid}",
        server="127.0.0.1:8080",
        client_port=40000 + cid,
        ip_version=4,
        opened_at_ns=first.time_ns,
        first_frame=first.frame,
        opened_by=None if partial else "client",
        established_at_ns=acked.time_ns if acked else None,
        closed_by=close.side if close else None,
        close=("fin" if close.type == "fin" else "rst") if close else None,
        closed_at_ns=close.time_ns if close else None,
        last_seen_ns=evs[-1].time_ns,
        last_response_ns=max(before_close, default=None),
        partial=partial,
        state=state,
        history="",
        syn_count=syn_count,
        packets=len(evs),
        client_bytes=0,
        server_bytes=0,
        retransmissions=0,
        requests=tuple(requests),
        events=evs,
    )


def served(
    cid: int, idle: int, *, close: CloseKind = "fin", connection_close: bool = False
) -> Connection:
    """One GET answered at T0 + 2 ms, then the upstream's FIN (or RST) ``idle`` later."""
    last = T0 + 2 * MS
    closing = fin("server", last + idle, 5) if close == "fin" else rst("server", last + idle, 5)
    return conn(
        cid,
        syn(T0, 1),
        syn_ack(T0 + 50 * US, 2),
        req(T0 + 1 * MS, 3, 0),
        resp(last, 4, 0, close=connection_close),
        closing,
        fin("client", last + idle + 100 * US, 6),
    )


# The race: a request of nginx's goes out on an idle connection as the upstream's idle timer
# fires. LOST_AT is when nginx sent it, FIN_AT when the upstream's FIN left.
LOST_AT = T0 + 1002 * MS
FIN_AT = LOST_AT + 200 * US


def raced(
    cid: int = 1, target: str = "/lost", method: str | None = "GET", fin_at: int = FIN_AT
) -> Connection:
    """A GET /a answered, then ``method target`` sent at LOST_AT and never answered: the
    upstream's FIN (frame 6) comes at ``fin_at``, which may be before the request (crossing)."""
    return conn(
        cid,
        syn(T0, 1),
        syn_ack(T0 + 50 * US, 2),
        req(T0 + 1 * MS, 3, 0),
        resp(T0 + 2 * MS, 4, 0),
        req(LOST_AT, 5, 1, target, method),
        fin("server", fin_at, 6),
        fin("client", max(LOST_AT, fin_at) + 100 * US, 7),
    )


def opened_at(
    cid: int, t: int, target: str = "/lost", method: str = "GET", frame: int = 10
) -> Connection:
    """A fresh connection opened at ``t`` whose only request, ``method target``, goes out
    100 µs later (frame ``frame + 2``) and is answered."""
    return conn(
        cid,
        syn(t, frame),
        syn_ack(t + 50 * US, frame + 1),
        req(t + 100 * US, frame + 2, 0, target, method),
        resp(t + 1 * MS, frame + 3, 0),
    )


def cached(cid: int, resend_at: int, target: str = "/lost", frame: int = 20) -> Connection:
    """A connection opened long before the race (T0 - 1 s), idle in nginx's cache, that carries
    ``GET target`` at ``resend_at`` as its second request (frame ``frame``)."""
    return conn(
        cid,
        syn(T0 - 1 * SEC, frame - 4),
        syn_ack(T0 - 1 * SEC + 50 * US, frame - 3),
        req(T0 - 1 * SEC + 1 * MS, frame - 2, 0, "/warm"),
        resp(T0 - 1 * SEC + 2 * MS, frame - 1, 0),
        req(resend_at, frame, 1, target),
        resp(resend_at + 1 * MS, frame + 1, 1),
    )


def of_type(findings: Iterable[Finding], kind: str) -> list[Finding]:
    return [f for f in findings if f.type == kind]


# --- server_close and lost_requests --------------------------------------------------------


def test_server_close_is_the_upstreams_first_closing_segment() -> None:
    c = served(1, 1 * SEC)
    close = server_close(c)
    assert close is not None
    assert (close.type, close.frame, close.time_ns) == ("fin", 5, T0 + 1002 * MS)


def test_no_server_close_when_nginx_closed_first() -> None:
    c = conn(
        1,
        syn(T0, 1),
        syn_ack(T0 + 50 * US, 2),
        req(T0 + 1 * MS, 3, 0),
        resp(T0 + 2 * MS, 4, 0),
        fin("client", T0 + 60 * SEC, 5),
        fin("server", T0 + 60 * SEC + 100 * US, 6),
    )
    assert server_close(c) is None


def test_syn_refused_with_rst_is_not_a_server_close() -> None:
    # the RST is the upstream's first closing segment, but nothing was ever established
    refused = conn(1, syn(T0, 1), rst("server", T0 + 40 * US, 2))
    assert refused.closed_by == "server"
    assert server_close(refused) is None
    assert server_initiated_close(refused, lost=False) is None


def test_server_close_of_a_connection_open_before_the_capture() -> None:
    c = conn(1, req(T0, 1, 0), resp(T0 + 1 * MS, 2, 0), fin("server", T0 + 2 * SEC, 3))
    assert c.partial and c.established_at_ns is None
    close = server_close(c)
    assert close is not None and close.frame == 3


def test_lost_requests_are_the_unanswered_ones_on_a_connection_the_upstream_closed() -> None:
    c = raced(3)
    (loss,) = lost_requests(c)
    assert loss.conn_id == 3
    assert (loss.request.index, loss.request.label, loss.request.frame) == (1, "GET /lost", 5)
    assert (loss.close.frame, loss.close.time_ns) == (6, FIN_AT)


def test_unanswered_request_when_nginx_closed_first_is_not_lost() -> None:
    # nginx gave up (its proxy_read_timeout): the upstream did not lose the request
    c = conn(
        1,
        syn(T0, 1),
        syn_ack(T0 + 50 * US, 2),
        req(T0 + 1 * MS, 3, 0),
        fin("client", T0 + 60 * SEC, 4),
        fin("server", T0 + 60 * SEC + 100 * US, 5),
    )
    assert c.requests[0].answered is False
    assert lost_requests(c) == []


# --- server_initiated_close ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("idle", "shown"),
    [(1_500 * MS, "1.500 s"), (250 * MS, "250.000 ms"), (1_002_093 * US, "1.002 s")],
)
def test_idle_timeout_close_measures_the_idle_time(idle: int, shown: str) -> None:
    f = server_initiated_close(served(7, idle), lost=False)
    assert f is not None
    assert (f.type, f.connection, f.reason, f.idle_ns) == (
        "server_initiated_close",
        7,
        "idle_timeout",
        idle,
    )
    assert (f.time_ns, f.frame) == (T0 + 2 * MS + idle, 5)
    assert f.message == f"upstream sent FIN first: idle timeout, {shown} after its last response"


def test_idle_time_runs_from_the_handshake_when_nothing_was_answered() -> None:
    c = conn(1, syn(T0, 1), syn_ack(T0 + 50 * US, 2), fin("server", T0 + 50 * US + 3 * SEC, 3))
    f = server_initiated_close(c, lost=False)
    assert f is not None
    assert (f.reason, f.idle_ns) == ("idle_timeout", 3 * SEC)


def test_close_after_connection_close_response() -> None:
    f = server_initiated_close(served(1, 260 * US, connection_close=True), lost=False)
    assert f is not None
    assert (f.reason, f.idle_ns, f.frame) == ("connection_close", 260 * US, 5)
    assert f.message == "upstream sent FIN first after answering with Connection: close"


def test_rst_after_connection_close_response_is_still_connection_close() -> None:
    f = server_initiated_close(served(1, 1 * MS, close="rst", connection_close=True), lost=False)
    assert f is not None
    assert f.reason == "connection_close"
    assert f.message == "upstream sent RST first after answering with Connection: close"


def test_rst_with_nothing_pending_is_a_reset() -> None:
    f = server_initiated_close(served(1, 1 * SEC, close="rst"), lost=False)
    assert f is not None
    assert (f.reason, f.idle_ns) == ("reset", 1 * SEC)
    assert f.message == "upstream reset the connection first, 1.000 s after its last response"


def test_close_with_a_request_in_flight() -> None:
    c = raced(2)
    f = server_initiated_close(c, lost=bool(lost_requests(c)))
    assert f is not None
    # measured from the last *response*: nginx's later request does not restart the idle timer
    assert (f.reason, f.idle_ns, f.connection, f.frame) == (
        "request_in_flight",
        FIN_AT - (T0 + 2 * MS),
        2,
        6,
    )
    assert f.message == (
        "upstream sent FIN first, 1.000 s after its last response, with a request in flight"
    )


def test_request_in_flight_wins_over_connection_close_and_reset() -> None:
    c = served(1, 5 * MS, close="rst", connection_close=True)
    f = server_initiated_close(c, lost=True)
    assert f is not None
    assert f.reason == "request_in_flight"
    assert f.message.startswith("upstream sent RST first, 5.000 ms after its last response")


def test_nothing_when_nginx_closed_first() -> None:
    c = conn(
        1,
        syn(T0, 1),
        syn_ack(T0 + 50 * US, 2),
        fin("client", T0 + 1 * SEC, 3),
        fin("server", T0 + 1 * SEC + 1 * MS, 4),
    )
    assert server_initiated_close(c, lost=False) is None


def test_close_of_a_connection_idle_since_before_the_capture() -> None:
    # common in practice: tcpdump started while nginx held idle cached connections
    c = conn(1, fin("server", T0, 1), fin("client", T0 + 100 * US, 2))
    f = server_initiated_close(c, lost=False)
    assert f is not None
    assert (f.reason, f.idle_ns) == ("idle_timeout", None)
    assert f.message == "upstream sent FIN first: idle timeout"


# --- connect_failure -----------------------------------------------------------------------


def test_syn_never_answered() -> None:
    f = connect_failure(conn(4, syn(T0, 14)))
    assert f is not None
    assert (f.type, f.connection, f.time_ns, f.frame) == ("connect_failed", 4, T0, 14)
    assert f.message == "SYN never answered: the upstream's accept queue was likely full"


@pytest.mark.parametrize("sent", [2, 3])
def test_syn_sent_several_times_says_how_many(sent: int) -> None:
    # Linux retransmits an unanswered SYN after 1 s, then 2 s, 4 s...
    syns = [syn(T0 + (2**i - 1) * SEC, i + 1) for i in range(sent)]
    f = connect_failure(conn(1, *syns, syn_count=sent))
    assert f is not None
    # pinned to the first SYN: that is when nginx started waiting
    assert (f.time_ns, f.frame) == (T0, 1)
    assert f.message == (
        f"SYN (sent {sent} times) never answered: the upstream's accept queue was likely full"
    )


def test_retransmitted_syn_answered_with_rst_says_how_many() -> None:
    c = conn(1, syn(T0, 1), syn(T0 + 1 * SEC, 2), rst("server", T0 + 1 * SEC + 40 * US, 3))
    f = connect_failure(replace(c, syn_count=2))
    assert f is not None
    assert f.message.startswith("SYN (sent 2 times) answered with RST")


def test_syn_answered_with_rst() -> None:
    f = connect_failure(conn(2, syn(T0, 1), rst("server", T0 + 40 * US, 2)))
    assert f is not None
    assert (f.connection, f.frame) == (2, 1)
    assert f.message == "SYN answered with RST: nothing listening, or the upstream refused it"


def test_no_connect_failure_once_established_or_when_open_before_the_capture() -> None:
    assert connect_failure(served(1, 1 * SEC)) is None
    assert connect_failure(conn(2, req(T0, 1, 0))) is None


# --- retries -------------------------------------------------------------------------------


def test_lost_get_retried_on_a_new_connection() -> None:
    retry_at = FIN_AT + 150 * US  # opened_at sends 100 µs after its SYN
    got = classify([raced(1), opened_at(2, FIN_AT + 50 * US)])
    assert [(f.type, f.connection) for f in got] == [
        ("server_initiated_close", 1),
        ("request_lost_to_fin", 1),
        ("retry", 2),
    ]
    close, lost, retry = got
    assert close.reason == "request_in_flight"
    assert (lost.time_ns, lost.frame, lost.request, lost.request_index) == (
        FIN_AT,
        6,
        "GET /lost",
        1,
    )
    assert (lost.retried, lost.retried_on) == (True, 2)
    assert lost.message == (
        "GET /lost got no response: upstream's FIN came 0.200 ms after it; "
        "nginx retried it 0.350 ms later on #2 (a new connection)"
    )
    assert (retry.time_ns, retry.frame, retry.request, retry.request_index) == (
        retry_at,
        12,
        "GET /lost",
        0,
    )
    assert (retry.retry_of, retry.new_connection) == (1, True)
    assert retry.message == "GET /lost retried on a new connection after it was lost on #1"


def test_lost_get_retried_on_an_already_open_connection() -> None:
    resend = FIN_AT + 80 * US
    got = classify([cached(1, resend), raced(2)])
    (lost,) = of_type(got, "request_lost_to_fin")
    (retry,) = of_type(got, "retry")
    assert (lost.connection, lost.retried, lost.retried_on) == (2, True, 1)
    assert lost.message.endswith("nginx retried it 0.280 ms later on #1 (a cached connection)")
    assert (retry.connection, retry.retry_of, retry.new_connection) == (1, 2, False)
    assert (retry.time_ns, retry.frame, retry.request_index) == (resend, 20, 1)
    assert retry.message == "GET /lost retried on a cached connection after it was lost on #2"


def test_request_crossing_the_fin_is_lost_and_still_retried() -> None:
    fin_at = LOST_AT - 138 * US  # the FIN left the upstream before nginx's request did
    got = classify([raced(5, fin_at=fin_at), opened_at(6, LOST_AT + 50 * US)])
    (lost,) = of_type(got, "request_lost_to_fin")
    assert (lost.time_ns, lost.retried_on) == (fin_at, 6)
    assert lost.message.startswith(
        "GET /lost got no response: it crossed the upstream's FIN, sent 0.138 ms after it; "
    )
    assert of_type(got, "retry")[0].new_connection is True


@pytest.mark.parametrize("method", sorted(NOT_RETRIED))
def test_lost_non_idempotent_request_is_not_retried(method: str) -> None:
    got = classify([raced(1, "/pay", method)])
    (lost,) = of_type(got, "request_lost_to_fin")
    assert (lost.request, lost.retried, lost.retried_on) == (f"{method} /pay", False, None)
    assert lost.message.endswith(
        f"not retried (nginx does not retry {method}): its client got a 502"
    )
    assert of_type(got, "retry") == []


@pytest.mark.parametrize("method", sorted(NOT_RETRIED))
def test_the_same_non_idempotent_request_just_after_is_another_clients(method: str) -> None:
    # under load, other clients send the same POST: one that follows the loss on a new
    # connection is not nginx's retry, which nginx never makes for these methods
    got = classify([raced(1, "/pay", method), opened_at(2, FIN_AT + 50 * US, "/pay", method)])
    (lost,) = of_type(got, "request_lost_to_fin")
    assert lost.retried is False and of_type(got, "retry") == []


def test_the_same_request_sent_before_the_close_is_another_clients() -> None:
    # sent after the lost request but before the upstream's FIN: nginx had not read the FIN
    # yet, so it cannot be its retry; the one after the FIN is
    between = LOST_AT + 100 * US
    got = classify([raced(1), opened_at(2, between - 100 * US), opened_at(3, FIN_AT + 50 * US)])
    (lost,) = of_type(got, "request_lost_to_fin")
    assert lost.retried_on == 3
    assert [f.connection for f in of_type(got, "retry")] == [3]


def test_not_retried_set_is_nginx_non_idempotent_methods() -> None:
    assert frozenset({"POST", "LOCK", "PATCH"}) == NOT_RETRIED


def test_lost_get_without_a_match_is_reported_not_retried() -> None:
    (lost,) = of_type(classify([raced(1)]), "request_lost_to_fin")
    assert (lost.retried, lost.retried_on) == (False, None)
    assert lost.message.endswith("; not retried: its client got an error (502)")


def test_lost_request_without_payload_has_unknown_retry() -> None:
    # a small snaplen: the request is a burst of bytes with no method, so nothing can match it
    got = classify([raced(1, method=None), opened_at(2, FIN_AT + 50 * US)])
    (lost,) = of_type(got, "request_lost_to_fin")
    assert (lost.request, lost.retried, lost.retried_on) == (None, None, None)
    assert lost.message.startswith("(request, payload not captured) got no response")
    assert lost.message.endswith("payload not captured: retry unknown")
    assert of_type(got, "retry") == []


def test_same_request_sent_before_the_loss_is_not_its_retry() -> None:
    # another client's identical GET, a moment before nginx sent the one that was lost
    got = classify([raced(2), cached(1, LOST_AT - 1 * US)])
    (lost,) = of_type(got, "request_lost_to_fin")
    assert lost.retried is False
    assert of_type(got, "retry") == []


@pytest.mark.parametrize(
    ("after_fin", "retried"), [(RETRY_WINDOW_NS, True), (RETRY_WINDOW_NS + 1, False)]
)
def test_retry_window_runs_from_the_upstreams_close(after_fin: int, retried: bool) -> None:
    # the request went out 200 µs before the FIN: measured from the send, the window's last
    # nanosecond would already be past
    got = classify([raced(2), cached(1, FIN_AT + after_fin)])
    (lost,) = of_type(got, "request_lost_to_fin")
    assert lost.retried is retried
    assert len(of_type(got, "retry")) == int(retried)


def lost_twice(cid: int = 1) -> Connection:
    """GET /lost sent twice on one connection (frames 3 and 4), neither answered: the
    upstream's FIN (frame 5) takes both."""
    return conn(
        cid,
        syn(T0, 1),
        syn_ack(T0 + 50 * US, 2),
        req(LOST_AT, 3, 0, "/lost"),
        req(LOST_AT + 10 * US, 4, 1, "/lost"),
        fin("server", FIN_AT, 5),
    )


def test_different_target_or_same_connection_is_not_a_retry() -> None:
    other_target = opened_at(2, FIN_AT + 50 * US, target="/other")
    got = classify([raced(1), other_target])
    assert of_type(got, "request_lost_to_fin")[0].retried is False
    # a lost request sent again on the connection that lost it is not its retry
    lost = of_type(classify([lost_twice()]), "request_lost_to_fin")
    assert [(f.request_index, f.retried) for f in lost] == [(0, False), (1, False)]


def test_one_request_is_the_retry_of_one_loss_the_earliest() -> None:
    got = classify([lost_twice(), opened_at(2, FIN_AT + 50 * US)])
    lost = of_type(got, "request_lost_to_fin")
    assert [(f.request_index, f.retried, f.retried_on) for f in lost] == [
        (0, True, 2),
        (1, False, None),
    ]
    assert [(f.connection, f.retry_of) for f in of_type(got, "retry")] == [(2, 1)]


def test_a_retry_lost_in_turn_is_retried_again() -> None:
    # nginx retries on a cached connection the upstream is closing too, then on a new one
    resend = FIN_AT + 20 * US
    answered = cached(2, resend)
    # the same cached connection, but the upstream's FIN takes the resend before its answer
    second = conn(2, *answered.events[:-1], fin("server", resend + 20 * US, 22))
    got = classify([raced(1), second, opened_at(3, FIN_AT + 100 * US)])
    lost = of_type(got, "request_lost_to_fin")
    assert [(f.connection, f.retried_on) for f in lost] == [(1, 2), (2, 3)]
    assert [(f.connection, f.retry_of, f.new_connection) for f in of_type(got, "retry")] == [
        (2, 1, False),
        (3, 2, True),
    ]


def test_findings_do_not_depend_on_the_order_connections_come_in() -> None:
    conns = [
        cached(1, FIN_AT + 80 * US),
        raced(2),
        raced(3, "/other", fin_at=FIN_AT + 5 * US),
        opened_at(4, FIN_AT + 40 * US, "/other"),
        conn(5, syn(T0 + 3 * SEC, 40)),
    ]
    want = classify(conns)
    assert [(f.type, f.connection) for f in want] == [
        ("server_initiated_close", 2),
        ("request_lost_to_fin", 2),
        ("server_initiated_close", 3),
        ("request_lost_to_fin", 3),
        ("retry", 1),
        ("retry", 4),
        ("connect_failed", 5),
    ]
    for order in permutations(conns):
        assert classify(order) == want


def test_losses_sent_at_the_same_instant_pair_the_same_way_in_any_order() -> None:
    # two nginx workers losing the same GET within one tick of a µs-resolution capture
    conns = [raced(1), raced(2), opened_at(3, FIN_AT + 50 * US)]
    assert classify(conns) == classify([conns[1], conns[0], conns[2]])


def test_keep_is_told_whether_a_connection_has_findings_of_its_own() -> None:
    healthy = conn(
        3,
        syn(T0, 1),
        syn_ack(T0 + 50 * US, 2),
        fin("client", T0 + 1 * SEC, 3),
        fin("server", T0 + 1 * SEC + 1 * MS, 4),
    )
    told: dict[int, bool] = {}

    def keep(ref: ConnectionRef, flagged: bool) -> bool:
        told[ref.id] = flagged
        return ref.id == 4

    conns = [served(1, 1 * SEC), conn(2, syn(T0, 1)), healthy, opened_at(4, FIN_AT + 50 * US)]
    scan = _Scan(keep, spool=False)
    scan.add(batch([*conns, raced(5)]))
    got = scan.conclude(NO_CAPTURE)
    # the upstream's idle close, a connect failure, nothing, a retry (known only at the end:
    # nothing of its own when it is finished), a loss
    assert told == {1: True, 2: True, 3: False, 4: False, 5: True}
    assert [(f.type, f.connection) for f in got.findings if f.type == "retry"] == [("retry", 4)]
    assert [c.id for c in got.connections] == [4] and got.connections[0] == conns[3]


# --- finding_order -------------------------------------------------------------------------


def test_finding_order_is_time_then_connection_then_frame() -> None:
    def at(t: int, cid: int, frame: int) -> Finding:
        return Finding("connect_failed", cid, t, frame, "")

    f = at(T0, 3, 9)
    assert finding_order(f) == (T0, 3, 9)
    shuffled = [at(T0 + 1, 1, 1), at(T0, 2, 5), at(T0, 2, 4), at(T0, 1, 7)]
    assert [(x.time_ns, x.connection, x.frame) for x in sorted(shuffled, key=finding_order)] == [
        (T0, 1, 7),
        (T0, 2, 4),
        (T0, 2, 5),
        (T0 + 1, 1, 1),
    ]


def test_findings_at_the_same_moment_come_in_connection_order() -> None:
    got = classify([served(2, 1 * SEC), served(1, 1 * SEC)])
    assert [f.connection for f in got] == [1, 2]
    # the close and the loss share the FIN's time and frame: the close is reported first
    assert [f.type for f in classify([raced(1)])] == [
        "server_initiated_close",
        "request_lost_to_fin",
    ]


# --- the same rules on real captures -------------------------------------------------------

# What the rules must find in each fixture (docs/fixtures.md, truth.json): lost requests as
# (connection, request, retried on), retries as (connection, lost on, new connection), close
# reasons by connection, failed connects.
Expect = tuple[
    list[tuple[int, str, int | None]], list[tuple[int, int, bool]], dict[int, str], list[int]
]
REAL: dict[str, Expect] = {
    "idle-race-get": (
        [(5, "GET /test/0/7", 6)],
        [(6, 5, True)],
        {
            1: "idle_timeout",
            2: "idle_timeout",
            3: "idle_timeout",
            4: "idle_timeout",
            5: "request_in_flight",
            6: "idle_timeout",
        },
        [],
    ),
    "idle-race-post": (
        [(4, "POST /test/0/6", None)],
        [],
        {1: "idle_timeout", 2: "idle_timeout", 3: "idle_timeout", 4: "request_in_flight"},
        [],
    ),
    "max-requests": ([], [], {2: "connection_close"}, []),
    "accept-overflow": (
        [],
        [],
        {1: "idle_timeout", 2: "idle_timeout", 3: "idle_timeout"},
        [4, 5, 6, 7, 8, 9, 10],
    ),
    "idle-close": (
        [],
        [],
        {1: "idle_timeout", 2: "idle_timeout", 3: "idle_timeout", 4: "idle_timeout"},
        [],
    ),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_rules_on_the_connections_of_a_real_capture(name: str) -> None:
    losses, retries, reasons, failed = REAL[name]
    a = analyze(FIXTURES / name / "capture.pcap")
    truth = json.loads((FIXTURES / name / "truth.json").read_text())
    conns = list(a.connections)

    # server_close() picks the segment tshark saw as the first close, where the upstream sent it
    by_port = {t["client_port"]: t for t in truth["connections"]}
    for c in conns:
        close = server_close(c)
        want = by_port[c.client_port]
        if want["first_close_by"] == "server":
            assert close is not None and close.frame == want["first_close_frame"]
        else:
            assert close is None

    got_reasons: dict[int, str | None] = {}
    got_failed: list[int] = []
    for c in conns:
        close_f = server_initiated_close(c, bool(lost_requests(c)))
        if close_f is not None:
            got_reasons[c.id] = close_f.reason
        if connect_failure(c) is not None:
            got_failed.append(c.id)
    assert got_reasons == reasons
    assert got_failed == failed

    # the stage alone, fed the connections backwards, gives analyze()'s findings exactly
    found = classify(reversed(conns))
    assert found == a.findings
    assert [
        (f.connection, f.request, f.retried_on) for f in of_type(found, "request_lost_to_fin")
    ] == losses
    assert [
        (f.connection, f.retry_of, f.new_connection) for f in of_type(found, "retry")
    ] == retries

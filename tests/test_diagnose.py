"""The advice of ``pcapkit.diagnose``: from findings and connections to the setting to change.

Pins down what :class:`Evidence` counts of a connection, and for each piece of advice when it is
given, its value (the median idle time before the upstream's idle closes; the most common request
count before ``Connection: close``, ties to the larger; counts of lost requests and failed
connects), its evidence count, the settings its text names, and the order of the advice. The last
test holds the same rules to what ``pcapkit.analyze()`` advises on the real captures of
``fixtures/``.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from pcapkit import analyze
from pcapkit.diagnose import Evidence, advise
from pcapkit.model import Advice, CloseReason, Connection, Event, Finding
from tests.oracle.batch import classify, diagnose
from tests.oracle.batch import evidence as evidence_of
from tests.test_classify import (
    MS,
    SEC,
    T0,
    US,
    conn,
    fin,
    raced,
    req,
    resp,
    rst,
    served,
    syn,
    syn_ack,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def keepalive(
    cid: int, answers: list[bool], *, last_says_close: bool = True, partial: bool = False
) -> Connection:
    """One request per entry of ``answers`` (True: answered), 10 ms apart; the last answer says
    ``Connection: close`` if ``last_says_close``; nginx closes first."""
    events: list[Event] = [] if partial else [syn(T0, 1), syn_ack(T0 + 50 * US, 2)]
    t = T0 + 1 * MS
    for i, answered in enumerate(answers):
        events.append(req(t + i * 10 * MS, 10 + 2 * i, i, f"/r{i}"))
        if answered:
            last = i == len(answers) - 1
            close = last and last_says_close
            events.append(resp(t + i * 10 * MS + 1 * MS, 11 + 2 * i, i, close=close))
    end = t + len(answers) * 10 * MS
    events += [fin("client", end, 100), fin("server", end + 1 * MS, 101)]
    return conn(cid, *events)


def evidence(*conns: Connection) -> Evidence:
    return evidence_of(conns)


def close(cid: int, reason: CloseReason, idle_ns: int | None) -> Finding:
    return Finding(
        "server_initiated_close", cid, T0 + cid * SEC, cid, "", reason=reason, idle_ns=idle_ns
    )


def lost(cid: int, request: str | None, retried: bool | None) -> Finding:
    return Finding(
        "request_lost_to_fin", cid, T0 + cid * SEC, cid, "", request=request, retried=retried
    )


def failed(cid: int) -> Finding:
    return Finding("connect_failed", cid, T0 + cid * SEC, cid, "")


def topics(advice: tuple[Advice, ...]) -> list[str]:
    return [a.topic for a in advice]


def only(advice: tuple[Advice, ...], topic: str) -> Advice:
    (a,) = [a for a in advice if a.topic == topic]
    return a


# --- nothing to say ------------------------------------------------------------------------


def test_no_advice_when_nothing_happened() -> None:
    assert advise([], Evidence()) == ()
    healthy = [
        keepalive(1, [True, True], last_says_close=False),
        keepalive(2, [True], last_says_close=False),
    ]
    assert classify(healthy) == ()
    assert diagnose(healthy, classify(healthy)) == ()


# --- Evidence ------------------------------------------------------------------------------


def test_evidence_counts_requests_on_connections_ended_with_connection_close() -> None:
    ev = evidence(
        keepalive(1, [True] * 5),
        keepalive(2, [True] * 5),
        keepalive(3, [True] * 3),
    )
    assert ev.closed_after == Counter({5: 2, 3: 1})
    assert ev.refused == 0


def test_evidence_skips_connections_that_do_not_show_the_limit() -> None:
    ev = evidence(
        # open before the capture: its first requests were not seen, so the count is short
        keepalive(1, [True] * 5, partial=True),
        # a request left unanswered: the count of what the upstream served is unknown
        keepalive(2, [False, True]),
        # the last response did not say Connection: close
        keepalive(3, [True] * 5, last_says_close=False),
    )
    assert ev.closed_after == Counter()


def test_evidence_counts_connects_refused_with_rst_not_unanswered_syns() -> None:
    refused = conn(1, syn(T0, 1), rst("server", T0 + 40 * US, 2))
    silent = conn(2, syn(T0, 3))
    assert (refused.state, silent.state) == ("REJ", "S0")
    assert evidence(refused, silent, refused).refused == 2


# --- the upstream's idle timeout -----------------------------------------------------------


def test_idle_timeout_advice_is_the_median_idle_time_before_idle_closes() -> None:
    findings = [
        close(1, "idle_timeout", 1_000 * MS),
        close(2, "idle_timeout", 5_000 * MS),
        close(3, "idle_timeout", 1_200 * MS),
        # counted as evidence, but not in the measured timeout: nginx's request may have come
        # just before the upstream's timer fired, or just after
        close(4, "request_in_flight", 900 * MS),
        # not the idle timer at all
        close(5, "connection_close", 300 * US),
        close(6, "reset", 2 * SEC),
    ]
    a = only(advise(findings, Evidence()), "upstream_idle_timeout")
    assert (a.value, a.evidence) == (1.2, 4)
    assert a.text.startswith(
        "The upstream closes connections idle for about 1.200 s (shortest 1.000 s; "
        "3 idle closes, and 1 with a request in flight). "
    )
    # no Server header, no Keep-Alive header, an idle time no default matches: no server named,
    # the settings of those kaflow knows given as examples
    assert "make the upstream's idle timeout longer than nginx's keepalive_timeout" in a.text
    for setting in (
        "keepalive_timeout (60 s by default)",
        "Tomcat keepAliveTimeout",
        "Node server.keepAliveTimeout",
        "gunicorn --keep-alive",
        "uvicorn --timeout-keep-alive",
    ):
        assert setting in a.text


def test_idle_timeout_value_is_seconds_to_the_microsecond() -> None:
    findings = [close(1, "idle_timeout", 1_002_093_123), close(2, "idle_timeout", 1_002_100_000)]
    a = only(advise(findings, Evidence()), "upstream_idle_timeout")
    assert a.value == 1.002097  # the median of two is their mean
    assert a.evidence == 2
    assert "(shortest 1.002 s; 2 idle closes)." in a.text


def test_idle_timeout_advice_from_connections() -> None:
    conns = [served(1, 1_500 * MS), served(2, 2_500 * MS), served(3, 2_100 * MS)]
    a = only(diagnose(conns, classify(conns)), "upstream_idle_timeout")
    assert (a.value, a.evidence) == (2.1, 3)


def test_no_idle_timeout_advice_without_an_idle_close() -> None:
    findings = [
        close(1, "request_in_flight", 1 * SEC),
        close(2, "connection_close", 1 * MS),
        close(3, "reset", 1 * SEC),
        close(4, "idle_timeout", None),  # nothing measured: open before the capture
    ]
    assert "upstream_idle_timeout" not in topics(advise(findings, Evidence()))


# --- the upstream's max requests per connection --------------------------------------------


def test_max_requests_advice_is_the_most_common_count() -> None:
    a = only(advise([], Evidence(Counter({5: 3, 4: 1, 100: 1}))), "upstream_max_requests")
    assert (a.value, a.evidence) == (5.0, 5)
    assert a.text == (
        "The upstream ended 5 connections with 'Connection: close', 3 of them after 5 requests: "
        "its limit of requests per connection (5 here; the capture does not tell which server it "
        "is: Tomcat maxKeepAliveRequests, Apache MaxKeepAliveRequests, Node "
        "server.maxRequestsPerSocket, ...) is below nginx's keepalive_requests (1000 by "
        "default). Raise it above nginx's, or lower keepalive_requests in nginx's upstream block."
    )


@pytest.mark.parametrize("counts", [{3: 2, 7: 2}, {7: 2, 3: 2}])
def test_max_requests_tie_goes_to_the_larger_count(counts: dict[int, int]) -> None:
    a = only(advise([], Evidence(Counter(counts))), "upstream_max_requests")
    assert (a.value, a.evidence) == (7.0, 4)
    assert "2 of them after 7 requests" in a.text


def test_max_requests_advice_in_the_singular() -> None:
    a = only(advise([], Evidence(Counter({1: 1}))), "upstream_max_requests")
    assert a.text.startswith(
        "The upstream ended 1 connection with 'Connection: close', 1 of them after 1 request: "
    )


def test_max_requests_advice_from_connections_nginx_closed_first() -> None:
    # nginx closing first after Connection: close is no finding, but the limit still shows
    conns = [keepalive(1, [True] * 4), keepalive(2, [True] * 4)]
    assert classify(conns) == ()
    a = only(diagnose(conns, ()), "upstream_max_requests")
    assert (a.value, a.evidence) == (4.0, 2)


# --- lost requests -------------------------------------------------------------------------


def test_lost_requests_advice_counts_retried_and_failed() -> None:
    findings = [
        lost(1, "GET /a", True),
        lost(2, "GET /b", True),
        lost(3, "POST /pay", False),
        lost(4, "PATCH /doc", False),
        lost(5, "POST /pay2", False),
        lost(6, None, None),  # payload not captured: lost, retry unknown
    ]
    a = only(advise(findings, Evidence()), "lost_requests")
    assert (a.value, a.evidence) == (6.0, 6)
    assert a.text == (
        "6 requests lost to the upstream's close; 2 retried by nginx (its client saw only the "
        "delay); 3 not retried (PATCH, POST): their clients got a 502."
    )


def test_one_lost_request_retried() -> None:
    a = only(advise([lost(1, "GET /a", True)], Evidence()), "lost_requests")
    assert a.text == (
        "1 request lost to the upstream's close; 1 retried by nginx (its client saw only the "
        "delay)."
    )
    assert a.value == 1.0


# --- failed connects -----------------------------------------------------------------------


def test_connect_failed_advice_tells_unanswered_from_refused() -> None:
    conns = [
        conn(1, syn(T0, 1)),
        conn(2, syn(T0 + 1 * MS, 2)),
        conn(3, syn(T0 + 2 * MS, 3), rst("server", T0 + 2 * MS + 40 * US, 4)),
    ]
    a = only(diagnose(conns, classify(conns)), "connect_failed")
    assert (a.value, a.evidence) == (3.0, 3)
    assert a.text == (
        "2 SYNs never answered: the upstream's accept queue was full (Tomcat acceptCount / "
        "maxConnections / maxThreads; the kernel's somaxconn); nginx answers 504 after "
        "proxy_connect_timeout; 1 SYN refused with RST: nothing was listening (nginx logs "
        "'connect() failed (111: Connection refused)')."
    )


def test_connect_failed_advice_when_all_were_refused() -> None:
    a = only(advise([failed(1), failed(2)], Evidence(refused=2)), "connect_failed")
    assert a.text == (
        "2 SYNs refused with RST: nothing was listening "
        "(nginx logs 'connect() failed (111: Connection refused)')."
    )


def test_connect_failed_advice_for_one_unanswered_syn() -> None:
    a = only(advise([failed(1)], Evidence()), "connect_failed")
    assert a.text.startswith("1 SYN never answered: the upstream's accept queue was full")
    assert "refused" not in a.text


# --- all of it -----------------------------------------------------------------------------


def test_advice_comes_most_consequential_first_from_one_pass() -> None:
    findings = [failed(1), close(2, "idle_timeout", 1 * SEC), lost(3, "GET /a", True)]
    ev = Evidence(Counter({100: 2}))
    want = advise(findings, ev)
    assert topics(want) == [
        "lost_requests",
        "upstream_idle_timeout",
        "upstream_max_requests",
        "connect_failed",
    ]
    # the findings may be a spool read back from disk once: an iterator must do
    assert advise(iter(findings), ev) == want


def test_lost_request_on_connections_gives_advice_on_both_sides() -> None:
    # the race end to end through the stages: the loss and the idle close behind it
    conns = [served(2, 1_000 * MS), raced(1, "/pay", "POST")]
    advice = diagnose(conns, classify(conns))
    assert topics(advice) == ["lost_requests", "upstream_idle_timeout"]
    assert "1 not retried (POST)" in advice[0].text
    assert (advice[1].value, advice[1].evidence) == (1.0, 2)


# --- the same rules on real captures -------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "want"),
    [
        ("idle-race-get", ["lost_requests", "upstream_idle_timeout"]),
        ("idle-race-post", ["lost_requests", "upstream_idle_timeout"]),
        ("max-requests", ["upstream_max_requests"]),
        ("accept-overflow", ["upstream_idle_timeout", "connect_failed"]),
        ("idle-close", ["upstream_idle_timeout"]),
    ],
)
def test_advice_on_the_connections_of_a_real_capture(name: str, want: list[str]) -> None:
    a = analyze(FIXTURES / name / "capture.pcap")
    t = json.loads((FIXTURES / name / "truth.json").read_text())
    ev = evidence(*a.connections)
    got = advise(a.findings, ev)
    # the stage alone, from analyze()'s connections and findings, advises what analyze() did
    assert got == a.advice
    assert topics(got) == want

    upstream = t["upstream"]
    if "upstream_idle_timeout" in want:
        # Tomcat's keepAliveTimeout, as the capture measured it: a few ms of scheduling late
        idle = only(got, "upstream_idle_timeout")
        timeout_s = upstream["keepAliveTimeout"] / 1000
        assert idle.value is not None and timeout_s <= idle.value < timeout_s + 0.005
    if name == "max-requests":
        limit = upstream["maxKeepAliveRequests"]
        assert ev.closed_after == Counter({limit: len(t["connections"])})
        assert only(got, "upstream_max_requests").value == float(limit)
    if name == "accept-overflow":
        assert ev.refused == 0
        cf = only(got, "connect_failed")
        assert cf.value == float(t["connect_timeouts"])
        assert cf.text.startswith(f"{t['connect_timeouts']} SYNs never answered")
    if name.startswith("idle-race"):
        lr = only(got, "lost_requests")
        assert lr.value == float(t["prematurely_closed"])
        if t["retried_requests"]:
            assert "1 retried by nginx" in lr.text and "not retried" not in lr.text
        else:
            assert "1 not retried (POST)" in lr.text and "retried by nginx" not in lr.text


# --- which upstream: its Server header, Node's Keep-Alive, or Node's default idle time (#12) --


def idle_advice(ev: Evidence, idle_ns: int = 1_002 * MS) -> str:
    findings = [close(1, "idle_timeout", idle_ns), close(2, "idle_timeout", idle_ns)]
    return only(advise(findings, ev), "upstream_idle_timeout").text


@pytest.mark.parametrize(
    ("header", "server", "setting"),
    [
        ("gunicorn", "gunicorn", "--keep-alive"),
        ("uvicorn", "uvicorn", "--timeout-keep-alive"),
        ("Jetty(12.0.1)", "Jetty", "idleTimeout"),
        ("Apache/2.4.57 (Debian)", "Apache httpd", "KeepAliveTimeout (5 s by default)"),
        ("Kestrel", "Kestrel", "KestrelServerLimits.KeepAliveTimeout"),
        ("Apache-Coyote/1.1", "Tomcat", "keepAliveTimeout"),
        ("Puma 6.4.2", "Puma", "persistent_timeout"),
    ],
)
def test_server_header_names_its_setting(header: str, server: str, setting: str) -> None:
    text = idle_advice(Evidence(servers=Counter({header: 3, "other/1.0": 1})))
    assert f"The upstream is {server} (its Server header says '{header}'): " in text
    assert setting in text
    if server != "Tomcat":
        assert "Tomcat" not in text and "maxKeepAliveRequests" not in text


def test_unknown_server_header_names_no_setting_as_its_own() -> None:
    text = idle_advice(Evidence(servers=Counter({"Werkzeug/3.0.1": 2})))
    assert "The upstream is" not in text
    assert "(its Server header says 'Werkzeug/3.0.1', not a server kaflow knows)" in text
    assert "make the upstream's idle timeout longer" in text


def test_node_told_by_its_default_idle_time_alone() -> None:
    """No header to go by (a proxy stripped them): idle closes at 6.0 s are Node's default
    keepAliveTimeout of 5 s plus its 1 s buffer; 3.0 s are nobody's default."""
    text = idle_advice(Evidence(), 6_004 * MS)
    assert "The upstream is Node.js (its idle closes come 6.004 s after the last response" in text
    assert "server.keepAliveTimeout" in text and "server.headersTimeout" in text
    assert "The upstream is" not in idle_advice(Evidence(), 3_004 * MS)


def test_node_told_by_a_keep_alive_header_without_server() -> None:
    text = idle_advice(Evidence(announced=Counter({1: 4}), node_shaped=4))
    assert "The upstream is Node.js (it sends 'Keep-Alive: timeout=N'" in text
    assert "(Node closes about 1 s after the timeout it announces)" in text


def test_apache_keep_alive_is_not_taken_for_node() -> None:
    ev = Evidence(announced=Counter({5: 2}), servers=Counter({"Apache/2.4.57": 2}))
    text = idle_advice(ev)
    assert "The upstream is Apache httpd" in text and "Node" not in text


def test_max_requests_advice_names_the_known_servers_setting() -> None:
    ev = Evidence(Counter({100: 3}), servers=Counter({"Apache/2.4.57": 3}))
    text = only(advise([], ev), "upstream_max_requests").text
    assert "Apache httpd's (its Server header says 'Apache/2.4.57') MaxKeepAliveRequests" in text
    assert "Tomcat" not in text


def test_keepalive_not_in_effect_needs_every_connection_one_request_asking_to_close() -> None:
    on = Evidence(Counter({1: 4}), connections=4, one_request=4, asked_close=4)
    assert "keepalive_not_in_effect" in topics(advise([], on))
    assert "upstream_max_requests" not in topics(advise([], on))
    # one request that did not ask to close: the upstream's own limit of 1, not nginx
    limit = Evidence(Counter({1: 4}), connections=4, one_request=4, asked_close=3)
    assert topics(advise([], limit)) == ["upstream_max_requests"]
    # one connection alone proves nothing
    single = Evidence(connections=1, one_request=1, asked_close=1)
    assert "keepalive_not_in_effect" not in topics(advise([], single))

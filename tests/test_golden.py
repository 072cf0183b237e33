"""Golden tests on real captures: kaflow against nginx's and Tomcat's own logs for the same run.

Each ``fixtures/<scenario>/`` holds a capture made by ``fixtures/lab/lab.py`` with real nginx,
Tomcat and tcpdump, and a ``truth.json`` derived from their logs (and tshark for who sent the
first FIN). See ``docs/fixtures.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pcapkit import Analysis, analyze
from pcapkit.config import check_files
from pcapkit.report import ReportOptions, reporter
from tests.truthcheck import mismatches

FIXTURES = Path(__file__).parent.parent / "fixtures"
SCENARIOS = sorted(p.parent.name for p in FIXTURES.glob("*/truth.json"))
# with nginx in front (its logs the truth); the others name their client in truth.json
NGINX = sorted(p.parent.name for p in FIXTURES.glob("*/access.log"))
GOLD = Path(__file__).parent / "gold"


def truth(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name / "truth.json").read_text())
    return data


def test_every_scenario_the_lab_promises_is_here() -> None:
    assert set(SCENARIOS) >= {
        "agree",
        "idle-close",
        "idle-race-get",
        "idle-race-post",
        "max-requests",
        "accept-overflow",
        "formats",
        "ipv6",
    }


def test_every_fixture_has_nginx_or_names_its_client() -> None:
    assert set(SCENARIOS) == set(NGINX) | {n for n in SCENARIOS if "client" in truth(n)}


@pytest.mark.parametrize("name", SCENARIOS)
def test_client_told_by_the_requests_is_the_one_that_ran(name: str) -> None:
    """No --client: each fixture's requests tell kaflow which proxy sent them (the lab's
    truth.json names a client other than nginx; nginx's fixtures have its logs); encrypted
    ones tell nothing, and nginx is assumed."""
    a = analyze(FIXTURES / name / "capture.pcap", port=truth(name)["port"])
    assert a.client.kind == truth(name).get("client", {}).get("kind", "nginx")
    # over TLS no request head is readable: nginx is then assumed, and said to be
    told = "assumed" if all(c.tls for c in a.connections) else "told by its requests"
    assert a.client.basis.startswith(told) and not a.client.given


def test_client_assumed_nginx_when_no_request_head_was_captured() -> None:
    a = analyze(FIXTURES / "formats" / "snap64.pcap")
    assert a.client.kind == "nginx" and a.client.basis.startswith("assumed")


@pytest.mark.parametrize("name", NGINX)
def test_analysis_agrees_with_nginx_logs(name: str) -> None:
    a = analyze(FIXTURES / name / "capture.pcap", port=truth(name)["port"])
    assert mismatches(a, truth(name)) == []


def test_race_get_lost_request_pinned_to_fin_and_retry_to_its_connection() -> None:
    a = analyze(FIXTURES / "idle-race-get" / "capture.pcap")
    (lost,) = [f for f in a.findings if f.type == "request_lost_to_fin"]
    (retry,) = [f for f in a.findings if f.type == "retry"]
    conn = a.connection(lost.connection)
    fin = next(e for e in conn.events if e.type == "fin" and e.side == "server")
    assert lost.frame == fin.frame and conn.closed_by == "server"
    assert retry.retry_of == lost.connection and lost.retried_on == retry.connection
    # nginx's access log lists two upstream attempts for this request: "502, 200"
    assert lost.request in truth("idle-race-get")["retried_requests"]


def test_race_post_is_not_retried() -> None:
    a = analyze(FIXTURES / "idle-race-post" / "capture.pcap")
    (lost,) = [f for f in a.findings if f.type == "request_lost_to_fin"]
    assert lost.request is not None and lost.request.startswith("POST ")
    assert lost.retried is False and not [f for f in a.findings if f.type == "retry"]
    assert truth("idle-race-post")["client_status"].get("502") == 1


def test_agreeing_settings_every_connection_closed_by_nginx() -> None:
    a = analyze(FIXTURES / "agree" / "capture.pcap")
    assert a.connections and all(c.closed_by == "client" for c in a.connections)
    assert a.findings == ()


@pytest.mark.parametrize("name", ["nginx-keepalive-requests", "nginx-keepalive-time"])
def test_nginx_own_limit_closes_first_no_findings(name: str) -> None:
    """nginx's keepalive_requests / keepalive_time close every upstream connection before
    Tomcat's 120 s idle timeout could: nginx's FIN first, nothing lost (issue #12)."""
    a = analyze(FIXTURES / name / "capture.pcap")
    t = truth(name)
    assert len(a.connections) == len(t["connections"]) >= 2
    assert all(c.closed_by == "client" for c in a.connections)
    bad = {"server_initiated_close", "request_lost_to_fin"}
    assert not [f for f in a.findings if f.type in bad]
    assert sum(len(c.requests) for c in a.connections) == t["client_requests"]
    if "keepalive_time" not in t["nginx"]:
        limit = t["nginx"]["keepalive_requests"]
        assert limit == 3 and all(len(c.requests) <= limit for c in a.connections)


@pytest.mark.parametrize("name", ["nginx-keepalive-requests", "nginx-keepalive-time"])
def test_nginx_own_limit_check_reports_no_race(name: str) -> None:
    d = FIXTURES / name
    r = check_files(
        str(d / "nginx.conf"), [str(d / "server.xml")], version=truth(name)["nginx"]["version"]
    )
    assert not any(u.race_possible for u in r.upstreams)


def test_idle_closes_show_the_upstream_timeout() -> None:
    a = analyze(FIXTURES / "idle-close" / "capture.pcap")
    idle = [f.idle_ns for f in a.findings if f.reason == "idle_timeout"]
    timeout_ms = truth("idle-close")["upstream"]["keepAliveTimeout"]
    assert idle and all(i is not None and timeout_ms * 1e6 <= i < timeout_ms * 3e6 for i in idle)


def test_max_requests_connection_close() -> None:
    a = analyze(FIXTURES / "max-requests" / "capture.pcap")
    limit = truth("max-requests")["upstream"]["maxKeepAliveRequests"]
    closing = [c for c in a.connections if any(r.connection_close for r in c.requests)]
    assert closing
    for c in closing:
        assert [r.connection_close for r in c.requests] == [False] * (limit - 1) + [True]


FORMATS = ["ethernet.pcap", "any.pcap", "sll1.pcap", "nano.pcap", "capture.pcapng", "snap64.pcap"]


@pytest.mark.parametrize("capture", FORMATS)
def test_same_traffic_in_every_format_gives_the_same_answer(capture: str) -> None:
    t = truth("formats")
    assert capture in t["captures"]
    a = analyze(FIXTURES / "formats" / capture)
    base = analyze(FIXTURES / "formats" / "ethernet.pcap")
    assert a.capture.link_types == (t["captures"][capture]["link_type"],)
    assert [(c.client, c.server, c.closed_by, c.close, c.state) for c in a.connections] == [
        (c.client, c.server, c.closed_by, c.close, c.state) for c in base.connections
    ]
    assert [(f.type, f.connection, f.reason) for f in a.findings] == [
        (f.type, f.connection, f.reason) for f in base.findings
    ]
    assert mismatches(a, t, payload=capture != "snap64.pcap") == []


def test_nanosecond_capture_keeps_nanoseconds() -> None:
    a = analyze(FIXTURES / "formats" / "nano.pcap")
    assert any(e.time_ns % 1000 for c in a.connections for e in c.events)


@pytest.mark.parametrize("name", ["idle-race-get", "accept-overflow"])
def test_table_report_matches_gold(name: str) -> None:
    """The terminal report, byte for byte; on a change, the new output is written beside the gold
    file (``*.failed.txt``) to diff and, if right, copy over it."""
    import io

    a = analyze(FIXTURES / name / "capture.pcap")
    buf = io.StringIO()
    reporter("table").render(a, buf, ReportOptions(connections="all"))
    text = buf.getvalue().replace(str(FIXTURES / name), f"fixtures/{name}")
    gold = GOLD / f"{name}.txt"
    if not gold.exists() or gold.read_text() != text:
        gold.with_suffix(".failed.txt").write_text(text)
    assert gold.exists(), f"no gold file yet: review {gold.with_suffix('.failed.txt')}"
    assert gold.read_text() == text


# --- other upstreams than Tomcat (issue #12): nginx sends and logs X-Request-ID ------------------

APP_RACES = [
    *(f"{k}-race-{m}" for k in ("node", "gunicorn", "uvicorn") for m in ("get", "post")),
    "go-race-get",
]


def upstream_kind(name: str) -> str:
    kind: str = truth(name)["upstream"].get("kind", "tomcat")
    return kind


def advice(a: Analysis, topic: str) -> str:
    (text,) = [x.text for x in a.advice if x.topic == topic]
    return text


def test_the_other_upstreams_fixtures_are_here() -> None:
    assert set(SCENARIOS) >= {*APP_RACES, "node-idle", "keepalive-off", "two-servers"}


@pytest.mark.parametrize("name", APP_RACES)
def test_app_race_one_loss_pinned_by_request_id(name: str) -> None:
    """The lost request is the one nginx logged, on the connection its X-Request-ID was sent on
    without an answer; a GET's retry carries the same id on the connection that answered it."""
    t = truth(name)
    a = analyze(FIXTURES / name / "capture.pcap")
    (x,) = t["losses"]
    (lost,) = [f for f in a.findings if f.type == "request_lost_to_fin"]
    conn = a.connection(lost.connection)
    assert (lost.request, conn.client_port) == (x["request"], x["lost_on_port"])
    (req,) = [r for r in conn.requests if r.label == lost.request]
    assert req.request_id == x["request_id"] and not req.answered
    retries = [f for f in a.findings if f.type == "retry"]
    if name.endswith("-get"):
        (retry,) = retries
        again = a.connection(retry.connection)
        assert again.client_port == x["answered_on_port"]
        assert [r.request_id for r in again.requests if r.label == lost.request] == [
            x["request_id"]
        ]
        assert x["upstream_status"] == ["502", "200"]
    else:
        assert retries == [] and lost.retried is False and x["client_status"] == 502


def test_rst_loss_quotes_nginx_recv_failed() -> None:
    """uvicorn answered the POST that reached it as it closed with a RST: nginx logged
    'recv() failed (104: Connection reset by peer)', not 'prematurely closed'."""
    t = truth("uvicorn-race-post")
    (x,) = t["losses"]
    assert x["nginx_error"] == "reset by peer" and t["prematurely_closed"] == 0
    a = analyze(FIXTURES / "uvicorn-race-post" / "capture.pcap")
    (lost,) = [f for f in a.findings if f.type == "request_lost_to_fin"]
    assert lost.nginx_errors == (
        "recv() failed (104: Connection reset by peer) while reading response header from upstream",
    )
    assert "upstream's RST came" in lost.message
    (close,) = [
        f
        for f in a.findings
        if f.type == "server_initiated_close" and f.connection == lost.connection
    ]
    assert close.reason == "request_in_flight" and "upstream sent RST first" in close.message
    text = advice(a, "lost_requests")
    assert "'recv() failed (104: Connection reset by peer)" in text
    assert "prematurely closed" not in text


def test_fin_loss_quotes_nginx_prematurely_closed() -> None:
    a = analyze(FIXTURES / "uvicorn-race-get" / "capture.pcap")
    assert truth("uvicorn-race-get")["losses"][0]["nginx_error"] == "prematurely closed"
    (lost,) = [f for f in a.findings if f.type == "request_lost_to_fin"]
    assert lost.nginx_errors[0].startswith("upstream prematurely closed connection")
    assert "'upstream prematurely closed connection" in advice(a, "lost_requests")


# the setting the advice must name, and what it must never name, per upstream (uvicorn's says
# that under gunicorn's UvicornWorker gunicorn's --keep-alive rules)
NAMED = {
    "node": ("Node.js", "server.keepAliveTimeout", "server.headersTimeout"),
    "gunicorn": ("gunicorn", "--keep-alive", "2 s by default"),
    "uvicorn": ("uvicorn", "--timeout-keep-alive", "5 s by default"),
}
NEVER = {
    "node": ("--keep-alive", "--timeout-keep-alive"),
    "gunicorn": ("server.keepAliveTimeout", "--timeout-keep-alive"),
    "uvicorn": ("server.keepAliveTimeout",),
}


@pytest.mark.parametrize(
    "name", [*(n for n in APP_RACES if not n.startswith("go-")), "node-idle", "two-servers"]
)
def test_idle_advice_names_the_upstreams_own_setting(name: str) -> None:
    a = analyze(FIXTURES / name / "capture.pcap")
    text = advice(a, "upstream_idle_timeout")
    kind = upstream_kind(name)
    server, setting, more = NAMED[kind]
    assert f"The upstream is {server} (" in text and setting in text and more in text
    assert "Tomcat" not in text and "maxKeepAliveRequests" not in text
    assert not any(s in text for s in NEVER[kind])


def test_node_default_told_by_its_idle_time_too() -> None:
    """Node's default keepAliveTimeout (5 s) closes idle sockets ~6.0 s after the last response
    (its 1 s buffer); it also announces 'Keep-Alive: timeout=5'."""
    a = analyze(FIXTURES / "node-idle" / "capture.pcap")
    idle = [f.idle_ns for f in a.findings if f.reason == "idle_timeout"]
    assert idle and all(i is not None and 5.95e9 <= i <= 6.1e9 for i in idle)
    assert all(c.keep_alive == "timeout=5" and c.server_header is None for c in a.connections)
    text = advice(a, "upstream_idle_timeout")
    assert "'Keep-Alive: timeout=5'" in text and "about 1 s after the timeout" in text


def test_go_upstream_idle_timeout_and_its_setting_among_the_candidates() -> None:
    """Go's net/http (IdleTimeout 1 s) sends neither Server nor Keep-Alive: the capture does not
    name it, so the advice claims no server, and lists Go's http.Server.IdleTimeout among the
    settings it may be. Its idle closes come IdleTimeout after the last response."""
    t = truth("go-race-get")
    assert t["upstream"]["kind"] == "go" and t["upstream"]["settings"] == {"IdleTimeout": "1000"}
    a = analyze(FIXTURES / "go-race-get" / "capture.pcap")
    assert all(c.server_header is None and c.keep_alive is None for c in a.connections)
    idle = [f.idle_ns for f in a.findings if f.reason == "idle_timeout"]
    assert idle and all(i is not None and 1.0e9 <= i < 1.1e9 for i in idle)
    text = advice(a, "upstream_idle_timeout")
    assert "Go http.Server.IdleTimeout" in text and "The upstream is" not in text


def test_tomcat_fixtures_name_no_server() -> None:
    """Tomcat 10 sends neither Server nor Keep-Alive: the advice says 'the upstream's idle
    timeout' and does not claim a server."""
    a = analyze(FIXTURES / "idle-race-get" / "capture.pcap")
    text = advice(a, "upstream_idle_timeout")
    assert "make the upstream's idle timeout longer" in text
    assert "The upstream is" not in text


def test_keepalive_not_in_effect_is_its_own_diagnosis() -> None:
    t = truth("keepalive-off")
    assert "proxy_http_version" not in (FIXTURES / "keepalive-off" / "nginx.conf").read_text()
    a = analyze(FIXTURES / "keepalive-off" / "capture.pcap")
    assert t["requests_per_connection"] == {"1": t["client_requests"]}
    assert len(a.connections) == t["client_requests"]
    text = advice(a, "keepalive_not_in_effect")
    assert "proxy_http_version 1.1;" in text and 'proxy_set_header Connection "";' in text
    topics = [x.topic for x in a.advice]
    assert "upstream_max_requests" not in topics
    assert not any("maxKeepAliveRequests" in x.text for x in a.advice)


def test_max_requests_fixture_is_not_keepalive_off() -> None:
    """Tomcat's maxKeepAliveRequests 5 answering HTTP/1.1 requests: its limit, not nginx's."""
    a = analyze(FIXTURES / "max-requests" / "capture.pcap")
    topics = [x.topic for x in a.advice]
    assert "upstream_max_requests" in topics and "keepalive_not_in_effect" not in topics


def test_two_servers_retry_on_the_other_server_and_max_fails() -> None:
    t = truth("two-servers")
    (x,) = t["losses"]
    lost_on, answered_by = x["upstream_addr"]
    assert lost_on != answered_by and t["temporarily_disabled"] >= 1
    a = analyze(FIXTURES / "two-servers" / "capture.pcap")
    (lost,) = [f for f in a.findings if f.type == "request_lost_to_fin"]
    (retry,) = [f for f in a.findings if f.type == "retry"]
    assert a.connection(lost.connection).server == lost_on
    assert retry.other_server == answered_by == a.connection(retry.connection).server
    assert f"to another server, {answered_by}" in lost.message
    text = advice(a, "lost_requests")
    assert f"1 retry went to another upstream server ({answered_by})" in text
    assert "max_fails=1" in text and "'upstream server temporarily disabled'" in text
    # one server alone: nothing about max_fails
    single = analyze(FIXTURES / "node-race-get" / "capture.pcap")
    assert "max_fails" not in advice(single, "lost_requests")


def test_busy_run_losses_and_retries_by_request_id() -> None:
    """150 clients over a handful of shared URLs: the same request line is in flight many times
    at once, so only the X-Request-ID tells which request was lost and which one is its retry.
    Every loss is on the connection its id went unanswered on, and its retry on the one that
    answered the same id; no other client's identical request is taken for it."""
    t = truth("busy")
    a = analyze(FIXTURES / "busy" / "capture.pcap")
    lines = [x["request"] for x in t["losses"]]
    assert len(lines) >= 1 and t["client_requests"] >= 2000
    # shared URLs: each lost request line was sent many times
    for line in set(lines):
        assert sum(r.label == line for c in a.connections for r in c.requests) > 100
    lost = [f for f in a.findings if f.type == "request_lost_to_fin"]
    by_conn = {c.id: c for c in a.connections}
    got = sorted(
        (
            by_conn[f.connection].client_port,
            next(r.request_id for r in by_conn[f.connection].requests if not r.answered),
            by_conn[f.retried_on].client_port if f.retried_on is not None else None,
        )
        for f in lost
    )
    want = sorted((x["lost_on_port"], x["request_id"], x["answered_on_port"]) for x in t["losses"])
    assert got == want
    # the request kaflow calls the retry carries the lost request's own id
    for f in lost:
        lost_id = next(r.request_id for r in by_conn[f.connection].requests if not r.answered)
        assert f.retried_on is not None
        (retry,) = [x for x in a.findings if x.type == "retry" and x.retry_of == f.connection]
        again = by_conn[retry.connection].requests[retry.request_index or 0]
        assert (again.label, again.request_id) == (f.request, lost_id)


def test_haproxy_client_loss_agrees_with_haproxys_log() -> None:
    """HAProxy (http-reuse always, default retry-on) in front instead of nginx: the same race,
    other rules. HAProxy logged the GET SH-- (the server aborted) and answered 502 without
    sending it again: kaflow finds the loss on the connection its X-Request-ID went unanswered
    on, and no retry."""
    t = truth("haproxy-race-get")
    assert t["client"]["kind"] == "haproxy"
    (x,) = t["losses"]
    assert (x["termination"], x["client_status"], x["answered_on_port"]) == ("SH--", 502, None)
    a = analyze(FIXTURES / "haproxy-race-get" / "capture.pcap")
    want_close = sorted(
        (c["client_port"], c["first_close_by"], c["first_close"]) for c in t["connections"]
    )
    assert sorted((c.client_port, c.closed_by, c.close) for c in a.connections) == want_close
    (lost,) = [f for f in a.findings if f.type == "request_lost_to_fin"]
    conn = a.connection(lost.connection)
    assert (lost.request, conn.client_port) == (x["request"], x["lost_on_port"])
    assert [r.request_id for r in conn.requests if not r.answered] == [x["request_id"]]
    assert lost.retried is False and not [f for f in a.findings if f.type == "retry"]
    answered = {
        r.request_id: c.client_port for c in a.connections for r in c.requests if r.answered
    }
    assert answered == t["answered_by_id"]


def test_haproxy_retry_on_empty_response_replays_a_post() -> None:
    """HAProxy with 'retry-on conn-failure empty-response': the POST lost to Node's close was
    replayed on another connection (HAProxy's log: 200, one retry), the same X-Request-ID
    unanswered on one connection and answered on the other. Under nginx's rules a POST is never
    paired; under HAProxy's, kaflow pairs it with its replay, and says HAProxy resent it."""
    t = truth("haproxy-retry-post")
    assert t["client"]["retry-on"] == "conn-failure empty-response"
    (x,) = t["losses"]
    assert (x["client_status"], x["retries"]) == (200, 1)
    assert x["request"].startswith("POST ") and x["answered_on_port"] != x["lost_on_port"]
    a = analyze(FIXTURES / "haproxy-retry-post" / "capture.pcap")
    assert a.client.kind == "haproxy"
    (lost,) = [f for f in a.findings if f.type == "request_lost_to_fin"]
    (retry,) = [f for f in a.findings if f.type == "retry"]
    by_id = {c.id: c for c in a.connections}
    assert (lost.request, by_id[lost.connection].client_port) == (x["request"], x["lost_on_port"])
    again = by_id[retry.connection]
    assert again.client_port == x["answered_on_port"] and lost.retried_on == retry.connection
    assert [r.request_id for r in again.requests if r.label == x["request"]] == [x["request_id"]]
    assert "HAProxy resent it" in lost.message and lost.nginx_errors == ()
    answered = {
        r.request_id: c.client_port for c in a.connections for r in c.requests if r.answered
    }
    assert answered == t["answered_by_id"]
    # nginx's rules would leave the POST unpaired: the client decides
    as_nginx = analyze(FIXTURES / "haproxy-retry-post" / "capture.pcap", client="nginx")
    assert not [f for f in as_nginx.findings if f.type == "retry"]


TLS_RACES = [f"{k}-tls-race-{m}" for k in ("uvicorn", "node") for m in ("get", "post")]


@pytest.mark.parametrize("name", TLS_RACES)
def test_tls_race_losses_closes_and_idle_time(name: str) -> None:
    """proxy_pass https://: every request is an encrypted burst, the handshake none; the loss
    is on the connection tshark (decrypting with the upstream's key log) sees it unanswered on,
    retried or not as nginx's access log says; the idle time runs from the upstream's last
    answer to its close (uvicorn's close_notify, Node's FIN), never from the alert itself."""
    t = truth(name)
    a = analyze(FIXTURES / name / "capture.pcap")
    assert {c.tls for c in a.connections} == {"TLS 1.3" if "uvicorn" in name else "TLS 1.2"}
    assert a.summary.requests == t["upstream_attempts"]
    assert all(r.encrypted and r.method is None for c in a.connections for r in c.requests)
    (x,) = t["losses"]
    (lost,) = [f for f in a.findings if f.type == "request_lost_to_fin"]
    assert a.connection(lost.connection).client_port == x["lost_on_port"]
    assert lost.retried is x["retried"] and lost.message.startswith("(encrypted request)")
    closes = [f for f in a.findings if f.type == "server_initiated_close"]
    assert len(closes) == len(t["connections"])
    assert all(f.idle_ns is not None and f.idle_ns > 900_000_000 for f in closes)
    if "uvicorn" in name:
        # uvicorn closes with close_notify alone; tshark's decryption says it is one
        assert all(c["close_notify_by"] == "server" for c in t["connections"])
        assert {c.close for c in a.connections} == {"close_notify"}
        assert "TLS close_notify" in lost.message

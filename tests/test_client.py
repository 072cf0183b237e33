"""Another client than nginx (issue #12): which proxy sent the requests, and its rules.

The client is told by how the first request head of each connection spells its header names
(``pcapkit.client``), or given (``analyze(client=)``, ``--client``); its rules decide which lost
requests can have a retry (nginx never retries POST, LOCK, PATCH; HAProxy's ``retry-on
empty-response`` replays any method), and the findings, advice and reports speak of it and of
nothing nginx-only when it is not nginx.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pcapkit import analyze
from pcapkit.cli import app
from pcapkit.client import Client, ClientEvidence, given, head_spelling
from pcapkit.errors import KaflowError
from pcapkit.report import ReportOptions, reporter
from tests.oracle.batch import _NO_CAPTURE as NO_CAPTURE
from tests.oracle.batch import analysis
from tests.test_classify import FIN_AT, LOST_AT, MS, SEC, US, opened_at, raced, served

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HAPROXY = FIXTURES / "haproxy-race-get" / "capture.pcap"


# --- telling the client by its requests ------------------------------------------------------


def test_head_spelling() -> None:
    # HAProxy 2 (HTX) writes every name in lower case; nginx its own "Host" (and "Connection")
    assert head_spelling("host\naccept-encoding\nx-request-id") == "lower"
    assert head_spelling("X-Request-ID\nHost\nAccept-Encoding") == "cased"
    assert head_spelling("Host\nConnection") == "cased"
    assert head_spelling("host\nx-envoy-expected-rq-timeout-ms") == "envoy"


def decide(*heads: str | None, kind: str | None = None) -> Client:
    ev = ClientEvidence()
    ev.add(heads)
    return ev.decide(kind)  # type: ignore[arg-type]


def test_decided_by_the_heads() -> None:
    assert decide("host\nx-request-id", "host").kind == "haproxy"
    assert decide("Host\nAccept-Encoding").kind == "nginx"
    assert decide("Host", "host").kind == "other"  # two clients' spellings
    assert decide("host\nx-envoy-attempt-count").kind == "other"  # Envoy: rules unknown
    # nothing to tell by (small snaplen, encrypted): nginx, said to be assumed
    none = decide(None, None)
    assert (none.kind, none.given) == ("nginx", False) and none.basis.startswith("assumed")
    # given wins over the evidence
    forced = decide("Host", kind="haproxy")
    assert (forced.kind, forced.given) == ("haproxy", True)


def test_unknown_client_name_is_refused() -> None:
    with pytest.raises(KaflowError, match="client must be one of nginx, haproxy, other"):
        given("envoy")  # type: ignore[arg-type]


def test_names() -> None:
    assert (Client("nginx").name, Client("haproxy").name, Client("other").name) == (
        "nginx",
        "HAProxy",
        "the client",
    )
    assert Client("other").title == "The client" and Client("other").label == "client"
    assert Client("nginx").never_retried == frozenset({"POST", "LOCK", "PATCH"})
    assert Client("haproxy").never_retried == frozenset()


# --- the rules: which lost requests can have a retry ------------------------------------------


def post_lost_then_sent_again() -> list:  # type: ignore[type-arg]
    """A POST lost to the upstream's FIN, and the same POST on a new connection 50 µs after."""
    return [raced(1, "/p", "POST"), opened_at(2, FIN_AT + 50 * US, "/p", "POST")]


def test_nginx_never_pairs_a_lost_post() -> None:
    a = analysis(post_lost_then_sent_again(), NO_CAPTURE, "nginx")
    (lost,) = [f for f in a.findings if f.type == "request_lost_to_fin"]
    assert lost.retried is False and not [f for f in a.findings if f.type == "retry"]
    assert "nginx does not retry POST" in lost.message
    assert lost.nginx_errors[0].startswith("upstream prematurely closed connection")


def test_haproxy_replays_a_lost_post() -> None:
    """With retry-on empty-response HAProxy replays any method on a new connection: the same
    POST right after the loss is its replay."""
    a = analysis(post_lost_then_sent_again(), NO_CAPTURE, "haproxy")
    (lost,) = [f for f in a.findings if f.type == "request_lost_to_fin"]
    (retry,) = [f for f in a.findings if f.type == "retry"]
    assert (lost.retried, lost.retried_on, retry.retry_of) == (True, 2, 1)
    assert "HAProxy resent it (its retry-on has empty-response)" in lost.message
    assert lost.nginx_errors == ()  # nginx logged nothing: it is not there


def test_haproxy_default_retry_on_leaves_a_get_unretried() -> None:
    a = analysis([raced(1)], NO_CAPTURE, "haproxy")
    (lost,) = [f for f in a.findings if f.type == "request_lost_to_fin"]
    assert lost.retried is False and lost.nginx_errors == ()
    assert "only with retry-on empty-response; its default, conn-failure, does not" in lost.message
    assert "502 (logged SH--)" in lost.message
    text = " ".join(x.text for x in a.advice)
    assert "retry-on conn-failure empty-response" in text and "http-reuse safe" in text
    assert "nginx" not in text


def test_other_client_claims_no_rules() -> None:
    a = analysis([*post_lost_then_sent_again(), served(3, 1 * SEC)], NO_CAPTURE, "other")
    (lost,) = [f for f in a.findings if f.type == "request_lost_to_fin"]
    assert "the client sent it again" in lost.message and lost.nginx_errors == ()
    texts = [f.message for f in a.findings] + [x.text for x in a.advice]
    for t in texts:
        assert "nginx" not in t and "HAProxy" not in t, t
    idle = next(x.text for x in a.advice if x.topic == "upstream_idle_timeout")
    assert "the client's idle timeout for upstream connections" in idle


def test_idle_advice_in_the_clients_settings() -> None:
    conns = [served(i, 1 * SEC + i * MS) for i in range(1, 4)]
    nginx = next(x.text for x in analysis(conns, NO_CAPTURE).advice)
    haproxy = next(x.text for x in analysis(conns, NO_CAPTURE, "haproxy").advice)
    assert "keepalive_timeout" in nginx and "pool-purge-delay" not in nginx
    assert "pool-purge-delay" in haproxy and "timeout http-keep-alive" in haproxy
    assert "keepalive_timeout" not in haproxy and "nginx" not in haproxy


def test_lost_at_is_before_the_fin_in_these_connections() -> None:
    # the helpers' race: the request goes out before the upstream's FIN
    assert LOST_AT < FIN_AT


# --- the real HAProxy capture against HAProxy's own log ----------------------------------------


def haproxy_truth() -> dict:  # type: ignore[type-arg]
    data: dict = json.loads((FIXTURES / "haproxy-race-get" / "truth.json").read_text())  # type: ignore[type-arg]
    return data


def test_haproxy_fixture_told_by_its_requests() -> None:
    a = analyze(HAPROXY)
    assert haproxy_truth()["client"]["kind"] == a.client.kind == "haproxy"
    assert not a.client.given and "lower case" in a.client.basis
    # nginx's fixtures are told to be nginx's
    for name in ("idle-race-get", "node-race-get", "keepalive-off"):
        assert analyze(FIXTURES / name / "capture.pcap").client.kind == "nginx"


def test_haproxy_fixture_loss_worded_as_haproxy_logged_it() -> None:
    """HAProxy logged the lost GET 502 SH-- and did not send it again: the finding says so, and
    no nginx message, setting or retry is claimed anywhere in the report."""
    (x,) = haproxy_truth()["losses"]
    assert (x["termination"], x["client_status"], x["retries"]) == ("SH--", 502, 0)
    a = analyze(HAPROXY)
    (lost,) = [f for f in a.findings if f.type == "request_lost_to_fin"]
    assert lost.request == x["request"] and lost.retried is False
    assert "logged SH--" in lost.message and lost.nginx_errors == ()
    for kind in ("table", "json", "html"):
        buf = io.StringIO()
        reporter(kind).render(a, buf, ReportOptions(connections="all"))
        text = buf.getvalue()
        assert "HAProxy" in text
        for nginx_only in ("keepalive_timeout", "prematurely closed", "proxy_", "nginx logs"):
            assert nginx_only not in text, (kind, nginx_only)
    out = json.loads(_render(a, "json"))
    assert out["client"] == {"kind": "haproxy", "basis": a.client.basis, "given": False}


def _render(a: object, kind: str) -> str:
    buf = io.StringIO()
    reporter(kind).render(a, buf, ReportOptions())  # type: ignore[arg-type]
    return buf.getvalue()


def test_cli_client_option() -> None:
    runner = CliRunner()
    got = runner.invoke(app, ["analyze", str(HAPROXY), "--client", "other", "-f", "json"])
    assert got.exit_code == 1, got.output
    out = json.loads(got.stdout)
    assert out["client"]["kind"] == "other" and out["client"]["given"] is True
    table = runner.invoke(app, ["analyze", str(HAPROXY), "--client", "nginx"])
    assert "client: nginx (given (--client))" in table.stdout
    words = " ".join(table.stdout.split())
    assert "nginx logs it as 'upstream prematurely closed connection" in words
    assert "HAProxy" not in words
    bad = runner.invoke(app, ["analyze", str(HAPROXY), "--client", "envoy"])
    assert bad.exit_code == 2

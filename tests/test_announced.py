"""The upstream's own word on its timers — ``Keep-Alive: timeout=N, max=M``, which Node, Apache
and others send — held against nginx's keepalive_timeout and the upstream's config in
``kaflow analyze --nginx-conf / --upstream-config``: an announced timeout at or below nginx's
makes the race certain."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from typer.testing import CliRunner

from pcapkit import Analysis, analyze
from pcapkit.cli import app
from pcapkit.config import read_nginx
from pcapkit.config.compare import Comparison, announced, compare
from pcapkit.config.model import Backend
from pcapkit.config.upstream import command, read_upstream
from tests.conversation import MS, T0, Conv, get, write

SEC = 1_000_000_000
runner = CliRunner()


def node_answer(keep_alive: str) -> bytes:
    return (
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n"
        f"Keep-Alive: {keep_alive}\r\n\r\nok"
    ).encode()


def node_capture(tmp_path: Path, keep_alive: str = "timeout=5") -> Path:
    """Three connections to an upstream announcing ``keep_alive``, each closed by it 6 s after
    its answer (Node: its timeout plus the 1 s keepAliveTimeoutBuffer)."""
    convs = []
    for i in range(3):
        t = T0 + i * 10 * MS
        c = (
            Conv(40000 + i)
            .handshake(t)
            .exchange(t + 1 * MS, get(f"/n/{i}"), node_answer(keep_alive))
        )
        c.fin("s", t + 6 * SEC).fin("c", t + 6 * SEC + 1 * MS)
        convs.append(c)
    return write(tmp_path / "node.pcap", convs)


def nginx_conf(tmp_path: Path, keepalive_timeout: str = "60s") -> Path:
    p = tmp_path / "nginx.conf"
    p.write_text(
        "events {}\nhttp {\n  upstream node {\n    server 127.0.0.1:8080;\n    keepalive 16;\n"
        f"    keepalive_timeout {keepalive_timeout};\n  }}\n"
        "  server {\n    listen 8081;\n    location / {\n      proxy_pass http://node;\n"
        '      proxy_http_version 1.1;\n      proxy_set_header Connection "";\n    }\n  }\n}\n'
    )
    return p


def by_what(
    a: Analysis, conf: Path | None, backends: Sequence[Backend] = ()
) -> dict[str, Comparison]:
    nginx = read_nginx(str(conf), version="1.26.2") if conf is not None else None
    return {c.what: c for c in compare(a, nginx, backends)}


def test_announced_timeout_under_nginx_keepalive_timeout_makes_the_race_certain(
    tmp_path: Path,
) -> None:
    a = analyze(node_capture(tmp_path))
    got = by_what(a, nginx_conf(tmp_path))
    race = got["announced_timeout_vs_nginx"]
    assert race.measured == 5.0 and race.evidence == 3 and race.configured == 60.0
    assert not race.agrees
    assert "the upstream announces 'Keep-Alive: timeout=5'" in race.text
    assert "nginx keepalive_timeout (nginx.conf:6) is 60 s" in race.text
    assert "the race is certain" in race.text
    # the measured idle closes say the same: 6 s, under nginx's 60 s
    assert not got["upstream_idle_timeout"].agrees
    # nginx's keepalive_timeout below what the upstream announces: no race
    calm = by_what(a, nginx_conf(tmp_path, "4s"))["announced_timeout_vs_nginx"]
    assert calm.agrees and "nginx closes idle connections first" in calm.text


def test_announced_timeout_against_the_upstreams_config(tmp_path: Path) -> None:
    a = analyze(node_capture(tmp_path))
    node = command("node server.js")  # Node's default keepAliveTimeout: 5 s, as it announces
    got = by_what(a, None, [node])["upstream_announced_timeout"]
    assert got.agrees and "as server.keepAliveTimeout" in got.text
    xml = tmp_path / "server.xml"
    xml.write_text(
        '<Server><Service name="Catalina"><Connector port="8080" protocol="HTTP/1.1" '
        'keepAliveTimeout="20000"/></Service></Server>'
    )
    (tomcat,) = read_upstream(str(xml))
    other = by_what(a, None, [tomcat])["upstream_announced_timeout"]
    assert not other.agrees and other.configured == 20.0
    assert "keepAliveTimeout (server.xml" in other.text and "not the one running" in other.text


def test_announced_max_against_keepalive_requests(tmp_path: Path) -> None:
    # Apache: "Keep-Alive: timeout=5, max=100", nginx keeps 1000 requests a connection
    a = analyze(node_capture(tmp_path, "timeout=5, max=100"))
    got = by_what(a, nginx_conf(tmp_path))["upstream_announced_max"]
    assert got.measured == 100.0 and got.configured == 1000.0 and not got.agrees
    assert "the upstream ends busy connections" in got.text


def test_no_announcement_no_comparison(tmp_path: Path) -> None:
    assert announced([None, "", "max=3"]) == ({}, {3: 1})
    assert announced(["timeout=5", "timeout=5, max=9", "timeout=x"])[0] == {5: 2}
    plain = (
        Conv()
        .handshake(T0)
        .exchange(T0 + 1 * MS, get("/a"), b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    )
    plain.fin("s", T0 + 2 * SEC).fin("c", T0 + 2 * SEC + 1 * MS)
    a = analyze(write(tmp_path / "plain.pcap", [plain]))
    got = by_what(a, nginx_conf(tmp_path))
    assert not {"announced_timeout_vs_nginx", "upstream_announced_max"} & set(got)


def test_cli_reports_the_announcement(tmp_path: Path) -> None:
    cap, conf = node_capture(tmp_path), nginx_conf(tmp_path)
    r = runner.invoke(app, ["analyze", str(cap), "--nginx-conf", str(conf)])
    assert r.exit_code == 1, r.output
    assert "✗ the upstream announces 'Keep-Alive: timeout=5', but nginx keepalive_timeout" in (
        r.stdout
    )
    doc = json.loads(
        runner.invoke(app, ["analyze", str(cap), "--nginx-conf", str(conf), "-f", "json"]).stdout
    )
    (race,) = [c for c in doc["configured"] if c["what"] == "announced_timeout_vs_nginx"]
    assert race["agrees"] is False and race["measured"] == 5.0 and race["evidence"] == 3

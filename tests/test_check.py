"""``kaflow check``: on the lab's exact configs it predicts the race the captures show; hostile
configs end in one clear line and exit 2, quickly."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pcapkit.cli import app
from pcapkit.config import check_files
from pcapkit.config.nginx import nginx_time

runner = CliRunner()
FIXTURES = Path(__file__).parent.parent / "fixtures"
# the Tomcat fixtures (server.xml); the others record their upstream's command line
SCENARIOS = sorted(p.parent.name for p in FIXTURES.glob("*/server.xml"))
# gunicorn and uvicorn read from the command line the lab ran them with (the lab's Node app takes
# keepAliveTimeout as an argument of its own, which no reader of Node's options could know)
COMMANDS = sorted(
    p.parent.name
    for p in FIXTURES.glob("*/upstream_command.txt")
    # gunicorn's and uvicorn's (behind `env`): their idle timeout is on the command line
    if p.read_text().split()[0] == "gunicorn" or "uvicorn" in p.read_text().split()
)
DATA = Path(__file__).parent / "data" / "config"


def truth(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name / "truth.json").read_text())
    return data


def expected_rules(t: dict[str, Any]) -> set[str]:
    """The problems the lab's own settings imply, computed from truth.json, not from the files."""
    ng, up = t["nginx"], t["upstream"]
    rules = set()
    race = up["keepAliveTimeout"] / 1000 <= nginx_time(ng["keepalive_timeout"])
    if race:
        rules |= {"idle_timeout", "non_idempotent"}  # proxy_next_upstream is the default
    if 0 <= up["maxKeepAliveRequests"] <= ng["keepalive_requests"]:
        rules.add("max_requests")
    if up["maxConnections"] < ng["worker_processes"] * ng["keepalive"]:
        rules.add("capacity")
    return rules


@pytest.mark.parametrize("name", SCENARIOS)
def test_check_predicts_the_race_on_every_fixture(name: str) -> None:
    t = truth(name)
    d = FIXTURES / name
    r = check_files(str(d / "nginx.conf"), [str(d / "server.xml")], version=t["nginx"]["version"])
    (u,) = r.upstreams
    race = t["upstream"]["keepAliveTimeout"] / 1000 <= nginx_time(t["nginx"]["keepalive_timeout"])
    assert u.race_possible is race
    assert {p.rule for p in r.problems if p.severity == "problem"} == expected_rules(t)
    # where the capture caught the race, check said it was possible
    if t["prematurely_closed"]:
        assert u.race_possible


@pytest.mark.parametrize("name", COMMANDS)
def test_check_predicts_the_race_from_the_upstream_command_line(name: str) -> None:
    t = truth(name)
    d = FIXTURES / name
    line = (d / "upstream_command.txt").read_text().strip()
    r = check_files(str(d / "nginx.conf"), commands=[line], version=t["nginx"]["version"])
    (u,) = r.upstreams
    (option,) = t["upstream"]["settings"]  # the idle timeout's option, as the lab set it
    assert u.race_possible, line
    assert u.backend is not None and u.backend.idle_timeout.setting == option
    assert u.backend.idle_timeout.value == float(t["upstream"]["settings"][option])
    assert "idle_timeout" in {p.rule for p in r.problems if p.severity == "problem"}
    # and the capture caught the race check predicted
    assert t["losses"]


# the Node fixtures: their keepAliveTimeout given by hand, as a Node user would read it off
# their own server code
NODE = sorted(
    p.parent.name
    for p in FIXTURES.glob("*/upstream_command.txt")
    if p.read_text().split()[0] == "node" and (p.parent / "nginx.conf").exists()
)


@pytest.mark.parametrize("name", NODE)
def test_check_predicts_the_race_for_node_given_its_timeout(name: str) -> None:
    t = truth(name)
    d = FIXTURES / name
    # node-idle runs Node's defaults: kaflow check knows them (keepAliveTimeout 5 s)
    ms = t["upstream"].get("settings", {}).get("keepAliveTimeout")
    given = ["--upstream-idle-timeout", f"{ms}ms"] if ms is not None else []
    args = ["check", str(d / "nginx.conf"), "--upstream", "node", *given]
    out = runner.invoke(app, [*args, "--nginx-version", t["nginx"]["version"], "-f", "json"])
    assert out.exit_code == 1, out.output  # problems found
    doc = json.loads(out.stdout)
    (u,) = doc["upstreams"]
    rules = {p["rule"] for p in doc["problems"] if p["severity"] == "problem"}
    # without proxy_http_version 1.1 nginx keeps no upstream connection: nothing to race
    in_effect = "proxy_http_version" not in t["nginx"]
    assert u["race_possible"] is in_effect
    assert ("idle_timeout" in rules) is in_effect
    assert ("keepalive_not_in_effect" in rules) is not in_effect
    if t["prematurely_closed"]:  # where the capture caught the race, check said it was possible
        assert u["race_possible"]


def test_only_the_agreeing_fixture_is_compatible() -> None:
    compatible = {
        n
        for n in SCENARIOS
        if check_files(
            str(FIXTURES / n / "nginx.conf"), [str(FIXTURES / n / "server.xml")], version="1.22.1"
        ).compatible
    }
    # and the two where nginx's own limits close first (issue #12)
    assert compatible == {"agree", "nginx-keepalive-requests", "nginx-keepalive-time"}


def test_cli_exit_codes_and_json() -> None:
    d = FIXTURES / "agree"
    ok = runner.invoke(app, ["check", str(d / "nginx.conf"), str(d / "server.xml")])
    assert ok.exit_code == 0, ok.output
    assert "Compatible" in ok.stdout
    d = FIXTURES / "idle-race-post"
    bad = runner.invoke(app, ["check", str(d / "nginx.conf"), str(d / "server.xml"), "-f", "json"])
    assert bad.exit_code == 1, bad.output
    doc = json.loads(bad.stdout)
    assert doc["schema"] == "kaflow.check/1" and doc["compatible"] is False
    (up,) = doc["upstreams"]
    assert up["race_possible"] is True
    assert up["keepalive_timeout"]["value"] == 60 and up["keepalive_timeout"]["source"].endswith(
        "nginx.conf:22"
    )
    assert up["backend"]["idle_timeout"]["value"] == 1.0
    idle = next(p for p in doc["problems"] if p["rule"] == "idle_timeout")
    assert "keepAliveTimeout" in idle["fix"]


def test_cli_reads_nginx_T_from_stdin() -> None:
    r = runner.invoke(
        app,
        ["check", "-", str(DATA / "application.yaml"), "-f", "json"],
        input=(DATA / "nginx-T.txt").read_text(),
    )
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert doc["nginx"]["version"] == "1.24.0" and doc["nginx"]["version_source"] == "nginx -T"
    rules = {(p["upstream"], p["rule"]) for p in doc["problems"]}
    assert ("api", "idle_timeout") in rules  # 75 s against 75 s: equal still races
    assert ("ws", "keepalive_not_in_effect") in rules


def test_cli_values_by_hand() -> None:
    d = FIXTURES / "idle-race-get"
    r = runner.invoke(
        app,
        ["check", str(d / "nginx.conf"), "--upstream", "node", "--upstream-idle-timeout", "65s"],
    )
    assert r.exit_code == 0, r.output  # 65 s > nginx's 60 s: no race, nothing else to say
    assert "Compatible" in r.stdout and "65 s  (server.keepAliveTimeout" in r.stdout
    r = runner.invoke(
        app, ["check", str(d / "nginx.conf"), "--upstream-command", "uvicorn app:app"]
    )
    assert r.exit_code == 1 and "--timeout-keep-alive" in r.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/no/such/nginx.conf"], "No such file"),
        (["NGINX", "/no/such/server.xml"], "No such file"),
        (["NGINX", "NOTES.txt"], "not an upstream config"),
        (["NGINX", "--upstream", "tomcat8"], "--upstream"),
        (["NGINX", "--upstream-idle-timeout", "soon"], "--upstream-idle-timeout"),
        (["NGINX", "--nginx-version", "new"], "--nginx-version"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "NOTES.txt").write_text("hello\n")
    nginx = str(FIXTURES / "agree" / "nginx.conf")
    argv = [nginx if a == "NGINX" else str(tmp_path / a) if a == "NOTES.txt" else a for a in args]
    r = runner.invoke(app, ["check", *argv])
    assert r.exit_code == 2, r.output
    assert message in r.stderr and r.stderr.startswith("kaflow: error: ")
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.output


# --- hostile input -------------------------------------------------------------------------------


def _fails(args: list[str], message: str, stdin: str | None = None) -> None:
    start = time.monotonic()
    r = runner.invoke(app, ["check", *args], input=stdin)
    assert time.monotonic() - start < 10
    assert r.exit_code == 2, r.output
    assert message in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_include_cycle() -> None:
    _fails([str(DATA / "cycle" / "nginx.conf")], "include cycle: a.conf → b.conf → a.conf")


def test_include_cycle_in_nginx_T_output() -> None:
    dump = (
        "# configuration file /etc/nginx/nginx.conf:\nhttp { include /etc/nginx/x.conf; }\n"
        "# configuration file /etc/nginx/x.conf:\ninclude /etc/nginx/*.conf;\n"
    )
    _fails(["-"], "include cycle", stdin=dump)


def test_deep_includes(tmp_path: Path) -> None:
    for i in range(40):
        (tmp_path / f"{i}.conf").write_text(f"include {i + 1}.conf;\n")
    (tmp_path / "40.conf").write_text("events {}\n")
    _fails([str(tmp_path / "0.conf")], "nested more than 16 deep")


def test_deeply_nested_blocks(tmp_path: Path) -> None:
    p = tmp_path / "nginx.conf"
    p.write_text("location / {" * 5000 + "}" * 5000)
    _fails([str(p)], "nested too deeply")


def test_huge_file(tmp_path: Path) -> None:
    p = tmp_path / "nginx.conf"
    with p.open("w") as fh:
        fh.write("# " + "x" * 1000 + "\n")
        fh.truncate(64 << 20)  # sparse: 64 MiB without writing them
    _fails([str(p)], "past the 4 MiB")


def test_include_glob_of_thousands(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    for i in range(2100):
        (tmp_path / "d" / f"{i}.conf").write_text("")
    (tmp_path / "nginx.conf").write_text("http { include d/*.conf; }\n")
    _fails([str(tmp_path / "nginx.conf")], "more than 2000 files")


def test_unbalanced_braces_and_unterminated_quote(tmp_path: Path) -> None:
    p = tmp_path / "nginx.conf"
    p.write_text("http {\n  server {\n")
    _fails([str(p)], "nginx.conf")
    p.write_text('http { log_format x "never closed; }\n')
    _fails([str(p)], "nginx.conf")


def test_missing_include_names_the_including_line(tmp_path: Path) -> None:
    p = tmp_path / "nginx.conf"
    p.write_text("events {}\nhttp {\n  include missing.conf;\n}\n")
    _fails([str(p)], "nginx.conf:3: include")


def test_not_nginx_T_on_stdin() -> None:
    _fails(["-"], "not nginx -T output", stdin="worker_processes 1;\n")


BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<Server><Service><Connector port="8080" keepAliveTimeout="&lol9;"/></Service></Server>
"""

XXE = """<?xml version="1.0"?>
<!DOCTYPE s [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<Server><Service><Connector port="8080" keepAliveTimeout="&x;"/></Service></Server>
"""


@pytest.mark.parametrize("xml", [BOMB, XXE])
def test_xml_entities_refused(tmp_path: Path, xml: str) -> None:
    p = tmp_path / "server.xml"
    p.write_text(xml)
    _fails([str(FIXTURES / "agree" / "nginx.conf"), str(p)], "refused")


def test_broken_xml(tmp_path: Path) -> None:
    p = tmp_path / "server.xml"
    p.write_text("<Server><Service><Connector port='8080'></Server>")
    _fails([str(FIXTURES / "agree" / "nginx.conf"), str(p)], "not XML")


def test_yaml_alias_bomb(tmp_path: Path) -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 12):
        prev = chr(ord("a") + i - 1)
        cur = chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]")
    p = tmp_path / "application.yaml"
    p.write_text("\n".join(lines) + "\n")
    _fails([str(FIXTURES / "agree" / "nginx.conf"), str(p)], "YAML aliases")


def test_bad_yaml_and_bad_values(tmp_path: Path) -> None:
    p = tmp_path / "application.yaml"
    p.write_text("server:\n  tomcat: [\n")
    _fails([str(FIXTURES / "agree" / "nginx.conf"), str(p)], "not YAML")
    p.write_text("server:\n  tomcat:\n    keep-alive-timeout: soon\n")
    _fails([str(FIXTURES / "agree" / "nginx.conf"), str(p)], "application.yaml:3")


def test_gunicorn_conf_syntax_error(tmp_path: Path) -> None:
    p = tmp_path / "gunicorn.conf.py"
    p.write_text("keepalive = (\n")
    _fails([str(FIXTURES / "agree" / "nginx.conf"), str(p)], "not Python")


def test_docs_sample_is_real_output() -> None:
    """Every line of docs/check.md's sample session is a line kaflow prints for it."""
    text = (Path(__file__).parent.parent / "docs" / "check.md").read_text()
    start = text.index("$ kaflow check fixtures/idle-race-post/")
    command, *sample = text[start : text.index("```", start)].splitlines()
    root = Path(__file__).parent.parent
    args = [str(root / a) if a.startswith("fixtures/") else a for a in command.split()[3:]]
    r = runner.invoke(app, ["check", *args])
    assert r.exit_code == 1, r.output
    out = [line.replace(str(root) + "/", "") for line in r.stdout.splitlines()]
    shown = [line for line in sample if line.strip()]
    assert len(shown) > 20
    assert [line for line in shown if line not in out] == []

"""Config readers and rules, on config files as their users write them (tests/data/config/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pcapkit.config import backends, check, read_nginx
from pcapkit.config.model import Backend, Problem, Value
from pcapkit.config.nginx import nginx_time
from pcapkit.config.upstream import command, gunicorn, spring_boot, spring_duration, tomcat
from pcapkit.errors import ConfigError

DATA = Path(__file__).parent / "data" / "config"
FIXTURES = Path(__file__).parent.parent / "fixtures"


def dump() -> str:
    return (DATA / "nginx-T.txt").read_text()


# --- nginx ---------------------------------------------------------------------------------------


def test_nginx_T_output_files_version_and_includes_matched_against_the_dump() -> None:
    conf = read_nginx("<stdin>", text=dump())
    assert conf.version == "1.24.0" and conf.version_source == "nginx -T"
    assert conf.files == (
        "/etc/nginx/nginx.conf",
        "/etc/nginx/modules-enabled/50-mod-http-geoip.conf",
        "/etc/nginx/mime.types",
        "/etc/nginx/conf.d/upstreams.conf",
        "/etc/nginx/sites-enabled/default",
    )
    assert conf.worker_processes.value == 4
    assert conf.worker_connections.value == 768
    api, ws = conf.upstreams
    assert api.name == "api" and [s.address for s in api.servers] == [
        "10.0.0.11:8080",
        "10.0.0.12:8080",
    ]
    assert api.servers[0].max_fails == 3 and api.servers[0].fail_timeout == 30
    assert api.servers[1].max_fails == 1 and api.servers[1].fail_timeout == 10  # defaults
    assert api.keepalive.value == 16 and api.keepalive.source == "upstreams.conf:4"
    assert api.keepalive_timeout.value == 75 and not api.keepalive_timeout.default
    assert api.keepalive_requests.value == 1000 and api.keepalive_requests.default
    assert ws.keepalive_timeout.value == 60 and ws.keepalive_timeout.default


def test_locations_inherit_proxy_settings_from_server_and_override_them() -> None:
    conf = read_nginx("<stdin>", text=dump())
    api, ws = conf.upstreams
    (loc,) = api.locations
    assert loc.path == "/api/" and loc.server == "shop.example.com"
    assert loc.http_version.value == "1.1" and loc.http_version.source == "default:5"
    assert loc.connection_header.value == "" and not loc.connection_closes
    assert loc.next_upstream.value == ("error", "timeout", "non_idempotent")
    assert loc.keepalive_in_effect
    # a location that sets one proxy_set_header inherits none: its Connection is the map's,
    # which gives "close" to every request without Upgrade
    (sock,) = ws.locations
    assert sock.connection_header.value == "$connection_upgrade"
    assert sock.connection_closes and not sock.keepalive_in_effect


def test_log_formats_and_access_logs_are_read_for_the_log_join() -> None:
    conf = read_nginx("<stdin>", text=dump())
    formats = dict(conf.log_formats)
    assert formats["upstreamlog"].startswith('$remote_addr [$time_local] "$request" $status ')
    assert 'us="$upstream_status"' in formats["upstreamlog"]
    assert "combined" in formats
    assert ("/var/log/nginx/access.log", "upstreamlog") in conf.access_logs


def test_includes_on_disk_relative_to_the_main_file() -> None:
    conf = read_nginx(str(DATA / "include-tree" / "nginx.conf"))
    assert len(conf.files) == 2 and conf.files[1].endswith("conf.d/app.conf")
    (app,) = conf.upstreams
    assert app.keepalive.value == 32 and app.keepalive.source == "app.conf:4"
    assert conf.worker_processes.value is None  # auto
    (loc,) = app.locations
    # nginx before 1.29.7 (version unknown: assumed) talks HTTP/1.0 with Connection: close
    assert loc.http_version.value == "1.0" and loc.connection_closes
    assert not loc.keepalive_in_effect
    assert any("version is unknown" in n for n in conf.notes)


def test_version_changes_the_defaults() -> None:
    path = str(DATA / "include-tree" / "nginx.conf")
    new = read_nginx(path, version="1.29.7")
    (loc,) = new.upstreams[0].locations
    assert loc.http_version.value == "1.1" and not loc.connection_closes and loc.keepalive_in_effect
    old = read_nginx(path, version="1.19.9")
    assert old.upstreams[0].keepalive_requests.value == 100
    assert read_nginx(path, version="1.19.10").upstreams[0].keepalive_requests.value == 1000
    with pytest.raises(ConfigError, match="--nginx-version"):
        read_nginx(path, version="latest")


def test_keepalive_on_by_default_since_1_29_7(tmp_path: Path) -> None:
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        "http { upstream u { server 127.0.0.1:8080; }\n"
        "server { listen 80; location / { proxy_pass http://u; } } }\n"
    )
    before = check(read_nginx(str(conf), version="1.28.0"), [])
    assert before.upstreams[0].upstream.keepalive.value is None
    assert [p.rule for p in before.problems] == ["keepalive_off"]
    after = check(read_nginx(str(conf), version="1.29.7"), [])
    ka = after.upstreams[0].upstream.keepalive
    assert ka.value == 32 and ka.default
    assert "keepalive_default" in [p.rule for p in after.problems]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("60s", 60), ("60", 60), ("1m30s", 90), ("500ms", 0.5), ("1h", 3600), ("2d", 172800)],
)
def test_nginx_time(text: str, seconds: float) -> None:
    assert nginx_time(text) == seconds


def test_nginx_time_rejects_garbage() -> None:
    with pytest.raises(ValueError):
        nginx_time("soon")


# --- upstream servers ----------------------------------------------------------------------------


def test_stock_tomcat_server_xml_keepalive_falls_back_to_connection_timeout() -> None:
    (b,) = tomcat(str(DATA / "server.xml"))  # the AJP connector is not HTTP
    assert b.port == 8080 and b.kind == "Tomcat"
    assert b.idle_timeout.value == 20.0 and b.idle_timeout.default
    assert "connectionTimeout" in b.idle_timeout.source
    assert b.max_requests.value == 100 and b.max_requests.default
    assert b.max_connections is not None and b.max_connections.value == 8192
    assert b.idle_timeout.written(75) == "75000"  # Tomcat writes milliseconds


@pytest.mark.parametrize("name", ["agree", "idle-race-get", "max-requests", "accept-overflow"])
def test_fixture_server_xml_matches_the_lab_truth(name: str) -> None:
    import json

    truth = json.loads((FIXTURES / name / "truth.json").read_text())["upstream"]
    (b,) = tomcat(str(FIXTURES / name / "server.xml"))
    assert b.idle_timeout.value == truth["keepAliveTimeout"] / 1000
    want_max = truth["maxKeepAliveRequests"]
    assert b.max_requests.value == (None if want_max < 0 else want_max)
    assert b.max_connections is not None and b.max_connections.value == truth["maxConnections"]


def test_spring_boot_yaml_ignores_profile_documents_and_keeps_lines() -> None:
    b = spring_boot(str(DATA / "application.yaml"))
    assert b.idle_timeout.value == 75.0  # not the dev profile's 5s
    assert b.idle_timeout.source == "application.yaml:11"
    assert b.idle_timeout.setting == "keep-alive-timeout" or b.idle_timeout.setting.endswith(
        "keep-alive-timeout"
    )
    assert b.max_requests.value is None  # -1: unlimited
    assert b.max_connections is not None and b.max_connections.value == 10000
    assert b.accept_count is not None and b.accept_count.value == 200
    assert b.max_threads is not None and b.max_threads.value == 100
    assert b.idle_timeout.written(95) == "95s"


def test_spring_boot_properties_relaxed_names_and_the_connection_timeout_fallback() -> None:
    b = spring_boot(str(DATA / "application.properties"))
    assert b.idle_timeout.value == 20.0 and b.idle_timeout.default
    assert "connection-timeout" in b.idle_timeout.source
    assert b.max_requests.value == 100 and b.max_requests.setting.endswith("maxKeepAliveRequests")
    assert b.max_threads is not None and b.max_threads.value == 50


def test_spring_boot_without_timeouts_takes_tomcats_60s(tmp_path: Path) -> None:
    p = tmp_path / "application.properties"
    p.write_text("server.port=9090\n")
    b = spring_boot(str(p))
    assert b.idle_timeout.value == 60.0 and b.port == 9090


def test_spring_placeholder_default_is_read(tmp_path: Path) -> None:
    p = tmp_path / "application.properties"
    p.write_text("server.tomcat.keep-alive-timeout=${KEEPALIVE:90s}\n")
    b = spring_boot(str(p))
    assert b.idle_timeout.value == 90.0
    assert any("KEEPALIVE" in n for n in b.notes)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("20s", 20.0),
        ("PT20S", 20.0),
        ("20000", 20.0),
        ("500ms", 0.5),
        ("1m", 60.0),
        ("PT1M30S", 90.0),
        ("-1", None),
    ],
)
def test_spring_durations(text: str, seconds: float | None) -> None:
    assert spring_duration(text) == seconds


def test_gunicorn_conf_py_read_as_a_syntax_tree_never_run(tmp_path: Path) -> None:
    b = gunicorn(str(DATA / "gunicorn.conf.py"))
    assert b.idle_timeout.value == 5.0 and b.idle_timeout.source == "gunicorn.conf.py"
    assert b.max_requests.value == 1000 and not b.announces_close
    assert b.port == 8000 and b.kind == "gunicorn (gthread)"
    assert any("workers is computed" in n for n in b.notes)
    # a config whose evaluation would have side effects is still only read
    marker = tmp_path / "ran"
    evil = tmp_path / "gunicorn.conf.py"
    evil.write_text(f"open({str(marker)!r}, 'w').write('x')\nkeepalive = 7\n")
    assert gunicorn(str(evil)).idle_timeout.value == 7.0
    assert not marker.exists()


def test_command_lines() -> None:
    g = command("gunicorn -w 4 --threads 8 --keep-alive 30 -b 0.0.0.0:8080 app:app")
    assert g.idle_timeout.value == 30.0 and g.idle_timeout.setting == "--keep-alive"
    assert g.kind == "gunicorn (gthread)" and g.port == 8080 and g.keeps_alive
    s = command("gunicorn app:app")
    assert s.idle_timeout.value == 2.0 and not s.keeps_alive  # sync workers
    u = command("uvicorn main:app --port 8000 --timeout-keep-alive 65")
    assert u.idle_timeout.value == 65.0 and u.port == 8000
    assert command("uvicorn main:app").idle_timeout.value == 5.0
    assert command("node server.js").idle_timeout.value == 5.0
    j = command("java -jar start.jar jetty.http.idleTimeout=90000")
    assert j.idle_timeout.value == 90.0
    with pytest.raises(ConfigError, match="not a server kaflow knows"):
        command("./my-server --fast")


def test_values_by_hand_override_the_file() -> None:
    (b,) = backends(
        [str(DATA / "server.xml")], idle_timeout=120.0, max_requests=0, max_connections=64
    )
    assert b.idle_timeout.value == 120.0 and b.idle_timeout.source == "--upstream-idle-timeout"
    assert b.idle_timeout.setting == "keepAliveTimeout"  # the fix still names Tomcat's setting
    assert b.max_requests.value is None
    assert b.max_connections is not None and b.max_connections.value == 64


# --- rules ---------------------------------------------------------------------------------------


def _backend(
    idle: float | None, max_requests: int | None = None, conns: int | None = None
) -> Backend:
    return Backend(
        kind="Tomcat",
        source="server.xml",
        port=8080,
        idle_timeout=Value(idle, "keepAliveTimeout", "server.xml", unit="ms"),
        max_requests=Value(max_requests, "maxKeepAliveRequests", "server.xml"),
        max_connections=Value(conns, "maxConnections", "server.xml"),
    )


def _conf(tmp_path: Path, upstream: str = "", location: str = "") -> Path:
    p = tmp_path / "nginx.conf"
    p.write_text(
        "worker_processes 2;\nhttp {\n"
        f"upstream up {{ server 127.0.0.1:8080; keepalive 8; {upstream} }}\n"
        "server { listen 80; location / { proxy_pass http://up; proxy_http_version 1.1; "
        f'proxy_set_header Connection ""; {location} }} }}\n}}\n'
    )
    return p


def _rules(tmp_path: Path, b: Backend, upstream: str = "", location: str = "") -> list[str]:
    r = check(read_nginx(str(_conf(tmp_path, upstream, location)), version="1.24.0"), [b])
    return [p.rule for p in r.problems if p.severity == "problem"]


@pytest.mark.parametrize(
    ("idle", "nginx", "races"),
    [(75.0, "60s", False), (60.0, "60s", True), (20.0, "60s", True), (5.0, "4s", False)],
)
def test_rule_idle_timeout_must_exceed_keepalive_timeout(
    tmp_path: Path, idle: float, nginx: str, races: bool
) -> None:
    got = _rules(tmp_path, _backend(idle), f"keepalive_timeout {nginx};")
    assert ("idle_timeout" in got) is races


def test_rule_idle_timeout_fix_is_in_the_users_units(tmp_path: Path) -> None:
    r = check(read_nginx(str(_conf(tmp_path)), version="1.24.0"), [_backend(20.0)])
    (p,) = [p for p in r.problems if p.rule == "idle_timeout"]
    assert "set keepAliveTimeout to 75000" in p.fix and "keepalive_timeout" in p.fix


@pytest.mark.parametrize(
    ("upstream_max", "problem"), [(100, True), (1000, True), (1001, False), (None, False)]
)
def test_rule_max_requests(tmp_path: Path, upstream_max: int | None, problem: bool) -> None:
    got = _rules(tmp_path, _backend(120.0, upstream_max), "keepalive_requests 1000;")
    assert ("max_requests" in got) is problem


def test_rule_capacity_workers_times_keepalive(tmp_path: Path) -> None:
    assert "capacity" in _rules(tmp_path, _backend(120.0, None, 15))  # 2 workers x 8 = 16
    assert "capacity" not in _rules(tmp_path, _backend(120.0, None, 16))


def test_rule_keepalive_not_in_effect_with_http_1_0(tmp_path: Path) -> None:
    p = tmp_path / "nginx.conf"
    p.write_text(
        "http { upstream up { server 127.0.0.1:8080; keepalive 8; }\n"
        "server { listen 80; location / { proxy_pass http://up; } } }\n"
    )
    r = check(read_nginx(str(p), version="1.24.0"), [_backend(20.0)])
    rules = [x.rule for x in r.problems]
    assert "keepalive_not_in_effect" in rules
    assert "idle_timeout" not in rules  # no connection is ever idle: nothing to race
    assert r.upstreams[0].race_possible is False


def test_rule_non_idempotent_only_when_the_race_is_possible(tmp_path: Path) -> None:
    assert "non_idempotent" in _rules(tmp_path, _backend(20.0))
    assert "non_idempotent" not in _rules(tmp_path, _backend(120.0))
    got = _rules(tmp_path, _backend(20.0), location="proxy_next_upstream error non_idempotent;")
    assert "non_idempotent" not in got
    got = _rules(tmp_path, _backend(20.0), location="proxy_next_upstream off;")
    assert "non_idempotent" in got


def test_rule_max_fails_needs_two_servers(tmp_path: Path) -> None:
    assert "max_fails" not in _rules(tmp_path, _backend(20.0))
    two = "server 127.0.0.1:8081;"
    assert "max_fails" in _rules(tmp_path, _backend(20.0), two)
    zero = "server 127.0.0.1:8081 max_fails=0;"
    p = tmp_path / "nginx.conf"
    p.write_text(
        "http { upstream up { server 127.0.0.1:8080 max_fails=0; " + zero + " keepalive 8; }\n"
        "server { listen 80; location / { proxy_pass http://up; proxy_http_version 1.1; "
        'proxy_set_header Connection ""; } } }\n'
    )
    r = check(read_nginx(str(p), version="1.24.0"), [_backend(20.0)])
    assert "max_fails" not in [x.rule for x in r.problems]


def test_no_upstream_config_leaves_the_race_unknown(tmp_path: Path) -> None:
    r = check(read_nginx(str(_conf(tmp_path)), version="1.24.0"), [])
    assert r.upstreams[0].race_possible is None and r.compatible
    assert [p.rule for p in r.problems] == ["no_upstream_config"]


def test_upstream_config_applies_by_port(tmp_path: Path) -> None:
    r = check(read_nginx("<stdin>", text=dump()), spring_and_ws())
    by = {c.upstream.name: c.backend for c in r.upstreams}
    assert by["api"] is not None and by["api"].port == 8080
    assert by["ws"] is not None and by["ws"].kind == "Node.js"


def spring_and_ws() -> list[Backend]:
    node = command("node server.js")
    node = Backend(
        node.kind, node.source, 3000, node.idle_timeout, node.max_requests, notes=node.notes
    )
    return [spring_boot(str(DATA / "application.yaml")), node]


def test_keepalive_beyond_half_the_worker_connections_is_a_note(tmp_path: Path) -> None:
    p = tmp_path / "nginx.conf"
    p.write_text(
        "events { worker_connections 64; }\nhttp { upstream up { server 127.0.0.1:8080; "
        "keepalive 40; } }\n"
    )
    r = check(read_nginx(str(p), version="1.24.0"), [])
    (note,) = [x for x in r.problems if x.rule == "capacity"]
    assert note.severity == "note" and "worker_connections 64" in note.message
    assert r.compatible


def test_kinds_known_only_by_name_take_their_documented_defaults() -> None:
    from pcapkit.config.upstream import defaults

    t = defaults("tomcat")
    assert t.idle_timeout.value == 60.0 and t.max_requests.value == 100
    assert t.max_connections is not None and t.max_connections.value == 8192
    s = defaults("spring-boot")
    assert s.idle_timeout.setting == "server.tomcat.keep-alive-timeout"
    assert s.idle_timeout.written(75) == "75s"
    g = defaults("gunicorn")
    assert g.idle_timeout.value == 2.0 and not g.keeps_alive
    assert defaults("jetty").idle_timeout.value == 30.0
    assert defaults("puma").idle_timeout.value == 20.0
    assert defaults("go").idle_timeout.value is None  # never closes idle: no race


def test_puma_rb_read_as_text() -> None:
    from pcapkit.config.upstream import read_upstream

    (b,) = read_upstream(str(DATA / "puma.rb"))
    assert b.kind == "Puma" and b.port == 9292  # ENV.fetch is not evaluated
    assert b.idle_timeout.value == 75.0 and b.idle_timeout.source == "puma.rb:10"
    assert b.idle_timeout.setting == "persistent_timeout"


# --- retry limits, keepalive_time, if{} and proxy_pass with variables (nginx-retries.conf) ------


def _shop(version: str = "1.26.2") -> tuple[dict[str, list[str]], list[str], list[Problem]]:
    """nginx-retries.conf against Tomcat's defaults: locations by upstream, notes, problems."""
    from pcapkit.config.upstream import defaults

    conf = read_nginx(str(DATA / "nginx-retries.conf"), version=version)
    r = check(conf, [defaults("tomcat")])
    locs = {
        u.name: [f"{loc.path}{' ' + loc.condition if loc.condition else ''}" for loc in u.locations]
        for u in conf.upstreams
    }
    return locs, list(conf.notes), list(r.problems)


def test_if_blocks_and_proxy_pass_variables_are_followed_or_named() -> None:
    locs, notes, _ = _shop()
    # the map's two values are both upstreams; the if{} sends only POSTs to legacy
    assert locs == {
        "api": ["/api/", "/checkout/", "/legacy/", "/upload/"],
        "canary": ["/api/"],
        "legacy": ["/legacy/ if ($request_method = POST)"],
    }
    text = "\n".join(notes)
    assert "nginx-retries.conf:46: location /api/: proxy_pass http://$pool: $pool (map at " in text
    assert "only the requests it picks go there" in text
    # a set variable naming a host, not an upstream{}: no keepalive, said so
    assert "gives search.internal.example, which no upstream{} names" in text
    assert "no keepalive, no race" in text
    # a host made of variables cannot be followed: said, with where
    assert "nginx-retries.conf:75: proxy_pass http://$host$request_uri: its host is built" in text


def test_if_block_inherits_the_locations_proxy_settings(tmp_path: Path) -> None:
    p = tmp_path / "nginx.conf"
    p.write_text(
        "http { upstream up { server 127.0.0.1:8080; keepalive 8; }\n"
        "server { listen 80; location / {\n"
        '  proxy_http_version 1.1; proxy_set_header Connection "";\n'
        "  if ($http_x_debug) { proxy_pass http://up; }\n"
        "  return 404; } } }\n"
    )
    (up,) = read_nginx(str(p), version="1.24.0").upstreams
    (loc,) = up.locations
    assert loc.condition == "if ($http_x_debug)" and loc.keepalive_in_effect
    assert loc.http_version.source == "nginx.conf:3"


def test_rule_next_upstream_tries_limits_connects_not_race_retries() -> None:
    _, _, problems = _shop()
    (api,) = [p for p in problems if p.rule == "next_upstream_tries" and p.upstream == "api"]
    assert api.severity == "problem" and api.location == "/api/"
    assert "proxy_next_upstream_tries 1 (nginx-retries.conf:48) with 2 servers" in api.message
    assert "passed to no other server" in api.message
    assert "lost to the idle-close race are retried all the same" in api.message
    assert api.fix == "proxy_next_upstream_tries 0; (no limit, the default) or at least 2"
    # the same location to canary's one server: one try is all it ever had; a note says the
    # race's losses are still retried (nginx gives a cached connection's try back)
    (canary,) = [p for p in problems if p.rule == "next_upstream_tries" and p.upstream == "canary"]
    assert canary.severity == "note" and "does not stop nginx retrying" in canary.message


@pytest.mark.parametrize(
    ("servers", "tries", "idle", "want"),
    [
        (2, 1, 120.0, "problem"),  # connects to the other server: none
        (3, 2, 120.0, "note"),
        (3, 3, 120.0, None),
        (2, 0, 120.0, None),  # 0: no limit
        (1, 1, 20.0, "note"),  # the race is possible: its losses are still retried
        (1, 1, 120.0, None),  # no race, one server: nothing to say
    ],
)
def test_rule_next_upstream_tries(
    tmp_path: Path, servers: int, tries: int, idle: float, want: str | None
) -> None:
    more = " ".join(f"server 127.0.0.1:{8080 + i};" for i in range(1, servers))
    p = _conf(tmp_path, more, f"proxy_next_upstream_tries {tries};")
    r = check(read_nginx(str(p), version="1.24.0"), [_backend(idle)])
    got = [x.severity for x in r.problems if x.rule == "next_upstream_tries"]
    assert got == ([want] if want else [])


@pytest.mark.parametrize(
    ("timeout", "idle", "problem"),
    [
        ("200ms", 20.0, True),
        ("999ms", 20.0, True),
        ("1s", 20.0, False),
        ("0", 20.0, False),
        ("200ms", 120.0, False),  # no race: nothing is lost for the timeout to cut short
    ],
)
def test_rule_next_upstream_timeout(
    tmp_path: Path, timeout: str, idle: float, problem: bool
) -> None:
    got = _rules(tmp_path, _backend(idle), location=f"proxy_next_upstream_timeout {timeout};")
    assert ("next_upstream_timeout" in got) is problem


def test_rule_next_upstream_timeout_on_a_real_config() -> None:
    _, _, problems = _shop()
    (p,) = [p for p in problems if p.rule == "next_upstream_timeout"]
    assert p.upstream == "api" and p.location == "/checkout/"
    assert "proxy_next_upstream_timeout 200ms (nginx-retries.conf:53)" in p.message
    assert "a lost GET can end as a 502" in p.message
    assert p.fix.startswith("proxy_next_upstream_timeout 0;")


def test_rule_keepalive_time_on_a_real_config() -> None:
    _, _, problems = _shop()
    by = {(p.upstream, p.severity): p for p in problems if p.rule == "keepalive_time"}
    assert set(by) == {("api", "note"), ("legacy", "problem")}
    # 30 s is a life, not an idle timer: it does not stop the idle-close race
    assert "is a connection's longest life" in by["api", "note"].message
    assert "only keepalive_timeout does" in by["api", "note"].message
    # 500ms: nearly every request on a new connection
    assert "keepalive_time 500ms (nginx-retries.conf:34)" in by["legacy", "problem"].message
    assert "keepalive_time 1h;" in by["legacy", "problem"].fix


def test_rule_keepalive_time_needs_nginx_1_19_10() -> None:
    _, _, problems = _shop("1.18.0")
    bad = [p for p in problems if p.rule == "keepalive_time"]
    assert [p.upstream for p in bad] == ["api", "legacy"]
    assert all(p.severity == "problem" and "does not load" in p.message for p in bad)
    assert "nginx 1.18.0 stops at it (unknown directive" in bad[0].message


def test_keepalive_time_default_by_version(tmp_path: Path) -> None:
    p = _conf(tmp_path)
    (old,) = read_nginx(str(p), version="1.18.0").upstreams
    (new,) = read_nginx(str(p), version="1.19.10").upstreams
    assert old.keepalive_time.value is None and old.keepalive_time.default  # no limit then
    assert new.keepalive_time.value == 3600.0
    r = check(read_nginx(str(p), version="1.18.0"), [_backend(120.0)])
    assert "keepalive_time" not in [x.rule for x in r.problems]  # a default is no problem


def test_rule_request_buffering_off_on_a_real_config() -> None:
    _, _, problems = _shop()
    (p,) = [p for p in problems if p.rule == "request_buffering"]
    assert p.upstream == "api" and p.location == "/upload/" and p.severity == "problem"
    assert "proxy_request_buffering off (nginx-retries.conf:65)" in p.message
    assert "POST even with non_idempotent" in p.message
    assert p.fix.startswith("proxy_request_buffering on;")


@pytest.mark.parametrize(
    ("setting", "idle", "problem"),
    [("off", 20.0, True), ("on", 20.0, False), ("off", 120.0, False)],  # no race, no loss
)
def test_rule_request_buffering(tmp_path: Path, setting: str, idle: float, problem: bool) -> None:
    got = _rules(tmp_path, _backend(idle), location=f"proxy_request_buffering {setting};")
    assert ("request_buffering" in got) is problem

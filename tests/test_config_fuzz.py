"""Any config text, any log bytes: a result or kaflow's own error, never anything else."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pcapkit.config import backends, check, read_nginx
from pcapkit.config.upstream import command, gunicorn, spring_boot, tomcat
from pcapkit.errors import ConfigError, LogError
from pcapkit.logs.parse import COMBINED, read_access_log, read_error_log

WORDS = [
    "http", "server", "upstream", "location", "proxy_pass", "keepalive", "keepalive_timeout",
    "keepalive_requests", "keepalive_time", "proxy_http_version", "proxy_set_header",
    "proxy_next_upstream", "proxy_next_upstream_tries", "worker_processes", "events",
    "worker_connections", "map", "log_format", "access_log", "listen", "server_name", "include",
    "http://up", "up", "1.1", "Connection", '""', "$x", "60s", "auto", "max_fails=x",
    "fail_timeout=1m", "-1", "0", "{", "}", ";", "#", "'", '"', "\\", "\n", " ",
]  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(WORDS), max_size=60), st.sampled_from(["1.22.1", "1.29.7", None]))
def test_any_nginx_config_reads_or_raises_config_error(
    words: list[str], version: str | None
) -> None:
    text = " ".join(words)
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "nginx.conf"
        p.write_text(text)
        try:
            conf = read_nginx(str(p), version=version)
        except ConfigError as e:
            assert "\n" not in str(e).strip()
            return
        check(conf, [command("uvicorn app:app")])


DIRECTIVES = [w for w in WORDS if w.isidentifier()]


def test_every_directive_without_arguments_in_every_block(tmp_path: Path) -> None:
    """nginx refuses these; kaflow must say so in one line, or read around them."""
    p = tmp_path / "nginx.conf"
    for d in DIRECTIVES:
        for text in (
            f"{d};\nhttp {{ upstream up {{ server 127.0.0.1:8080; keepalive 2; }} }}",
            f"http {{ {d}; upstream up {{ server 127.0.0.1:8080; {d}; }} server {{ {d}; "
            f"location / {{ {d}; proxy_pass http://up; }} }} }}",
            f"events {{ {d}; }}",
        ):
            p.write_text(text)
            try:
                check(read_nginx(str(p), version="1.24.0"), [])
            except ConfigError as e:
                assert "\n" not in str(e)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300))
def test_any_upstream_file_reads_or_raises_config_error(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for name, read in (
            ("server.xml", tomcat),
            ("application.yaml", spring_boot),
            ("application.properties", spring_boot),
            ("gunicorn.conf.py", gunicorn),
        ):
            p = Path(tmp) / name
            p.write_text(text)
            with contextlib.suppress(ConfigError):
                read(str(p))


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_any_command_line_reads_or_raises_config_error(text: str) -> None:
    for prefix in ("gunicorn ", "uvicorn ", "java -jar jetty.jar ", ""):
        with contextlib.suppress(ConfigError):
            command(prefix + text)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=2000))
def test_any_log_bytes_are_counted(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / "log"
        p.write_bytes(data)
        _, counts = read_error_log(str(p), [8080])
        assert counts.lines == counts.kept + counts.other + counts.other_upstreams + (
            counts.unparsed + counts.partial_last_line
        )
        # no line that matches any format is said in one line
        with contextlib.suppress(LogError):
            read_access_log(str(p), [8080], [("combined", COMBINED)])


def test_help_imports_no_config_or_log_reader() -> None:
    code = (
        "import sys, pcapkit.cli\n"
        "heavy = [m for m in ('yaml', 'crossplane', 'defusedxml', 'pcapkit.config', "
        "'pcapkit.logs') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


HUGE = "9" * 400  # past a float
BIG = "9" * 300  # a float, but no timer: its fix in milliseconds would overflow


def test_numbers_too_big_or_not_finite(tmp_path: Path) -> None:
    """Numbers past a float's range are one-line errors, not an OverflowError in a fix."""
    cases = {
        "nginx.conf": f"http {{ upstream up {{ server 127.0.0.1:8080; keepalive 2; "
        f"keepalive_timeout {HUGE}; }} }}",
        "server.xml": f'<Server><Service><Connector port="8080" keepAliveTimeout="{HUGE}"/>'
        "</Service></Server>",
        "application.properties": f"server.tomcat.keep-alive-timeout={HUGE}s\n",
        "gunicorn.conf.py": "keepalive = 1e999\nmax_requests = 1e999\n",
    }
    nginx = tmp_path / "nginx.conf"
    nginx.write_text(cases.pop("nginx.conf"))
    with pytest.raises(ConfigError):
        read_nginx(str(nginx))
    nginx.write_text(nginx.read_text().replace(HUGE, BIG))
    with pytest.raises(ConfigError):
        read_nginx(str(nginx))
    nginx.write_text("http { upstream up { server 127.0.0.1:8080; keepalive 2; } }")
    for name, text in cases.items():
        p = tmp_path / name
        p.write_text(text)
        with pytest.raises(ConfigError):
            check(read_nginx(str(nginx)), backends([str(p)]))
    for line in (
        "uvicorn app:app --timeout-keep-alive inf",
        "java -jar x jetty.http.idleTimeout=nan",
    ):
        with pytest.raises(ConfigError):
            command(line)

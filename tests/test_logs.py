"""nginx's logs: parsing real-looking (rotated, gzipped, noisy, cut) files, and the join with the
findings on the lab's fixtures, whose error.log and access.log are the ground truth."""

from __future__ import annotations

import gzip
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from pcapkit import analyze
from pcapkit.cli import app
from pcapkit.config import read_nginx
from pcapkit.errors import LogError
from pcapkit.logs import join_logs, utc_offset
from pcapkit.logs.parse import (
    COMBINED,
    compile_format,
    parse_error_line,
    read_access_log,
    read_error_log,
)
from pcapkit.model import Analysis

runner = CliRunner()
FIXTURES = Path(__file__).parent.parent / "fixtures"
# the fixtures with nginx in front (haproxy-race-get has HAProxy's log instead)
SCENARIOS = sorted(p.parent.name for p in FIXTURES.glob("*/access.log"))

PREMATURE = (
    "2026/11/24 23:30:04 [error] 18047#18047: *1 upstream prematurely closed connection while "
    'reading response header from upstream, client: 127.0.0.1, server: , request: "GET /test/0/7 '
    'HTTP/1.1", upstream: "http://127.0.0.1:8080/test/0/7", host: "127.0.0.1:8081"'
)


def truth(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name / "truth.json").read_text())
    return data


@cache
def analysis(name: str) -> Analysis:
    return analyze(FIXTURES / name / "capture.pcap", port=truth(name)["port"])


def formats(name: str) -> tuple[tuple[str, str], ...]:
    return read_nginx(str(FIXTURES / name / "nginx.conf")).log_formats


# --- error log lines -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        (
            "upstream prematurely closed connection while reading response header from upstream",
            "prematurely_closed",
        ),
        (
            "upstream prematurely closed connection while reading upstream",
            "prematurely_closed_body",
        ),
        (
            "recv() failed (104: Connection reset by peer) while reading response header from "
            "upstream",
            "reset",
        ),
        ("writev() failed (32: Broken pipe) while sending request to upstream", "broken_pipe"),
        ("sendfile() failed (32: Broken pipe) while sending request to upstream", "broken_pipe"),
        (
            "upstream timed out (110: Connection timed out) while connecting to upstream",
            "connect_timeout",
        ),
        (
            "upstream timed out (110: Connection timed out) while reading response header from "
            "upstream",
            "read_timeout",
        ),
        ("connect() failed (111: Connection refused) while connecting to upstream", "refused"),
        ("no live upstreams while connecting to upstream", "no_live_upstreams"),
        (
            "upstream server temporarily disabled while reading response header from upstream",
            "server_disabled",
        ),
    ],
)
def test_error_kinds(message: str, kind: str) -> None:
    line = (
        f"2026/11/24 23:30:04 [error] 1#1: *9 {message}, client: 10.1.1.1, server: a, "
        'request: "POST /orders HTTP/1.1", upstream: "http://[::1]:8080/orders", host: "a"'
    )
    e = parse_error_line(line)
    assert e is not None and not isinstance(e, str)
    assert e.kind == kind and e.connection == 9
    assert e.request == "POST /orders HTTP/1.1" and e.upstream == "[::1]:8080"
    assert e.method_target == "POST /orders"


def test_error_line_reads_the_upstream_uri_for_the_request() -> None:
    # proxy_pass http://up/v2/ rewrote /api/x: the capture sees the upstream's URI
    line = PREMATURE.replace(
        'upstream: "http://127.0.0.1:8080/test/0/7"', 'upstream: "http://127.0.0.1:8080/v2/x"'
    )
    e = parse_error_line(line)
    assert e is not None and not isinstance(e, str) and e.method_target == "GET /v2/x"


def test_noisy_rotated_gzipped_error_logs_are_counted_not_fatal(tmp_path: Path) -> None:
    noisy = tmp_path / "error.log"
    noisy.write_bytes(
        "\n".join(
            [
                '2026/11/24 23:29:58 [notice] 18046#18046: using the "epoll" event method',
                PREMATURE,
                PREMATURE.replace("127.0.0.1:8080", "10.0.0.5:9000"),  # another upstream
                "2026/11/24 23:30:04 [info] 18047#18047: *1 client 127.0.0.1 closed keepalive",
                "PHP message: a stray continuation line",
                "",
            ]
        ).encode()
        + b"\xff\xfe binary garbage\n"
        + b"x" * 70_000
        + b"\n"
        + PREMATURE.encode()[:90]  # nginx was writing this line when the file was copied
    )
    kept, counts = read_error_log(str(noisy), [8080])
    assert [e.request for e in kept] == ["GET /test/0/7 HTTP/1.1"]
    assert counts.other_upstreams == 1 and counts.partial_last_line
    assert counts.unparsed == 3  # the stray line, the garbage, the overlong line
    assert counts.lines == 8 and counts.other == 2
    rotated = tmp_path / "error.log.2.gz"
    rotated.write_bytes(gzip.compress(noisy.read_bytes()))
    kept_gz, counts_gz = read_error_log(str(rotated), [8080])
    assert (
        kept_gz == [type(kept[0])(**{**_fields(kept[0]), "file": str(rotated)})]
        and counts_gz.compressed
    )


def _fields(e: object) -> dict[str, Any]:
    return {k: getattr(e, k) for k in e.__slots__}  # type: ignore[attr-defined]


def test_cut_gzip_ends_the_file_with_a_note(tmp_path: Path) -> None:
    data = gzip.compress(("\n".join([PREMATURE] * 2000) + "\n").encode())
    cut = tmp_path / "error.log.1.gz"
    cut.write_bytes(data[: len(data) // 2])
    kept, counts = read_error_log(str(cut), [8080])
    assert counts.truncated is not None and "gzip" in counts.truncated
    assert 0 < len(kept) < 2000


def test_missing_log_is_a_one_line_error() -> None:
    with pytest.raises(LogError, match="No such file"):
        read_error_log("/no/such/error.log", [8080])


# --- access log formats --------------------------------------------------------------------------


def test_combined_format() -> None:
    rx = compile_format(COMBINED)
    m = rx.match(
        '10.0.0.1 - - [24/Nov/2026:23:30:04 +0100] "GET /a?b=c HTTP/1.1" 502 157 "-" '
        '"Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101"'
    )
    assert m is not None
    assert m["request"] == "GET /a?b=c HTTP/1.1" and m["status"] == "502"
    assert m["time_local"] == "24/Nov/2026:23:30:04 +0100"


def test_upstream_lists_with_spaces_unquoted() -> None:
    rx = compile_format("$msec $status $upstream_addr $upstream_status $request_time")
    m = rx.match("1795563004.916 200 10.0.0.1:8080, 10.0.0.2:8080 502, 200 0.004")
    assert m is not None
    assert m["upstream_addr"] == "10.0.0.1:8080, 10.0.0.2:8080"
    assert m["upstream_status"] == "502, 200" and m["request_time"] == "0.004"


def test_access_log_keeps_failures_counts_the_rest(tmp_path: Path) -> None:
    fmt = (
        '$remote_addr [$time_local] "$request" $status $request_time '
        'ua="$upstream_addr" us="$upstream_status" rid=$request_id'
    )
    lines = [
        '10.0.0.9 [24/Nov/2026:23:30:04 +0200] "GET /a HTTP/1.1" 200 0.004 '
        'ua="127.0.0.1:8080, 127.0.0.1:8080" us="502, 200" rid=5f1d',
        '10.0.0.9 [24/Nov/2026:23:30:05 +0200] "POST /b HTTP/1.1" 502 0.001 '
        'ua="127.0.0.1:8080" us="502" rid=77aa',
        '10.0.0.9 [24/Nov/2026:23:30:06 +0200] "GET /c HTTP/1.1" 200 0.002 '
        'ua="127.0.0.1:8080" us="200" rid=1',
        '10.0.0.9 [24/Nov/2026:23:30:06 +0200] "GET /d HTTP/1.1" 502 0.002 '
        'ua="10.9.9.9:9000" us="502" rid=2',  # another upstream
        "garbage",
        '10.0.0.9 [24/Nov/2026:23:30:07 +0200] "GET /e HT',  # cut
    ]
    p = tmp_path / "access.log"
    p.write_text("\n".join(lines))
    kept, counts = read_access_log(str(p), [8080], [("upstreamlog", fmt), ("combined", COMBINED)])
    assert counts.log_format == "upstreamlog"
    assert [(a.method_target, a.upstream_statuses) for a in kept] == [
        ("GET /a", ("502", "200")),
        ("POST /b", ("502",)),
    ]
    assert kept[0].request_id == "5f1d" and kept[0].failed_attempts == 1
    assert counts.utc_offset_s == 7200
    assert counts.other == 1 and counts.other_upstreams == 1 and counts.unparsed == 1
    assert counts.partial_last_line and counts.lines == 6


def test_access_log_no_format_fits(tmp_path: Path) -> None:
    p = tmp_path / "access.log"
    p.write_text("this is not an access log\n")
    with pytest.raises(LogError, match="--log-format"):
        read_access_log(str(p), [8080], [("combined", COMBINED)])


@pytest.mark.parametrize(
    ("tz", "offset"),
    [("UTC", 0), ("+02:00", 7200), ("-0530", -19800), ("Europe/Berlin", 3600)],
)
def test_log_tz(tz: str, offset: int) -> None:
    assert utc_offset(tz, at_ns=1795563004 * 10**9) == offset  # late November: winter time


def test_log_tz_unknown() -> None:
    with pytest.raises(LogError, match="--log-tz"):
        utc_offset("Mars/Olympus")


# --- the join on the lab's fixtures (golden) -----------------------------------------------------


@pytest.mark.parametrize("name", SCENARIOS)
def test_join_accounts_for_every_logged_failure(name: str) -> None:
    d = FIXTURES / name
    t = truth(name)
    j = join_logs(
        analysis(name), [str(d / "error.log"), str(d / "access.log")], formats=formats(name)
    )
    assert j.log_only == () and j.packet_only == ()
    premature = (d / "error.log").read_text().count("upstream prematurely closed connection")
    timed_out = (d / "error.log").read_text().count("upstream timed out (110")
    assert premature == t["prematurely_closed"] and timed_out == t["connect_timeouts"]
    lost = [c for c in j.confirmed if c.finding.type == "request_lost_to_fin"]
    # a loss is "prematurely closed", or "recv() failed (104 ...)" when the RST reached nginx first
    reset = t.get("reset_by_peer_requests", [])
    # over TLS the capture names no request: the error line the join met says which it was
    tls = t["nginx"].get("proxy_pass", "").startswith("https")

    def named(c: Any) -> str:
        return str(c.errors[0].method_target if tls else c.finding.request or "")

    assert sorted(named(c) for c in lost) == sorted(t["prematurely_closed_requests"] + reset)
    for c in lost:
        (e,) = c.errors
        kind = "reset" if named(c) in reset else "prematurely_closed"
        assert e.kind == kind and e.method_target == named(c)
        (a,) = c.access
        assert a.upstream_statuses[0] == "502"
    # every "502, 200" entry is a retried loss, confirmed on both connections
    retried = [
        line
        for line in (d / "access.log").read_text().splitlines()
        if re.search(r'"502, 200"', line)
    ]
    assert len(retried) == len(t["retried_requests"])
    retries = [c for c in j.confirmed if c.finding.type == "retry"]
    if tls:
        # the join pairs retries by request line, which TLS hides: the analysis has them
        found = [f for f in analysis(name).findings if f.type == "retry"]
        assert retries == [] and len(found) == len(t["retried_requests"])
    else:
        assert sorted(c.finding.request or "" for c in retries) == sorted(t["retried_requests"])
    connects = [c for c in j.confirmed if c.finding.type == "connect_failed"]
    assert len(connects) == t["connect_timeouts"]
    assert all(c.errors and c.access and c.access[0].status == 504 for c in connects)
    assert j.clients_5xx == len(t["not_retried_failures"])
    assert j.clients_5xx_connect == t["client_status"].get("504", 0)
    reset = (d / "error.log").read_text().count("recv() failed (104: Connection reset by peer)")
    assert reset == t.get("reset_by_peer", 0)
    # and with two servers, the [warn] of a server marked down by the race (max_fails=1)
    disabled = t.get("temporarily_disabled", 0)
    kept = premature + reset + timed_out + disabled
    assert sum(c.kept for c in j.files if c.kind == "error") == kept


def test_error_log_in_another_zone_is_lined_up_by_the_matches(tmp_path: Path) -> None:
    d = FIXTURES / "idle-race-get"
    shifted = tmp_path / "error.log"
    shifted.write_text((d / "error.log").read_text().replace("2026/11/24 23:", "2026/11/25 01:"))
    j = join_logs(
        analysis("idle-race-get"),
        [str(shifted), str(d / "access.log")],
        formats=formats("idle-race-get"),
    )
    assert j.utc_offset_s == 7200 and j.offset_source == "matches"
    assert j.log_only == () and j.packet_only == ()
    # given by hand, the same
    j = join_logs(analysis("idle-race-get"), [str(shifted)], tz="+02:00")
    assert j.offset_source == "--log-tz" and j.packet_only == ()
    # a wrong zone leaves both sides unexplained rather than matching the wrong lines
    j = join_logs(analysis("idle-race-get"), [str(shifted)], tz="UTC")
    assert len(j.log_only) == 1 and len(j.packet_only) == 1


def test_finding_nginx_did_not_log_and_error_without_packets(tmp_path: Path) -> None:
    d = FIXTURES / "idle-race-post"
    lines = (d / "error.log").read_text().splitlines()
    no_error = [x for x in lines if "prematurely" not in x]
    other = (
        "2026/11/24 23:30:10 [error] 18316#18316: *3 upstream timed out (110: Connection timed "
        "out) while reading response header from upstream, client: 127.0.0.1, server: , request: "
        '"GET /slow HTTP/1.1", upstream: "http://127.0.0.1:8080/slow", host: "127.0.0.1:8081"'
    )
    log = tmp_path / "error.log"
    log.write_text("\n".join([*no_error, other]) + "\n")
    j = join_logs(
        analysis("idle-race-post"),
        [str(log), str(d / "access.log")],
        formats=formats("idle-race-post"),
    )
    (missed,) = j.packet_only
    assert missed.type == "request_lost_to_fin" and missed.request == "POST /test/0/6"
    (lone,) = j.log_only
    assert lone.error is not None and lone.error.kind == "read_timeout"
    assert "timeout" in lone.why
    # the access log still tells what the client got
    (c,) = j.confirmed
    assert c.errors == () and c.access[0].status == 502
    assert j.clients_5xx == 1


def test_without_access_log_the_capture_estimates_the_5xx() -> None:
    d = FIXTURES / "idle-race-post"
    j = join_logs(analysis("idle-race-post"), [str(d / "error.log")])
    assert j.clients_5xx == 1 and j.clients_5xx_source.startswith("capture")


def test_analyze_reports_the_join_in_table_and_json() -> None:
    d = FIXTURES / "idle-race-get"
    args = [
        "analyze",
        str(d / "capture.pcap"),
        "--nginx-log",
        str(d / "error.log"),
        "--nginx-log",
        str(d / "access.log"),
        "--nginx-conf",
        str(d / "nginx.conf"),
        "--upstream-config",
        str(d / "server.xml"),
    ]
    r = runner.invoke(app, args)
    assert r.exit_code == 1, r.output
    assert "Confirmed by nginx" in r.stdout
    assert (
        "2 findings confirmed, 0 log errors without packet evidence, 0 findings not logged; "
        "clients' 5xx from the upstream's closes: 0"
    ) in r.stdout
    assert "[error] *1 upstream prematurely closed connection" in r.stdout
    assert "upstream_status 502, 200" in r.stdout
    assert "Log errors with no packet evidence: none" in r.stdout
    assert "✓ the upstream closed idle connections after 1.00" in r.stdout
    r = runner.invoke(app, [*args, "-f", "json"])
    doc = json.loads(r.stdout)
    logs = doc["logs"]
    assert logs["log_only"] == [] and logs["packet_only"] == []
    lost = next(c for c in logs["confirmed"] if c["finding"]["type"] == "request_lost_to_fin")
    assert lost["finding"]["request"] == "GET /test/0/7"
    assert lost["error_log"][0]["line"] == 7 and lost["access_log"][0]["upstream_status"] == [
        "502",
        "200",
    ]
    (idle,) = [c for c in doc["configured"] if c["what"] == "upstream_idle_timeout"]
    assert idle["agrees"] and idle["configured"] == 1.0


def test_measured_idle_close_disagreeing_with_the_config(tmp_path: Path) -> None:
    d = FIXTURES / "idle-close"
    yaml = tmp_path / "application.yaml"
    yaml.write_text("server:\n  tomcat:\n    keep-alive-timeout: 20s\n")
    r = runner.invoke(
        app, ["analyze", str(d / "capture.pcap"), "--upstream-config", str(yaml), "-f", "json"]
    )
    (c,) = json.loads(r.stdout)["configured"]
    assert c["agrees"] is False and "another layer" in c["text"]
    assert c["configured"] == 20.0 and 1.0 < c["measured"] < 1.1


def test_analyze_bad_log_inputs_exit_2(tmp_path: Path) -> None:
    d = FIXTURES / "idle-race-get"
    junk = tmp_path / "access.log"
    junk.write_text("nothing here\n")
    for extra in (
        ["--nginx-log", "/no/such.log"],
        ["--nginx-log", str(junk)],
        ["--nginx-log", str(d / "error.log"), "--log-tz", "Mars/Olympus"],
        ["--nginx-conf", "/no/such/nginx.conf"],
    ):
        r = runner.invoke(app, ["analyze", str(d / "capture.pcap"), *extra])
        assert r.exit_code == 2, (extra, r.output)
        assert r.stderr.startswith("kaflow: error: ") and "Traceback" not in r.output


def test_rotated_gzipped_noisy_copy_of_a_fixture_joins_the_same(tmp_path: Path) -> None:
    """The lab's logs as they would be found on a busy host: rotated mid-run (the older half
    gzipped), lines of another vhost and upstream, and the live file copied mid-line."""
    name = "idle-race-get"
    d = FIXTURES / name
    err = (d / "error.log").read_text().splitlines()
    other = (
        "2026/11/24 23:30:04 [error] 18047#18047: *9 upstream prematurely closed connection "
        "while reading response header from upstream, client: 10.0.0.3, server: admin, request: "
        '"GET /test/0/7 HTTP/1.1", upstream: "http://10.0.0.8:9090/test/0/7", host: "admin"'
    )
    (tmp_path / "error.log.1.gz").write_bytes(gzip.compress(("\n".join(err[:6]) + "\n").encode()))
    (tmp_path / "error.log").write_text("\n".join([*err[6:], other]) + "\n2026/11/24 23:3")
    acc = (d / "access.log").read_text().splitlines()
    foreign = '1795563004.5 "GET /admin HTTP/1.1" 502 "10.0.0.8:9090" "502" 9 1 "0.001" 0.001'
    (tmp_path / "access.log.1.gz").write_bytes(gzip.compress(("\n".join(acc[:3]) + "\n").encode()))
    (tmp_path / "access.log").write_text("\n".join([*acc[3:], foreign]) + "\n")
    logs = [
        str(tmp_path / n) for n in ("error.log.1.gz", "error.log", "access.log.1.gz", "access.log")
    ]
    j = join_logs(analysis(name), logs, formats=formats(name))
    plain = join_logs(
        analysis(name), [str(d / "error.log"), str(d / "access.log")], formats=formats(name)
    )
    assert [(c.finding, [e.text for e in c.errors]) for c in j.confirmed] == [
        (c.finding, [e.text for e in c.errors]) for c in plain.confirmed
    ]
    assert j.log_only == () and j.packet_only == ()
    by = {Path(c.path).name: c for c in j.files}
    assert by["error.log.1.gz"].compressed and by["error.log"].partial_last_line
    assert by["error.log"].other_upstreams == 1 and by["access.log"].other_upstreams == 1


def test_json_schema_doc_names_every_logs_key() -> None:
    from pcapkit.report.nginx_section import logs_dict

    doc = (Path(__file__).parent.parent / "docs" / "json-schema.md").read_text()
    section = doc[doc.index("## `logs`") : doc.index("## `configured[]`")]
    d = FIXTURES / "idle-race-post"
    keys = logs_dict(
        join_logs(
            analysis("idle-race-post"),
            [str(d / "error.log"), str(d / "access.log")],
            formats=formats("idle-race-post"),
        )
    )
    missing = [k for k in keys if f"`{k}`" not in section]
    missing += [k for k in keys["files"][0] if f"`{k}`" not in section]
    assert missing == []


def test_logs_doc_sample_is_real_output() -> None:
    """docs/logs.md's join sample is what kaflow prints for idle-race-get."""
    text = (Path(__file__).parent.parent / "docs" / "logs.md").read_text()
    start = text.index("  Confirmed by nginx")
    sample = [x for x in text[start : text.index("```", start)].splitlines() if x.strip()]
    d = FIXTURES / "idle-race-get"
    r = runner.invoke(
        app,
        [
            "analyze",
            str(d / "capture.pcap"),
            "--nginx-log",
            str(d / "error.log"),
            "--nginx-log",
            str(d / "access.log"),
            "--nginx-conf",
            str(d / "nginx.conf"),
        ],
    )
    out = r.stdout.splitlines()
    assert len(sample) > 6
    assert [x for x in sample if x not in out] == []


def test_exit_code_counts_log_errors_logged_while_the_capture_ran(tmp_path: Path) -> None:
    """agree has no findings (exit 0). A read timeout nginx logged during its 2.6 s makes the
    exit code 1: a failure the capture does not explain; the same line an hour earlier — a day's
    log beside a short capture — is listed, marked, and leaves it 0."""
    d = FIXTURES / "agree"
    base = ["analyze", str(d / "capture.pcap"), "--nginx-log"]
    assert runner.invoke(app, [*base, str(d / "error.log")]).exit_code == 0
    line = (
        "[error] 17714#17714: *40 upstream timed out (110: Connection timed out) while reading "
        'response header from upstream, client: 127.0.0.1, server: , request: "GET /slow '
        'HTTP/1.1", upstream: "http://127.0.0.1:8080/slow", host: "127.0.0.1:8081"\n'
    )
    for stamp, code, during in (
        ("2026/11/24 23:29:42", 1, True),
        ("2026/11/24 22:29:42", 0, False),
    ):
        log = tmp_path / f"error-{code}.log"
        log.write_text((d / "error.log").read_text() + f"{stamp} {line}")
        r = runner.invoke(app, [*base, str(log), "--log-tz", "UTC"])
        assert r.exit_code == code, r.output
        assert f"Log errors with no packet evidence: 1 ({int(during)} while the capture ran)" in (
            r.stdout
        )
        doc = json.loads(
            runner.invoke(app, [*base, str(log), "--log-tz", "UTC", "-f", "json"]).stdout
        )
        (u,) = doc["logs"]["log_only"]
        assert u["in_capture"] is during and doc["logs"]["log_only_in_capture"] == int(during)

"""The exact join: nginx sends its ``$request_id`` upstream as ``X-Request-ID`` and writes it in
the access log, so an access entry meets the very request the capture lost — where time and
request line cannot tell two losses of ``GET /health`` in the same second apart.

The capture is crafted (real TCP, real HTTP: the whole pipeline runs), the logs written as nginx
writes them: two workers, each losing a ``GET /health`` to the upstream's idle close within a
millisecond of the other and retrying it; worker 2's error line reaches the log first.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from typer.testing import CliRunner

from pcapkit import Analysis, analyze
from pcapkit.cli import app
from pcapkit.logs import LogJoin, join, join_logs
from pcapkit.logs.parse import read_access_log, read_error_log
from tests.conversation import MS, T0, Conv, ok, write

SEC = 1_000_000_000
FORMAT = (
    '$remote_addr [$time_local] "$request" $status $request_time ua="$upstream_addr" '
    'us="$upstream_status" rid=$request_id cn=$connection'
)
STAMP = "2023/11/14 22:13:21"  # T0 + 1 s, UTC (the access log's $time_local says +0000)
LOCAL = "14/Nov/2023:22:13:21 +0000"


def health(rid: str) -> bytes:
    return f"GET /health HTTP/1.1\r\nHost: backend\r\nX-Request-ID: {rid}\r\n\r\n".encode()


def capture(tmp_path: Path) -> Path:
    """#1 and #2 idle 1 s, then the upstream closes them; nginx writes a GET /health into each
    just after the FIN (ids r-a, r-b) and retries each on a new connection (#3, #4)."""
    a = Conv(40001).handshake(T0).exchange(T0 + 1 * MS, health("warm-1"), ok())
    b = Conv(40002).handshake(T0 + 2 * MS).exchange(T0 + 3 * MS, health("warm-2"), ok())
    fin_a, fin_b = T0 + 1 * SEC + 2 * MS, T0 + 1 * SEC + 2 * MS + 300_000
    a.fin("s", fin_a).send("c", fin_a + 100_000, health("r-a")).fin("c", fin_a + 400_000)
    b.fin("s", fin_b).send("c", fin_b + 100_000, health("r-b")).fin("c", fin_b + 400_000)
    c = Conv(40003).handshake(fin_a + 500_000).exchange(fin_a + 600_000, health("r-a"), ok())
    d = Conv(40004).handshake(fin_b + 500_000).exchange(fin_b + 600_000, health("r-b"), ok())
    for conv, t in ((c, fin_a), (d, fin_b)):
        conv.fin("c", t + 5 * SEC).fin("s", t + 5 * SEC + 100_000)
    return write(tmp_path / "health.pcap", [a, b, c, d])


def error_line(conn: int) -> str:
    return (
        f"{STAMP} [error] 4{conn}#4{conn}: *{conn} upstream prematurely closed connection while "
        'reading response header from upstream, client: 10.0.0.9, server: shop, request: "GET '
        '/health HTTP/1.1", upstream: "http://127.0.0.1:8080/health", host: "shop"\n'
    )


def access_line(rid: str, conn: int, statuses: str = "502, 200", status: int = 200) -> str:
    ua = ", ".join(["127.0.0.1:8080"] * len(statuses.split(", ")))
    return (
        f'10.0.0.9 [{LOCAL}] "GET /health HTTP/1.1" {status} 0.003 ua="{ua}" us="{statuses}" '
        f"rid={rid} cn={conn}\n"
    )


def logs(tmp_path: Path, extra_access: str = "") -> tuple[str, str]:
    """nginx's *9 served r-b and *5 served r-a; *9's worker wrote its error line first."""
    err = tmp_path / "error.log"
    err.write_text(error_line(9) + error_line(5))
    acc = tmp_path / "access.log"
    acc.write_text(access_line("r-a", 5) + access_line("r-b", 9) + extra_access)
    return str(err), str(acc)


def lines_of(j: LogJoin, a: Analysis) -> dict[str, tuple[list[str], list[str], bool]]:
    """For each lost request, by its id: its error lines' *N, its access entries' ids, exact."""
    out = {}
    for c in j.confirmed:
        if c.finding.type != "request_lost_to_fin":
            continue
        conn = a.connection(c.finding.connection)
        assert c.finding.request_index is not None
        rid = conn.requests[c.finding.request_index].request_id
        assert rid is not None
        out[rid] = (
            [f"*{e.connection}" for e in c.errors],
            [x.request_id or "" for x in c.access],
            c.by_request_id,
        )
    return out


def test_losses_meet_their_own_lines_by_request_id(tmp_path: Path) -> None:
    a = analyze(capture(tmp_path))
    lost = [f for f in a.findings if f.type == "request_lost_to_fin"]
    assert sorted(f.request_id or "" for f in lost) == ["r-a", "r-b"]
    assert all(f.retried for f in lost)
    retries = [f for f in a.findings if f.type == "retry"]
    assert sorted(f.request_id or "" for f in retries) == ["r-a", "r-b"]  # the same id resent
    j = join_logs(a, logs(tmp_path), log_format=FORMAT)
    assert lines_of(j, a) == {
        "r-a": (["*5"], ["r-a"], True),
        "r-b": (["*9"], ["r-b"], True),
    }
    assert j.log_only == () and j.packet_only == ()
    # each retry is confirmed by its own loss's entry, exactly too
    by_retry = {
        c.finding.request_id: [x.request_id for x in c.access]
        for c in j.confirmed
        if c.finding.type == "retry"
    }
    assert by_retry == {"r-a": ["r-a"], "r-b": ["r-b"]}


def test_without_ids_time_and_request_line_cannot_tell_them_apart(tmp_path: Path) -> None:
    """The control: the same lines with the ids taken away pair by time and request line, and
    the first error line (*9, r-b's) goes to the first loss (r-a's): what the ids fix."""
    a = analyze(capture(tmp_path))
    err, acc = logs(tmp_path)
    ports = a.capture.ports
    errors, _ = read_error_log(err, ports)
    entries, counts = read_access_log(acc, ports, [("ids", FORMAT)])
    assert [e.request_id for e in entries] == ["r-a", "r-b"]
    exact = lines_of(join(a, errors, entries, [counts]), a)
    assert exact["r-a"] == (["*5"], ["r-a"], True)
    bare = lines_of(join(a, errors, [replace(x, request_id=None) for x in entries], [counts]), a)
    assert bare["r-a"][0] == ["*9"] and not bare["r-a"][2]  # wrong, and not claimed exact


def test_an_entry_whose_id_the_capture_never_lost_is_not_paired(tmp_path: Path) -> None:
    """A third client's GET /health failed in the same second (id r-c): no loss carries r-c,
    so it meets neither loss (whose ids differ), and it stays a log error the capture does not
    explain — logged while the capture ran, so the exit code is 1."""
    a = analyze(capture(tmp_path))
    err, acc = logs(tmp_path, access_line("r-c", 12, "502", 502))
    j = join_logs(a, [err, acc], log_format=FORMAT)
    assert lines_of(j, a) == {
        "r-a": (["*5"], ["r-a"], True),
        "r-b": (["*9"], ["r-b"], True),
    }
    (u,) = j.log_only
    assert u.access is not None and u.access.request_id == "r-c" and u.in_capture
    assert j.unexplained_in_capture == 1
    assert j.clients_5xx == 0  # r-c's 502 is not put on the upstream's closes


def test_a_retry_lost_too_meets_one_entry_by_its_id(tmp_path: Path) -> None:
    """``502, 502, 200``: the retry went out on another cached connection being closed, then on a
    new one; all three carry r-x. One entry, two error lines of its *N, two losses."""
    a = Conv(40001).handshake(T0).exchange(T0 + 1 * MS, health("w1"), ok())
    b = Conv(40002).handshake(T0 + 2 * MS).exchange(T0 + 3 * MS, health("w2"), ok())
    fin_a = T0 + 1 * SEC + 2 * MS
    a.fin("s", fin_a).send("c", fin_a + 100_000, health("r-x")).fin("c", fin_a + 400_000)
    b.fin("s", fin_a + 150_000).send("c", fin_a + 200_000, health("r-x"))
    b.fin("c", fin_a + 450_000)
    c = Conv(40003).handshake(fin_a + 500_000).exchange(fin_a + 600_000, health("r-x"), ok())
    c.fin("c", fin_a + 5 * SEC).fin("s", fin_a + 5 * SEC + 100_000)
    an = analyze(write(tmp_path / "twice.pcap", [a, b, c]))
    lost = [f for f in an.findings if f.type == "request_lost_to_fin"]
    assert [f.request_id for f in lost] == ["r-x", "r-x"]
    err = tmp_path / "error.log"
    err.write_text(error_line(3) + error_line(3))
    acc = tmp_path / "access.log"
    acc.write_text(access_line("r-x", 3, "502, 502, 200"))
    j = join_logs(an, [str(err), str(acc)], log_format=FORMAT)
    confirmed = [c for c in j.confirmed if c.finding.type == "request_lost_to_fin"]
    assert len(confirmed) == 2 and all(c.by_request_id for c in confirmed)
    assert [len(c.errors) for c in confirmed] == [1, 1]
    assert confirmed[0].errors[0] is not confirmed[1].errors[0]
    assert j.log_only == () and j.packet_only == ()


def test_cli_reports_the_exact_pairs_and_the_exit_code(tmp_path: Path) -> None:
    cap = capture(tmp_path)
    err, acc = logs(tmp_path)
    runner = CliRunner()
    args = ["analyze", str(cap), "--nginx-log", err, "--nginx-log", acc, "--log-format", FORMAT]
    out = runner.invoke(app, args)
    assert out.exit_code == 1  # findings
    assert "rid=r-a" not in out.stdout  # the entry is summarised, its id named once
    assert "upstream_status 502, 200 (by X-Request-ID r-a)" in out.stdout
    doc = json.loads(runner.invoke(app, [*args, "-f", "json"]).stdout)
    assert {c["by"] for c in doc["logs"]["confirmed"]} == {"request_id"}
    ids = {f.get("request_id") for f in doc["findings"] if f["type"] == "request_lost_to_fin"}
    assert ids == {"r-a", "r-b"}

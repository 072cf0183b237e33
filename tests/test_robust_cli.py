"""Bad input through the real command (``python -m pcapkit analyze``, a separate process).

Every way a file can be unusable ends the same way: exit code 2, stdout empty, exactly one line
on stderr starting ``kaflow: error:`` that says what is wrong and what to do, and never a
traceback. A capture that is damaged after some packets is analyzed up to the damage, with one
``kaflow: warning:`` line saying where reading stopped, and the normal exit code (0 or 1).

All the command runs are started at once (one module fixture) so the module costs about one
interpreter start-up, not one per case.
"""

from __future__ import annotations

import ctypes
import gzip
import json
import lzma
import os
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import craft
from tests.conversation import MS, T0, Conv, get, ok

ROOT = Path(__file__).resolve().parent.parent

# PR_CAPBSET_DROP and the two capabilities that let root read any file.
_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE = 1
_CAP_DAC_READ_SEARCH = 2


def _drop_file_capabilities() -> None:
    """In the child, before exec: root without the capabilities that bypass file permissions.

    Dropping them from the bounding set means the exec'd interpreter never gets them, so a
    chmod 000 file is refused to root exactly as to any user (needs CAP_SETPCAP, which root
    has unless a container took it away; then the test is skipped, saying so).
    """
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) refused")


def _packets(conv: Conv) -> list[tuple[int, bytes]]:
    return sorted(conv.packets, key=lambda p: p[0])


def _racy() -> list[tuple[int, bytes]]:
    """Two connections: a request lost to the upstream's FIN and retried (exit code 1)."""
    a = Conv(40000).handshake(T0).exchange(T0 + 1 * MS, get("/a"), ok())
    t = T0 + 1003 * MS
    a.send("c", t, get("/lost")).fin("s", t + 200_000).fin("c", t + 300_000)
    b = Conv(40002).handshake(t + 400_000).exchange(t + 500_000, get("/lost"), ok())
    return sorted(a.packets + b.packets, key=lambda p: p[0])


def _open_at_the_cut() -> tuple[bytes, int, int]:
    """A clean connection whose two FINs are the last records, where the first FIN's record
    starts, and how many packets come before it: cut inside that record, the file leaves the
    connection open at the end."""
    c = Conv().handshake(T0).exchange(T0 + 1 * MS, get("/a"), ok())
    c.fin("c", T0 + 5 * MS).fin("s", T0 + 6 * MS)
    packets = _packets(c)
    fin_at = next(k for k, (t, _) in enumerate(packets) if t == T0 + 5 * MS)
    return craft.pcap_bytes(packets), len(craft.pcap_bytes(packets[:fin_at])), fin_at


def _claim_2gb_at(data: bytes, record: int) -> bytes:
    """``data`` with the ``record``-th record header claiming a 2 GB packet."""
    off = 24
    for _ in range(record):
        (caplen,) = struct.unpack_from("<I", data, off + 8)
        off += 16 + caplen
    out = bytearray(data)
    struct.pack_into("<I", out, off + 8, 2 << 30)
    return bytes(out)


@dataclass(frozen=True)
class Case:
    """Files to create in a fresh folder, then the command's arguments (paths in that folder).

    The command is ``python -m pcapkit analyze --quiet ARGS``, or with ``library`` set,
    ``pcapkit.analyze(ARGS[0])`` in a child interpreter printing the error class and message.
    """

    make: Callable[[Path], list[str]]
    preexec: Callable[[], None] | None = None
    library: bool = False


_LIBRARY = """
import sys
from pcapkit import analyze
from pcapkit.errors import KaflowError
try:
    analyze(sys.argv[1])
except KaflowError as e:
    print(type(e).__name__, e)
"""


def _file(name: str, content: bytes, *extra: str) -> Callable[[Path], list[str]]:
    def make(d: Path) -> list[str]:
        (d / name).write_bytes(content)
        return [str(d / name), *extra]

    return make


def _permission(d: Path) -> list[str]:
    path = d / "secret.pcap"
    path.write_bytes(craft.pcap_bytes(_racy()))
    path.chmod(0)
    return [str(path)]


def _under_a_file(d: Path) -> list[str]:
    (d / "file.pcap").write_bytes(craft.pcap_bytes(_racy()))
    return [str(d / "file.pcap" / "x")]


def _other_port() -> bytes:
    c = Conv(sport=9090).handshake(T0).exchange(T0 + MS, get("/"), ok())
    return craft.pcap_bytes(_packets(c))


def _udp_only() -> bytes:
    return craft.pcap_bytes(
        [(T0 + k, craft.ipv4("10.0.0.1", "10.0.0.2", 17, bytes(16))) for k in range(3)]
    )


TCPDUMP_TEXT = (
    b"reading from file dump.pcap, link-type LINUX_SLL2 (Linux cooked v2), snapshot length 262144\n"
    b"23:30:03.910888 lo    In  IP 127.0.0.1.45512 > 127.0.0.1.8080: Flags [S], seq 1, length 0\n"
)
JSON_TEXT = b'[{"_index": "packets-2024", "_source": {"layers": {"frame": {}}}}]\n'
HTML_TEXT = b"<!DOCTYPE html>\n<html><head><title>Index of /dumps</title></head></html>\n"

ERRORS: dict[str, tuple[Case, tuple[str, ...]]] = {
    "tcpdump_text": (Case(_file("dump.txt", TCPDUMP_TEXT)), ("tcpdump's printed output",)),
    "json": (Case(_file("dump.json", JSON_TEXT)), ("looks like JSON", "tcpdump -w")),
    "html": (Case(_file("dump.pcap", HTML_TEXT)), ("an HTML page",)),
    "empty": (Case(_file("empty.pcap", b"")), ("is empty (0 bytes)",)),
    "header_only": (Case(_file("h.pcap", craft.pcap_bytes([]))), ("no packets",)),
    "link_type": (
        Case(_file("wifi.pcap", craft.pcap_bytes([(T0, bytes(40))], linktype=105, framed=True))),
        ("link type 105 (IEEE802_11) is not supported", "LINUX_SLL2"),
    ),
    "xz": (
        Case(_file("c.pcap.xz", lzma.compress(craft.pcap_bytes(_racy())))),
        ("xz-compressed", "xz -dk"),
    ),
    "corrupt_first_record": (
        Case(_file("c.pcap", _claim_2gb_at(craft.pcap_bytes(_racy()), 0))),
        ("first record", "2,147,483,648-byte packet", "corrupt"),
    ),
    "missing": (Case(lambda d: [str(d / "nope.pcap")]), ("no such file",)),
    "directory": (Case(lambda d: [str(d)]), ("is a directory",)),
    "under_a_file": (Case(_under_a_file), ("Not a directory",)),
    "permission": (
        Case(_permission, None if os.geteuid() != 0 else _drop_file_capabilities),
        ("permission denied",),
    ),
    "no_upstream_traffic": (
        Case(_file("other.pcap", _other_port())),
        ("no traffic on port 8080", "ports seen most: 9090 (", "try --port 9090"),
    ),
    "no_tcp_at_all": (
        Case(_file("udp.pcap", _udp_only())),
        ("no TCP traffic at all in 3 packets", "3 non tcp"),
    ),
}

_OPEN_DATA, _FIN_RECORD, _BEFORE_FIN = _open_at_the_cut()
_CUT_AT = _FIN_RECORD + 20  # inside the first FIN's record
_RACY = craft.pcap_bytes(_racy())
WORKING: dict[str, Case] = {
    "permission_library": Case(
        _permission, None if os.geteuid() != 0 else _drop_file_capabilities, library=True
    ),
    "plain": Case(_file("racy.pcap", _RACY, "-f", "json")),
    "gzip": Case(_file("racy.pcap.gz", gzip.compress(_RACY), "-f", "json")),
    "cut": Case(_file("cut.pcap", _OPEN_DATA[:_CUT_AT], "-f", "json")),
    "cut_table": Case(_file("cut.pcap", _OPEN_DATA[:_CUT_AT], "--all")),
    "corrupt_midway": Case(_file("c.pcap", _claim_2gb_at(_RACY, 5), "-f", "json")),
    "gzip_cut": Case(_file("c.pcap.gz", gzip.compress(_RACY * 1)[:-30], "-f", "json")),
}


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str
    skipped: str | None = None


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    """Every case's command, all started at once and then collected."""
    started: dict[str, subprocess.Popen[str]] = {}
    out: dict[str, Run] = {}
    for name, case in [*((n, c) for n, (c, _) in ERRORS.items()), *WORKING.items()]:
        args = case.make(tmp_path_factory.mktemp(name))
        try:
            command = (
                [sys.executable, "-c", _LIBRARY, *args]
                if case.library
                else [sys.executable, "-m", "pcapkit", "analyze", "--quiet", *args]
            )
            started[name] = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
                preexec_fn=case.preexec,  # the test process is single-threaded
            )
        except subprocess.SubprocessError as e:  # the preexec hook could not drop privileges
            out[name] = Run(-1, "", "", skipped=f"cannot drop root's file capabilities: {e}")
    for name, proc in started.items():
        stdout, stderr = proc.communicate(timeout=120)
        out[name] = Run(proc.returncode, stdout, stderr)
    yield out


def _ran(runs: dict[str, Run], name: str) -> Run:
    r = runs[name]
    if r.skipped:
        pytest.skip(r.skipped)
    assert "Traceback" not in r.stderr, r.stderr
    return r


_NEEDS_LEAD: dict[str, pytest.MarkDecorator] = {}


@pytest.mark.parametrize("name", [pytest.param(n, marks=_NEEDS_LEAD.get(n, ())) for n in ERRORS])
def test_bad_input_is_one_line_on_stderr_and_exit_2(runs: dict[str, Run], name: str) -> None:
    r = _ran(runs, name)
    words = ERRORS[name][1]
    assert r.returncode == 2, r
    assert r.stdout == ""
    assert r.stderr.startswith("kaflow: error: ")
    assert r.stderr.count("\n") == 1 and r.stderr.endswith("\n"), r.stderr
    for word in words:
        assert word in r.stderr, (word, r.stderr)


def test_gzip_is_read_transparently(runs: dict[str, Run]) -> None:
    plain, gz = _ran(runs, "plain"), _ran(runs, "gzip")
    assert plain.returncode == gz.returncode == 1
    assert gz.stderr == ""
    a, b = json.loads(plain.stdout), json.loads(gz.stdout)
    assert b["capture"]["format"] == "pcap (gzip)"
    for doc in (a, b):
        del doc["capture"]["path"], doc["capture"]["format"]
    assert a == b


def test_capture_cut_mid_record_is_analyzed_up_to_the_cut(runs: dict[str, Run]) -> None:
    r = _ran(runs, "cut")
    assert r.returncode in (0, 1)
    (line,) = r.stderr.splitlines()
    assert line == (
        f"kaflow: warning: the capture ends mid-record at byte {_FIN_RECORD:,} "
        f"(tcpdump killed?); analyzed the {_BEFORE_FIN} packets before it"
    )
    doc = json.loads(r.stdout)
    assert doc["capture"]["warnings"] == [line.removeprefix("kaflow: warning: ")]
    (conn,) = doc["connections"]
    # the FINs were in the lost tail: the connection is open at the end, not closed
    assert conn["closed_by"] is None and conn["close"] is None
    assert doc["summary"]["closed_by"] == {"client": 0, "server": 0, "none": 1}
    assert [r["status"] for r in conn["requests"]] == [200]
    assert doc["capture"]["packets"] == _BEFORE_FIN


def test_cut_capture_table_says_the_connection_was_not_closed(runs: dict[str, Run]) -> None:
    r = _ran(runs, "cut_table")
    assert r.returncode == 0
    assert "not closed in the capture" in r.stdout
    assert r.stderr.startswith("kaflow: warning: the capture ends mid-record")


def test_a_2gb_record_claim_midway_stops_there_with_a_warning(runs: dict[str, Run]) -> None:
    r = _ran(runs, "corrupt_midway")
    assert r.returncode in (0, 1)
    (line,) = r.stderr.splitlines()
    assert line.startswith("kaflow: warning: the record at byte ")
    assert "claims a 2,147,483,648-byte packet" in line and "analyzed the 5 packets" in line
    assert json.loads(r.stdout)["capture"]["packets"] == 5


def test_cut_gzip_stream_is_analyzed_up_to_the_damage(runs: dict[str, Run]) -> None:
    r = _ran(runs, "gzip_cut")
    assert r.returncode in (0, 1)
    (line,) = r.stderr.splitlines()
    assert line.startswith("kaflow: warning: ") and "gzip" in line
    doc = json.loads(r.stdout)
    assert 0 < doc["capture"]["packets"] < len(_racy())


def test_unreadable_file_is_an_input_error_in_the_library(runs: dict[str, Run]) -> None:
    """As root too: the child runs without the capabilities that bypass file permissions."""
    r = _ran(runs, "permission_library")
    assert r.stderr == ""
    assert r.stdout.startswith("InputError ") and r.stdout.endswith(": permission denied\n")

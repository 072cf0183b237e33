"""The compiled core agrees with the straightforward Python reference on every real fixture and
on generated busy captures of both profiles.

``tests/reference.py`` reads with dpkt and rebuilds connections one packet at a time, and
``tests/oracle/`` labels them as the pure-Python kaflow did; the core reads, rebuilds and labels
in Rust. Same answers required, packet for packet: equal analyses give equal reports, so the
JSON is the last pure-Python release's.
"""

from __future__ import annotations

import importlib.util
import pickle
import sys
from pathlib import Path
from types import ModuleType

import pytest

from pcapkit import Analysis, analyze, classify
from pcapkit._core import Batch, Scan, request_key
from pcapkit.analysis import to_judge
from pcapkit.connections import connections
from tests import reference
from tests.oracle.batch import HeldBatch

FIXTURES = Path(__file__).parent.parent / "fixtures"
CAPTURES = sorted(
    str(p.relative_to(FIXTURES))
    for p in FIXTURES.glob("*/*.pcap*")
    if p.suffix in (".pcap", ".pcapng")
)


def same(core: Analysis, ref: Analysis) -> None:
    assert core.connections == ref.connections
    assert core.findings == ref.findings
    assert core.summary == ref.summary
    assert core.client == ref.client


@pytest.mark.parametrize("capture", CAPTURES)
def test_core_equals_reference_on_fixtures(capture: str) -> None:
    assert len(CAPTURES) >= 14
    same(analyze(FIXTURES / capture), reference.analyze(FIXTURES / capture))


def _gen() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gen.py"
    spec = importlib.util.spec_from_file_location("kaflow_bench_gen_ref", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("fmt", "linktype", "seed", "profile"),
    [
        ("pcap", "EN10MB", 3, "mixed"),
        ("pcapng", "EN10MB", 4, "mixed"),
        ("pcap", "LINUX_SLL2", 5, "mixed"),
        ("pcap", "EN10MB", 6, "small"),
        ("pcapng", "LINUX_SLL2", 7, "small"),
    ],
)
def test_core_equals_reference_on_generated_captures(
    tmp_path: Path, fmt: str, linktype: str, seed: int, profile: str
) -> None:
    """Busy keepalive traffic: overlapping connections, reused tuples, wrapping sequence
    numbers, retransmissions, closes by both sides, lost requests and retries."""
    path = tmp_path / f"gen.{fmt}"
    truth = _gen().generate(
        path,
        30_000,
        seed=seed,
        fmt=fmt,
        linktype=linktype,
        concurrency=60,
        ports=(40000, 40199),
        profile=profile,
    )
    core, ref = analyze(path), reference.analyze(path)
    assert core.summary.connections == truth["connections"]
    same(core, ref)


def _whole_batches(path: Path) -> list[tuple[Batch, HeldBatch]]:
    out = []
    for b in Scan([str(path)], [8080]):
        out.append((b, HeldBatch(connections(b, range(len(b))))))
    return out


@pytest.mark.parametrize("capture", CAPTURES)
def test_core_columns_equal_what_the_connections_say(capture: str) -> None:
    """What the core counts for the stages after it (responses, unanswered requests, the last
    answer's Connection: close, the request rows for retries) is what the connections it hands
    over say, counted the plain way."""
    batches = _whole_batches(FIXTURES / capture)
    assert batches
    for core, held in batches:
        for name in dir(core.connections):
            # the request heads' header names are bytes the connections do not keep: the
            # reference reads them off its own streams (test_core_equals_reference_on_fixtures)
            if name.startswith("conn_") and name != "conn_request_headers":
                assert getattr(core.connections, name) == getattr(held.connections, name), name
        assert core.request_rows() == held.request_rows()
        # the core's records are the connections' own values, field by field, in their order
        every = list(range(len(core)))
        assert [pickle.loads(r) for r in core.records(every)] == [
            pickle.loads(r) for r in held.records(every)
        ]


def _judged_both_ways(path: Path) -> int:
    """Judge each connection that may have findings as the analysis does (its facts, and for
    those that need more its :class:`~pcapkit.connections.Suspect`) and with the whole
    connection: the same findings and losses. How many connections needed more."""
    looked_into = 0
    for b in Scan([str(path)], [8080]):
        judged, looked = to_judge(b)
        whole = connections(b, [i for i, _ in judged])
        for (i, f), conn in zip(judged, whole, strict=True):
            assert classify.judge(f, looked.get(i)) == classify.judge(f, conn), conn.id
        looked_into += len(looked)
    return looked_into


def test_the_rules_judge_a_suspect_as_its_whole_connection() -> None:
    looked_into = sum(_judged_both_ways(FIXTURES / c) for c in CAPTURES)
    assert looked_into >= 20


def test_the_rules_judge_a_suspect_as_its_whole_connection_on_a_busy_capture(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gen.pcap"
    _gen().generate(path, 30_000, seed=8, concurrency=60, ports=(40000, 40199))
    assert _judged_both_ways(path) >= 5


def test_records_are_the_connections_asked_for_in_that_order() -> None:
    ((b, held),) = _whole_batches(FIXTURES / "idle-race-get" / "capture.pcap")
    assert len(b) >= 3
    which = [2, 0]
    assert connections(b, which) == [held.conns[2], held.conns[0]]
    assert connections(b, []) == []
    with pytest.raises(IndexError):
        b.records([len(b)])


def test_request_key_is_method_target_and_host() -> None:
    key = request_key("GET", "/a", "backend")
    assert key == request_key("GET", "/a", "backend")
    others = {
        request_key("POST", "/a", "backend"),
        request_key("GET", "/b", "backend"),
        request_key("GET", "/a", "other"),
        request_key("GET", "/a", None),
        request_key("GET", "/a", ""),
        request_key("GET/a", "", "backend"),
    }
    assert key not in others and len(others) == 6
    assert -(2**63) <= key < 2**63

"""The compiled core agrees with the straightforward Python reference on every real fixture and
on generated busy captures of both profiles.

``tests/reference.py`` reads with dpkt and rebuilds connections one packet at a time, and
``tests/oracle/`` labels them as the pure-Python kaflow did; the core reads, rebuilds and labels
in Rust. Same answers required, packet for packet: equal analyses give equal reports, so the
JSON is the last pure-Python release's.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from pcapkit import Analysis, analyze
from tests import reference

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

"""``benchmarks/floor.py`` must measure what it says: every message head of the capture, once."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from pcapkit import analyze

ROOT = Path(__file__).resolve().parents[1]


def _load() -> object:
    spec = importlib.util.spec_from_file_location(
        "kaflow_bench_floor", ROOT / "benchmarks" / "floor.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


floor = _load()


@pytest.mark.parametrize("name", ["idle-race-get", "max-requests", "agree"])
def test_heads_are_every_request_and_response_kaflow_reads(name: str) -> None:
    path = ROOT / "fixtures" / name / "capture.pcap"
    reqs, resps = floor.message_heads(path)  # type: ignore[attr-defined]
    s = analyze(path).summary
    assert sum(len(o) for _, o in reqs) == s.requests
    assert sum(len(o) for _, o in resps) == s.responses
    for data, offsets in reqs:
        assert all(data[at : at + 4] in (b"GET ", b"POST", b"HEAD", b"PUT ") for at in offsets)
    for data, offsets in resps:
        assert all(data[at : at + 5] == b"HTTP/" for at in offsets)


def test_prints_both_floors_and_the_json_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = ROOT / "fixtures" / "idle-race-get" / "capture.pcap"
    monkeypatch.setattr(sys, "argv", ["floor.py", str(path), "--repeat", "1", "--json"])
    floor.main()  # type: ignore[attr-defined]
    out = capsys.readouterr().out
    assert out.count("every process reads the file") == 3 and out.count("reading shared out") == 3
    assert out.count("+ JSON") == 2 and out.count("of 1M/s") == 2 and out.count("of 3M/s") == 4

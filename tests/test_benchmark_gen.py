"""kaflow against the ground truth of ``benchmarks/gen.py``, the benchmark's capture generator.

A small capture (20k packets, a narrow port range so 4-tuples are reused) must be analyzed
exactly as the generator says it was made: every connection attempt, who closed it, every
request and response, every request lost to the upstream's FIN and whether and where nginx
retried it, every failed connect, and every packet skipped with its reason. The seed is one whose
capture has every feature the truth counts (checked first, so a change to the generator cannot
quietly make this test weaker).
"""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from pcapkit import Analysis, analyze

GEN = Path(__file__).resolve().parents[1] / "benchmarks" / "gen.py"
SEED = 13


def _load_gen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kaflow_bench_gen", GEN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


gen = _load_gen()


def _generate(path: Path, **kw: Any) -> dict[str, Any]:
    truth: dict[str, Any] = gen.generate(
        path, 20_000, seed=SEED, concurrency=40, ports=(40000, 40099), **kw
    )
    return truth


def _mismatches(a: Analysis, truth: dict[str, Any]) -> list[str]:
    out: list[str] = []

    def check(what: str, got: object, want: object) -> None:
        if got != want:
            out.append(f"{what}: kaflow {got!r}, truth {want!r}")

    s, cap = a.summary, a.capture
    port = {c.id: c.client_port for c in a.connections}
    check("packets", cap.packets, truth["packets"])
    check("skipped", dict(cap.skipped), truth["skipped"])
    check("upstream segments", cap.upstream_segments, truth["upstream_segments"])
    check("connections", s.connections, truth["connections"])
    check("partial connections", s.partial_connections, truth["partial_connections"])
    check(
        "closed by client/server/none",
        {"client": s.closed_by_client, "server": s.closed_by_server, "none": s.not_closed},
        truth["closed_by"],
    )
    check("closed with RST", s.closed_with_rst, truth["closed_with_rst"])
    check(
        "server close reasons",
        dict(Counter(f.reason for f in a.findings if f.type == "server_initiated_close")),
        truth["server_close_reasons"],
    )
    check("requests", s.requests, truth["requests"])
    check("responses", s.responses, truth["responses"])
    check("unanswered requests", s.unanswered_requests, truth["unanswered_requests"])
    check("retransmissions", s.retransmissions, truth["retransmissions"])
    check(
        "lost requests",
        Counter(
            (f.request, port[f.connection], f.retried)
            for f in a.findings
            if f.type == "request_lost_to_fin"
        ),
        Counter((x["request"], x["client_port"], x["retried"]) for x in truth["lost_requests"]),
    )
    check(
        "retries",
        Counter(
            (f.request, port[f.connection], f.new_connection)
            for f in a.findings
            if f.type == "retry"
        ),
        Counter((x["request"], x["client_port"], x["new_connection"]) for x in truth["retries"]),
    )
    check(
        "connect failures",
        Counter(port[f.connection] for f in a.findings if f.type == "connect_failed"),
        Counter(x["client_port"] for x in truth["connect_failures"]),
    )
    check("anomalies", s.anomalies, 0)
    return out


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    path = tmp_path_factory.mktemp("gen") / "keepalive.pcap"
    return path, _generate(path)


def test_truth_has_every_feature(capture: tuple[Path, dict[str, Any]]) -> None:
    _, truth = capture
    assert truth["packets"] == 20_000
    assert set(truth["skipped"]) == {"other_ports", "non_tcp", "non_ip"}
    assert truth["reused_tuples"] > 0
    assert truth["seq_wrapped_connections"] > 0
    assert truth["retransmissions"] > 0
    assert truth["chunked_responses"] > 0
    assert truth["connect_failures"]
    assert set(truth["server_close_reasons"]) == {
        "idle_timeout",
        "connection_close",
        "request_in_flight",
        "reset",
    }
    assert truth["closed_by"]["client"] and truth["closed_by"]["none"]
    lost = truth["lost_requests"]
    assert any(x["request"].startswith("POST ") and not x["retried"] for x in lost)
    assert {x["new_connection"] for x in truth["retries"]} == {True, False}
    assert {"GET", "POST", "HEAD"} <= set(truth["methods"])


def test_kaflow_agrees_with_the_truth(capture: tuple[Path, dict[str, Any]]) -> None:
    path, truth = capture
    assert _mismatches(analyze(path, port=8080), truth) == []


def test_pcapng_linux_sll2(tmp_path: Path, capture: tuple[Path, dict[str, Any]]) -> None:
    """The same traffic as pcapng with Linux cooked v2 headers: the same analysis."""
    path = tmp_path / "keepalive.pcapng"
    truth = _generate(path, fmt="pcapng", linktype="LINUX_SLL2")
    assert {k: v for k, v in truth.items() if k != "generator"} == {
        k: v for k, v in capture[1].items() if k != "generator"
    }
    a = analyze(path, port=8080)
    assert a.capture.format == "pcapng" and a.capture.link_types == ("LINUX_SLL2",)
    assert _mismatches(a, truth) == []


def test_deterministic(tmp_path: Path, capture: tuple[Path, dict[str, Any]]) -> None:
    again = tmp_path / "again.pcap"
    _generate(again)
    assert again.read_bytes() == capture[0].read_bytes()


def test_small_profile(tmp_path: Path, capture: tuple[Path, dict[str, Any]]) -> None:
    """The busy-API profile: under half the bytes per packet, and kaflow still exact."""
    path = tmp_path / "small.pcap"
    truth = _generate(path, profile="small")
    assert truth["generator"]["profile"] == "small"
    assert path.stat().st_size * 2 < capture[0].stat().st_size
    assert truth["lost_requests"] and truth["retries"] and truth["chunked_responses"]
    assert _mismatches(analyze(path, port=8080), truth) == []

"""Nothing is dropped silently: the JSON report's ``capture`` section counts every packet that
did not become an upstream segment, by reason, so ``packets == upstream_segments +
skipped_total`` on any capture, crafted, mixed or fuzzed."""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pcapkit import analyze
from pcapkit.errors import KaflowError
from pcapkit.report.json_report import analysis_dict
from tests import craft
from tests.conversation import MS, T0, Conv, get, ok

A, B = "10.0.0.1", "10.0.0.2"


def _kinds() -> dict[str, tuple[bytes, str | None]]:
    """One packet (an Ethernet frame) of each kind, and the skip reason it must be counted as
    (None: an upstream segment)."""
    tcp_8080 = craft.tcp(A, B, 40000, 8080, flags="PA", payload=get("/"))
    cut = craft.frame(tcp_8080)[: 14 + 20 + 10]  # the TCP header is cut after 10 bytes
    bad_offset = craft.ipv4(A, B, 6, craft.tcp_segment(40000, 8080, data_offset=2) + b"xx")
    return {
        "upstream": (craft.frame(tcp_8080), None),
        "upstream_v6": (craft.frame(craft.tcp("fd00::1", "fd00::2", 40000, 8080, flags="S")), None),
        "other_port": (craft.frame(craft.tcp(A, B, 40000, 9090, flags="S")), "other_ports"),
        "udp": (craft.frame(craft.ipv4(A, B, 17, bytes(12))), "non_tcp"),
        "arp": (craft.frame(bytes(28), ethertype=0x0806), "non_ip"),
        "fragment": (
            craft.frame(craft.ipv4(A, B, 6, bytes(24), flags_frag=0x2000)),
            "ip_fragment",
        ),
        "truncated": (cut, "truncated"),
        "malformed": (craft.frame(bad_offset), "malformed"),
    }


KINDS = _kinds()


def _capture_section(path: Path) -> dict[str, Any]:
    section: dict[str, Any] = analysis_dict(analyze(path))["capture"]
    return section


def test_every_skip_reason_is_counted_in_the_json(tmp_path: Path) -> None:
    conv = Conv().handshake(T0).exchange(T0 + MS, get("/a"), ok())
    packets = [(t, craft.frame(p)) for t, p in sorted(conv.packets, key=lambda p: p[0])]
    extra = [(T0 + 10 * MS + k, frame) for k, (frame, _) in enumerate(KINDS.values())]
    path = tmp_path / "mixed.pcap"
    path.write_bytes(craft.pcap_bytes(packets + extra, framed=True))
    cap = _capture_section(path)
    assert cap["skipped"] == {
        "other_ports": 1,
        "non_tcp": 1,
        "non_ip": 1,
        "ip_fragment": 1,
        "truncated": 1,
        "malformed": 1,
    }
    assert cap["upstream_segments"] == len(packets) + 2
    assert cap["packets"] == len(packets) + len(KINDS)
    assert cap["packets"] == cap["upstream_segments"] + cap["skipped_total"]
    assert cap["tcp_segments"] == cap["upstream_segments"] + 1


def test_unsupported_interfaces_beside_a_supported_one_are_counted(tmp_path: Path) -> None:
    """pcapng with an 802.11 interface beside Ethernet: its packets are skipped, by name."""
    up = craft.tcp(A, B, 40000, 8080, flags="S")
    path = tmp_path / "two.pcapng"
    craft.write_pcapng(
        path,
        [("EN10MB", 6), (105, 6)],
        [(0, T0, up), (1, T0 + 1, bytes(30)), (1, T0 + 2, bytes(9))],
    )
    cap = _capture_section(path)
    assert cap["skipped"] == {"unsupported_link_type": 2}
    assert cap["link_types"] == ["EN10MB", "IEEE802_11"]
    assert cap["packets"] == cap["upstream_segments"] + cap["skipped_total"] == 3


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(sorted(KINDS)), min_size=1, max_size=40))
def test_any_mix_is_accounted_for_packet_by_packet(kinds: list[str]) -> None:
    packets = [(T0 + k * 1000, KINDS[kind][0]) for k, kind in enumerate(kinds)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mix.pcap"
        path.write_bytes(craft.pcap_bytes(packets, framed=True))
        try:
            cap = _capture_section(path)
        except KaflowError as e:  # nothing on the upstream port: the error says so
            assert all(KINDS[k][1] is not None for k in kinds), e
            return
    want = Counter(KINDS[k][1] for k in kinds if KINDS[k][1] is not None)
    assert cap["skipped"] == dict(want)
    assert cap["upstream_segments"] == sum(KINDS[k][1] is None for k in kinds)
    assert cap["packets"] == len(kinds) == cap["upstream_segments"] + cap["skipped_total"]

"""Property tests of the whole pipeline on hostile bytes: any input gives an Analysis or the
package's own KaflowError (one line), never another exception, and the capture summary accounts
for every packet. The same contract is fuzzed for hours by ``fuzz/fuzz_analyze.py``; here a small,
fast sample runs with every test run, and the harness itself is kept working.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import struct
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pcapkit import Analysis, analyze
from pcapkit.errors import KaflowError
from pcapkit.report import ReportOptions, reporter
from tests import craft

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = sorted(
    {
        *ROOT.glob("fixtures/*/capture.pcap"),
        *ROOT.glob("fixtures/formats/*.pcap"),
        *ROOT.glob("fixtures/formats/*.pcapng"),
    }
)
SEEDS = {p.relative_to(ROOT).as_posix(): p.read_bytes() for p in FIXTURES}
FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INTERESTING = (0, 1, 0x7F, 0x80, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 2 << 30, 262145)


def check(data: bytes, port: int = 8080) -> str:
    """Run ``data`` through analyze() and every report; the contract, or an AssertionError."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "input"
        path.write_bytes(data)
        try:
            a = analyze(path, port)
        except KaflowError as e:
            message = str(e)
            assert message and "\n" not in message, repr(message)
            return type(e).__name__
    assert isinstance(a, Analysis)
    cap = a.capture
    assert cap.packets == cap.upstream_segments + cap.skipped_total, cap
    assert sum(c.packets for c in a.connections) == cap.upstream_segments
    for c in a.connections:
        assert (c.closed_by is None) == (c.close is None) == (c.closed_at_ns is None)
    options = ReportOptions(connections="all", limit=10_000)
    for fmt in ("table", "json", "csv"):
        reporter(fmt).render(a, io.StringIO(), options)
    return "Analysis"


def _records(data: bytes) -> tuple[bytes, list[bytes]] | None:
    """A little-endian microsecond pcap split into its header and whole records."""
    if data[:4] != b"\xd4\xc3\xb2\xa1":
        return None
    out: list[bytes] = []
    off = 24
    while off + 16 <= len(data):
        (caplen,) = struct.unpack_from("<I", data, off + 8)
        if off + 16 + caplen > len(data):
            break
        out.append(data[off : off + 16 + caplen])
        off += 16 + caplen
    return data[:24], out


Mutation = tuple[str, int, int]


def mutate(data: bytes, mutations: list[Mutation]) -> bytes:
    """Apply (kind, position, value) mutations: position and value are taken modulo what fits."""
    for kind, at, value in mutations:
        if not data:
            break
        if kind == "flip":
            b = bytearray(data)
            b[at % len(b)] ^= value % 255 + 1
            data = bytes(b)
        elif kind == "int32" and len(data) >= 4:
            b = bytearray(data)
            struct.pack_into("<I", b, at % (len(b) - 3), INTERESTING[value % len(INTERESTING)])
            data = bytes(b)
        elif kind == "cut":
            data = data[: at % (len(data) + 1)]
        elif kind in ("swap", "duplicate", "drop") and (parts := _records(data)) and parts[1]:
            head, recs = parts
            i, j = at % len(recs), value % len(recs)
            if kind == "swap":
                recs[i], recs[j] = recs[j], recs[i]
            elif kind == "duplicate":
                recs[i + 1 : i + 1] = [recs[i]] * (value % 20 + 1)
            else:
                del recs[i]
            data = head + b"".join(recs)
    return data


mutations = st.lists(
    st.tuples(
        st.sampled_from(["flip", "flip", "int32", "cut", "swap", "duplicate", "drop"]),
        st.integers(0, 1 << 20),
        st.integers(0, 1 << 20),
    ),
    min_size=1,
    max_size=6,
)


@FAST
@given(seed=st.sampled_from(sorted(SEEDS)), changes=mutations, wrap=st.booleans())
def test_mutated_real_captures_never_crash(seed: str, changes: list[Mutation], wrap: bool) -> None:
    data = mutate(SEEDS[seed], changes)
    check(gzip.compress(data, 1) if wrap else data)


@FAST
@given(
    data=st.binary(max_size=2000),
    prefix=st.sampled_from(["none", "pcap", "pcapng", "gzip-pcap"]),
)
def test_any_bytes_through_the_whole_pipeline(data: bytes, prefix: str) -> None:
    if prefix == "pcap":
        data = craft.pcap_bytes([]) + data
    elif prefix == "pcapng":
        data = craft.pcapng_shb() + craft.pcapng_idb("EN10MB") + data
    elif prefix == "gzip-pcap":
        data = gzip.compress(craft.pcap_bytes([]) + data)
    check(data)


@FAST
@given(
    payloads=st.lists(
        st.one_of(
            st.binary(max_size=300),
            st.sampled_from(
                [
                    b"GET / HTTP/1.1\r\n\r\n",
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nz\r\n",
                    b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
                    b"\x16\x03\x01\x00\x05hello",
                    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
                ]
            ),
        ),
        min_size=1,
        max_size=12,
    ),
    seqs=st.lists(st.integers(0, 2**32 - 1), min_size=12, max_size=12),
    flags=st.lists(st.sampled_from(["PA", "A", "S", "SA", "F", "FA", "R", "RA"]), min_size=12),
)
def test_arbitrary_segments_on_the_upstream_port(
    payloads: list[bytes], seqs: list[int], flags: list[str]
) -> None:
    """Segments with any payload, sequence numbers and flags, in both directions."""
    packets = []
    for k, payload in enumerate(payloads):
        to_server = k % 2 == 0
        sport, dport = (40000, 8080) if to_server else (8080, 40000)
        src, dst = ("10.0.0.1", "10.0.0.2") if to_server else ("10.0.0.2", "10.0.0.1")
        pkt = craft.tcp(src, dst, sport, dport, seq=seqs[k], flags=flags[k], payload=payload)
        packets.append((1_700_000_000 * 10**9 + k * 1000, pkt))
    said = check(craft.pcap_bytes(packets))
    # a SYN from the upstream's port answered by a SYN-ACK to it is a handshake the wrong way
    # round: refused with the port to give, the one refusal such segments may earn
    reversed_handshake = any(f == "S" for f in flags[1 : len(payloads) : 2]) and any(
        f == "SA" for f in flags[0 : len(payloads) : 2]
    )
    assert said == "Analysis" or (said == "WrongPortError" and reversed_handshake)


def _load_harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_analyze", ROOT / "fuzz" / "fuzz_analyze.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_analyze"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("seed", [1, 2])
def test_the_fuzz_harness_runs_clean(seed: int) -> None:
    stats = _load_harness().run_loop(iterations=60, seed=seed, artifacts=None)
    assert stats.crashes == 0 and stats.harness_errors == 0, stats.findings
    assert stats.iterations == 60

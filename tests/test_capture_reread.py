"""Payloads read back from the capture file must be the bytes the first read saw."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from pcapkit.capture import FileBytes, open_capture
from pcapkit.errors import MalformedCaptureError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def test_pieces_in_any_order_overlapping_and_far_apart(tmp_path: Path) -> None:
    data = random.Random(7).randbytes(1 << 20)
    path = tmp_path / "blob"
    path.write_bytes(data)
    rng = random.Random(8)
    offs = [rng.randrange(0, len(data) - 3000) for _ in range(5000)] + [0, len(data) - 1]
    lens = [rng.randrange(0, 3000) for _ in range(5000)] + [5, 1]
    with FileBytes(str(path)) as fb:
        got = fb.gather(np.array(offs, dtype=np.int64), np.array(lens, dtype=np.int64))
        assert fb.gather(np.array([], dtype=np.int64), np.array([], dtype=np.int64)) == b""
    assert got == b"".join(data[o : o + n] for o, n in zip(offs, lens, strict=True))


def test_payloads_of_a_capture_read_back_equal_the_windows(tmp_path: Path) -> None:
    path = FIXTURES / "agree" / "capture.pcap"
    with open_capture(path) as cap:
        assert cap.rereadable == str(path)
        batches = list(cap)
    with FileBytes(str(path)) as fb:
        for b in batches:
            assert b.file_base is not None
            want = b"".join(b.payload(i) for i in range(len(b)))
            offs = b.file_base + b.payload_off
            assert fb.gather(offs, b.captured_len.astype(np.int64)) == want


def test_gzip_is_not_rereadable(tmp_path: Path) -> None:
    import gzip

    src = FIXTURES / "agree" / "capture.pcap"
    gz = tmp_path / "c.pcap.gz"
    gz.write_bytes(gzip.compress(src.read_bytes()))
    with open_capture(gz) as cap:
        assert cap.rereadable is None
        assert all(b.file_base is None for b in cap)


def test_a_file_cut_meanwhile_is_an_error_not_garbage(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"x" * 100_000)
    with FileBytes(str(path)) as fb:
        path.write_bytes(b"x" * 10)
        with pytest.raises(MalformedCaptureError, match="changed while being read"):
            fb.gather(np.array([50_000], dtype=np.int64), np.array([10], dtype=np.int64))


def test_payloads_read_back_or_held_give_the_same_analysis(tmp_path: Path) -> None:
    """A plain file is read back (payloads not held); its gzip copy is held: same analysis."""
    import gzip

    from pcapkit import analyze
    from tests.test_benchmark_gen import SEED, gen

    plain = tmp_path / "busy.pcap"
    gen.generate(plain, 20_000, seed=SEED, concurrency=40, ports=(40000, 40099))
    gz = tmp_path / "busy.pcap.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes(), compresslevel=1))
    a, b = analyze(plain), analyze(gz)
    assert a.connections == b.connections and a.findings == b.findings
    assert sum(c.server_bytes for c in a.connections) > 1_000_000

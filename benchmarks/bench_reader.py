"""How fast the capture reader walks and decodes a capture, in-process, against a dpkt loop.

    python benchmarks/bench_reader.py [--packets 1000000] [--window-mib 4] [--keep FILE]

Writes a synthetic Ethernet pcap of keepalive-HTTP-sized TCP packets (pure ACKs, small requests,
responses of a few hundred bytes to a full MSS) and reports records/s for iterating
``CaptureReader`` to the end and for ``dpkt.pcap.Reader`` + ``dpkt.ethernet.Ethernet``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pcapkit.capture import CaptureReader
from tests.craft import frame, tcp


def make_capture(path: Path, count: int) -> None:
    rng = random.Random(7)
    templates: list[bytes] = []
    for k in range(512):
        client = f"10.0.{k % 4}.{1 + k % 200}"
        sport = 30000 + k
        templates.append(frame(tcp(client, "10.1.0.1", sport, 8080, flags="A", seq=k, ack=k)))
        req = b"GET /api/item/%d HTTP/1.1\r\nHost: up\r\n\r\n" % k
        templates.append(frame(tcp(client, "10.1.0.1", sport, 8080, flags="PA", payload=req)))
        size = rng.choice([120, 300, 700, 1448])
        reply = tcp("10.1.0.1", client, 8080, sport, flags="PA", payload=bytes(size))
        templates.append(frame(reply))
    ts = 1_700_000_000_000_000
    parts = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
    weights = [0.5, 0.25, 0.25]
    for _ in range(count):
        k = rng.randrange(512) * 3 + rng.choices((0, 1, 2), weights)[0]
        data = templates[k]
        ts += rng.randrange(1, 40)
        parts.append(struct.pack("<IIII", ts // 1_000_000, ts % 1_000_000, len(data), len(data)))
        parts.append(data)
    path.write_bytes(b"".join(parts))


def bench_reader(path: Path, window: int) -> tuple[float, int]:
    t = time.perf_counter()
    segments = 0
    with CaptureReader(path, window_bytes=window) as reader:
        for batch in reader:
            segments += len(batch)
        packets = reader.info.packets
    assert segments == packets
    return time.perf_counter() - t, packets


def bench_dpkt(path: Path) -> tuple[float, int]:
    import dpkt

    t = time.perf_counter()
    n = 0
    with path.open("rb") as f:
        for _ts, buf in dpkt.pcap.Reader(f):
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.tcp.TCP):
                n += 1
    return time.perf_counter() - t, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--window-mib", type=float, default=4)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="write the capture here and keep it")
    parser.add_argument("--no-dpkt", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "bench.pcap"
        make_capture(path, args.packets)
        mib = path.stat().st_size / (1 << 20)
        print(f"{args.packets:,} packets, {mib:.1f} MiB, window {args.window_mib} MiB")
        window = int(args.window_mib * (1 << 20))
        times = []
        for _ in range(args.repeat):
            dt, n = bench_reader(path, window)
            times.append(dt)
        ours = statistics.median(times)
        print(f"CaptureReader: {n / ours / 1e6:.2f} M records/s (median of {args.repeat})")
        if not args.no_dpkt:
            dt, _ = bench_dpkt(path)
            print(f"dpkt Reader + Ethernet(): {n / dt / 1e6:.3f} M records/s")
            print(f"ratio: {dt / ours:.1f}x")


if __name__ == "__main__":
    main()

"""The least time any pure-Python analysis of a capture can take: a floor under kaflow's speed.

    python benchmarks/floor.py FILE [--jobs 2] [--repeat 3]

kaflow's analysis must read every packet and read the head of every HTTP message (the head says
where the next message starts: Content-Length, chunked, close). This measures the cheapest form
of each, on the capture given, and adds them up:

- ``start``: a fresh interpreter importing what ``kaflow analyze`` imports;
- ``read``: kaflow's capture reader alone, records to columnar segments (numpy, 4 MiB windows);
- ``heads``: one regex match per message head, with kaflow's own head patterns, at positions
  found beforehand: no framing, no objects, no events, no TCP reassembly;
- ``touch``: cheaper still, one ``bytes.find`` of the head's end per message, which reads no
  header at all: the least Python can do per message and still look at it.

The floor takes the cheaper of the two. With ``--json``, also:

- ``encode``: kaflow's JSON line for every connection (``connection_json``, faster than the
  standard library's C encoder on these values), from connections already labelled. The JSON
  export's floor adds it, shared out over the processes like the heads.
It is ``start + read + heads / jobs`` when every process reads the whole file (as
kaflow does: a connection's packets are spread over all of it), and ``start + (read + heads) /
jobs`` if reading could be shared out too. A real analysis does all the rest on top (TCP
reassembly, framing, events, classification, the report), so its packets/s is below either.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from pcapkit.capture import open_capture
from pcapkit.http import _TURBO_REQUEST, _TURBO_STATUS, frame_rows
from pcapkit.tcp import Reconstructor, TcpConnection

TARGET = 3_000_000  # packets/s, whole process: the goals docs/performance.md measures against
JSON_TARGET = 1_000_000


def start_up(repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import pcapkit.cli, pcapkit.analysis"], check=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def read(path: Path) -> tuple[int, float]:
    t = time.perf_counter()
    with open_capture(path) as cap:
        for _ in cap:
            pass
    return cap.info.packets, time.perf_counter() - t


Heads = list[tuple[bytes, list[int]]]  # by stream: its bytes, where each message head starts


def message_heads(path: Path) -> tuple[Heads, Heads]:
    """Every request head and every response head of the capture's contiguous streams."""
    reqs: Heads = []
    resps: Heads = []
    rec = Reconstructor(frozenset({8080}))  # payloads held: the floor must not count reading back

    def take(tc: TcpConnection) -> None:
        up, down = tc.to_server.stream, tc.to_client.stream
        rows, _ = frame_rows("request", up, down, midstream=tc.partial)
        methods = [r[4] for r in rows]
        for st, out in ((up, reqs), (down, resps)):
            if st.starts and st.contiguous:
                if st is down:
                    rows, _ = frame_rows("response", st, up, methods, midstream=tc.partial)
                base = st.starts[0]
                out.append((st.data, [r[0] - base for r in rows if r[9] is not None]))

    with open_capture(path) as cap:
        for batch in cap:
            for tc in rec.feed(batch):
                take(tc)
        for tc in rec.finish():
            take(tc)
    return reqs, resps


def match_all(reqs: Heads, resps: Heads) -> float:
    t = time.perf_counter()
    for streams, pattern in ((reqs, _TURBO_REQUEST), (resps, _TURBO_STATUS)):
        match = pattern.match
        for data, offsets in streams:
            for at in offsets:
                match(data, at)
    return time.perf_counter() - t


def touch_all(reqs: Heads, resps: Heads) -> float:
    t = time.perf_counter()
    for data, offsets in (*reqs, *resps):
        find = data.find
        for at in offsets:
            find(b"\r\n\r\n", at)
    return time.perf_counter() - t


def encode(path: Path, repeat: int) -> float:
    from pcapkit.analysis import analyze
    from pcapkit.report.json_report import connection_json

    conns = list(analyze(path).connections)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        for c in conns:
            connection_json(c)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("capture", type=Path)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="measure the JSON export's floor too")
    args = ap.parse_args()

    start = start_up(args.repeat)
    reads = [read(args.capture) for _ in range(args.repeat)]
    packets = reads[0][0]
    r = statistics.median(t for _, t in reads)
    reqs, resps = message_heads(args.capture)
    messages = sum(len(o) for _, o in reqs) + sum(len(o) for _, o in resps)
    h_re = statistics.median(match_all(reqs, resps) for _ in range(args.repeat))
    h_find = statistics.median(touch_all(reqs, resps) for _ in range(args.repeat))
    h = min(h_re, h_find)

    j = args.jobs
    whole = start + r + h / j
    shared = start + (r + h) / j
    print(f"{args.capture}: {packets:,} packets, {messages:,} HTTP message heads")
    print(f"  start   {start:7.3f} s   interpreter + imports")
    print(f"  read    {r:7.3f} s   {r / packets * 1e9:6.0f} ns a packet")
    m = max(messages, 1)
    print(f"  heads   {h_re:7.3f} s   {h_re / m * 1e9:6.0f} ns a message head (regex)")
    print(f"  touch   {h_find:7.3f} s   {h_find / m * 1e9:6.0f} ns a message (bytes.find)")
    floors = [("every process reads the file", whole), ("reading shared out", shared)]
    if args.json:
        e = encode(args.capture, args.repeat)
        print(f"  encode  {e:7.3f} s   {e / packets * 1e9:6.0f} ns a packet (JSON lines)")
        floors += [(f"JSON, {n}", w + e / j) for n, w in floors]
    for name, wall in floors:
        rate = packets / wall
        goal = JSON_TARGET if name.startswith("JSON") else TARGET
        print(
            f"  floor, {j} processes, {name}: {wall:.3f} s = {rate / 1e6:.2f}M packets/s "
            f"({rate / goal:.2f} of the {goal / 1e6:.0f}M/s goal)"
        )


if __name__ == "__main__":
    main()

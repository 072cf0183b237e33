"""The least time any pure-Python analysis of a capture can take: a floor under kaflow's speed.

    python benchmarks/floor.py FILE [--jobs 2] [--repeat 3] [--goal 3e6] [--json]

kaflow's analysis must read every packet and look at the head of every HTTP message (the head
says where the next message starts: Content-Length, chunked, close). This measures the cheapest
form of each on the capture given, and adds them up:

- ``start``: a fresh interpreter importing what ``kaflow analyze`` imports;
- ``read``: kaflow's capture reader alone, records to columnar segments (numpy, 4 MiB windows);
- ``find``: one ``bytes.find`` of the head's end per message, at positions found beforehand,
  which reads no header at all: the least Python can do per message and still look at it;
- ``regex``: instead, one match of kaflow's own head pattern per message (what a head's
  framing is read with): no objects, no events, no TCP reassembly;
- ``encode`` (``--json``): kaflow's JSON line for every connection (``connection_json``, faster
  than the standard library's C encoder on these values), from connections already labelled.

The floor is ``start + read + work / jobs`` when every process reads the whole file (as kaflow
does: a connection's packets are spread over all of it), and ``start + (read + work) / jobs`` if
reading could be shared out too. A real analysis does all the rest on top (TCP reassembly,
framing, events, classification, the report): "left" is the CPU time per packet that the goal
leaves for all of that.
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
    ap.add_argument("--goal", type=float, default=TARGET, help="packets/s (default 3M)")
    ap.add_argument("--json", action="store_true", help="measure the JSON export's floor too")
    ap.add_argument("--json-goal", type=float, default=JSON_TARGET, help="(default 1M)")
    args = ap.parse_args()

    start = start_up(args.repeat)
    reads = [read(args.capture) for _ in range(args.repeat)]
    packets = reads[0][0]
    r = statistics.median(t for _, t in reads)
    reqs, resps = message_heads(args.capture)
    messages = sum(len(o) for _, o in reqs) + sum(len(o) for _, o in resps)
    looks = {
        "find": statistics.median(touch_all(reqs, resps) for _ in range(args.repeat)),
        "regex": statistics.median(match_all(reqs, resps) for _ in range(args.repeat)),
    }
    m = max(messages, 1)
    print(f"{args.capture}: {packets:,} packets, {messages:,} HTTP message heads")
    print(f"  start   {start:7.3f} s   a fresh interpreter with kaflow's imports")
    print(f"  read    {r:7.3f} s   {r / packets * 1e9:6.0f} ns a packet")
    for k, how in (("find", "bytes.find"), ("regex", "head regex")):
        print(f"  {k:7} {looks[k]:7.3f} s   {looks[k] / m * 1e9:6.0f} ns a message: {how}")
    rows = [(f"one {k} a message", looks[k], args.goal) for k in looks]  # (what, work, goal)
    if args.json:
        e = encode(args.capture, args.repeat)
        print(f"  encode  {e:7.3f} s   {e / packets * 1e9:6.0f} ns a packet: JSON lines")
        rows.append(("one find a message + JSON", looks["find"] + e, args.json_goal))
    j = args.jobs
    print(
        f"floor with {j} processes; left: CPU time a packet that the goal leaves for all the rest"
    )
    for what, work, goal in rows:
        for how, wall in (
            ("every process reads the file", start + r + work / j),
            ("reading shared out too", start + (r + work) / j),
        ):
            rate = packets / wall
            left = (packets / goal - wall) * j / packets * 1e9
            print(
                f"  {what:27} {how:29} {rate / 1e6:5.2f}M packets/s  "
                f"{rate / goal:4.2f} of {goal / 1e6:g}M/s  left {max(left, 0):4.0f} ns"
            )


if __name__ == "__main__":
    main()

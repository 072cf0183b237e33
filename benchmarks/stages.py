"""Where kaflow's time goes on one capture: each stage of the pipeline timed on its own, in-process.

    python benchmarks/stages.py FILE [--repeat 3]

Stages, each run from the start of the file so that every line is a whole pass:

- ``read``: the capture reader alone (records → columnar segments);
- ``read+tcp``: plus TCP reconstruction (connections, payloads read back from the file);
- ``read+tcp+label``: plus HTTP framing, events, states (one ``Connection`` per connection);
- ``analyze``: the whole one-process analysis as the command line runs it for the default
  report (classification, summary, the timelines it keeps spooled).

Each stage's own cost is its line minus the line before. Medians of ``--repeat`` runs; the
machine's other work skews them, so compare lines of one run, not runs of different days.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from pcapkit.analysis import analyze, reconstructor
from pcapkit.capture import open_capture
from pcapkit.label import build_connection
from pcapkit.report.table import FirstFlagged


def read(path: Path) -> int:
    with open_capture(path) as cap:
        return sum(len(b) for b in cap)


def read_tcp(path: Path, label: bool = False) -> int:
    n = 0
    with open_capture(path) as cap, reconstructor(cap, (8080,)) as rec:
        for batch in cap:
            for tc in rec.feed(batch):
                n += 1
                if label:
                    build_connection(tc)
        for tc in rec.finish():
            n += 1
            if label:
                build_connection(tc)
    return n


def whole(path: Path) -> int:
    return analyze(path, keep=FirstFlagged(20), spool=True).summary.connections


STAGES: list[tuple[str, Callable[[Path], int]]] = [
    ("read", read),
    ("read+tcp", read_tcp),
    ("read+tcp+label", lambda p: read_tcp(p, label=True)),
    ("analyze", whole),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    packets = read(args.file)
    print(f"{args.file}: {packets:,} TCP segments; median of {args.repeat} runs")
    previous = 0.0
    for name, run in STAGES:
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            run(args.file)
            times.append(time.perf_counter() - t0)
        t = statistics.median(times)
        print(f"  {name:<16} {t:7.2f} s  (+{t - previous:5.2f} s)  {packets / t / 1e6:5.2f}M/s")
        previous = t


if __name__ == "__main__":
    main()

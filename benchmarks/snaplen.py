"""The smallest snaplen (tcpdump -s) at which each fixture's analysis is the whole capture's:
the same connections, requests (named), responses (statuses, Connection: close), findings.

    .venv/bin/python benchmarks/snaplen.py            # needs editcap

Each capture is cut with ``editcap -s N`` (what ``tcpdump -s N`` would have kept) and analyzed;
the answer per fixture is the smallest N, found by bisection, from which on every larger one
tried agrees too (checked at N, N+1, ..., N+16 and at every 16th above, to the largest frame).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from pcapkit import KaflowError, analyze
from pcapkit.report.json_report import analysis_dict

FIXTURES = Path(__file__).parent.parent / "fixtures"


def body(path: Path, port: int) -> dict[str, object]:
    d = analysis_dict(analyze(path, port))
    d.pop("capture")
    d.pop("generator")
    return d


def agrees(capture: Path, port: int, snaplen: int, whole: dict[str, object], tmp: Path) -> bool:
    cut = tmp / f"s{snaplen}.pcapng"  # pcapng keeps nanosecond stamps
    subprocess.run(
        ["editcap", "-F", "pcapng", "-s", str(snaplen), str(capture), str(cut)], check=True
    )
    try:
        return body(cut, port) == whole
    except KaflowError:  # too short to hold even the TCP headers
        return False


def smallest(capture: Path, port: int, tmp: Path) -> int:
    whole = body(capture, port)
    lo, hi = 1, 1600
    while lo < hi:
        mid = (lo + hi) // 2
        if agrees(capture, port, mid, whole, tmp):
            hi = mid
        else:
            lo = mid + 1
    above = [*range(lo, lo + 17), *range(lo + 32, 1601, 16)]
    if not all(agrees(capture, port, n, whole, tmp) for n in above):
        raise SystemExit(f"{capture}: the analysis does not settle from -s {lo} on")
    return lo


def main() -> int:
    import json

    worst = 0
    with tempfile.TemporaryDirectory() as t:
        for capture in sorted(FIXTURES.glob("*/*.pcap")):
            truth = capture.parent / "truth.json"
            port = json.loads(truth.read_text())["port"] if truth.exists() else 8080
            n = smallest(capture, port, Path(t))
            worst = max(worst, n)
            print(f"{capture.relative_to(FIXTURES)}: -s {n}")
    print(f"all fixtures: -s {worst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

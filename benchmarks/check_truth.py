"""kaflow's analysis of a generated capture against the generator's truth, as the command runs it.

    python benchmarks/check_truth.py FILE

The same comparison as ``tests/test_benchmark_gen.py`` (every count and list the truth has), on
a capture too big for the test suite: the benchmark's numbers are worth something only if the
analysis measured is the right one. Exit 0 when everything matches, 1 (and the differences)
when not.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pcapkit import analyze  # noqa: E402
from tests.test_benchmark_gen import _mismatches  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    args = parser.parse_args()
    truth = json.loads(args.file.with_name(args.file.name + ".truth.json").read_text())
    t0 = time.perf_counter()
    a = analyze(args.file, port=8080)
    took = time.perf_counter() - t0
    wrong = _mismatches(a, truth)
    s = a.summary
    print(
        f"{args.file}: {s.connections:,} connections, {s.requests:,} requests, "
        f"findings {dict(s.findings)}; {len(wrong)} mismatches ({took:.1f} s)"
    )
    for line in wrong:
        print("  " + line)
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Re-derive the expected rows and notes of framing cases with today's Python reference.

The cases in ``golden/frames-*.jsonl`` were drawn at random (``dump.py frames``); when the
reference's framing rules change on purpose (``tests/oracle/http.py``), their expectations are
re-derived from it, the streams kept as they are:

    PYTHONPATH=. python3 crates/kaflow-core/tests/oracle/reframe.py FILE.jsonl

Prints the cases whose answer changed, and rewrites the file.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from tests.oracle.flows import Stream
from tests.oracle.http import frame_rows


def _stream(d: dict[str, Any]) -> Stream:
    return Stream(
        starts=d["starts"],
        lengths=d["lengths"],
        ts=d["ts"],
        frames=d["frames"],
        captured=d["captured"],
        data_starts=d["data_starts"],
        data=bytes.fromhex(d["data"]),
    )


def main(path: str) -> None:
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    out = []
    for i, line in enumerate(lines):
        case = json.loads(line)
        rows, notes = frame_rows(
            case["kind"],
            _stream(case["stream"]),
            _stream(case["other"]),
            case["methods"],
            midstream=case["midstream"],
        )
        new_rows = [list(r) for r in rows]
        new_notes = [[n.offset, n.ts_ns, n.frame, n.what] for n in notes]
        if new_rows != case["rows"] or new_notes != case["notes"]:
            print(f"case {i}: was {case['rows']} {case['notes']}\n   now {new_rows} {new_notes}")
        case["rows"], case["notes"] = new_rows, new_notes
        out.append(json.dumps(case))
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])

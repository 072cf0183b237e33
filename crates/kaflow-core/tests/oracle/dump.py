"""Dump what Python's labelling makes of captures, as JSON lines, for tests/label_oracle.rs.

Run it on a tree where the Python pipeline is whole (commit 230f27a (the last pure-Python release) has it):

    git archive 230f27a (the last pure-Python release) | tar -x -C /tmp/kaflow-head
    PYTHONPATH=/tmp/kaflow-head python3 dump.py capture OUT.jsonl CAPTURE [PORT...]
    PYTHONPATH=/tmp/kaflow-head python3 dump.py frames OUT.jsonl SEED N P_ODD  # random framing cases

Each `capture` line: {"tc": TcpConnection, "conn": Connection}. Each `frames` line: one call of
pcapkit.http.frame_rows with its rows and notes (P_ODD: how often a part is written oddly: a
header name with white space, a bare LF, a hole, a snaplen cut, ...). Streams carry their bytes
as hex. `tests/label_oracle.rs` replays the files in `golden/` and in $KAFLOW_ORACLE_DIR.
"""

from __future__ import annotations

import json
import random
import sys

from pcapkit.label import build_connection
from pcapkit.tcp import Chunk, Stream

from pcapkit import analysis, http


def stream(s: Stream) -> dict:
    return {
        "starts": list(s.starts),
        "lengths": list(s.lengths),
        "ts": list(s.ts),
        "frames": list(s.frames),
        "captured": list(s.captured),
        "data_starts": list(s.data_starts),
        "data": bytes(s.data).hex(),
    }


def mark(m) -> list[int] | None:
    return None if m is None else [m.ts_ns, m.frame, m.offset]


def flow(f) -> dict:
    return {
        "stream": stream(f.stream),
        "syn": mark(f.syn),
        "syn_count": f.syn_count,
        "fin": mark(f.fin),
        "rst": mark(f.rst),
        "packets": f.packets,
        "retransmissions": f.retransmissions,
        "bytes": f.bytes,
        "missing": f.missing,
        "last_ts_ns": f.last_ts_ns,
        "late_data": [mark(m) for m in f.late_data],
        "ignored_rsts": f.ignored_rsts,
    }


def tcpconn(tc) -> dict:
    return {
        "id": tc.id,
        "client_port": tc.client_port,
        "server_port": tc.server_port,
        "ip_version": tc.ip_version,
        "first_ts_ns": tc.first_ts_ns,
        "first_frame": tc.first_frame,
        "last_ts_ns": tc.last_ts_ns,
        "partial": tc.partial,
        "to_server": flow(tc.to_server),
        "to_client": flow(tc.to_client),
    }


def event(e) -> list:
    return [
        e.time_ns,
        e.type,
        e.side,
        e.frame,
        e.method,
        e.target,
        e.host,
        e.status,
        e.connection_close,
        e.request_index,
        e.length,
        e.note,
    ]


def request(r) -> list:
    return [
        r.index,
        r.method,
        r.target,
        r.host,
        r.sent_at_ns,
        r.frame,
        r.status,
        r.responded_at_ns,
        r.response_frame,
        r.connection_close,
    ]


def anomaly(a) -> list:
    return [a.time_ns, a.frame, a.side, a.what]


def connection(c) -> dict:
    return {
        "opened_by": c.opened_by,
        "established_at_ns": c.established_at_ns,
        "closed_by": c.closed_by,
        "close": c.close,
        "closed_at_ns": c.closed_at_ns,
        "last_response_ns": c.last_response_ns,
        "partial": c.partial,
        "state": c.state,
        "history": c.history,
        "syn_count": c.syn_count,
        "packets": c.packets,
        "client_bytes": c.client_bytes,
        "server_bytes": c.server_bytes,
        "retransmissions": c.retransmissions,
        "requests": [request(r) for r in c.requests],
        "events": [event(e) for e in c.events],
        "anomalies": [anomaly(a) for a in c.anomalies],
    }


def dump_capture(out: str, path: str, ports: tuple[int, ...]) -> None:
    n = 0
    with open(out, "w") as fh:

        def labelled(tc):
            nonlocal n
            c = build_connection(tc)
            fh.write(json.dumps({"tc": tcpconn(tc), "conn": connection(c)}) + "\n")
            n += 1
            return c

        analysis.build_connection = labelled
        analysis.scan_file(path, ports, lambda c: None)
    print(f"{path}: {n} connections -> {out}", file=sys.stderr)


# ---- random framing cases: odd heads, bodies, holes, snaplen cuts ----

NAMES = [b"Content-Length", b"Transfer-Encoding", b"Connection", b"Host", b"X-Other"]
VALUES = {
    b"Content-Length": [b"0", b"3", b" 3 ", b"3, 3", b"x", b"9" * 20, b"", b"5,", b"003"],
    b"Transfer-Encoding": [b"chunked", b"gzip, chunked", b"identity", b"CHUNKED", b""],
    b"Connection": [b"close", b"keep-alive", b"Keep-Alive, close", b"upgrade", b""],
    b"Host": [b"h", b"", b" h:80 ", b"a\rb", b"\xe9t\xe9", b"x y"],
    b"X-Other": [b"a :b", b"1", b"GET / HTTP/1.1", b"\x00\xff"],
}


def header(r: random.Random, p_odd: float) -> bytes:
    name = r.choice(NAMES)
    value = r.choice(VALUES[name])
    if r.random() < p_odd:
        name = r.choice(
            [
                name.lower(),
                name.upper(),
                b" " + name,
                name + b" ",
                b"\t" + name,
                name + b"\x0b",
                b"\r" + name,
                name + b"\r",
            ]
        )
    sep, end = b": ", b"\r\n"
    if r.random() < p_odd:
        sep = r.choice([b":", b":\t", b" : ", b""])
        end = r.choice([b"\n", b"\r\r\n", b"\r\n"])
    return name + sep + value + end


def pick(r: random.Random, plain: list[bytes], odd: list[bytes], p_odd: float) -> bytes:
    return r.choice(odd) if r.random() < p_odd else r.choice(plain)


def message(r: random.Random, kind: str, p_odd: float) -> bytes:
    if kind == "request":
        method = pick(r, [b"GET", b"HEAD", b"POST"], [b"get", b"PRI", b"M-1_X", b"A" * 33], p_odd)
        target = pick(
            r,
            [b"/", b"/a?b=c", b"*", b"/\xe9"],
            [b"/x\x00y", b"", b"/" + b"t" * 9000, b"/" + b"t" * 8191],
            p_odd,
        )
        version = pick(r, [b"HTTP/1.1", b"HTTP/1.0"], [b"HTTP/2", b"HTTP/x.1"], p_odd)
        start = method + b" " + target + b" " + version
    else:
        version = pick(r, [b"1.1", b"1.0"], [b"2.0", b"1.x"], p_odd)
        code = pick(
            r, [b"200", b"204", b"304", b"100", b"404", b"101"], [b"099", b"20", b"2000"], p_odd
        )
        start = b"HTTP/" + version + b" " + code + pick(r, [b" OK", b"", b" "], [b" A\rB"], p_odd)
    nl = pick(r, [b"\r\n"], [b"\n", b"\r\r\n"], p_odd)
    hdrs = b"".join(header(r, p_odd) for _ in range(r.randint(0, 5)))
    head = start + nl + hdrs + pick(r, [b"\r\n"], [b"\n", b""], p_odd)
    body = pick(
        r,
        [b"", b"abc", b"3\r\nabc\r\n0\r\n\r\n", b"0\r\nX: y\r\n\r\n"],
        [
            b"3;ext=1\r\nabc\r\n0\r\n\r\n",
            b"10000000000000000\r\n",
            b"3\nabc\n0\n\n",
            b"3\r\nabcXY",
            b"\x16\x03\x01\x00\x05hello",
            b"garbage\r\n",
            b"0\r\n \r\n",
        ],
        p_odd,
    )
    return head + body


def randstream(r: random.Random, kind: str, t0: int, p_odd: float) -> Stream:
    parts = [message(r, kind, p_odd) for _ in range(r.randint(1, 6))]
    blob = b"".join(parts)
    chunks: list[Chunk] = []
    off = r.choice([0, 0, 0, -1, -5, 7])
    i = 0
    k = 0
    holey = r.random() < p_odd
    snap = r.random() < p_odd / 2
    while k < len(blob):
        n = r.randint(1, 60) if r.random() < 0.5 else len(blob) - k
        piece = blob[k : k + n]
        if holey and r.random() < 0.15:
            off += len(piece)  # a hole
        else:
            cap = piece[: r.randint(0, len(piece))] if snap and r.random() < 0.5 else piece
            chunks.append(Chunk(off, len(piece), t0 + 10 * i, i + 1, cap))
            off += len(piece)
        k += n
        i += 1
    return Stream.from_chunks(chunks)


def dump_frames(out: str, seed: int, count: int, p_odd: float) -> None:
    r = random.Random(seed)
    with open(out, "w") as fh:
        for _ in range(count):
            kind = r.choice(["request", "response"])
            st = randstream(r, kind, 1000, p_odd)
            other = randstream(r, "response" if kind == "request" else "request", 1005, p_odd)
            methods = [r.choice(["GET", "HEAD", None]) for _ in range(r.randint(0, 8))]
            midstream = r.random() < p_odd / 2
            rows, notes = http.frame_rows(kind, st, other, methods, midstream=midstream)
            fh.write(
                json.dumps(
                    {
                        "kind": kind,
                        "stream": stream(st),
                        "other": stream(other),
                        "methods": methods,
                        "midstream": midstream,
                        "rows": [list(x) for x in rows],
                        "notes": [[n.offset, n.ts_ns, n.frame, n.what] for n in notes],
                    }
                )
                + "\n"
            )


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "capture":
        ports = tuple(int(p) for p in sys.argv[4:]) or (8080,)
        dump_capture(sys.argv[2], sys.argv[3], ports)
    elif mode == "frames":
        dump_frames(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]))
    else:
        raise SystemExit(__doc__)

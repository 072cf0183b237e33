"""Random segment streams fed straight to pcapkit.tcp.Reconstructor (no capture file), dumped
like reasm_dump.py does, one directory per case, for the Rust differential test.

    PYTHONPATH=$RELEASE:crates/kaflow-core/tests/oracle python3 reasm_fuzz.py OUTDIR SEED COUNT MODE
(NEV=N in the environment: up to N events a case, default 60)
MODE "one": every timestamp within a few seconds, one batch (no expiry anywhere).
MODE "tick": timestamps jump past the linger/idle times; each packet is its own grouping
(GROUP_ROWS = 1) and a jump is always announced by a packet of a separate "tick" tuple first,
so that Python's expiry per grouping is the per-packet rule.

$RELEASE is a checkout of kaflow's last pure-Python release, whose pcapkit.tcp this runs:
`git worktree add $RELEASE 230f27a`.
"""

import json
import os
import random
import sys

import numpy as np
from pcapkit.capture.types import SegmentBatch
from reasm_dump import tcpconn

from pcapkit import tcp

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
M32 = 1 << 32
V4 = 0xFFFF << 32


def case(rng: random.Random, mode: str):
    segs = []  # (ts, ver, src, dst, sport, dport, seq, flags, plen, payload)
    ntup = rng.randint(1, 4)
    tuples = []
    for _k in range(ntup):
        ver = 6 if rng.random() < 0.2 else 4
        cip = (0x20010DB8 << 96 | 1) if ver == 6 else V4 | 0x0A000001
        sip = (0x20010DB8 << 96 | 2) if ver == 6 else V4 | 0x0A000002
        cport = rng.choice([40000, 40001, 40002, 8081])
        sport = rng.choice([8080, 8080, 8081])
        if cport == sport:
            cport = 40003
        tuples.append((ver, cip, sip, cport, sport))
    st = {}
    ts = 1_700_000_000 * 10**9
    tick_ts = []

    def new_state(t):
        near = rng.random() < 0.3

        def isn():
            return (M32 - rng.randrange(1, 3000)) if near else rng.randrange(M32)

        st[t] = {"c": isn(), "s": isn(), "pc": 0, "ps": 0}

    for t in tuples:
        new_state(t)
    nev = rng.randint(1, int(os.environ.get("NEV", "60")))
    for _ in range(nev):
        t = rng.choice(tuples)
        s = st[t]
        # time
        r = rng.random()
        if mode == "tick" and r < 0.08:
            ts += rng.choice([11, 12, 301, 302, 5]) * 10**9
            tick_ts.append(len(segs))
        elif mode == "one" and r < 0.08:
            ts -= rng.randrange(0, 5000)
        else:
            ts += rng.randrange(0, 3000)
        c2s = rng.random() < 0.55
        side = "c" if c2s else "s"
        pos_key = "pc" if c2s else "ps"
        base = s[side]
        kind = rng.random()
        flags = ACK
        plen = 0
        off = s[pos_key]
        if kind < 0.08:  # SYN / SYN-ACK
            if c2s:
                if rng.random() < 0.4:
                    s["c"] = rng.randrange(M32)
                    s["pc"] = 0
                flags = SYN
                off = -1
                base = s["c"]
            else:
                flags = SYN | ACK
                off = -1
        elif kind < 0.55:  # data
            plen = rng.choice([1, 3, 10, 100, 1448])
            w = rng.random()
            if w < 0.15 and off > 0:
                off = max(0, off - rng.randrange(1, 200))  # retransmission / overlap
            elif w < 0.22:
                off = off + rng.randrange(1, 3000)  # reordered: future first
            elif w < 0.26:
                off = off + rng.choice([(1 << 31) - 1, -(1 << 31), 1 << 31, 1 << 30])
            elif w < 0.30 and off > 0:
                off, plen = off - 1, 1  # keepalive probe
            flags = ACK | PSH
            s[pos_key] = max(s[pos_key], off + plen) if abs(off) < (1 << 29) else s[pos_key]
        elif kind < 0.65:
            flags = FIN | ACK
            if rng.random() < 0.3:
                plen = rng.choice([1, 5])
            s[pos_key] = off + plen + 1
        elif kind < 0.75:
            flags = RST | (ACK if rng.random() < 0.5 else 0)
            if rng.random() < 0.4:
                off = rng.randrange(-(1 << 31), 1 << 31)
            elif rng.random() < 0.3:
                off += rng.choice([5, 1 << 21, -(1 << 25)])
            if rng.random() < 0.1:
                plen = 4
            if rng.random() < 0.05:
                flags |= FIN
            if rng.random() < 0.05:
                flags |= SYN
        else:
            pass  # pure ACK
        if rng.random() < 0.03:
            flags |= SYN
        seq = (base + 1 + off) % M32
        payload = bytes(rng.randrange(256) for _ in range(plen))
        if plen and rng.random() < 0.1:
            payload = payload[: rng.randrange(0, plen + 1)]  # snaplen
        ver, cip, sip, cport, sport = t
        if c2s:
            segs.append((ts, ver, cip, sip, cport, sport, seq, flags, plen, payload))
        else:
            segs.append((ts, ver, sip, cip, sport, cport, seq, flags, plen, payload))
        if rng.random() < 0.03:  # noise on another port
            segs.append((ts, 4, V4 | 1, V4 | 2, 5555, rng.choice([443, 5432]), 1, ACK, 0, b""))
    if mode == "tick":
        # a separate tuple's packet first at every jump: Python groups per packet and checks
        # expiry after each, so the connections due are gone before the next real packet
        out = []
        jumps = set(tick_ts)
        for i, sg in enumerate(segs):
            if i in jumps:
                out.append(
                    (sg[0], 4, V4 | 0x0B000001, V4 | 0x0B000002, 50000 + i, 8080, 1234, ACK, 0, b"")
                )
            out.append(sg)
        segs = out
    return segs


def batch(rows, frame0):
    n = len(rows)
    data = b"".join(r[9] for r in rows)
    offs = np.cumsum([0] + [len(r[9]) for r in rows])[:-1]

    def col(i, dt):
        return np.array([r[i] for r in rows], dtype=dt)

    return SegmentBatch(
        frame=np.arange(frame0, frame0 + n, dtype=np.int64),
        ts_ns=col(0, np.int64),
        ip_version=col(1, np.uint8),
        src_hi=np.array([r[2] >> 64 for r in rows], dtype=np.uint64),
        src_lo=np.array([r[2] & (2**64 - 1) for r in rows], dtype=np.uint64),
        dst_hi=np.array([r[3] >> 64 for r in rows], dtype=np.uint64),
        dst_lo=np.array([r[3] & (2**64 - 1) for r in rows], dtype=np.uint64),
        sport=col(4, np.uint16),
        dport=col(5, np.uint16),
        seq=col(6, np.uint32),
        ack=np.zeros(n, np.uint32),
        flags=col(7, np.uint8),
        window=np.zeros(n, np.uint16),
        payload_len=col(8, np.uint32),
        captured_len=np.array([len(r[9]) for r in rows], np.uint32),
        payload_off=offs.astype(np.int64),
        data=data,
    )


def main():
    out, seed, count, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    if mode == "tick":
        tcp.GROUP_ROWS = 1
    for k in range(count):
        rng = random.Random(seed * 100_000 + k)
        segs = case(rng, mode)
        d = os.path.join(out, f"{mode}-{seed}-{k}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "ports"), "w") as fh:
            fh.write("8080,8081")
        with open(os.path.join(d, "segments.jsonl"), "w") as fh:
            for i, (ts, ver, src, dst, sp, dp, seq, fl, pl, pay) in enumerate(segs, start=1):
                fh.write(
                    json.dumps(
                        [
                            i,
                            ts,
                            ver,
                            src.to_bytes(16, "big").hex(),
                            dst.to_bytes(16, "big").hex(),
                            sp,
                            dp,
                            seq,
                            fl,
                            pl,
                            pay.hex(),
                        ]
                    )
                    + "\n"
                )
        rec = tcp.Reconstructor(frozenset({8080, 8081}))
        conns = []
        if mode == "one":
            conns.extend(rec.feed(batch(segs, 1)))
        else:
            for i, sg in enumerate(segs, start=1):
                conns.extend(rec.feed(batch([sg], i)))
        conns.extend(rec.finish())
        conns.sort(key=lambda c: c.id)
        stats = rec.stats
        with open(os.path.join(d, "conns.jsonl"), "w") as fh:
            for c in conns:
                fh.write(json.dumps(tcpconn(c)) + "\n")
            fh.write(
                json.dumps(
                    {
                        "stats": {
                            "upstream_segments": stats.upstream_segments,
                            "other_ports": stats.other_ports,
                            "other_port_counts": sorted(stats.other_port_counts.items()),
                        }
                    }
                )
                + "\n"
            )


if __name__ == "__main__":
    main()

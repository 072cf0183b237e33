"""The fast paths of :mod:`pcapkit.tcp` give exactly what its general paths give.

``_reassemble`` (all directions at once, no sort for directions that arrive in order) must
equal ``_flows_general`` (two sorts, arrival-ordered overlaps) on every direction, whatever the
mix: in order, retransmitted, reordered, overlapping, cut by a snaplen, with RSTs anywhere,
timestamps going back, or sequence jumps too far apart for the shared running maximum.
``_key_groups`` must group rows by their whole key even when two keys share a hash.
"""

from __future__ import annotations

import random
from itertools import pairwise

import numpy as np
import pytest

from pcapkit import tcp
from pcapkit.capture.types import ACK, FIN, RST, SYN

_KINDS = ("in_order", "retransmit", "reorder", "overlap", "snaplen", "rst", "ts_back", "wild")


def _direction(rng: random.Random, kind: str) -> tuple[list[tuple[int, ...]], bytes]:
    """Rows (ts, frame, seq, plen, clen, flags, c2s) of one direction and its payload bytes."""
    isn = rng.randrange(1 << 32)
    rows: list[tuple[int, ...]] = []
    payload = bytearray()
    pos, ts = 0, 1_700_000_000 * 10**9
    if rng.random() < 0.7:
        rows.append((ts, 0, isn, 0, 0, SYN, 1))
        pos = 1
    for _ in range(rng.randrange(1, 40)):
        ts += rng.randrange(0, 2000)
        n = rng.choice((0, 0, 1, 7, 100, 1448))
        seq_pos = pos
        if kind in ("retransmit", "overlap", "reorder") and pos > 1 and rng.random() < 0.3:
            seq_pos = max(1, pos - rng.randrange(1, 200))
        if kind == "reorder" and rng.random() < 0.2:
            seq_pos = pos + rng.randrange(1, 3000)
        if kind == "wild" and rng.random() < 0.5:
            seq_pos = pos + rng.choice(((1 << 31) - 1, -(1 << 31)))
        flags = ACK
        roll = rng.random()
        if roll < 0.05:
            flags |= FIN
        elif kind == "rst" and roll < 0.3:
            flags = RST | (ACK if rng.random() < 0.5 else 0)
            seq_pos += rng.choice((0, 0, 5, 1 << 21, -(1 << 25)))
        clen = n if kind != "snaplen" else rng.randrange(0, n + 1)
        row_ts = ts - rng.randrange(0, 5000) if kind == "ts_back" and rng.random() < 0.3 else ts
        rows.append((row_ts, 0, (isn + seq_pos) % (1 << 32), n, clen, flags, 1))
        payload += bytes(rng.randrange(256) for _ in range(clen))
        pos = max(pos, seq_pos + n)
    return rows, bytes(payload)


def _as_array(rows: list[tuple[int, ...]], dtype: np.dtype[np.void]) -> np.ndarray:
    out = np.zeros(len(rows), dtype=dtype)
    for name, column in zip(tcp._ROW.names or (), zip(*rows, strict=True), strict=True):
        out[name] = column
    return out


@pytest.mark.parametrize("span", [tcp._SPAN, 1 << 34])
@pytest.mark.parametrize("seed", range(40))
def test_reassemble_equals_the_general_path(
    seed: int, span: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tcp, "_SPAN", span)  # a narrow span: "wild" directions leave it
    rng = random.Random(seed)
    dirs = [_direction(rng, rng.choice(_KINDS)) for _ in range(rng.randrange(1, 12))]
    dirs.insert(rng.randrange(len(dirs) + 1), ([], b""))  # a direction with no rows
    frame = 0
    for rows, _ in dirs:  # frames count up across the file, as the store holds them
        for i, row in enumerate(rows):
            frame += 1
            rows[i] = (row[0], frame, *row[2:])
    flat = [row for rows, _ in dirs for row in rows]
    sizes = np.array([len(rows) for rows, _ in dirs], dtype=np.int64)
    fast = tcp._reassemble(_as_array(flat, tcp._STORE), [p for _, p in dirs], sizes)
    general = tcp._flows_general(
        [([_as_array(rows, tcp._ROW)] if rows else [], [p] if p else []) for rows, p in dirs]
    )
    for i, (a, b) in enumerate(zip(fast, general, strict=True)):
        assert a == b, f"direction {i}"


def test_key_groups_survive_hash_collisions(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 4, size=(5, 500)).astype(np.uint64)
    e_first, e_inverse, _, _ = tcp._key_groups(keys)
    monkeypatch.setattr(tcp, "_MIX", np.zeros(5, dtype=np.uint64))  # every key, one hash
    first, inverse, order, bounds = tcp._key_groups(keys)
    # the same groups (each row's group starts at the same row), each in file order
    assert np.array_equal(e_first[e_inverse], first[inverse])
    assert np.array_equal(keys[:, first][:, inverse], keys)
    assert len(np.unique(keys, axis=1).T) == len(first)
    for g, (a, b) in enumerate(pairwise(bounds)):
        rows = order[a:b]
        assert first[g] == rows[0] and (np.diff(rows) > 0).all() and (inverse[rows] == g).all()

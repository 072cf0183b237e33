"""One capture, several processes: the connections are shared out by their endpoints.

Reading is cheap (millions of packets a second); reconstructing, labelling and classifying
connections is where the time goes, and each connection needs only its own packets. So every
process reads the whole file but keeps only the segments of its share of the connections —
chosen by a hash of the two endpoints, the same in both directions, so a connection (and every
later connection on its 4-tuple) belongs to exactly one process. Each process labels and
classifies its connections, spools them to a file, and spills its requests to another; the
parent then does the little that needs all of them:

- numbers the connections 1.. in order of first packet across the processes;
- pairs each lost request with its retry, which may be on another process's connection;
- adds up the counts and draws the diagnosis.

Processes are forked, so they share the interpreter's string hashing (the request keys) and
whatever ``keep`` callable the caller passed (a lambda is fine).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
import traceback
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection as Pipe
from multiprocessing.connection import wait
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from pcapkit import classify, diagnose
from pcapkit.capture import CaptureInfo, CaptureReader, SegmentBatch
from pcapkit.errors import KaflowError, NoUpstreamTrafficError
from pcapkit.model import Analysis, Connection, Finding
from pcapkit.store import FindingFile, FindingSpool, Spool, SpoolFile, TextCodec
from pcapkit.tcp import TcpStats

if TYPE_CHECKING:
    from pcapkit.analysis import Keep, Progress, _Totals

_MIX = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: spreads nearby ports and addresses


def share_of(batch: SegmentBatch, shares: int) -> npt.NDArray[np.int64]:
    """Which process each segment's connection belongs to; the same for both directions."""
    with np.errstate(over="ignore"):
        h = batch.src_hi ^ batch.dst_hi ^ batch.src_lo ^ batch.dst_lo
        h = h ^ (batch.sport.astype(np.uint64) ^ batch.dport.astype(np.uint64))
        h = (h * _MIX) >> np.uint64(40)
    return (h % np.uint64(shares)).astype(np.int64)


@dataclass(slots=True)
class _Part:
    """What one process learned of its share of the connections."""

    info: CaptureInfo
    stats: TcpStats
    totals: _Totals
    evidence: diagnose.Evidence
    found: FindingFile
    losses: list[classify.Loss]
    first_frames: bytes  # int64 by local id - 1: to number connections across the parts
    spool: SpoolFile
    requests: str  # the spilled request index


def _work(
    path: str,
    ports: tuple[int, ...],
    share: int,
    shares: int,
    keep: Keep | None,
    text: TextCodec | None,
    tmp: str,
    read: Any,
    out: Pipe,
) -> None:
    """A child process: analyze one share and send the :class:`_Part` (or the error) back."""
    from pcapkit.analysis import _Scan, scan_file

    try:
        index_path = os.path.join(tmp, f"requests-{share}")
        with open(index_path, "wb") as spill:
            path_ = os.path.join(tmp, f"spool-{share}")
            scan = _Scan(keep, spool=text or True, spool_path=path_, spill=spill)
            # (id, first frame) of every connection, 16 bytes each: numbering across the parts
            firsts = array("q")

            def add(conn: Connection) -> None:
                firsts.append(conn.id)
                firsts.append(conn.first_frame)
                scan.add(conn)

            def progress(cap: CaptureReader) -> None:
                read.value = cap.progress()[0]

            info, stats = scan_file(
                path,
                ports,
                add,
                after_batch=progress if share == 0 else None,
                select=lambda batch: batch.take(share_of(batch, shares) == share),
            )
            found, losses = scan.classifier.part()
            assert isinstance(found, FindingSpool)
        pairs = np.frombuffer(firsts, dtype=np.int64).reshape(-1, 2)
        frames = np.empty(len(pairs), dtype=np.int64)
        frames[pairs[:, 0] - 1] = pairs[:, 1]
        assert scan.spool is not None
        out.send(
            _Part(
                info=info,
                stats=stats,
                totals=scan.totals,
                evidence=scan.evidence,
                found=found.export(),
                losses=losses,
                first_frames=frames.tobytes(),
                spool=scan.spool.seal().export(),
                requests=index_path,
            )
        )
    except KaflowError as e:
        out.send(e)
    except BaseException:  # a bug: the parent reports it rather than waiting forever
        out.send(RuntimeError("a worker process failed:\n" + traceback.format_exc()))
    finally:
        out.close()


def analyze_split(
    path: str,
    ports: tuple[int, ...],
    jobs: int,
    *,
    progress: Progress | None,
    keep: Keep | None,
    spool: bool | TextCodec,
) -> Analysis:
    """:func:`pcapkit.analysis.analyze` over ``jobs`` processes; the same result."""
    text = None if isinstance(spool, bool) else spool
    ctx = mp.get_context("fork")
    size = os.path.getsize(path)
    read = ctx.Value("q", 0, lock=False)
    with tempfile.TemporaryDirectory(prefix="kaflow-") as tmp:
        pipes: list[Pipe] = []
        procs = []
        for share in range(jobs):
            recv, send = ctx.Pipe(duplex=False)
            p = ctx.Process(
                target=_work,
                args=(path, ports, share, jobs, keep, text, tmp, read, send),
                daemon=True,
            )
            p.start()
            send.close()
            pipes.append(recv)
            procs.append(p)
        got: dict[int, _Part | BaseException] = {}
        try:
            while len(got) < jobs:
                for ready in wait([p for i, p in enumerate(pipes) if i not in got], 0.2):
                    assert isinstance(ready, Pipe)
                    i = pipes.index(ready)
                    try:
                        got[i] = ready.recv()
                    except EOFError:
                        got[i] = RuntimeError(f"worker process {i} died (exit {procs[i].exitcode})")
                if progress is not None:
                    progress(min(int(read.value), size), size)
        finally:
            for p in procs:
                if p.is_alive() and len(got) < jobs:
                    p.terminate()
                p.join()
        for i in range(jobs):
            res = got[i]
            if isinstance(res, BaseException):
                raise res
        if progress is not None:
            progress(size, size)  # every part is in: the whole file was read
        parts = [got[i] for i in range(jobs)]
        assert all(isinstance(p, _Part) for p in parts)
        return _merge([p for p in parts if isinstance(p, _Part)], path, ports, spool)


def _merge(
    parts: list[_Part], path: str, ports: tuple[int, ...], spool: bool | TextCodec
) -> Analysis:
    from pcapkit.analysis import _capture_summary, _no_traffic, _Totals, finished

    info = parts[0].info  # every process read the whole file: the same capture counts
    stats = TcpStats()
    for p in parts:
        stats.upstream_segments += p.stats.upstream_segments
        stats.other_ports += p.stats.other_ports
        stats.other_port_counts.update(p.stats.other_port_counts)
    if stats.upstream_segments == 0:
        raise NoUpstreamTrafficError(_no_traffic(path, info, stats, ports))

    # number the connections of all parts in order of their first packet
    sizes = [len(p.first_frames) // 8 for p in parts]
    frames = [np.frombuffer(p.first_frames, dtype=np.int64) for p in parts]
    everything = np.concatenate(frames)
    del frames
    for p in parts:
        p.first_frames = b""  # 8 bytes a connection, and a big capture has millions
    rank = np.empty(len(everything), dtype=np.int64)
    rank[np.argsort(everything, kind="stable")] = np.arange(1, len(everything) + 1)
    del everything
    renumber: list[npt.NDArray[np.int64]] = []
    at = 0
    for n in sizes:
        renumber.append(np.concatenate(([0], rank[at : at + n])))  # local id → global
        at += n
    del rank

    found = FindingSpool.merged([p.found for p in parts], renumber)
    losses: list[classify.Loss] = []
    totals = _Totals()
    evidence = diagnose.Evidence()
    for p, ids in zip(parts, renumber, strict=True):
        losses.extend(replace(x, conn_id=int(ids[x.conn_id])) for x in p.losses)
        for name in _Totals.__slots__:
            setattr(totals, name, getattr(totals, name) + getattr(p.totals, name))
        evidence.closed_after.update(p.evidence.closed_after)
        evidence.refused += p.evidence.refused
    keys = classify.loss_keys(losses)
    cands = [
        c
        for p, ids in zip(parts, renumber, strict=True)
        for c in classify.spilled_candidates(p.requests, keys, ids)
    ]
    findings: Sequence[Finding] = classify.conclude(found, losses, cands)
    text = None if isinstance(spool, bool) else spool
    kept = Spool.merged([p.spool for p in parts], renumber, text)
    connections: Spool | tuple[Connection, ...] = kept
    if spool is False:  # held in memory, as one process would
        connections = tuple(kept)
        kept.close()
        findings = tuple(found)
        found.close()
    return finished(_capture_summary(info, stats, ports), connections, findings, totals, evidence)

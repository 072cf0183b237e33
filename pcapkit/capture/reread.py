"""Payload bytes read back from the capture file, instead of held from the first read until use.

A connection's bytes are needed only when it is finished, which for a keepalive connection can
be minutes of capture later. Held in memory, the payloads of every open connection make memory
follow the traffic; a plain capture file already holds them, so the reconstruction notes where
each payload is (:attr:`SegmentBatch.file_base` + offset) and reads them back here when the
connection is finished. Reads are batched: the pieces wanted are sorted by file offset and
neighbours merged into one ``pread`` each, so a batch of finishing connections costs a few
large reads, not one per packet. Only plain files qualify: a gzip stream or a pipe cannot be
read twice, and there the payloads are copied as before.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from itertools import islice
from operator import getitem
from typing import cast

import numpy as np
import numpy.typing as npt

from pcapkit.errors import MalformedCaptureError

# Pieces closer than this are read together: one syscall instead of two, a little waste (a
# syscall costs about as much as copying a few KiB). Reads stay within aligned blocks of
# _SPAN_MAX bytes, so a read never holds much more than the pieces it was for.
_MERGE_GAP = 2 << 10
_SPAN_MAX = 1 << 20


class FileBytes:
    """The capture file, open for reading payloads back by their file offsets."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._fd = os.open(path, os.O_RDONLY)

    def gather(self, offsets: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64]) -> bytes:
        """The pieces ``[offsets[i], offsets[i] + lengths[i])`` of the file, joined in order."""
        return self.gather_groups(offsets, lengths, [len(offsets)])[0]

    def gather_groups(
        self, offsets: npt.NDArray[np.int64], lengths: npt.NDArray[np.int64], groups: list[int]
    ) -> list[bytes]:
        """The pieces, joined in order, in consecutive groups of ``groups[k]`` pieces each."""
        n = len(offsets)
        if n == 0:
            return [b""] * len(groups)
        order = np.argsort(offsets, kind="stable")
        start = offsets[order]
        end = start + lengths[order]
        # a new read where the next piece starts beyond what is read so far, plus the gap
        reach = np.maximum.accumulate(end)
        new = np.ones(n, dtype=bool)
        new[1:] = (start[1:] > reach[:-1] + _MERGE_GAP) | (
            start[1:] // _SPAN_MAX != start[:-1] // _SPAN_MAX
        )
        first = np.flatnonzero(new)
        last = np.append(first[1:], n) - 1
        lo = start[first]
        hi = reach[last]
        spans: list[memoryview] = []
        for a, b in zip(lo.tolist(), hi.tolist(), strict=True):
            buf = os.pread(self._fd, b - a, a)
            if len(buf) < b - a:
                raise MalformedCaptureError(
                    f"{self._path} changed while being read: it is shorter than before"
                )
            spans.append(memoryview(buf))
        # each piece's span and place in it, back in the order asked: slicing runs in C (map)
        span_of = np.cumsum(new) - 1
        rel = start - lo[span_of]
        back = np.empty(n, dtype=np.intp)
        back[order] = np.arange(n)
        span_l = span_of[back].tolist()
        rel_l = rel[back].tolist()
        end_l = (rel[back] + lengths).tolist()
        views = cast(
            Iterator[memoryview],
            map(getitem, map(spans.__getitem__, span_l), map(slice, rel_l, end_l)),
        )
        return [b"".join(islice(views, k)) for k in groups]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> FileBytes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

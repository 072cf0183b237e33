"""Where finished connections wait for the report: in memory, or spooled to temporary files.

A capture of a busy hour has hundreds of thousands of connections and millions of events; held as
objects they would make memory follow the file. The command line needs them only once, in id
order, when it writes the report (or a handful of them, for the timelines it shows), so it
spools each connection to a temporary file as soon as it is labelled and reads it back when
asked. Memory is then ~24 bytes per connection for the index, whatever the events. Findings
wait the same way (:class:`FindingSpool`): a busy capture has hundreds of thousands of them, and
the report reads a hundred and those of the timelines it shows.

"""

from __future__ import annotations

import operator
import os
import pickle
import tempfile
import weakref
from array import array
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Protocol, overload

from pcapkit.connections import build
from pcapkit.model import FINDING_TYPES, Connection, Finding, FindingType

if TYPE_CHECKING:
    from pcapkit._core import Batch


class TextCodec(Protocol):
    """How a spool keeps connections as a report's text (the JSON report's lines, the CSV
    report's rows), never as objects: the core writes it from a batch's rows."""

    def encode(self, batch: Batch, which: list[int]) -> list[bytes]:
        """The records of the batch's connections at these positions, in that order."""
        ...


_TEXT_CHUNK = 32
"""Connections whose records are asked of the core at once (see :meth:`Spool.add_batch`)."""


def _pickled(batch: Batch, which: list[int]) -> list[bytes]:
    """The records of a spool of connections: each the core's pickle of its plain values."""
    return batch.records(which)


def _new_file(directory: str | None) -> int:
    """A descriptor to append records to, of a file with no name (gone when closed)."""
    fh = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 - kept as a descriptor
    fd = os.dup(fh.fileno())
    fh.close()
    return fd


_WRITE_BYTES = 1 << 20
"""Records gathered before they are written: a finding's record is ~200 bytes, and a write of
its own cost more than making it."""

_IOV_MAX = os.sysconf("SC_IOV_MAX")
"""Records handed to one ``writev``."""


class _Records:
    """Records appended to a temporary file and read back by position.

    The index is two machine words per record (where, how long), so memory follows the number
    of records, not their size; records not yet written wait, at most :data:`_WRITE_BYTES` of
    them, and go to the file as they are (``writev``): gathered into one buffer first, the JSON
    report's 171 MB of a 1M-packet capture cost a copy and a page fault every 4 KiB.
    """

    def _records(self, directory: str | None) -> None:
        self._fd = _new_file(directory)
        self._offsets = array("q")
        self._lengths = array("q")
        self._end = 0
        self._unwritten: list[bytes] = []
        self._written = 0  # where the records waiting in _unwritten start
        self._closer = weakref.finalize(self, os.close, self._fd)

    def _append(self, data: bytes) -> None:
        self._unwritten.append(data)
        self._offsets.append(self._end)
        self._lengths.append(len(data))
        self._end += len(data)
        if self._end - self._written >= _WRITE_BYTES:
            self._write()

    def _write(self) -> None:
        bufs, self._unwritten, self._written = self._unwritten, [], self._end
        while bufs:
            done = os.writev(self._fd, bufs[:_IOV_MAX])
            whole = 0  # the records written whole; a write can stop inside one
            while whole < len(bufs) and done >= len(bufs[whole]):
                done -= len(bufs[whole])
                whole += 1
            bufs = bufs[whole:]
            if done:
                bufs[0] = bufs[0][done:]

    def _read(self, pos: int) -> bytes:
        if self._unwritten:
            self._write()
        return os.pread(self._fd, self._lengths[pos], self._offsets[pos])

    def close(self) -> None:
        self._closer()


class Spool(_Records, Sequence[Connection]):
    """Connections kept in a temporary file; a read-only sequence in id order once sealed.

    ``directory`` chooses where the file goes (default: the system's temporary directory); the
    file has no name and disappears when the spool is closed or dropped. With ``text`` each
    connection is kept as the record ``text.encode`` makes of it (:meth:`add_batch`), read back
    with :meth:`records` (indexing such a spool is an error: it holds no objects).
    """

    def __init__(self, directory: str | None = None, text: TextCodec | None = None) -> None:
        self._records(directory)
        self.text = text
        self._ids = array("q")  # connection id of each entry
        self._order: list[int] = []  # entries in id order, once sealed
        self._sealed = False

    def add_batch(self, batch: Batch, which: list[int]) -> None:
        """The batch's connections at these positions: as their text, or as the plain values
        they are built from when read (most kept connections never are: the default report
        reads the timelines of a few)."""
        ids = batch.connections.conn_id
        encode = self.text.encode if self.text is not None else _pickled
        # a few at a time: the batch at the end of a capture holds every connection still open
        # then (most of a keepalive capture's), whose records at once would be 100s of MB
        for at in range(0, len(which), _TEXT_CHUNK):
            some = which[at : at + _TEXT_CHUNK]
            for i, data in zip(some, encode(batch, some), strict=True):
                self._append(data)
                self._ids.append(ids[i])

    def seal(self) -> Spool:
        """No more connections: order them by id for reading."""
        self._order = sorted(range(len(self._ids)), key=self._ids.__getitem__)
        self._sealed = True
        return self

    def records(self) -> Iterator[tuple[int, bytes]]:
        """A text spool's records with their connection's id, in id order."""
        if self.text is None or not self._sealed:
            raise TypeError("records() reads a sealed spool of text records")
        for pos in self._order:
            yield self._ids[pos], self._read(pos)

    def _load(self, pos: int) -> Connection:
        if self.text is not None:
            raise TypeError("this spool holds text lines, not connections: use records()")
        return build([pickle.loads(self._read(pos))])[0]

    def __len__(self) -> int:
        return len(self._ids)

    @overload
    def __getitem__(self, i: int) -> Connection: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Connection]: ...
    def __getitem__(self, i: int | slice) -> Connection | Sequence[Connection]:
        if not self._sealed:
            raise RuntimeError("the spool is still being written")
        if isinstance(i, slice):
            return [self._load(p) for p in self._order[i]]
        return self._load(self._order[i])

    def __iter__(self) -> Iterator[Connection]:
        for i in range(len(self)):
            yield self[i]

    def ids(self) -> list[int]:
        """The ids kept, in order, without reading any connection back."""
        return [self._ids[p] for p in self._order]

    def by_id(self, conn_id: int) -> Connection:
        """The connection with this id; KeyError if it was not kept."""
        lo, hi = 0, len(self._order)
        ids = self._ids
        while lo < hi:  # binary search over entries sorted by id
            mid = (lo + hi) // 2
            if ids[self._order[mid]] < conn_id:
                lo = mid + 1
            else:
                hi = mid
        if lo < len(self._order) and ids[self._order[lo]] == conn_id:
            return self._load(self._order[lo])
        raise KeyError(conn_id)


_FINDING_VALUES = operator.attrgetter(*(f.name for f in fields(Finding)))
"""A finding's record is the pickle of its fields' values, built back as ``Finding(*values)``:
pickling the object itself names its class in every record, which pickle then looks up for
each one, and that was half of what writing and reading a finding cost."""


class FindingSpool(_Records, Sequence[Finding]):
    """Findings pickled to temporary files; a read-only sequence once sealed, in report order
    (:func:`~pcapkit.classify.finding_order`: time, connection, frame; ties as added).

    A busy hour's capture has hundreds of thousands of findings; the report shows a hundred of
    them and the timelines of a few connections, so they wait on disk like the connections do.
    Memory is the sort key and index: ~42 bytes a finding. It compares equal to any sequence of
    the same findings (a tuple, another spool).
    """

    __hash__ = None  # type: ignore[assignment]  # compares by content, like a list

    def __init__(self, directory: str | None = None) -> None:
        self._records(directory)
        self._time = array("q")
        self._conn = array("q")
        self._frame = array("q")
        self._kind = array("b")  # index in FINDING_TYPES
        self._order: array[int] | None = None  # positions in report order, once sealed
        self._by_conn: array[int] | None = None  # positions by connection, when asked

    def append(self, f: Finding) -> None:
        if self._order is not None:
            raise RuntimeError("the findings are sealed")
        self._append(pickle.dumps(_FINDING_VALUES(f), protocol=pickle.HIGHEST_PROTOCOL))
        self._time.append(f.time_ns)
        self._conn.append(f.connection)
        self._frame.append(f.frame)
        self._kind.append(FINDING_TYPES.index(f.type))

    def extend(self, findings: Iterable[Finding]) -> None:
        for f in findings:
            self.append(f)

    def seal(self) -> FindingSpool:
        """No more findings: put them in report order for reading."""
        # one stable sort by the three keys, as a tuple each: a few hundred ns a finding, and a
        # busy hour has far fewer findings than packets
        t, c, f = self._time, self._conn, self._frame
        self._order = array("q", sorted(range(len(t)), key=lambda i: (t[i], c[i], f[i])))
        return self

    def _in_order(self) -> array[int]:
        if self._order is None:
            raise RuntimeError("the findings are still being written")
        return self._order

    def _load(self, pos: int) -> Finding:
        return Finding(*pickle.loads(self._read(pos)))

    def __len__(self) -> int:
        return len(self._time)

    @overload
    def __getitem__(self, i: int) -> Finding: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Finding]: ...
    def __getitem__(self, i: int | slice) -> Finding | Sequence[Finding]:
        order = self._in_order()
        if isinstance(i, slice):
            return tuple(self._load(p) for p in order[i])
        return self._load(order[i])

    def __iter__(self) -> Iterator[Finding]:
        for p in self._in_order():
            yield self._load(p)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    def kinds(self) -> Counter[FindingType]:
        """How many findings of each type, without reading any back."""
        counts = Counter(self._kind)
        return Counter({t: counts[k] for k, t in enumerate(FINDING_TYPES) if counts[k]})

    def connection_ids(self) -> list[int]:
        """The connections with findings, in id order, without reading any finding back."""
        return sorted(set(self._conn))

    def of(self, conn_id: int) -> tuple[Finding, ...]:
        """One connection's findings, in report order."""
        order = self._in_order()
        conns = self._conn
        if self._by_conn is None:  # report order within each connection: a stable sort
            self._by_conn = array("q", sorted(order, key=conns.__getitem__))
        by = self._by_conn
        lo = bisect_left(by, conn_id, key=conns.__getitem__)
        hi = bisect_right(by, conn_id, key=conns.__getitem__)
        return tuple(self._load(p) for p in by[lo:hi])


def in_order(conns: list[Connection]) -> tuple[Connection, ...]:
    """Connections held in memory, in id order (the reconstruction finishes them in any order)."""
    conns.sort(key=lambda c: c.id)
    return tuple(conns)

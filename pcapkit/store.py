"""Where finished connections wait for the report: in memory, or spooled to temporary files.

A capture of a busy hour has hundreds of thousands of connections and millions of events; held as
objects they would make memory follow the file. The command line needs them only once, in id
order, when it writes the report (or a handful of them, for the timelines it shows), so it
spools each connection to a temporary file as soon as it is labelled and reads it back when
asked. Memory is then ~24 bytes per connection for the index, whatever the events. Findings
wait the same way (:class:`FindingSpool`): a busy capture has hundreds of thousands of them, and
the report reads a hundred and those of the timelines it shows.

A capture split across processes (:mod:`pcapkit.parallel`) has one spool per process; the
parent reads them all as one, renumbering each process's connections into the capture's order.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import weakref
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, overload

import numpy as np
import numpy.typing as npt

from pcapkit.model import FINDING_TYPES, Connection, Finding, FindingType


class TextCodec(Protocol):
    """How a spool keeps connections as text lines (the JSON report's), not as objects.

    ``relabel`` gives a line the id the connection has in the whole capture, for spools written
    by several processes (each numbers its own connections).
    """

    def encode(self, conn: Connection) -> str: ...

    def relabel(self, line: str, conn_id: int) -> str: ...


@dataclass(frozen=True, slots=True)
class SpoolFile:
    """A finished spool as another process can open it: its path and its index."""

    path: str
    ids: bytes  # array("q"): connection ids, in the order written
    offsets: bytes  # array("q"): where each one starts; the next one's start ends it
    end: int


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def _new_file(directory: str | None, path: str | None) -> int:
    """A descriptor to append records to: a file with no name, or ``path`` for another process."""
    if path is None:
        fh = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 - kept as a descriptor
        fd = os.dup(fh.fileno())
        fh.close()
        return fd
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)


class _Records:
    """Records appended to the first of some files and read back by position, from any of them.

    The index is a few machine words per record (which file, where, how long), so memory follows
    the number of records, not their size.
    """

    def _records(self, fds: list[int], path: str | None) -> None:
        self._path = path
        self._fds = fds
        self._file = array("b")  # which file each record is in
        self._offsets = array("q")
        self._lengths = array("q")
        self._end = 0  # of the file written to, fds[0]
        # closed with the store, whoever drops the last reference (reports, tests, the CLI)
        self._closer = weakref.finalize(self, _close_all, self._fds)

    def _append(self, data: bytes) -> None:
        os.write(self._fds[0], data)
        self._file.append(0)
        self._offsets.append(self._end)
        self._lengths.append(len(data))
        self._end += len(data)

    def _attach(self, k: int, offsets: bytes, end: int) -> None:
        """Index the records of another process's file ``fds[k]``, given where each starts."""
        offs = array("q")
        offs.frombytes(offsets)
        ends = offs[1:] + array("q", [end] if offs else [])
        self._file.extend(array("b", [k]) * len(offs))
        self._offsets.extend(offs)
        self._lengths.extend(e - o for o, e in zip(offs, ends, strict=True))

    def _read(self, pos: int) -> bytes:
        return os.pread(self._fds[self._file[pos]], self._lengths[pos], self._offsets[pos])

    def close(self) -> None:
        self._closer()


class Spool(_Records, Sequence[Connection]):
    """Connections pickled to temporary files; a read-only sequence in id order once sealed.

    ``directory`` chooses where the file goes (default: the system's temporary directory).
    Without ``path`` the file has no name and disappears when the spool is closed or dropped;
    with one it stays for another process to read (:meth:`export`), and is its owner's to remove.
    With ``text`` each connection is kept as the line ``text.encode`` makes of it, read back
    with :meth:`lines` (indexing such a spool is an error: it holds no objects).
    """

    def __init__(
        self, directory: str | None = None, path: str | None = None, text: TextCodec | None = None
    ) -> None:
        self._setup([_new_file(directory, path)], path, text, renumbered=False)

    def _setup(
        self, fds: list[int], path: str | None, text: TextCodec | None, renumbered: bool
    ) -> None:
        self._records(fds, path)
        self.text = text
        self._renumber = renumbered  # ids differ from the ones pickled (several processes)
        self._ids = array("q")  # connection id of each entry
        self._order: list[int] = []  # entries in id order, once sealed
        self._sealed = False

    def add(self, conn: Connection) -> None:
        if self.text is not None:
            data = self.text.encode(conn).encode("utf-8")
        else:
            data = pickle.dumps(conn, protocol=pickle.HIGHEST_PROTOCOL)
        self._append(data)
        self._ids.append(conn.id)

    def seal(self) -> Spool:
        """No more connections: order them by id for reading."""
        self._order = sorted(range(len(self._ids)), key=self._ids.__getitem__)
        self._sealed = True
        return self

    def export(self) -> SpoolFile:
        """This spool's file and index, for a parent process to read (:meth:`merged`)."""
        assert self._path is not None, "only a named spool can be read by another process"
        return SpoolFile(self._path, self._ids.tobytes(), self._offsets.tobytes(), self._end)

    @classmethod
    def merged(
        cls,
        files: Sequence[SpoolFile],
        renumber: Sequence[npt.NDArray[np.int64]],
        text: TextCodec | None = None,
    ) -> Spool:
        """Several processes' spools as one; ``renumber[k][local id]`` is the id in the whole.

        ``text``: the codec they were written with, if any. The files are opened here, so their
        paths can be removed right after.
        """
        out = cls.__new__(cls)
        out._setup([os.open(f.path, os.O_RDONLY) for f in files], None, text, renumbered=True)
        for k, f in enumerate(files):
            out._attach(k, f.offsets, f.end)
            out._ids.extend(renumber[k][np.frombuffer(f.ids, dtype=np.int64)].tolist())
        return out.seal()

    def lines(self) -> Iterator[str]:
        """A text spool's lines, in id order, each with its id in the whole capture."""
        assert self.text is not None and self._sealed
        for pos in self._order:
            line = self._read(pos).decode("utf-8")
            yield self.text.relabel(line, self._ids[pos]) if self._renumber else line

    def _load(self, pos: int) -> Connection:
        if self.text is not None:
            raise TypeError("this spool holds text lines, not connections: use lines()")
        conn: Connection = pickle.loads(self._read(pos))
        if self._renumber and conn.id != self._ids[pos]:
            conn = replace(conn, id=self._ids[pos])
        return conn

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


@dataclass(frozen=True, slots=True)
class FindingFile:
    """A finished :class:`FindingSpool` as another process can open it: its path and its index."""

    path: str
    rows: bytes  # int64 (time_ns, connection, frame, kind, offset) per finding, as written
    end: int


class FindingSpool(_Records, Sequence[Finding]):
    """Findings pickled to temporary files; a read-only sequence once sealed, in report order
    (:func:`~pcapkit.classify.finding_order`: time, connection, frame; ties as added).

    A busy hour's capture has hundreds of thousands of findings; the report shows a hundred of
    them and the timelines of a few connections, so they wait on disk like the connections do.
    Memory is the sort key and index: ~42 bytes a finding. It compares equal to any sequence of
    the same findings (a tuple, another spool).
    """

    __hash__ = None  # type: ignore[assignment]  # compares by content, like a list

    def __init__(self, directory: str | None = None, path: str | None = None) -> None:
        self._setup([_new_file(directory, path)], path)

    def _setup(self, fds: list[int], path: str | None) -> None:
        self._records(fds, path)
        self._time = array("q")
        self._conn = array("q")  # in the whole capture, renumbered if written by a part
        self._frame = array("q")
        self._kind = array("b")  # index in FINDING_TYPES
        self._order: npt.NDArray[np.int64] | None = None  # positions in report order, once sealed
        self._by_conn: npt.NDArray[np.int64] | None = None  # positions by connection, when asked

    def append(self, f: Finding) -> None:
        if self._order is not None:
            raise RuntimeError("the findings are sealed")
        self._append(pickle.dumps(f, protocol=pickle.HIGHEST_PROTOCOL))
        self._time.append(f.time_ns)
        self._conn.append(f.connection)
        self._frame.append(f.frame)
        self._kind.append(FINDING_TYPES.index(f.type))

    def extend(self, findings: Iterable[Finding]) -> None:
        for f in findings:
            self.append(f)

    def seal(self) -> FindingSpool:
        """No more findings: put them in report order for reading."""
        self._order = np.lexsort(
            (
                np.frombuffer(self._frame, dtype=np.int64),
                np.frombuffer(self._conn, dtype=np.int64),
                np.frombuffer(self._time, dtype=np.int64),
            )
        ).astype(np.int64)
        return self

    def export(self) -> FindingFile:
        """This spool's file and index, for a parent process to read (:meth:`merged`)."""
        assert self._path is not None, "only a named spool can be read by another process"
        rows = np.column_stack(
            [
                np.frombuffer(self._time, dtype=np.int64),
                np.frombuffer(self._conn, dtype=np.int64),
                np.frombuffer(self._frame, dtype=np.int64),
                np.frombuffer(self._kind, dtype=np.int8).astype(np.int64),
                np.frombuffer(self._offsets, dtype=np.int64),
            ]
        ).reshape(-1, 5)
        return FindingFile(self._path, np.ascontiguousarray(rows).tobytes(), self._end)

    @classmethod
    def merged(
        cls,
        files: Sequence[FindingFile],
        renumber: Sequence[npt.NDArray[np.int64]],
        directory: str | None = None,
    ) -> FindingSpool:
        """Several processes' findings as one, still open for the parent's own (retries).

        ``renumber[k][local id]`` is a connection's id in the whole capture. The files are
        opened here, so their paths can be removed right after.
        """
        out = cls.__new__(cls)
        fds = [_new_file(directory, None), *(os.open(f.path, os.O_RDONLY) for f in files)]
        out._setup(fds, None)
        for k, f in enumerate(files, start=1):
            rows = np.frombuffer(f.rows, dtype=np.int64).reshape(-1, 5)
            out._attach(k, rows[:, 4].tobytes(), f.end)
            out._time.frombytes(rows[:, 0].tobytes())
            out._conn.frombytes(renumber[k - 1][rows[:, 1]].astype(np.int64).tobytes())
            out._frame.frombytes(rows[:, 2].tobytes())
            out._kind.frombytes(rows[:, 3].astype(np.int8).tobytes())
        return out

    def _in_order(self) -> npt.NDArray[np.int64]:
        if self._order is None:
            raise RuntimeError("the findings are still being written")
        return self._order

    def _load(self, pos: int) -> Finding:
        f: Finding = pickle.loads(self._read(pos))
        # only what this spool writes itself is in file 0; a part's findings carry its own ids
        if self._file[pos] and f.connection != self._conn[pos]:
            f = replace(f, connection=self._conn[pos])
        return f

    def __len__(self) -> int:
        return len(self._time)

    @overload
    def __getitem__(self, i: int) -> Finding: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Finding]: ...
    def __getitem__(self, i: int | slice) -> Finding | Sequence[Finding]:
        order = self._in_order()
        if isinstance(i, slice):
            return tuple(self._load(p) for p in order[i].tolist())
        return self._load(int(order[i]))

    def __iter__(self) -> Iterator[Finding]:
        for p in self._in_order().tolist():
            yield self._load(p)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    def kinds(self) -> Counter[FindingType]:
        """How many findings of each type, without reading any back."""
        counts = np.bincount(np.frombuffer(self._kind, dtype=np.int8), minlength=len(FINDING_TYPES))
        return Counter({t: int(n) for t, n in zip(FINDING_TYPES, counts, strict=True) if n})

    def connection_ids(self) -> list[int]:
        """The connections with findings, in id order, without reading any finding back."""
        return np.unique(np.frombuffer(self._conn, dtype=np.int64)).tolist()  # type: ignore[no-any-return]

    def of(self, conn_id: int) -> tuple[Finding, ...]:
        """One connection's findings, in report order."""
        order = self._in_order()
        conns = np.frombuffer(self._conn, dtype=np.int64)
        if self._by_conn is None:
            self._by_conn = order[np.argsort(conns[order], kind="stable")]
        keys = conns[self._by_conn]
        lo, hi = np.searchsorted(keys, [conn_id, conn_id + 1])
        return tuple(self._load(p) for p in self._by_conn[lo:hi].tolist())


def in_order(conns: list[Connection]) -> tuple[Connection, ...]:
    """Connections held in memory, in id order (the reconstruction finishes them in any order)."""
    conns.sort(key=lambda c: c.id)
    return tuple(conns)

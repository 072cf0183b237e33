"""Where finished connections wait for the report: in memory, or spooled to temporary files.

A capture of a busy hour has hundreds of thousands of connections and millions of events; held as
objects they would make memory follow the file. The command line needs them only once, in id
order, when it writes the report (or a handful of them, for the timelines it shows), so it
spools each connection to a temporary file as soon as it is labelled and reads it back when
asked. Memory is then ~24 bytes per connection for the index, whatever the events.

A capture split across processes (:mod:`pcapkit.parallel`) has one spool per process; the
parent reads them all as one, renumbering each process's connections into the capture's order.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import weakref
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Protocol, overload

import numpy as np
import numpy.typing as npt

from pcapkit.model import Connection


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


class Spool(Sequence[Connection]):
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
        if path is None:
            fh = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 - kept as a descriptor
            fd = os.dup(fh.fileno())
            fh.close()
        else:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self._setup([fd], path, text, renumbered=False)

    def _setup(
        self, fds: list[int], path: str | None, text: TextCodec | None, renumbered: bool
    ) -> None:
        self.text = text
        self._path = path
        self._fds = fds
        self._renumber = renumbered  # ids differ from the ones pickled (several processes)
        self._file = array("b")  # which file each entry is in
        self._ids = array("q")  # connection id of each entry
        self._offsets = array("q")
        self._lengths = array("q")
        self._end = 0
        self._order: list[int] = []  # entries in id order, once sealed
        self._sealed = False
        # closed with the spool, whoever drops the last reference (reports, tests, the CLI)
        self._closer = weakref.finalize(self, _close_all, self._fds)

    def add(self, conn: Connection) -> None:
        if self.text is not None:
            data = self.text.encode(conn).encode("utf-8")
        else:
            data = pickle.dumps(conn, protocol=pickle.HIGHEST_PROTOCOL)
        os.write(self._fds[0], data)
        self._file.append(0)
        self._ids.append(conn.id)
        self._offsets.append(self._end)
        self._lengths.append(len(data))
        self._end += len(data)

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
            offs = array("q")
            offs.frombytes(f.offsets)
            ends = offs[1:] + array("q", [f.end] if offs else [])
            out._file.extend(array("b", [k]) * len(offs))
            out._ids.extend(renumber[k][np.frombuffer(f.ids, dtype=np.int64)].tolist())
            out._offsets.extend(offs)
            out._lengths.extend(e - o for o, e in zip(offs, ends, strict=True))
        return out.seal()

    def _read(self, pos: int) -> bytes:
        return os.pread(self._fds[self._file[pos]], self._lengths[pos], self._offsets[pos])

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

    def close(self) -> None:
        self._closer()


def in_order(conns: list[Connection]) -> tuple[Connection, ...]:
    """Connections held in memory, in id order (the reconstruction finishes them in any order)."""
    conns.sort(key=lambda c: c.id)
    return tuple(conns)

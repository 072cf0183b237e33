"""Where finished connections wait for the report: in memory, or spooled to a temporary file.

A capture of a busy hour has hundreds of thousands of connections and millions of events; held as
objects they would make memory follow the file. The command line needs them only once, in id
order, when it writes the report (or a handful of them, for the timelines it shows), so it
spools each connection to an anonymous temporary file as soon as it is labelled and reads it
back when asked. Memory is then 16 bytes per connection for the index, whatever the events.
"""

from __future__ import annotations

import pickle
import tempfile
import weakref
from array import array
from collections.abc import Iterator, Sequence
from typing import overload

from pcapkit.model import Connection


class Spool(Sequence[Connection]):
    """Connections pickled to a temporary file; a read-only sequence in id order once sealed.

    ``directory`` chooses where the file goes (default: the system's temporary directory); the
    file has no name and disappears when the spool is closed or the process ends.
    """

    def __init__(self, directory: str | None = None) -> None:
        self._fh = tempfile.TemporaryFile(dir=directory)  # noqa: SIM115 - closed by close()
        self._ids = array("q")
        self._offsets = array("q")
        self._end = 0
        self._order: list[int] = []  # positions in id order, once sealed
        self._sealed = False
        # closed with the spool, whoever drops the last reference (reports, tests, the CLI)
        self._closer = weakref.finalize(self, self._fh.close)

    def add(self, conn: Connection) -> None:
        data = pickle.dumps(conn, protocol=pickle.HIGHEST_PROTOCOL)
        self._fh.write(data)
        self._ids.append(conn.id)
        self._offsets.append(self._end)
        self._end += len(data)

    def seal(self) -> Spool:
        """No more connections: order them by id for reading."""
        self._fh.flush()
        self._order = sorted(range(len(self._ids)), key=self._ids.__getitem__)
        self._sealed = True
        return self

    def _load(self, pos: int) -> Connection:
        start = self._offsets[pos]
        end = self._offsets[pos + 1] if pos + 1 < len(self._offsets) else self._end
        self._fh.seek(start)
        conn: Connection = pickle.loads(self._fh.read(end - start))
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
        while lo < hi:  # binary search over positions sorted by id
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

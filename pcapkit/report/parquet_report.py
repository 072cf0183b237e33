"""Parquet tables for fleets and notebooks: ``connections``, ``events`` and ``findings``.

Each is the pandas frame of the same name (:mod:`pcapkit.frames`: the JSON contract's fields,
times as UTC timestamps and exact integer nanoseconds) with two columns in front, ``capture``
(the file as given) and ``host`` (which nginx host it came from), so that the files of many
hosts and hours can be read as one table by DuckDB, Spark or pandas without a server of ours
(``docs/parquet.md``). In ``events`` the request's HTTP Host header is ``http_host``: ``host`` is
the machine.

pyarrow is an optional extra (``kaflow[parquet]``) and is imported only here, when asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pcapkit.errors import MissingExtraError, OutputError
from pcapkit.model import Analysis

if TYPE_CHECKING:
    import pandas as pd

TABLES = ("connections", "events", "findings")


def host_name(analysis: Analysis, host: str | None) -> str:
    """The ``host`` column: as given, else the capture's file name (``-`` for standard input)."""
    return host if host is not None else Path(analysis.capture.path).name


def frames(analysis: Analysis, host: str | None = None) -> dict[str, pd.DataFrame]:
    """The three tables of one capture, as they are written."""
    lead = {"capture": analysis.capture.path, "host": host_name(analysis, host)}
    conns = analysis.connections_frame().reset_index()
    events = analysis.events_frame().rename(columns={"host": "http_host"})
    out = {"connections": conns, "events": events, "findings": analysis.findings_frame()}
    for df in out.values():
        for i, (name, value) in enumerate(lead.items()):
            df.insert(i, name, value)
            df[name] = df[name].astype("string")
    return out


def require_pyarrow() -> None:
    """Fail with the extra's name, before any work, when pyarrow cannot be imported."""
    try:
        import pyarrow  # noqa: F401  (imported to see that it can be)
    except ImportError:
        raise MissingExtraError(
            "--format parquet needs pyarrow: pip install 'kaflow[parquet]'"
        ) from None


def write(analyses: Sequence[tuple[Analysis, str | None]], directory: Path) -> list[Path]:
    """Write the tables of these captures (each with its host name, or None for the default)
    into ``directory`` (created if missing) as ``<table>.parquet``; the paths written."""
    require_pyarrow()
    import pandas as pd

    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create {directory}: {e.strerror}") from None
    parts = [frames(a, host) for a, host in analyses]
    written: list[Path] = []
    for table in TABLES:
        pieces = [p[table] for p in parts]
        df = pieces[0] if len(pieces) == 1 else pd.concat(pieces, ignore_index=True)
        path = directory / f"{table}.parquet"
        try:
            df.to_parquet(path, engine="pyarrow", index=False)
        except OSError as e:
            raise OutputError(f"cannot write {path}: {e.strerror or e}") from None
        written.append(path)
    return written

"""The compiled core (crates/kaflow-core, bound by crates/kaflow-py): a capture in, finished
connections out, as columns. Private: the public API is :mod:`pcapkit`. Every error it raises is
a :class:`pcapkit.errors.KaflowError` subclass with a one-line message, panics included."""

from collections.abc import Sequence
from typing import final

from pcapkit.model import CloseKind, Connection, EventType, Side

__all__ = [
    "CSV_KEY",
    "EVENT_TYPES",
    "SIDES",
    "Batch",
    "CaptureFacts",
    "Connections",
    "FileFacts",
    "Scan",
    "Segments",
    "__version__",
    "connection_csv",
    "connection_json",
    "diagram",
    "keyed_rows",
    "read_segments",
    "request_key",
]
__version__: str
CSV_KEY: int
"""The int64s of a row's key in :meth:`Batch.csv_records`: where the row's text ends (a byte
offset), its event's type and side (positions in :data:`EVENT_TYPES` and :data:`SIDES`, -1 for
a name not there), frame, and request index (-1 for none)."""
EVENT_TYPES: tuple[EventType, ...]
SIDES: tuple[Side, ...]

@final
class Connections:
    """One entry per connection of a batch, in the order the core finished them. Beside the
    :class:`~pcapkit.model.Connection` fields, what the stages after the core read of its events
    and requests: ``conn_responses``, ``conn_unanswered``, ``conn_last_close`` (the last
    request's response said Connection: close), ``conn_last_answered_close`` (the last answered
    one's did) and the upstream's first FIN or RST event (``conn_server_close*``)."""

    conn_id: list[int]
    conn_ip_version: list[int]
    conn_client: list[str]
    conn_server: list[str]
    conn_client_port: list[int]
    conn_opened_at_ns: list[int]
    conn_first_frame: list[int]
    conn_opened_by: list[Side | None]
    conn_established_at_ns: list[int | None]
    conn_handshake_ack_ns: list[int | None]  # nginx's first segment after the SYN-ACK
    conn_closed_by: list[Side | None]
    conn_close: list[CloseKind | None]
    conn_closed_at_ns: list[int | None]
    conn_last_seen_ns: list[int]
    conn_last_response_ns: list[int | None]
    conn_partial: list[bool]
    conn_state: list[str]
    conn_history: list[str]
    conn_syn_count: list[int]
    conn_packets: list[int]
    conn_client_bytes: list[int]
    conn_server_bytes: list[int]
    conn_retransmissions: list[int]
    conn_events: list[int]
    conn_requests: list[int]
    conn_anomalies: list[int]
    conn_responses: list[int]
    conn_unanswered: list[int]
    conn_last_close: list[bool]
    conn_last_answered_close: list[bool]
    conn_tunnel: list[str | None]
    conn_keep_alive: list[str | None]
    conn_server_header: list[str | None]
    # the first request head's header names as sent, one per line (their case is the client's)
    conn_request_headers: list[str | None]
    conn_one_sided: list[Side | None]
    conn_tls: list[str | None]
    conn_requests_close: list[int]  # requests asking to close (Connection: close, or HTTP/1.0)
    conn_server_close: list[CloseKind | None]
    conn_server_close_ns: list[int | None]
    conn_server_close_frame: list[int | None]

@final
class Batch:
    """Finished connections: :attr:`connections` for every one; each whole (events, requests
    and anomalies) for those asked for (:meth:`records`), so objects are built only for the
    connections read."""

    connections: Connections
    # following a live capture: capture time when the batch was made (None otherwise)
    @property
    def now_ns(self) -> int | None: ...
    def __len__(self) -> int: ...
    def records(self, which: Sequence[int]) -> list[bytes]:
        """Each connection at these positions as the pickle of its plain values: a
        :data:`pcapkit.connections.Record`."""

    def json_lines(self, which: Sequence[int]) -> list[bytes]:
        """The JSON report's line (UTF-8) of each connection at these positions: the one
        encoder of ``docs/json-schema.md``'s connection object."""

    def csv_records(self, which: Sequence[int]) -> list[bytes]:
        """The CSV report's rows (UTF-8, the findings column empty) of each connection at these
        positions, each as one record: the length in bytes of its keys (8 bytes, little-endian),
        its keys (:data:`CSV_KEY` native int64s per row), then its rows' text."""

    def request_rows(self) -> bytes:
        """Every request as six native int64s: :func:`request_key` of it (0 when its bytes
        were not captured), sent at, connection id, index on the connection, frame, and when
        its connection opened (-1: open before the capture)."""

    def open_request_rows(self) -> bytes:
        """Following a live capture: the same rows for the requests framed since the batch
        before on connections still open (empty otherwise)."""

def connection_json(conn: Connection) -> bytes:
    """A :class:`~pcapkit.model.Connection`'s line, as :meth:`Batch.json_lines` writes it."""

def connection_csv(conn: Connection) -> tuple[bytes, bytes]:
    """A :class:`~pcapkit.model.Connection`'s rows and keys, as :meth:`Batch.csv_records`
    holds them."""

def request_key(method: str, target: str, host: str | None, request_id: str | None = None) -> int:
    """What makes two requests the same for retry matching (method, target, Host, and the
    request id when it has one), hashed to a stable signed 64-bit int."""

def keyed_rows(rows: bytes, keys: set[int]) -> bytes:
    """Of request rows (:meth:`Batch.request_rows`), those whose key is in ``keys``, in order."""

@final
class FileFacts:
    """One file of the capture as read: frames are its records' numbers in the merged order."""

    path: str
    format: str
    link_types: list[str]
    packets: int
    tcp_segments: int
    bytes_read: int
    truncated_at_offset: int | None
    first_ts_ns: int | None
    last_ts_ns: int | None
    first_frame: int
    last_frame: int
    warnings: list[str]

@final
class CaptureFacts:
    """What was read of the capture (its files taken together) and what reconstruction
    counted, once the scan is done."""

    path: str
    format: str
    link_types: list[str]
    ts_resolution_ns: int
    bytes_read: int
    truncated_at_offset: int | None
    packets: int
    tcp_segments: int
    skipped: list[tuple[str, int]]
    first_ts_ns: int | None
    last_ts_ns: int | None
    warnings: list[str]
    upstream_segments: int
    other_ports: int
    other_port_counts: list[tuple[int, int]]
    syns_to_upstream: int
    syns_from_upstream: list[tuple[int, int]]  # (the port the SYNs went to, how many)
    syn_acks_to_upstream: int
    ts_backwards: int  # records stamped earlier than one before them in the file
    ts_max_back_ns: int  # the largest such step back
    files: list[FileFacts]  # in the order given
    since_ns: int | None  # the time window, resolved
    until_ns: int | None
    outside_window: int  # segments left out by the window

@final
class Scan:
    """One pass of the core over a capture (its files merged by timestamp): iterate for
    batches, then read :meth:`facts`. Files overlapping in time raise ``NotOneCaptureError`` unless
    ``merge``. A window edge is ``("at", ns since the epoch)`` or ``("after_start", ns)``.
    ``follow``: one capture read as it arrives (a pipe, or a file still being written): a batch
    comes at least every 100 ms, empty when no connection finished, until the input ends."""

    def __new__(
        cls,
        paths: Sequence[str],
        ports: Sequence[int],
        merge: bool = False,
        since: tuple[str, int] | None = None,
        until: tuple[str, int] | None = None,
        follow: bool = False,
    ) -> Scan: ...
    def __iter__(self) -> Scan: ...
    def __next__(self) -> Batch: ...
    def progress(self) -> tuple[int, int]: ...
    def facts(self) -> CaptureFacts: ...

@final
class Segments:
    """The capture stage alone: every TCP segment, in columns (for tests and benchmarks)."""

    frame: list[int]
    ts_ns: list[int]
    ip_version: list[int]
    src: list[str]
    dst: list[str]
    sport: list[int]
    dport: list[int]
    seq: list[int]
    ack: list[int]
    flags: list[int]
    window: list[int]
    payload_len: list[int]
    payload: list[bytes]

def read_segments(path: str, window_bytes: int = 1048576) -> tuple[Segments, CaptureFacts]: ...
def diagram() -> str: ...

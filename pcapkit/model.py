"""The plain values kaflow's analysis returns: connections, their events, findings, a summary.

These are the public, documented result types: dataclasses holding only ints, strings, bools and
tuples, so they can be compared in tests, pickled across processes and turned into JSON or
DataFrames without surprises. Treat them as read-only. Connections, findings and the analysis
are frozen; events and requests, of which a capture has millions, are plain slotted dataclasses
because building a frozen one costs five times as much. Times are integer nanoseconds since the
epoch throughout (``*_ns``); reports convert to seconds at the edge.

Vocabulary: the *client* is nginx (the side with the ephemeral port), the *server* is the upstream
(the side on the configured port).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar

from pcapkit.client import Client

if TYPE_CHECKING:  # pandas is imported only when a frame is asked for: it costs ~0.2 s
    import pandas as pd

    from pcapkit.config.compare import Comparison
    from pcapkit.logs.join import LogJoin

Side = Literal["client", "server"]
EventType = Literal["syn", "syn_ack", "request", "response", "fin", "rst"]
FindingType = Literal["server_initiated_close", "request_lost_to_fin", "retry", "connect_failed"]
# "close_notify": the upstream's TLS alert, before any FIN or RST of its own (uvicorn over TLS)
CloseKind = Literal["fin", "rst", "close_notify"]
CloseReason = Literal["idle_timeout", "connection_close", "request_in_flight", "reset", "tunnel"]
AdviceTopic = Literal[
    "upstream_idle_timeout",
    "upstream_max_requests",
    "lost_requests",
    "connect_failed",
    "keepalive_not_in_effect",
]

FINDING_TYPES: tuple[FindingType, ...] = (
    "server_initiated_close",
    "request_lost_to_fin",
    "retry",
    "connect_failed",
)


_T = TypeVar("_T")


def _pickled_by_fields(cls: type[_T]) -> type[_T]:
    """Pickles as the class and its fields' values in order, unpickled through ``__init__``.

    A slots dataclass otherwise pickles through a ``__getstate__`` that looks its fields up
    again for every object and sets each back one by one: the spools of a busy capture pickle
    hundreds of thousands of events and findings, at twice the cost.
    """
    get = operator.attrgetter(*(f.name for f in fields(cls)))  # type: ignore[arg-type]

    def reduce(self: _T) -> tuple[Callable[..., _T], Any]:
        return type(self), get(self)

    setattr(cls, "__reduce__", reduce)  # noqa: B010 - a method set on a finished class
    return cls


@_pickled_by_fields
@dataclass(slots=True)
class Event:
    """One labelled moment of a connection: what a person would annotate in a tcpdump listing.

    ``frame`` is the 1-based packet number in the capture file, so any event can be found again
    with ``tcpdump -r FILE`` or Wireshark's "Go to packet". For requests and responses,
    ``request_index`` is the 0-based position of the request on its connection; a response with
    ``request_index`` None answered a request sent before the capture started.
    """

    time_ns: int
    type: EventType
    side: Side
    frame: int
    method: str | None = None
    target: str | None = None
    host: str | None = None
    status: int | None = None
    connection_close: bool = False  # a response carrying "Connection: close"
    request_index: int | None = None
    length: int | None = None  # HTTP message length in bytes, when the framing says it
    note: str | None = None  # e.g. "SYN sent 3 times", "payload not captured"


@_pickled_by_fields
@dataclass(slots=True)
class Request:
    """A request nginx sent and what became of it.

    ``method`` and ``target`` are None when the capture holds no payload bytes for it (a small
    snaplen): the request is then known only as a burst of client data.
    """

    index: int
    method: str | None
    target: str | None
    host: str | None
    sent_at_ns: int
    frame: int
    status: int | None = None
    responded_at_ns: int | None = None
    response_frame: int | None = None
    connection_close: bool = False  # the response said "Connection: close"
    # Its X-Request-ID (else X-Correlation-ID or Request-Id) as sent: when nginx forwards its
    # $request_id, the access log's line for this request is known exactly.
    request_id: str | None = None
    # Sent over TLS (proxy_pass https://): a burst of encrypted application data, never readable
    encrypted: bool = False

    @property
    def label(self) -> str:
        """``"METHOD target"``, the way nginx's error log quotes a request."""
        if self.encrypted:
            return "(encrypted request)"
        if self.method is None:
            return "(request, payload not captured)"
        return f"{self.method} {self.target}"

    @property
    def answered(self) -> bool:
        """A response came (its status may be unknown when the payload was not captured)."""
        return self.responded_at_ns is not None


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class Anomaly:
    """Traffic that does not fit the connection state machine, kept instead of raised.

    Real captures contain odd things (data after a FIN, a SYN-ACK for a SYN the capture missed);
    they are recorded where they happened so the report can show them and the analysis goes on.
    """

    time_ns: int
    frame: int
    side: Side
    what: str


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class Connection:
    """One TCP connection between nginx and the upstream, from its SYN (or first packet) on.

    ``closed_by`` is the side whose FIN or RST was the connection's first closing segment, the
    question that separates a healthy keepalive setup (always the client) from a racing one.
    ``state`` and ``history`` use Zeek's ``conn_state`` codes and history letters (upper case for
    the client, lower for the server) so answers can be checked against Zeek's conn.log.
    """

    id: int
    client: str  # "ip:port" or "[ip]:port"
    server: str
    client_port: int
    ip_version: int
    opened_at_ns: int  # first packet of the connection in the capture
    first_frame: int  # that packet's number in the file
    opened_by: Side | None  # who sent the SYN; None when the capture began mid-connection
    established_at_ns: int | None  # the SYN-ACK
    closed_by: Side | None
    close: CloseKind | None
    closed_at_ns: int | None  # time of the first closing segment
    last_seen_ns: int
    # The upstream's last data segment before the first closing segment: where an upstream's
    # keepalive idle timer starts (a request nginx sends later does not restart it in time).
    last_response_ns: int | None
    partial: bool  # open before the capture started
    state: str  # Zeek conn_state: S0 S1 SF REJ S2 S3 RSTO RSTR RSTOS0 RSTRH SH SHR OTH
    history: str
    syn_count: int  # SYNs sent for this attempt (retransmissions included)
    packets: int
    client_bytes: int  # payload bytes, each counted once
    server_bytes: int
    retransmissions: int
    requests: tuple[Request, ...]
    events: tuple[Event, ...]
    anomalies: tuple[Anomaly, ...] = ()
    # What the connection became after its last HTTP message: "websocket" (or another protocol
    # a 101 Switching Protocols named), "connect" (a CONNECT answered 2xx). Its bytes from there
    # on are counted, not read as HTTP.
    tunnel: str | None = None
    # The upstream's Keep-Alive header on its first response, lower-cased ("timeout=5"): what
    # Node, Apache and others announce of their own idle timeout and request limit.
    keep_alive: str | None = None
    # The upstream's Server header on its first response, as sent ("gunicorn", "uvicorn",
    # "Jetty(12.0.1)"...): which server it is decides whose setting the advice names.
    server_header: str | None = None
    # The only side whose packets the capture holds, when it holds one only (an asymmetric
    # route, a mirror port): requests cannot be paired with answers, and a SYN with no SYN-ACK
    # in the capture is not a failed connect when nginx's ACKs and requests follow it.
    one_sided: Side | None = None
    # nginx's first segment after the SYN-ACK (its ACK of it, or its first data): with the
    # SYN and SYN-ACK, which host the capture was taken on (pcapkit.vantage). None when the
    # capture holds no handshake of the connection.
    handshake_ack_ns: int | None = None
    # "TLS 1.2" or "TLS 1.3" when the connection carries TLS (proxy_pass https://): requests and
    # responses are bursts of encrypted records; which request was which cannot be known.
    tls: str | None = None

    @property
    def duration_ns(self) -> int:
        return self.last_seen_ns - self.opened_at_ns


class ConnectionRef(NamedTuple):
    """What ``analyze(keep=)`` is told of a finished connection to decide whether to keep it,
    before any object is built for it: its id, nginx's port, how many requests it carried, and
    its span (open, first close and by whom, last packet, the upstream's last data).

    ``findings`` are its own findings as far as they are known when it is finished: the
    upstream's close and a failed connect. Lost requests and retries are paired only at the end
    of the capture; a connection that lost requests shows it by a ``request_in_flight`` close.
    """

    id: int
    client_port: int
    requests: int
    findings: tuple[Finding, ...] = ()
    # where it sits in time, for a report that draws every connection without building it
    server: str = ""
    opened_at_ns: int = 0
    closed_by: Side | None = None
    close: CloseKind | None = None
    closed_at_ns: int | None = None
    last_seen_ns: int = 0
    last_response_ns: int | None = None


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class Finding:
    """Something an operator should know about, pinned to a connection and a moment.

    - ``server_initiated_close``: the upstream closed first; ``reason`` says why where the capture
      shows it, ``idle_ns`` is the idle time before an idle-timeout close.
    - ``request_lost_to_fin``: ``request`` got no response because the upstream closed;
      ``retried`` and ``retried_on`` say whether nginx sent it again and where.
    - ``retry``: ``request`` sent again on this connection after it was lost on ``retry_of``;
      ``new_connection`` is True when nginx opened a fresh connection for it.
    - ``connect_failed``: a SYN never answered, or answered with RST.
    """

    type: FindingType
    connection: int
    time_ns: int
    frame: int
    message: str
    request: str | None = None
    reason: CloseReason | None = None
    idle_ns: int | None = None
    retry_of: int | None = None
    new_connection: bool | None = None
    retried: bool | None = None
    retried_on: int | None = None
    request_index: int | None = None
    # request_lost_to_fin: what nginx's error log says for it, the likelier first ("upstream
    # prematurely closed connection ..." for the upstream's FIN, "recv() failed (104: Connection
    # reset by peer) ..." for its RST; both when a RST followed the FIN)
    nginx_errors: tuple[str, ...] = ()
    # retry: the upstream server ("ip:port") it went to, when not the one the request was lost on
    other_server: str | None = None
    # the lost (or retried) request's X-Request-ID as sent: nginx sends a retry with the same
    # $request_id, and its access log can name it, which joins the two exactly
    request_id: str | None = None
    # request_lost_to_fin and retry: identical requests (no request id) went out within a
    # millisecond of the one taken for the retry, so which was nginx's is not certain
    retry_ambiguous: bool | None = None


@dataclass(frozen=True, slots=True)
class Advice:
    """A conclusion about the configuration of nginx or the upstream, with what it rests on.

    ``value`` is the measured number (seconds for the upstream's idle timeout, a request count
    for its max-keep-alive-requests, a count of findings otherwise); ``evidence`` how many
    connections or findings it is drawn from.
    """

    topic: AdviceTopic
    text: str
    value: float | None = None
    evidence: int = 0


@dataclass(frozen=True, slots=True)
class CaptureFile:
    """One file of a capture that came in several (a rotated series), as read.

    ``first_frame`` … ``last_frame`` are its packets' numbers in the merged capture (frame
    numbers count the packets of every file in time order, as ``mergecap`` writes them), so
    frame ``n`` of the report is packet ``n - first_frame + 1`` of this file when the files do
    not overlap. ``gap_before_ns`` is the time from the previous file's last packet to this
    one's first (None for the first file): packets may have been lost there.
    """

    path: str
    format: str
    link_types: tuple[str, ...]
    packets: int
    first_ts_ns: int | None
    last_ts_ns: int | None
    first_frame: int
    last_frame: int
    gap_before_ns: int | None = None
    warnings: tuple[str, ...] = ()


Vantage = Literal["nginx", "upstream", "unknown"]


@dataclass(frozen=True, slots=True)
class CaptureHost:
    """Which host the capture looks taken on, from its handshakes (``pcapkit.vantage``).

    ``seen_from`` is ``"nginx"`` when the SYN-ACK came a round trip after the SYN (nginx's
    host), ``"upstream"`` when nginx's ACK came a round trip after the SYN-ACK, and
    ``"unknown"`` when neither gap stands out (one host, loopback, or no handshake seen). The
    medians are over ``handshakes`` connections nginx opened in the capture; times on the
    upstream's host are when nginx's packets arrived there, not when nginx sent them.
    """

    seen_from: Vantage
    handshakes: int
    syn_to_syn_ack_ns: int | None  # median
    syn_ack_to_ack_ns: int | None  # median: nginx's ACK of the SYN-ACK


@dataclass(frozen=True, slots=True)
class CaptureSummary:
    """What was read from the file (or files), including everything skipped and why.

    A capture in several files (``files``: more than one, in time order) was merged into one
    stream by timestamp: ``path`` is then its first file's, the counts are over all of them,
    and ``series`` says how the files were recognised as one capture. ``since_ns`` /
    ``until_ns`` are the time window analyzed, when one was asked for.
    """

    path: str
    format: str
    link_types: tuple[str, ...]
    packets: int
    tcp_segments: int
    upstream_segments: int
    skipped: tuple[tuple[str, int], ...]  # (reason, count), reasons sorted
    ports: tuple[int, ...]
    first_ts_ns: int | None
    last_ts_ns: int | None
    warnings: tuple[str, ...] = ()
    files: tuple[CaptureFile, ...] = ()
    series: str | None = None
    since_ns: int | None = None
    until_ns: int | None = None
    host: CaptureHost | None = None  # None until the connections are read (analyze() sets it)

    @property
    def skipped_total(self) -> int:
        return sum(n for _, n in self.skipped)


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts an operator reads first."""

    connections: int
    partial_connections: int
    requests: int
    responses: int
    unanswered_requests: int
    closed_by_client: int
    closed_by_server: int
    not_closed: int
    closed_with_rst: int
    retransmissions: int
    anomalies: int
    findings: tuple[tuple[FindingType, int], ...]  # every type, zeros included, fixed order

    def findings_of(self, kind: FindingType) -> int:
        return dict(self.findings)[kind]


@dataclass(frozen=True, slots=True)
class Analysis:
    """The result of :func:`pcapkit.analyze`: everything kaflow learned from one capture.

    ``connections`` holds every connection in id order, unless ``analyze()`` was told to keep
    fewer (``keep=``): the summary and the findings always cover all of them. It is a tuple, or a
    :class:`~pcapkit.store.Spool` read back from disk one connection at a time (``spool=True``).
    ``findings`` likewise: a tuple, or with ``spool=True`` a :class:`~pcapkit.store.FindingSpool`
    (equal to the tuple it would otherwise be).
    """

    capture: CaptureSummary
    connections: Sequence[Connection]
    findings: Sequence[Finding]
    summary: Summary
    advice: tuple[Advice, ...] = ()
    # the proxy that sent the requests (nginx, HAProxy, other) and how kaflow knows: its rules
    # paired the retries and worded the findings and advice
    client: Client = field(default_factory=Client)
    # nginx's logs joined to the findings (``analyze --nginx-log``), and the configured settings
    # held against the measured ones (``--nginx-conf``): added by the caller after the analysis
    logs: LogJoin | None = None
    configured: tuple[Comparison, ...] = ()
    _by_id: dict[int, Connection] = field(default_factory=dict, repr=False, compare=False)
    _by_conn: dict[int, tuple[Finding, ...]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def connection(self, conn_id: int) -> Connection:
        """The connection with this id (ids are 1-based, in order of first packet).

        KeyError if it was not kept.
        """
        find = getattr(self.connections, "by_id", None)
        if find is not None:
            found: Connection = find(conn_id)
            return found
        if not self._by_id:
            self._by_id.update((c.id, c) for c in self.connections)
        return self._by_id[conn_id]

    def findings_for(self, conn_id: int) -> tuple[Finding, ...]:
        """One connection's findings, in report order."""
        of = getattr(self.findings, "of", None)
        if of is not None:
            mine: tuple[Finding, ...] = of(conn_id)
            return mine
        if not self._by_conn and self.findings:
            by: dict[int, list[Finding]] = {}
            for f in self.findings:
                by.setdefault(f.connection, []).append(f)
            self._by_conn.update((k, tuple(v)) for k, v in by.items())
        return self._by_conn.get(conn_id, ())

    def flagged(self) -> list[int]:
        """The ids of the connections with findings, in order."""
        ids = getattr(self.findings, "connection_ids", None)
        if ids is not None:
            found: list[int] = ids()
            return found
        return sorted({f.connection for f in self.findings})

    @property
    def has_findings(self) -> bool:
        return len(self.findings) > 0

    def events_frame(self) -> pd.DataFrame:
        """One row per event of every connection (see ``docs/api.md`` for the columns)."""
        from pcapkit.frames import events_frame

        return events_frame(self)

    def connections_frame(self) -> pd.DataFrame:
        """One row per connection."""
        from pcapkit.frames import connections_frame

        return connections_frame(self)

    def findings_frame(self) -> pd.DataFrame:
        """One row per finding."""
        from pcapkit.frames import findings_frame

        return findings_frame(self)

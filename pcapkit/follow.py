"""``Follow``: findings from a capture as it arrives (``kaflow analyze - --follow``).

The same stages as :func:`pcapkit.analyze` — the core, then the rules of :mod:`pcapkit.classify`
— fed as tcpdump writes: the core finishes a connection half a second after it is over
(:data:`pcapkit._core` follows the input on a thread of its own), its findings are decided at
once, and a lost request is paired with its retry as soon as the retry is sent
(:class:`pcapkit.classify.Live`). Nothing grows with the hours: connections and findings are
counted and let go; only the last seconds' requests are kept, for retry pairing.

Library code: it never prints. Iterating yields each :class:`~pcapkit.model.Finding` when it is
decided and a :class:`Tally` every ``every`` seconds (wall clock) and at the end.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pcapkit import classify, vantage
from pcapkit.analysis import Totals, to_judge
from pcapkit.client import ClientEvidence, ClientKind, given
from pcapkit.model import FINDING_TYPES, CaptureSummary, Finding, FindingType, Vantage
from pcapkit.series import Edge

if TYPE_CHECKING:
    from pcapkit._core import Batch

# Handshakes timed to tell which host the capture runs on: the first ones decide it, and a
# capture followed for days must not keep one sample per connection.
_HANDSHAKES = 10_000


@dataclass(frozen=True, slots=True)
class Tally:
    """What a followed capture has shown so far: the line printed every ``--every`` seconds,
    and at the end (``final``)."""

    time_ns: int | None  # capture time it was taken at (None before the first packet)
    connections: int
    requests: int
    unanswered_requests: int
    closed_by_server: int
    findings: tuple[tuple[FindingType, int], ...]  # every type, zeros included, fixed order
    final: bool = False

    @property
    def found(self) -> int:
        return sum(n for _, n in self.findings)


Update = Finding | Tally


class Follow:
    """Follow one capture as it arrives: ``-`` (standard input), a named pipe, or a file
    tcpdump is still writing (read like ``tail -f``: it never ends; stop with :meth:`stop`
    from a signal handler, or by breaking off the iteration).

    Iterate for updates; :meth:`stop` ends the capture early (Ctrl-C) and returns the findings
    of the losses still waiting for a retry. Raises a :class:`~pcapkit.errors.KaflowError` with
    a one-line message for input that is not a usable capture, as :func:`pcapkit.analyze` does.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        port: int | tuple[int, ...] = 8080,
        *,
        client: ClientKind | None = None,
        since: Edge | None = None,
        until: Edge | None = None,
        every: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if client is not None:
            given(client)
        self.path = os.fspath(path)
        self.ports = (port,) if isinstance(port, int) else port
        self.client = client
        self.window = (since, until)
        self.every = every
        self.clock = clock
        self.counts: Counter[FindingType] = Counter()
        self._evidence = ClientEvidence()
        self._handshakes = vantage.Handshakes()
        self._live = classify.Live()
        self._now: int | None = None
        self._totals = Totals()
        self._ended = False
        # what was read, once the input has ended (its warnings: a cut or damaged stream...)
        self.capture: CaptureSummary | None = None

    def __iter__(self) -> Iterator[Update]:
        from pcapkit import _core
        from pcapkit.analysis import capture_summary, check_facts

        scan = _core.Scan([self.path], self.ports, False, *self.window, True)
        due = self.clock() + self.every
        for batch in scan:
            if batch.now_ns is not None:
                self._now = batch.now_ns
            yield from self._add(batch)
            if self.clock() >= due:
                yield self.tally()
                due = self.clock() + self.every
        facts = scan.facts()
        check_facts(facts, self.path, self.ports)
        self.capture = capture_summary(facts, self.ports, [self.path], False)
        yield from self.stop()
        yield self.tally(final=True)

    def stop(self) -> list[Finding]:
        """The capture ends here: the losses still waiting for a retry are decided without
        one."""
        if self._ended:
            return []
        self._ended = True
        return self._counted(self._settle(end=True))

    def tally(self, final: bool = False) -> Tally:
        return Tally(
            time_ns=self._now,
            connections=self._totals.connections,
            requests=self._totals.requests,
            unanswered_requests=self._totals.unanswered,
            closed_by_server=self._totals.by_server,
            findings=tuple((t, self.counts[t]) for t in FINDING_TYPES),
            final=final,
        )

    def _add(self, b: Batch) -> list[Finding]:
        c = b.connections
        self._totals.add(c)
        if self.client is None:
            self._evidence.add(c.conn_request_headers)
        if len(self._handshakes.syn_ack) < _HANDSHAKES:
            self._handshakes.add(c)
        now = self._now or 0
        self._live.servers(c.conn_id, c.conn_server, now)
        self._live.requests(b.request_rows())
        self._live.requests(b.open_request_rows())
        judged, looked = to_judge(b)
        out: list[Finding] = []
        for i, f in judged:
            own, losses = classify.judge(f, looked.get(i))
            out.extend(own)
            self._live.losses(losses)
        out.extend(self._settle())
        out.sort(key=classify.finding_order)
        return self._counted(out)

    def _settle(self, end: bool = False) -> list[Finding]:
        if not self._live.waiting():
            self._live.forget(self._now or 0)
            return []
        client = self._evidence.decide(self.client)
        seen: Vantage = self._handshakes.judge().seen_from
        return self._live.settle(self._now or 0, client, seen, end=end)

    def _counted(self, found: list[Finding]) -> list[Finding]:
        self.counts.update(f.type for f in found)
        return found

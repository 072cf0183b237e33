"""Which host a capture was taken on, read off the TCP handshakes' timing.

A capture on nginx's host sees its SYN leave at once and the SYN-ACK come back one round trip
later, and then nginx's ACK leave at once; on the upstream's host the SYN-ACK leaves as soon as
the SYN arrives, and nginx's ACK comes one round trip later. So the host is where the short gap
is: SYN → SYN-ACK short = the upstream's, SYN-ACK → nginx's ACK short = nginx's. On one host
(loopback) or a link too fast to measure, both gaps are the kernels' own answer times, and the
capture does not tell.

The ACK (the core's ``conn_handshake_ack_ns``: nginx's first segment after the SYN-ACK), not the
first request: the kernel ACKs the SYN-ACK at once, while nginx writes its request when its
worker gets to it (0.4 to 0.8 ms after the SYN-ACK in the lab's loopback runs), which on a fast
link would look like a round trip.
"""

from __future__ import annotations

from array import array
from typing import TYPE_CHECKING

from pcapkit._median import median
from pcapkit.model import CaptureHost, Vantage

if TYPE_CHECKING:
    from pcapkit._core import Connections

# A round trip shorter than this is not told from the hosts' own answer times (loopback: a few
# microseconds; under load, tens): below it the capture's host is not judged.
MIN_ROUND_TRIP_NS = 300_000
# ... and the long gap must be this many times the short one (the median of each)
MIN_RATIO = 5
# Enough handshakes to judge by: the first ones, so that memory stays bounded on any capture.
MAX_SAMPLES = 10_000


class Handshakes:
    """The (SYN → SYN-ACK, SYN-ACK → nginx's ACK) gaps of the connections nginx opened."""

    def __init__(self) -> None:
        self.syn_ack = array("q")
        self.ack = array("q")

    def add(self, c: Connections) -> None:
        """Take a batch's connections."""
        for by, opened, est, ack in zip(
            c.conn_opened_by,
            c.conn_opened_at_ns,
            c.conn_established_at_ns,
            c.conn_handshake_ack_ns,
            strict=True,
        ):
            if len(self.syn_ack) >= MAX_SAMPLES:
                return
            # opened_by is None for a connection open before the capture: no SYN to time
            if by != "client" or est is None or ack is None or ack < est:
                continue
            self.syn_ack.append(est - opened)
            self.ack.append(ack - est)

    def judge(self) -> CaptureHost:
        if not self.syn_ack:
            return CaptureHost("unknown", 0, None, None)
        a = int(median(self.syn_ack))
        b = int(median(self.ack))
        seen_from: Vantage = "unknown"
        if max(a, b) >= MIN_ROUND_TRIP_NS:
            if a >= MIN_RATIO * b:
                seen_from = "nginx"
            elif b >= MIN_RATIO * a:
                seen_from = "upstream"
        return CaptureHost(seen_from, len(self.syn_ack), a, b)

"""Build the packets of nginx↔upstream TCP conversations with real sequence numbers.

Tests describe what happened ("nginx sends GET at t=1 ms, the upstream FINs at t=1.0002 s") and
get byte-exact IP packets to write with :mod:`tests.craft`, so the whole pipeline — reader, TCP
reconstruction, HTTP framing, state machine, classifier — is exercised on every test.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tests import craft

MS = 1_000_000
T0 = 1_700_000_000 * 1_000_000_000  # an arbitrary epoch for test captures


def get(target: str, host: str = "backend") -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


def post(target: str, body: bytes = b"x=1", host: str = "backend") -> bytes:
    head = f"POST {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def ok(body: bytes = b"ok\n", *, close: bool = False, status: int = 200) -> bytes:
    extra = "Connection: close\r\n" if close else ""
    head = f"HTTP/1.1 {status} OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


class Conv:
    """One TCP connection; methods append packets at absolute times in nanoseconds."""

    def __init__(
        self,
        cport: int = 40000,
        *,
        client: str = "127.0.0.1",
        server: str = "127.0.0.1",
        sport: int = 8080,
        isn_c: int = 1_000,
        isn_s: int = 900_000,
    ) -> None:
        self.c = (client, cport)
        self.s = (server, sport)
        self.isn = {"c": isn_c, "s": isn_s}
        self.nxt = {"c": isn_c, "s": isn_s}
        self.packets: list[tuple[int, bytes]] = []

    def _pkt(
        self, side: str, t: int, flags: str, payload: bytes = b"", seq: int | None = None
    ) -> None:
        src, dst = (self.c, self.s) if side == "c" else (self.s, self.c)
        other = "s" if side == "c" else "c"
        s = self.nxt[side] if seq is None else seq
        ack = self.nxt[other] if "A" in flags else 0
        self.packets.append(
            (
                t,
                craft.tcp(
                    src[0],
                    dst[0],
                    src[1],
                    dst[1],
                    seq=s % 2**32,
                    ack=ack % 2**32,
                    flags=flags,
                    payload=payload,
                ),
            )
        )

    def handshake(self, t: int, rtt: int = 20_000) -> Conv:
        self._pkt("c", t, "S")
        self.nxt["c"] += 1
        self._pkt("s", t + rtt // 2, "SA")
        self.nxt["s"] += 1
        self._pkt("c", t + rtt, "A")
        return self

    def syn(self, t: int) -> Conv:
        """A SYN (again, with the same ISN, if called twice)."""
        self._pkt("c", t, "S", seq=self.isn["c"])
        self.nxt["c"] = self.isn["c"] + 1
        return self

    def send(self, side: str, t: int, data: bytes, *, ack_after: int | None = 10_000) -> Conv:
        self._pkt(side, t, "PA", data)
        self.nxt[side] += len(data)
        if ack_after is not None:
            self._pkt("s" if side == "c" else "c", t + ack_after, "A")
        return self

    def retransmit(self, side: str, t: int, data: bytes, back: int) -> Conv:
        """Send ``data`` again from ``back`` bytes before the current next sequence number."""
        self._pkt(side, t, "PA", data, seq=self.nxt[side] - back)
        return self

    def fin(self, side: str, t: int) -> Conv:
        self._pkt(side, t, "FA")
        self.nxt[side] += 1
        return self

    def rst(self, side: str, t: int, *, ack: bool = False) -> Conv:
        self._pkt(side, t, "RA" if ack else "R")
        return self

    def exchange(self, t: int, request: bytes, response: bytes, took: int = 1 * MS) -> Conv:
        self.send("c", t, request)
        self.send("s", t + took, response)
        return self


def write(path: Path, convs: Iterable[Conv], **kw: object) -> Path:
    packets = sorted((p for c in convs for p in c.packets), key=lambda p: p[0])
    craft.write_pcap(path, packets, **kw)  # type: ignore[arg-type]
    return path

"""Which proxy sent the requests: nginx, HAProxy, or another client (issue #12).

The packets of the race are the same whoever the client is; what follows a lost request is the
client's: nginx retries an idempotent request on the next connection and logs 'upstream
prematurely closed connection'; HAProxy with its default ``retry-on`` (``conn-failure``)
resends nothing and logs a 502 with termination state ``SH--``, and with ``retry-on
empty-response`` replays every lost request, a POST too. So the client is decided once per
capture, before retries are paired and findings worded:

- given by the caller (``analyze(client=)``, ``--client``);
- else told by how the requests spell their header names, read off each connection's first
  request head: HAProxy 2 (HTX) writes every header name in lower case; nginx writes the
  ``Host`` it adds itself, and ``Connection`` when it asks to close, in their usual case; Envoy
  adds ``x-envoy-*`` headers (it is "other": kaflow knows none of its rules);
- else nginx, kaflow's documented setting, said to be assumed: no request head was captured to
  tell (a small snaplen, encrypted traffic).

Heads of both spellings in one capture mean more than one client: "other". Lower-case names
prove "not nginx"; that they are HAProxy's is the likeliest reading, not a proof (a Node proxy
that forwards ``req.headers`` writes lower case too), hence the basis the report shows and
``--client`` to override it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal, get_args

from pcapkit.errors import KaflowError

ClientKind = Literal["nginx", "haproxy", "other"]
CLIENT_KINDS: Final[tuple[ClientKind, ...]] = get_args(ClientKind)

# Methods nginx never passes to the next upstream unless proxy_next_upstream has non_idempotent.
NGINX_NOT_RETRIED: Final = frozenset({"POST", "LOCK", "PATCH"})

_NAMES: Final[dict[ClientKind, str]] = {
    "nginx": "nginx",
    "haproxy": "HAProxy",
    "other": "the client",
}

HeadSpelling = Literal["lower", "cased", "envoy"]


def head_spelling(names: str) -> HeadSpelling:
    """How one request head spells its header names (``names``: one per line, as sent)."""
    split = names.split("\n")
    if any(n.lower().startswith("x-envoy-") for n in split):
        return "envoy"
    return "lower" if all(n == n.lower() for n in split) else "cased"


@dataclass(frozen=True, slots=True)
class Client:
    """The proxy whose requests the capture holds, and how kaflow knows it."""

    kind: ClientKind = "nginx"
    # what decided it, as the report says it ("given", or the evidence)
    basis: str = "assumed: no request head was captured to tell the client by"
    given: bool = False

    @property
    def name(self) -> str:
        """Its name in a sentence: 'nginx', 'HAProxy', 'the client'."""
        return _NAMES[self.kind]

    @property
    def title(self) -> str:
        """Its name at the start of a sentence."""
        return self.name[:1].upper() + self.name[1:] if self.kind == "other" else self.name

    @property
    def label(self) -> str:
        """Its name as a column or lane label ('client' when unknown)."""
        return "client" if self.kind == "other" else self.name

    @property
    def never_retried(self) -> frozenset[str]:
        """Methods it never sends again after a loss: a same request after one is another
        client's. nginx: POST, LOCK, PATCH (without ``non_idempotent``). HAProxy's
        ``retry-on empty-response`` replays any method; what another client does is unknown."""
        return NGINX_NOT_RETRIED if self.kind == "nginx" else frozenset()


def given(kind: ClientKind) -> Client:
    """The client the caller named."""
    if kind not in CLIENT_KINDS:
        raise KaflowError(f"client must be one of {', '.join(CLIENT_KINDS)}, not {kind!r}")
    return Client(kind, "given (--client)", True)


# a plain class, not a dataclass: a dataclass costs ~1 ms of start-up to create (Python 3.11
# compiles each of its methods), and nothing compares or prints this one
class ClientEvidence:
    """The spelling of each connection's first request head, counted a batch at a time."""

    __slots__ = ("cased", "envoy", "lower")

    def __init__(self) -> None:
        self.lower = 0
        self.cased = 0
        self.envoy = 0

    def add(self, heads: Iterable[str | None]) -> None:
        # a client sends the same few heads again and again: each distinct one is read once
        for names, n in Counter(heads).items():
            if names:
                spelling = head_spelling(names)
                if spelling == "lower":
                    self.lower += n
                elif spelling == "cased":
                    self.cased += n
                else:
                    self.envoy += n

    def decide(self, kind: ClientKind | None = None) -> Client:
        """The client: ``kind`` if given, else what the heads say, else nginx (assumed)."""
        if kind is not None:
            return given(kind)
        low, cased, envoy = self.lower, self.cased, self.envoy
        if envoy:
            return Client("other", f"{envoy:,} request heads carry Envoy's x-envoy-* headers")
        if low and cased:
            return Client(
                "other",
                f"more than one client: {low:,} request heads with every header name in lower "
                f"case (as HAProxy 2 writes them), {cased:,} with names in their usual case "
                "(as nginx writes its 'Host')",
            )
        if low:
            return Client(
                "haproxy",
                f"told by its requests: {low:,} request heads spell every header name in "
                "lower case, as HAProxy 2 writes them (nginx writes 'Host')",
            )
        if cased:
            return Client(
                "nginx",
                f"told by its requests: {cased:,} request heads spell header names in their "
                "usual case, as nginx writes its 'Host' (HAProxy 2 writes 'host')",
            )
        return Client()

"""Which request was nginx's retry: by request id when there is one, by time otherwise (and
said to be uncertain when identical requests went out together), followed to the end of a chain
of losses. End to end on crafted captures; the Python reference agrees on the connections."""

from __future__ import annotations

from pathlib import Path

from pcapkit import Analysis, Finding, analyze
from tests import reference
from tests.conversation import MS, T0, Conv, ok, write

SEC = 1_000_000_000


def req(target: str, rid: str | None = None) -> bytes:
    extra = f"X-Request-ID: {rid}\r\n" if rid else ""
    return f"GET {target} HTTP/1.1\r\nHost: backend\r\n{extra}\r\n".encode()


def lost(cport: int, t: int, request: bytes) -> Conv:
    """A cached connection: one answered request, then ``request`` lost to the upstream's FIN."""
    c = Conv(cport).handshake(t - 20 * MS).exchange(t - 10 * MS, req("/warm"), ok())
    c.send("c", t, request).fin("s", t + 200_000).fin("c", t + 300_000)
    return c


def sent(cport: int, t: int, request: bytes) -> Conv:
    """A fresh connection that sends ``request`` at ``t`` and gets its answer."""
    return Conv(cport).handshake(t - 100_000).exchange(t, request, ok())


def run(tmp_path: Path, convs: list[Conv]) -> Analysis:
    path = write(tmp_path / "r.pcap", convs)
    a = analyze(path)
    assert reference.analyze(path).connections == a.connections
    return a


def of(a: Analysis, kind: str) -> list[Finding]:
    return [f for f in a.findings if f.type == kind]


def test_the_request_id_names_the_retry_not_the_first_identical_request(tmp_path: Path) -> None:
    t = T0 + 1 * SEC
    a = run(
        tmp_path,
        [
            lost(40000, t, req("/x", "aaa")),
            sent(40002, t + 400_000, req("/x", "bbb")),  # another client's, first
            sent(40004, t + 900_000, req("/x", "aaa")),  # nginx's retry: the same id
        ],
    )
    (loss,) = of(a, "request_lost_to_fin")
    (retry,) = of(a, "retry")
    assert (loss.retried_on, retry.connection, retry.request_id) == (3, 3, "aaa")
    assert not loss.retry_ambiguous and not retry.retry_ambiguous


def test_identical_requests_together_make_the_retry_ambiguous(tmp_path: Path) -> None:
    t = T0 + 1 * SEC
    together = [
        lost(40000, t, req("/x")),
        sent(40002, t + 400_000, req("/x")),
        sent(40004, t + 700_000, req("/x")),  # 0.3 ms later: cannot be told apart
    ]
    (loss,) = of(run(tmp_path, together), "request_lost_to_fin")
    assert loss.retried_on == 2 and loss.retry_ambiguous
    assert "or on one of 1 identical request sent within 1.000 ms of it" in loss.message
    apart = [lost(40000, t, req("/x")), sent(40002, t + 400_000, req("/x"))]
    apart.append(sent(40004, t + 40 * MS, req("/x")))  # 40 ms later: another client's
    (loss,) = of(run(tmp_path, apart), "request_lost_to_fin")
    assert loss.retried_on == 2 and loss.retry_ambiguous is False


def test_a_request_lost_twice_is_followed_to_its_end(tmp_path: Path) -> None:
    # "$upstream_status 502, 502, 200": lost on #1, lost again on #2, answered on #3
    t = T0 + 1 * SEC
    a = run(
        tmp_path,
        [
            lost(40000, t, req("/x", "id1")),
            lost(40002, t + 1 * MS, req("/x", "id1")),
            sent(40004, t + 2 * MS, req("/x", "id1")),
        ],
    )
    first, second = of(a, "request_lost_to_fin")
    assert (first.retried_on, second.retried_on) == (2, 3)
    assert "lost there too, retried on #3" in first.message
    assert [r.connection for r in of(a, "retry")] == [2, 3]


def test_a_chain_that_ends_lost_says_the_client_got_an_error(tmp_path: Path) -> None:
    t = T0 + 1 * SEC
    a = run(tmp_path, [lost(40000, t, req("/x", "id2")), lost(40002, t + 1 * MS, req("/x", "id2"))])
    first, second = of(a, "request_lost_to_fin")
    assert first.retried_on == 2 and second.retried is False
    assert "lost there too (#2), and not retried: its client got an error" in first.message

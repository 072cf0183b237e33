"""``docs/robustness.md`` quotes kaflow's refusals and warnings word for word: each quoted line
is what kaflow really says for the input it names."""

from __future__ import annotations

import bz2
import gzip
import lzma
import re
import struct
from pathlib import Path

import pytest

from pcapkit import analyze
from pcapkit.errors import KaflowError
from tests import craft
from tests.conversation import MS, T0, Conv, get, ok

DOC = Path(__file__).resolve().parent.parent / "docs" / "robustness.md"


def _text_block(after: str) -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(after)
    block = re.search(r"```text\n(.*?)```", text[start:], re.S)
    assert block is not None, after
    return block.group(1).splitlines()


def _claim(data: bytes, record: int, value: int) -> bytes:
    off = 24
    for _ in range(record):
        off += 16 + struct.unpack_from("<I", data, off + 8)[0]
    out = bytearray(data)
    struct.pack_into("<I", out, off + 8, value)
    return bytes(out)


def _inputs() -> dict[str, bytes]:
    """The files the doc's examples name."""
    conv = Conv().handshake(T0).exchange(T0 + MS, get("/a"), ok())
    conv.fin("c", T0 + 2 * MS).fin("s", T0 + 3 * MS)
    good = craft.pcap_bytes(sorted(conv.packets, key=lambda p: p[0]))
    other = Conv(sport=9090).handshake(T0).exchange(T0 + MS, get("/"), ok())
    udp = [(T0 + k, craft.ipv4("10.0.0.1", "10.0.0.2", 17, bytes(8))) for k in range(3)]
    # nginx's port is 8080 here: it connects to an upstream on 9000
    reverse = Conv(8080, sport=9000).handshake(T0).exchange(T0 + MS, get("/"), ok())
    return {
        "dump.txt": b"12:01:02.123456 IP 10.0.0.1.40000 > 10.0.0.2.8080: Flags [S], seq 1\n",
        "dump.json": b'[{"_source": {}}]',
        "dump.html": b"<!DOCTYPE html><html></html>",
        "dump.xml": b"<?xml version='1.0'?><pdml/>",
        "conn.log": b"#separator \\x09\n",
        "a.out": b"\x7fELF" + bytes(60),
        "dump.snoop": b"snoop\x00\x00\x00" + bytes(60),
        "dump.bin": bytes(range(256)) * 4,
        "dump.pcap.xz": lzma.compress(good),
        "dump.pcap.bz2": bz2.compress(good),
        "dump.pcap.zst": b"\x28\xb5\x2f\xfd" + good,
        "dump.zip": b"PK\x03\x04" + good,
        "wifi.pcap": craft.pcap_bytes([(T0, bytes(40))], linktype=105, framed=True),
        "empty.pcap": b"",
        "header.pcap": craft.pcap_bytes([]),
        "cutfirst.pcap": good[:30],
        "short.pcap": good[:10],
        "first2gb.pcap": _claim(good, 0, 2 << 30),
        "mid2gb.pcap": _claim(good, 3, 2 << 30),
        "badshb.pcapng": b"\x0a\x0d\x0d\x0a" + struct.pack("<I", 28) + b"XXXX" + bytes(16),
        "badgz.pcap.gz": b"\x1f\x8b\x08\x00garbage" + bytes(20),
        "port9090.pcap": craft.pcap_bytes(sorted(other.packets, key=lambda p: p[0])),
        "udp.pcap": craft.pcap_bytes(udp),
        "reversed.pcap": craft.pcap_bytes(sorted(reverse.packets, key=lambda p: p[0])),
        "cut.pcap": good[:-10],
        "cutgz.pcap.gz": gzip.compress(good, mtime=0)[:-12],
        "secret.pcap": good,
    }


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name, data in _inputs().items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "captures").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _said(name: str) -> str:
    try:
        a = analyze(name)
    except KaflowError as e:
        return f"{type(e).__name__}: {e}"
    return "\n".join(a.capture.warnings)


def test_every_quoted_refusal_is_what_kaflow_says(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = _text_block("## What kaflow refuses")
    assert len(lines) >= 20
    for line in lines:
        name = re.search(r": (\S+?)(?::| is | starts | has | holds )", line)
        assert name is not None, line
        path = name.group(1)
        if line.endswith("permission denied"):
            assert craft.said_when_unreadable(workdir / path) == line
            continue
        assert _said(path) == line


def test_every_quoted_warning_is_what_kaflow_says(workdir: Path) -> None:
    lines = _text_block("### Warnings: the analysis went on")
    said = {_said(name) for name in ("cut.pcap", "cutgz.pcap.gz", "mid2gb.pcap")}
    assert set(lines) == said

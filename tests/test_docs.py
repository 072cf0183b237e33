"""The examples in the docs run: a worked example that does not run teaches the wrong thing."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def blocks(doc: str) -> list[str]:
    return BLOCK.findall((ROOT / doc).read_text())


@pytest.mark.parametrize("doc", ["docs/api.md", "README.md"])
def test_python_examples_run(doc: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    found = blocks(doc)
    assert found
    for code in found:
        code = code.replace('"dump.pcap"', '"fixtures/idle-race-get/capture.pcap"')
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(code, doc, "exec"), {})


def _printed(doc: str, needle: str) -> str:
    """What the first code block of ``doc`` that contains ``needle`` prints."""
    code = next(b for b in blocks(doc) if needle in b)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, doc, "exec"), {})
    return out.getvalue()


def test_worked_example_output_is_what_the_code_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    printed = _printed("docs/api.md", "request_lost_to_fin")
    assert "6 6\n" in printed
    assert "GET /test/0/7 lost on connection 5 retried on 6" in printed
    assert "127.0.0.1:45512 server fin SF ShADadfF" in printed


def test_keep_example_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert _printed("docs/api.md", "spool=True") == "6 [1, 2, 3, 4, 5, 6]\n"


def test_readme_example_is_real_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every line of the README's sample session is a line kaflow really prints for it."""
    import subprocess
    import sys

    monkeypatch.chdir(ROOT)
    text = (ROOT / "README.md").read_text()
    start = text.index("$ kaflow analyze fixtures/idle-race-get/capture.pcap")
    sample = text[start : text.index("```", start)].splitlines()[1:]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pcapkit",
            "analyze",
            "fixtures/idle-race-get/capture.pcap",
            "-c",
            "5",
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()
    shown = [line for line in sample if line.strip() and line != "..."]
    assert len(shown) > 10
    assert [line for line in shown if line not in out] == []

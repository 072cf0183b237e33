"""The fast path agrees with the straightforward reference on every real fixture.

``tests/reference.py`` reads with dpkt and rebuilds connections one packet at a time; the fast
path reads in vectorized windows and streams. Same answers required, packet for packet.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pcapkit import Analysis, analyze
from tests import reference

FIXTURES = Path(__file__).parent.parent / "fixtures"
CAPTURES = sorted(
    str(p.relative_to(FIXTURES))
    for p in FIXTURES.glob("*/*.pcap*")
    if p.suffix in (".pcap", ".pcapng")
)


def same(fast: Analysis, ref: Analysis) -> None:
    assert fast.connections == ref.connections
    assert fast.findings == ref.findings
    assert fast.summary == ref.summary


@pytest.mark.parametrize("capture", CAPTURES)
def test_fast_path_equals_reference_on_fixtures(capture: str) -> None:
    assert len(CAPTURES) >= 14
    same(analyze(FIXTURES / capture), reference.analyze(FIXTURES / capture))

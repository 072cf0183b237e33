"""What the kaflow command imports to start: nothing heavy that its answer does not need.

Start-up time is measured by ``benchmarks/startup.py``, never here: these tests only say which
modules a fresh process has loaded after ``kaflow --help`` and after the default report on a
fixture, so that a heavy import added at start-up fails a test instead of quietly costing every
run. pandas (and numpy) only when a DataFrame is asked for; pydantic never (typer 0.29 builds a
pydantic adapter per option; kaflow bounds typer below it); importlib.metadata never (tabulate
0.10 reads its own version with it at import; kaflow bounds tabulate below it).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pcapkit._median import median

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "fixtures" / "idle-race-get" / "capture.pcap"

# the command's main() in a fresh interpreter, then the names of the modules it loaded, as the
# last line of stderr
_RUN = """
import json, sys
from pcapkit.cli import main
sys.argv = ["kaflow", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit:
    pass
sys.stderr.write("\\n" + json.dumps(sorted(sys.modules)) + "\\n")
"""

HEAVY = ("pandas", "numpy", "pyarrow", "pydantic", "pydantic_core", "rich", "importlib.metadata")


def loaded(*args: str) -> set[str]:
    p = subprocess.run(
        [sys.executable, "-c", _RUN, json.dumps(args)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert p.returncode in (0, 1), p.stderr
    return set(json.loads(p.stderr.splitlines()[-1]))


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m in HEAVY or m.split(".")[0] in HEAVY)


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("analyze", "--help"),
        ("analyze", str(FIXTURE)),
        ("analyze", str(FIXTURE), "-f", "json"),
        ("analyze", str(FIXTURE), "-f", "csv"),
    ],
    ids=["help", "analyze-help", "table", "json", "csv"],
)
def test_no_heavy_import(args: tuple[str, ...]) -> None:
    modules = loaded(*args)
    assert "pcapkit.cli" in modules
    assert heavy(modules) == []


def test_help_loads_no_analysis() -> None:
    """--help needs the command's options, not the analysis, the reports or the core."""
    modules = loaded("--help")
    assert not {"pcapkit.analysis", "pcapkit.model", "pcapkit._core", "tabulate"} & modules


def test_the_check_sees_a_heavy_import(tmp_path: Path) -> None:
    """The same check on a run that does need a heavy library: Parquet is written by pyarrow."""
    modules = loaded("analyze", str(FIXTURE), "-f", "parquet", "-o", str(tmp_path / "lake"))
    assert "pyarrow" in heavy(modules)


@given(st.lists(st.integers(min_value=-(2**62), max_value=2**62), min_size=1, max_size=50))
def test_median_is_statistics_median(values: list[int]) -> None:
    """pcapkit's median (statistics is not imported at start-up) gives what statistics gives."""
    got, want = median(values), statistics.median(values)
    assert got == want and type(got) is type(want)

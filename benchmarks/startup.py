"""kaflow's start-up, side by side with the floor and the tools people know, in one run.

    python benchmarks/startup.py [FIXTURE ...] [--repeat 20] [--markdown] [--json OUT.json]
        [--python-release DIR] [--baseline PYTHON DIR]
    python benchmarks/startup.py --breakdown FIXTURE [--repeat 20]

Every command runs as a whole process, stdout to /dev/null; wall time is measured with
``time.perf_counter`` around the process, CPU time (user + system) with ``getrusage``. The
commands are interleaved (one of each per round, ``--repeat`` rounds, after one round that is
not counted) so that other work on the machine falls on all of them alike. The table gives the
median and the fastest wall time, the median CPU time, and each command's median wall time as a
multiple of kaflow's in its group (``--help`` for start-up, ``analyze`` for each fixture).

kaflow runs from a copy of ``pcapkit/`` taken when the benchmark starts, compiled to bytecode
first, as ``pip install`` leaves a package (with ``PYTHONDONTWRITEBYTECODE`` set, an uncompiled
checkout would be compiled again on every run); so do the other kaflows measured. Commands:

- ``python -c pass``: the interpreter's own start-up, the floor of any Python command;
- ``import pcapkit.cli``: the command's imports alone;
- ``kaflow --help``: ``python -m pcapkit --help``;
- ``kaflow analyze FIXTURE``: the default report, as a person runs it;
- ``kaflow-python``: the same, by kaflow's last pure-Python release, from a checkout of it given
  with ``--python-release DIR`` (as in ``benchmarks/compare.py``);
- ``kaflow-baseline``: ``--help`` and the same, by another kaflow given with ``--baseline PYTHON
  DIR``: a checkout (its ``pcapkit/`` with its core built) and an interpreter whose environment
  has that checkout's dependencies, e.g. an earlier commit in a venv with an earlier typer;
- ``tshark -r FIXTURE -q`` and ``tcpdump -r FIXTURE``, when installed: reading the capture with
  each tool's own start-up.

Without FIXTURE arguments: ``fixtures/idle-race-get`` (6.6 kB), ``fixtures/uvicorn-tls-race-post``
(64 kB) and ``fixtures/busy`` (2.1 MB). ``--markdown`` prints the table for
``docs/performance.md``; ``--json`` writes every run. ``--breakdown FIXTURE`` says instead where
one ``kaflow analyze FIXTURE`` process spends its CPU time, stage by stage.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tabulate import tabulate  # noqa: TID251 -- a script outside pcapkit, not the package

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from compare import machine, snapshot  # noqa: E402

FIXTURES = ("idle-race-get", "uvicorn-tls-race-post", "busy")
GOAL_SECONDS = 0.2  # issue #10: kaflow --help and a fixture, whole process


@dataclass
class Command:
    group: str
    name: str
    argv: list[str]
    env: dict[str, str] | None = None
    cwd: Path | None = None
    ok_codes: tuple[int, ...] = (0,)
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    error: str | None = None


def run_once(cmd: Command) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and its children) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd.argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=cmd.env,
        cwd=cmd.cwd,
        check=False,
    )
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in cmd.ok_codes:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-2:]
        raise RuntimeError(f"exit code {proc.returncode}: {' / '.join(tail)}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def compiled_copy(checkout: Path, dest: Path) -> Path:
    """A copy of ``checkout``'s ``pcapkit/`` under ``dest``, compiled to bytecode: the folder
    to put on ``PYTHONPATH``."""
    shutil.copytree(
        checkout / "pcapkit", dest / "pcapkit", ignore=shutil.ignore_patterns("__pycache__")
    )
    if not compileall.compile_dir(dest, quiet=1):
        raise SystemExit(f"startup.py: {checkout}/pcapkit does not compile")
    return dest


@dataclass
class Other:
    """Another kaflow measured beside this one: its own interpreter and checkout."""

    name: str
    python: str
    code: Path
    help: bool  # also its --help


def commands(fixtures: list[Path], code: Path, workdir: Path, others: list[Other]) -> list[Command]:
    py = sys.executable
    env = {**os.environ, "PYTHONPATH": str(code)}
    kaflow = [py, "-m", "pcapkit"]
    out = [
        Command("start-up", "python -c pass", [py, "-c", "pass"], cwd=workdir),
        Command(
            "start-up",
            "import pcapkit.cli",
            [py, "-c", "import pcapkit.cli"],
            env=env,
            cwd=workdir,
        ),
        Command("start-up", "kaflow --help", [*kaflow, "--help"], env=env, cwd=workdir),
    ]
    for o in others:
        if o.help:
            o_env = {**os.environ, "PYTHONPATH": str(o.code)}
            argv = [o.python, "-m", "pcapkit", "--help"]
            out.append(Command("start-up", f"{o.name} --help", argv, o_env, workdir))
    for path in fixtures:
        f = str(path.resolve())
        group = path.parent.name if path.name.startswith("capture.") else path.name
        out.append(Command(group, "kaflow analyze", [*kaflow, "analyze", f], env, workdir, (0, 1)))
        for o in others:
            o_env = {**os.environ, "PYTHONPATH": str(o.code)}
            argv = [o.python, "-m", "pcapkit", "analyze", f]
            out.append(Command(group, o.name, argv, o_env, workdir, (0, 1)))
        if shutil.which("tshark"):
            out.append(Command(group, "tshark -r FILE -q", ["tshark", "-r", f, "-q"]))
        if shutil.which("tcpdump"):
            out.append(Command(group, "tcpdump -r FILE", ["tcpdump", "-r", f]))
    return out


def measure(
    fixtures: list[Path],
    repeat: int,
    python_release: Path | None,
    baseline: tuple[str, Path] | None,
    log: bool,
) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="kaflow-startup-") as tmp:
        workdir = Path(tmp)
        code, fingerprint = snapshot(workdir)
        if not compileall.compile_dir(code, quiet=1):
            raise SystemExit("startup.py: the snapshot of pcapkit/ does not compile")
        others = []
        if baseline is not None:
            python, checkout = baseline
            where = compiled_copy(checkout, workdir / "baseline")
            others.append(Other("kaflow-baseline", python, where, help=True))
        if python_release is not None:
            where = compiled_copy(python_release, workdir / "python-release")
            others.append(Other("kaflow-python", sys.executable, where, help=False))
        todo = commands(fixtures, code, workdir, others)
        for r in range(repeat + 1):  # round 0 warms the page cache and is not counted
            for cmd in todo:
                if cmd.error:
                    continue
                try:
                    wall, cpu = run_once(cmd)
                except (RuntimeError, OSError) as e:
                    cmd.error = str(e).splitlines()[0][:200]
                    if log:
                        print(f"  {cmd.group} {cmd.name}: failed: {cmd.error}", file=sys.stderr)
                    continue
                if r > 0:
                    cmd.wall.append(wall)
                    cmd.cpu.append(cpu)
            if log and r > 0:
                print(f"  round {r}/{repeat}", file=sys.stderr)
    return {
        "repeat": repeat,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "kaflow_code_sha256": fingerprint,
        "baseline": None if baseline is None else [baseline[0], str(baseline[1])],
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "commands": [
            {
                **asdict(c),
                "argv": [os.path.basename(a) if a == sys.executable else a for a in c.argv],
                "env": None,
                "cwd": None,
            }
            for c in todo
        ],
    }


HEADERS = ["capture", "command", "median s", "fastest s", "median CPU s", "time ÷ kaflow"]


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    rows = []
    base: dict[str, float] = {}
    for c in report["commands"]:
        if c["wall"] and c["name"] in ("kaflow --help", "kaflow analyze"):
            base[c["group"]] = statistics.median(c["wall"])
    for c in report["commands"]:
        if not c["wall"]:
            rows.append([c["group"], c["name"], "failed: " + (c["error"] or "?"), "", "", ""])
            continue
        med = statistics.median(c["wall"])
        b = base.get(c["group"])
        rows.append(
            [
                c["group"],
                c["name"],
                f"{med:.3f}",
                f"{min(c['wall']):.3f}",
                f"{statistics.median(c['cpu']):.3f}",
                f"{med / b:.2f}" if b else "n/a",
            ]
        )
    return rows


def render(report: dict[str, Any], markdown: bool) -> str:
    m = report["machine"]
    lines = [
        f"median of {report['repeat']} interleaved runs each, {report['date']}; load average "
        f"{report['load_average_1min'][0]} before, {report['load_average_1min'][1]} after",
        f"machine: {m['nproc']} CPUs, {m['cpu']}, {m['memory_gib']} GiB; Python {m['python']}; "
        f"kaflow {m['kaflow_commit']} (pcapkit/ sha256 {report['kaflow_code_sha256']}); "
        f"{m['tshark']}",
    ]
    goal = [
        f"{c['group'] if c['name'] == 'kaflow analyze' else c['name']}: "
        f"{statistics.median(c['wall']):.3f} s"
        for c in report["commands"]
        if c["wall"] and c["name"] in ("kaflow --help", "kaflow analyze")
    ]
    lines.append(f"kaflow against the goal of < {GOAL_SECONDS} s (median): " + "; ".join(goal))
    if markdown:
        lines = [f"- {line}" for line in lines]
    body = tabulate(
        table_rows(report),
        HEADERS,
        tablefmt="github" if markdown else "simple",
        disable_numparse=True,
        colalign=("left", "left", "right", "right", "right", "right"),
    )
    return "\n".join([*lines, "", body])


# One process of ``kaflow analyze FILE``, its CPU time (``time.process_time``) read between the
# stages of its start: the interpreter, typer with the standard library it loads, the command's
# module, the analysis' modules, the report's, and the run itself (typer parsing the options,
# the core, classifying, the report); printed as JSON on stderr.
_STAGES = """
import time
T = time.process_time
marks = [("interpreter", T())]
import typer
marks.append(("typer and the standard library it loads", T()))
import pcapkit.cli
marks.append(("pcapkit.cli", T()))
import pcapkit.analysis
marks.append(("the analysis' modules (pcapkit.analysis, .classify, .model, ...)", T()))
import pcapkit.report.table
marks.append(("the table report's modules (with tabulate)", T()))
import io, json, sys
from contextlib import redirect_stdout
sys.argv = ["kaflow", "analyze", sys.argv[1]]
try:
    with redirect_stdout(io.StringIO()):
        pcapkit.cli.main()
except SystemExit:
    pass
marks.append(("the run: options, core, classification, report", T()))
sys.stderr.write(json.dumps([[n, b - a] for (_, a), (n, b) in zip([("", 0.0)] + marks, marks)]))
"""


def breakdown(fixture: Path, repeat: int) -> str:
    """Where a fixture's CPU time goes, stage by stage: medians of ``repeat`` processes."""
    with tempfile.TemporaryDirectory(prefix="kaflow-startup-") as tmp:
        workdir = Path(tmp)
        code, _ = snapshot(workdir)
        compileall.compile_dir(code, quiet=1)
        env = {**os.environ, "PYTHONPATH": str(code)}
        runs: list[list[tuple[str, float]]] = []
        for _ in range(repeat + 1):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            p = subprocess.run(
                [sys.executable, "-c", _STAGES, str(fixture.resolve())],
                capture_output=True,
                text=True,
                env=env,
                cwd=workdir,
                check=False,
            )
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            if p.returncode != 0:
                raise SystemExit(f"startup.py: the breakdown failed: {p.stderr.strip()[-300:]}")
            stages = [(n, t) for n, t in json.loads(p.stderr.strip().splitlines()[-1])]
            # what the process cost after its last mark: the interpreter's exit (its collector's
            # last passes, the modules torn down), which no mark inside the process can see
            whole = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            stages.append(("the interpreter's exit", max(0.0, whole - sum(t for _, t in stages))))
            runs.append(stages)
    runs = runs[1:]
    names = [n for n, _ in runs[0]]
    med = [statistics.median(r[i][1] for r in runs) for i in range(len(names))]
    rows = [[n, f"{m * 1e3:.0f}"] for n, m in zip(names, med, strict=True)]
    rows.append(["total (medians added)", f"{sum(med) * 1e3:.0f}"])
    head = f"CPU ms of kaflow analyze {fixture}, stage by stage, median of {repeat} processes"
    table = tabulate(rows, ["stage", "CPU ms"], tablefmt="github", colalign=("left", "right"))
    return head + "\n\n" + table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("fixtures", type=Path, nargs="*")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--json", type=Path, help="write every run and the machine here")
    parser.add_argument("--quiet", action="store_true", help="no per-round lines on stderr")
    parser.add_argument(
        "--python-release",
        type=Path,
        help="a checkout of kaflow's last pure-Python release, measured beside kaflow",
    )
    parser.add_argument(
        "--baseline",
        nargs=2,
        metavar=("PYTHON", "DIR"),
        help="another kaflow measured beside this one: a checkout (its pcapkit/ with its built "
        "core) run by an interpreter with its dependencies, e.g. an earlier commit in a venv "
        "with an earlier typer",
    )
    parser.add_argument(
        "--breakdown",
        type=Path,
        metavar="FIXTURE",
        help="instead: where kaflow analyze FIXTURE's CPU time goes, stage by stage",
    )
    args = parser.parse_args(argv)
    if args.breakdown is not None:
        print(breakdown(args.breakdown, max(1, args.repeat)))
        return 0
    fixtures = args.fixtures or [ROOT / "fixtures" / f / "capture.pcap" for f in FIXTURES]
    for f in fixtures:
        if not f.exists():
            parser.error(f"{f}: no such file")
    baseline = None
    if args.baseline:
        python, checkout = args.baseline
        if not (Path(checkout) / "pcapkit").is_dir():
            parser.error(f"--baseline: {checkout} has no pcapkit/")
        baseline = (python, Path(checkout))
    report = measure(fixtures, max(1, args.repeat), args.python_release, baseline, not args.quiet)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(render(report, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())

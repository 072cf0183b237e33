"""kaflow and the alternatives on the same capture, in one run, side by side.

    python benchmarks/compare.py FILE [--repeat 3] [--tools kaflow,kaflow-json,...]
        [--markdown] [--json OUT.json] [--scapy-packets 100000] [--timeout 1800]

Every tool runs as a whole process, the way a person runs it: wall time is measured with
``time.perf_counter`` around the process, peak RSS with GNU ``/usr/bin/time -v`` (and, for tools
that fork workers, the whole process tree sampled every 20 ms, whichever is larger), CPU time
(user + system) with GNU time too: on a shared machine whose host takes CPU time back, the CPU
a tool used varies less between rounds than its wall time. The runs
are interleaved (one of each tool per round, ``--repeat`` rounds) and the file is read once first,
so every tool finds it in the page cache. The table gives medians and each tool's time as a
multiple of kaflow's (default report): a ratio, comparable across machines, not a promise of
seconds. Tools:

- ``kaflow``: ``python -m pcapkit analyze FILE -q``, the default report, to /dev/null;
- ``kaflow-json``: ``... -q -f json -o /dev/null``, the full JSON report;
- ``kaflow-csv``: ``... -q -f csv -o /dev/null``, one row per event;
- ``kaflow-python``: the default report of kaflow's last pure-Python release (before the compiled
  core), from a checkout of it given with ``--python-release DIR`` (``git worktree add DIR
  230f27a``), run with both CPUs as that release did;
- ``kaflow-before``, ``kaflow-json-before``, ``kaflow-csv-before``: the same three from an earlier
  checkout with its core built in place, given with ``--before DIR`` (``git worktree add DIR REV``,
  then ``pip install -e DIR`` in a venv of its own, which leaves ``DIR/pcapkit/_core.abi3.so``):
  a change measured against the code before it, in the same run;
- ``tcptrace``: ``tcptrace -n FILE`` (C; connection counts and closes, no HTTP);
- ``tshark-fields``: ``tshark -r FILE -T fields`` with 5 TCP fields, to /dev/null;
- ``tshark-conv``: ``tshark -r FILE -q -z conv,tcp``;
- ``dpkt``: ``benchmarks/dpkt_baseline.py``: dpkt objects per packet, connections by 4-tuple,
  who sent the first FIN;
- ``scapy``: ``benchmarks/scapy_baseline.py``, the same in scapy, on the first
  ``--scapy-packets`` packets only (cut with ``editcap``); its time is extrapolated to the whole
  file and marked so.

``--markdown`` prints the table for ``docs/performance.md``; ``--json`` writes every run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
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
TIME = "/usr/bin/time"
ALL_TOOLS = (
    "kaflow",
    "kaflow-json",
    "kaflow-csv",
    "kaflow-before",
    "kaflow-json-before",
    "kaflow-csv-before",
    "kaflow-python",
    "tshark-fields",
    "tshark-conv",
    "dpkt",
    "tcptrace",
    "scapy",
)
DEFAULT_TOOLS = tuple(t for t in ALL_TOOLS if t != "kaflow-python" and "before" not in t)
TSHARK_FIELDS = ("frame.number", "tcp.stream", "tcp.flags", "tcp.seq", "tcp.len")


@dataclass
class Tool:
    name: str
    argv: list[str]
    what: str
    ok_codes: tuple[int, ...] = (0,)
    scale: float = 1.0  # >1 when the tool ran on a prefix of the file
    note: str = ""
    # For a prefix run: the same tool on a one-packet file, whose time (start-up, imports) is
    # not multiplied when the prefix's time is scaled up to the whole file.
    base_argv: list[str] | None = None
    env: dict[str, str] | None = None
    cwd: Path | None = None


@dataclass
class Result:
    name: str
    what: str
    command: str
    seconds: list[float] = field(default_factory=list)
    rss_mib: list[float] = field(default_factory=list)
    # user + system CPU of the process tree: on a shared machine whose host takes time back,
    # steadier than the wall time between rounds (work waiting for a CPU is not counted)
    cpu_seconds: list[float] = field(default_factory=list)
    scale: float = 1.0
    note: str = ""
    error: str | None = None
    base_seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        """Median seconds; for a prefix run, start-up + the rest scaled to the whole file."""
        if not self.seconds:
            return None
        med = statistics.median(self.seconds)
        if self.scale == 1.0:
            return med
        base = statistics.median(self.base_seconds) if self.base_seconds else 0.0
        return base + (med - base) * self.scale

    @property
    def rss(self) -> float | None:
        return max(self.rss_mib) if self.rss_mib else None

    @property
    def cpu(self) -> float | None:
        """Median CPU seconds (whole file only: a prefix run's is not scaled)."""
        if not self.cpu_seconds or self.scale != 1.0:
            return None
        return statistics.median(self.cpu_seconds)


def count_packets(path: Path) -> int:
    """From the generator's truth file if there is one, else capinfos."""
    truth = path.with_name(path.name + ".truth.json")
    if truth.exists():
        return int(json.loads(truth.read_text())["packets"])
    out = subprocess.run(
        ["capinfos", "-c", "-M", "-T", "-r", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(out.strip().split("\t")[-1])


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / (1 << 20), 1)
    except OSError:
        pass

    def version(argv: list[str]) -> str:
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            return "not installed"
        return out.splitlines()[0].rstrip(".") if out else "unknown"

    rev = version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": mem_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
        "kaflow_commit": rev + ("+uncommitted changes" if dirty else ""),
        "tshark": version(["tshark", "--version"]),
        "dpkt": version([sys.executable, "-c", "import dpkt; print(dpkt.__version__)"]),
        "scapy": version([sys.executable, "-c", "import scapy; print(scapy.__version__)"]),
    }


def prefix(path: Path, packets: int, workdir: Path) -> Path:
    """The first ``packets`` packets of ``path``, in the same format (pcap or pcapng)."""
    out = workdir / f"prefix-{packets}{path.suffix}"
    subprocess.run(["editcap", "-r", str(path), str(out), f"1-{packets}"], check=True)
    return out


def snapshot(workdir: Path) -> tuple[Path, str]:
    """A copy of ``pcapkit/`` as it is now, and a fingerprint of its source.

    kaflow is measured from this copy, so every run of the benchmark measures the same code even
    while the checkout is being edited.
    """
    dest = workdir / "snapshot"
    shutil.copytree(
        ROOT / "pcapkit", dest / "pcapkit", ignore=shutil.ignore_patterns("__pycache__")
    )
    digest = hashlib.sha256()
    for f in sorted((dest / "pcapkit").rglob("*")):
        if f.is_file():
            digest.update(f.relative_to(dest).as_posix().encode() + b"\0" + f.read_bytes())
    env = {**os.environ, "PYTHONPATH": str(dest)}
    where = subprocess.run(
        [sys.executable, "-c", "import pcapkit; print(pcapkit.__file__)"],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not Path(where).is_relative_to(dest):
        raise SystemExit(f"compare.py: the snapshot is not the pcapkit imported ({where})")
    return dest, digest.hexdigest()[:12]


def tools(
    path: Path,
    names: list[str],
    total: int,
    scapy_packets: int,
    workdir: Path,
    code: Path,
    python_release: Path | None = None,
    before: Path | None = None,
) -> list[Tool]:
    py = sys.executable
    f = str(path.resolve())
    kaflow = {
        "kaflow": ([], "full analysis, default report"),
        "kaflow-json": (["-f", "json", "-o", os.devnull], "full analysis, JSON report"),
        "kaflow-csv": (["-f", "csv", "-o", os.devnull], "full analysis, CSV report"),
    }
    out: list[Tool] = []
    for name in names:
        base = name.removesuffix("-before")
        if base in kaflow:
            args, what = kaflow[base]
            where = code
            if base != name:
                if before is None:
                    raise SystemExit(f"compare.py: {name} needs --before DIR")
                where, what = before.resolve(), f"{what}, {before.name}"
            out.append(
                Tool(
                    name,
                    [py, "-m", "pcapkit", "analyze", f, "-q", *args],
                    what,
                    (0, 1),
                    env={**os.environ, "PYTHONPATH": str(where)},
                    cwd=workdir,
                )
            )
        elif name == "kaflow-python":
            if python_release is None:
                raise SystemExit("compare.py: kaflow-python needs --python-release DIR")
            out.append(
                Tool(
                    name,
                    [py, "-m", "pcapkit", "analyze", f, "-q", "--jobs", "2"],
                    "last pure-Python release, default report",
                    (0, 1),
                    env={**os.environ, "PYTHONPATH": str(python_release.resolve())},
                    cwd=workdir,
                )
            )
        elif name == "tcptrace":
            out.append(Tool(name, ["tcptrace", "-n", f], "TCP connections (C)"))
        elif name == "tshark-fields":
            argv = ["tshark", "-r", f, "-T", "fields"]
            for fld in TSHARK_FIELDS:
                argv += ["-e", fld]
            out.append(Tool(name, argv, "dissect every packet, print 5 TCP fields"))
        elif name == "tshark-conv":
            out.append(
                Tool(name, ["tshark", "-r", f, "-q", "-z", "conv,tcp"], "TCP conversation table")
            )
        elif name == "dpkt":
            out.append(
                Tool(
                    name,
                    [py, str(HERE / "dpkt_baseline.py"), f],
                    "dpkt objects per packet; connections, first FIN",
                )
            )
        elif name == "scapy":
            n = min(scapy_packets, total)
            script = str(HERE / "scapy_baseline.py")
            if n < total:
                out.append(
                    Tool(
                        name,
                        [py, script, str(prefix(path, n, workdir))],
                        "scapy dissection per packet; connections, first FIN",
                        scale=total / n,
                        note=f"ran on the first {n:,} packets; start-up time + the rest "
                        f"scaled by {total / n:.0f}",
                        base_argv=[py, script, str(prefix(path, 1, workdir))],
                    )
                )
            else:
                out.append(Tool(name, [py, script, f], "scapy dissection per packet"))
        else:
            raise SystemExit(f"compare.py: unknown tool {name!r}; known: {', '.join(ALL_TOOLS)}")
    return out


_RSS = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")
_CPU = re.compile(r"(?:User|System) time \(seconds\): ([\d.]+)")


_PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_rss(root: int) -> int:
    """Resident bytes of a process and all its descendants, now (0 once it is gone).

    GNU time's "Maximum resident set size" is the largest single process's: a tool that works
    in several processes (kaflow on a big capture) would look smaller than it is.
    """
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, ()))
        try:
            with open(f"/proc/{pid}/statm", "rb") as fh:
                total += int(fh.read().split()[1]) * _PAGE
        except OSError:
            pass
    return total


def run_once(tool: Tool, timeout: float, workdir: Path) -> tuple[float, float, float]:
    """(wall seconds, peak RSS MiB, CPU seconds: user + system, GNU time's) of one run.

    Peak RSS is the larger of GNU time's (the largest process) and the whole process tree's,
    sampled every 20 ms (it can miss a spike shorter than that).
    """
    report = workdir / "time.txt"
    argv = [TIME, "-v", "-o", str(report), *tool.argv]
    errors = (workdir / "stderr.txt").open("w+")  # a file, not a pipe: nothing can block
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=errors, env=tool.env, cwd=tool.cwd
    )
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        if time.perf_counter() - t0 > timeout:
            proc.kill()
            proc.wait()
            raise subprocess.TimeoutExpired(argv, timeout)
        time.sleep(0.02)
    seconds = time.perf_counter() - t0
    errors.seek(0)
    stderr = errors.read()
    errors.close()
    if proc.returncode not in tool.ok_codes:
        tail = stderr.strip().splitlines()[-3:]
        raise RuntimeError(f"exit code {proc.returncode}: {' / '.join(tail)}")
    text = report.read_text()
    m = _RSS.search(text)
    largest = int(m.group(1)) * 1024 if m else 0
    cpu = sum(float(x) for x in _CPU.findall(text))
    return seconds, max(largest, peak) / (1 << 20), cpu


def measure(
    path: Path,
    names: list[str],
    repeat: int,
    scapy_packets: int,
    timeout: float,
    log: bool,
    python_release: Path | None = None,
    before: Path | None = None,
) -> dict[str, Any]:
    total = count_packets(path)
    size = path.stat().st_size
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="kaflow-compare-") as tmp:
        workdir = Path(tmp)
        code, fingerprint = snapshot(workdir)
        todo = tools(path, names, total, scapy_packets, workdir, code, python_release, before)
        with path.open("rb") as fh:  # into the page cache, for every tool alike
            while fh.read(16 << 20):
                pass
        results = {
            t.name: Result(t.name, t.what, " ".join(t.argv), scale=t.scale, note=t.note)
            for t in todo
        }
        for r in range(repeat):
            for t in todo:
                res = results[t.name]
                if res.error:
                    continue
                try:
                    seconds, rss, cpu = run_once(t, timeout, workdir)
                except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
                    res.error = str(e).splitlines()[0][:200]
                    if log:
                        print(f"  {t.name}: failed: {res.error}", file=sys.stderr)
                    continue
                res.seconds.append(seconds)
                res.rss_mib.append(rss)
                res.cpu_seconds.append(cpu)
                if t.base_argv:
                    base = Tool(t.name, t.base_argv, t.what)
                    res.base_seconds.append(run_once(base, timeout, workdir)[0])
                if log:
                    print(
                        f"  round {r + 1}/{repeat} {t.name}: {seconds:.2f} s, {cpu:.2f} s CPU, "
                        f"{rss:.0f} MiB",
                        file=sys.stderr,
                    )
    return {
        "file": str(path),
        "file_bytes": size,
        "packets": total,
        "repeat": repeat,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "kaflow_code_sha256": fingerprint,
        # other work on the machine skews every tool alike only if it is steady: look at these
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "results": [
            {
                **asdict(res),
                "median_seconds": res.median,
                "peak_rss_mib": res.rss,
                "median_cpu_seconds": res.cpu,
            }
            for res in results.values()
        ],
    }


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    total, size = report["packets"], report["file_bytes"]
    by_name = {r["name"]: r for r in report["results"]}
    base = by_name.get("kaflow", {}).get("median_seconds")
    base_cpu = by_name.get("kaflow", {}).get("median_cpu_seconds")
    rows = []
    for r in report["results"]:
        med = r["median_seconds"]
        name = r["name"] + (" *" if r["note"] else "")
        if med is None:
            rows.append([name, r["what"], "failed: " + (r["error"] or "?"), "", "", "", "", "", ""])
            continue
        ratio = f"{med / base:.2f}" if base else "n/a"
        cpu = r.get("median_cpu_seconds")
        cpu_ratio = f"{cpu / base_cpu:.2f}" if cpu is not None and base_cpu else "n/a"
        rows.append(
            [
                name,
                r["what"],
                f"{med:.2f}",
                f"{total / med:,.0f}",
                f"{size / 1e6 / med:.1f}",
                f"{r['peak_rss_mib']:,.0f}",
                ratio,
                "n/a" if cpu is None else f"{cpu:.2f}",
                cpu_ratio,
            ]
        )
    return rows


HEADERS = [
    "tool",
    "what it does",
    "median s",
    "packets/s",
    "MB/s",
    "peak RSS MiB",
    "time ÷ kaflow",
    "median CPU s",
    "CPU ÷ kaflow",
]


def render(report: dict[str, Any], markdown: bool) -> str:
    m = report["machine"]
    size_mb = report["file_bytes"] / 1e6
    lines = [
        f"{report['file']}: {report['packets']:,} packets, {size_mb:,.0f} MB; "
        f"median of {report['repeat']} runs each, {report['date']}; load average "
        f"{report['load_average_1min'][0]} before, {report['load_average_1min'][1]} after",
        f"machine: {m['nproc']} CPUs, {m['cpu']}, {m['memory_gib']} GiB; Python {m['python']}; "
        f"kaflow {m['kaflow_commit']} (pcapkit/ sha256 {report['kaflow_code_sha256']}); "
        f"{m['tshark']}; dpkt {m['dpkt']}; scapy {m['scapy']}",
    ]
    if markdown:
        lines = [f"- {line}" for line in lines]
    body = tabulate(
        table_rows(report),
        HEADERS,
        tablefmt="github" if markdown else "simple",
        disable_numparse=True,
        colalign=("left", "left", "right", "right", "right", "right", "right"),
    )
    notes = [
        f"* {r['name']}: {r['note']}; peak RSS is for that prefix"
        for r in report["results"]
        if r["note"]
    ]
    return "\n".join([*lines, "", body, *(["", *notes] if notes else [])])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--tools",
        default=",".join(DEFAULT_TOOLS),
        help=f"comma-separated, from: {', '.join(ALL_TOOLS)}",
    )
    parser.add_argument("--scapy-packets", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per run")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--json", type=Path, help="write every run and the machine here")
    parser.add_argument("--quiet", action="store_true", help="no per-run lines on stderr")
    parser.add_argument(
        "--python-release",
        type=Path,
        help="a checkout of kaflow's last pure-Python release, for the kaflow-python tool",
    )
    parser.add_argument(
        "--before",
        type=Path,
        help="an earlier checkout with its core built in place, for the *-before tools",
    )
    args = parser.parse_args(argv)
    if not Path(TIME).exists():
        parser.error(f"{TIME} is missing: apt-get install time (GNU time, for peak RSS)")
    if not args.file.exists():
        parser.error(f"{args.file}: no such file")
    names = [n.strip() for n in args.tools.split(",") if n.strip()]
    missing = [t for t in ("tshark", "editcap") if shutil.which(t) is None]
    if missing and any(n.startswith("tshark") or n == "scapy" for n in names):
        parser.error(f"not installed: {', '.join(missing)} (apt-get install tshark)")
    report = measure(
        args.file,
        names,
        max(1, args.repeat),
        args.scapy_packets,
        args.timeout,
        not args.quiet,
        args.python_release,
        args.before,
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(render(report, args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())

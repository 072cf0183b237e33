"""``kaflow analyze - --follow`` measured: how soon a finding is printed, and its memory over a
long stream.

    python benchmarks/follow.py latency [--runs 3] [--scenario idle-race-get] [--markdown]
    python benchmarks/follow.py latency --from DIR [DIR ...]     # lab outputs already made
    python benchmarks/follow.py memory --packets 100000000 [--profile small] [--every 5]
    python benchmarks/follow.py memory --loop FILE [--times 10] [--whole]

``latency`` runs the lab (``fixtures/lab/lab.py run SCENARIO --follow``: real nginx and an
upstream, tcpdump ``-U -w -`` into a pipe), which tees the pipe into ``kaflow analyze - --follow
-f jsonl`` and into ``tcpdump -l -n -tt -r -`` and stamps every line either prints with the time
it came (``follow.jsonl``, ``follow-tcpdump.txt``). A finding's latency is when kaflow printed
it minus the capture time of the packet it is pinned to (the upstream's FIN or RST for a close
or a loss, the retried request for a retry): on one host, capture time is when tcpdump saw the
packet. The same for tcpdump's own line for that packet is the floor: the moment someone
reading the pipe could first have seen it. The table gives medians and maxima, side by side, and
kaflow's as a multiple of tcpdump's.

``memory`` writes ``benchmarks/gen.py``'s synthetic traffic into a named pipe read by ``kaflow
analyze PIPE --follow -f jsonl``, and samples kaflow's resident memory (``/proc/PID/status``) as
the packets go by: flat means bounded, whatever the length of the stream. gen.py writes some
57,000 packets a second, so 100M packets take half an hour of generating; ``--loop FILE --times
N`` streams a capture gen.py wrote (say its 10M small one) N times over instead, each pass
shifted in time to follow the one before (``editcap -t``) and moved to other addresses (new
connections), as fast as kaflow reads. ``--whole`` reads the pipe as one capture instead
(``kaflow analyze PIPE -q``, the default report at the end): the memory of a file that long.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LAB = ROOT / "fixtures" / "lab" / "lab.py"


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def latencies(run: Path) -> list[tuple[str, float, float | None]]:
    """Each finding kaflow printed in a lab run's ``follow.jsonl``: (type, kaflow's latency,
    tcpdump's line's latency for the same packet), in milliseconds."""
    seen: dict[str, float] = {}
    for entry in _lines(run / "follow-tcpdump.txt"):
        stamp = entry["line"].split(" ", 1)[0]
        seen.setdefault(stamp, entry["arrived"])
    out: list[tuple[str, float, float | None]] = []
    for entry in _lines(run / "follow.jsonl"):
        doc = json.loads(entry["line"])
        if doc.get("schema") != "kaflow.finding/1":
            continue
        at = doc["time"]
        tcpdump = seen.get(f"{at:.6f}")
        out.append(
            (
                doc["type"],
                (entry["arrived"] - at) * 1e3,
                None if tcpdump is None else (tcpdump - at) * 1e3,
            )
        )
    return out


def lab_run(scenario: str, out: Path) -> Path:
    subprocess.run(
        [sys.executable, str(LAB), "run", scenario, "--follow", "--out", str(out)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return out


def latency_table(rows: list[tuple[str, float, float | None]], markdown: bool) -> str:
    by: dict[str, list[tuple[float, float | None]]] = {}
    for kind, k, t in rows:
        by.setdefault(kind, []).append((k, t))
    head = ("finding", "n", "kaflow median ms", "kaflow max ms", "tcpdump -l median ms", "ratio")
    body = []
    for kind, vals in sorted(by.items()):
        ks = [k for k, _ in vals]
        ts = [t for _, t in vals if t is not None]
        tmed = statistics.median(ts) if ts else None
        body.append(
            (
                kind,
                str(len(vals)),
                f"{statistics.median(ks):.1f}",
                f"{max(ks):.1f}",
                "-" if tmed is None else f"{tmed:.1f}",
                "-" if not tmed else f"{statistics.median(ks) / tmed:.0f}x",
            )
        )
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(r) + " |" for r in body]
        return "\n".join(lines)
    return "\n".join("  ".join(r) for r in [head, *body])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def looped(path: Path, times: int, out: Path) -> None:
    """``path`` (a pcap of Ethernet frames, as gen.py writes) written ``times`` times into
    ``out`` as one capture: each pass shifted by the capture's duration (plus a second) so that
    time keeps going forward, and its IPv4 addresses' second byte xor-ed with the pass's number
    so that its connections are new ones, not the last pass's tuples and sequence numbers
    again (which TCP would take for retransmissions of connections still open)."""
    info = subprocess.run(
        ["capinfos", "-u", "-a", "-e", "-S", "-T", "-r", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\t")
    span = float(info[-1]) - float(info[-2]) + 1.0
    with out.open("wb") as w:
        for k in range(times):
            shift = subprocess.Popen(
                ["editcap", "-F", "pcap", "-t", f"{k * span:.6f}", str(path), "-"],
                stdout=subprocess.PIPE,
            )
            assert shift.stdout is not None
            head = shift.stdout.read(24)
            if k == 0:
                w.write(head)
            buf = bytearray()
            while chunk := shift.stdout.read(1 << 20):
                buf += chunk
                done = _renumbered(buf, k)
                w.write(buf[:done])
                del buf[:done]
            w.write(buf)
            shift.wait()


def _renumbered(buf: bytearray, k: int) -> int:
    """Xor the second byte of each whole record's IPv4 addresses with ``k``; how far the whole
    records go."""
    at = 0
    while at + 16 <= len(buf):
        end = at + 16 + int.from_bytes(buf[at + 8 : at + 12], "little")
        if end > len(buf):
            break
        frame = at + 16
        if k and end - frame >= 34 and buf[frame + 12 : frame + 14] == b"\x08\x00":
            buf[frame + 27] ^= k
            buf[frame + 31] ^= k
        at = end
    return at


def memory(
    packets: int,
    profile: str,
    every: float,
    show: Callable[[float, int, int], None],
    loop: tuple[Path, int] | None = None,
    whole: bool = False,
) -> list[tuple[float, int, int]]:
    """(seconds, bytes kaflow has read so far, its RSS in KiB), sampled every ``every`` s and
    each shown as it is taken. ``whole``: the stream is analyzed as one capture (the default
    report at its end), not followed."""
    with tempfile.TemporaryDirectory() as tmp:
        fifo = Path(tmp) / "stream.pcap"
        os.mkfifo(fifo)
        how = ["-q"] if whole else ["--follow", "-f", "jsonl"]
        kaflow = subprocess.Popen(
            [sys.executable, "-m", "pcapkit", "analyze", str(fifo), *how],
            stdout=subprocess.DEVNULL,
        )
        feed: subprocess.Popen[bytes] | threading.Thread
        if loop is None:
            feed = subprocess.Popen(
                [
                    *(sys.executable, str(ROOT / "benchmarks" / "gen.py")),
                    *("--packets", str(packets), "--profile", profile, "--out", str(fifo)),
                ],
                stdout=subprocess.DEVNULL,
            )
        else:
            feed = threading.Thread(target=looped, args=(*loop, fifo))
            feed.start()
        samples: list[tuple[float, int, int]] = []
        start = time.monotonic()
        done = threading.Event()

        def watch() -> None:
            while not done.wait(every):
                try:
                    read = int(
                        Path(f"/proc/{kaflow.pid}/io").read_text().split("rchar: ")[1].split()[0]
                    )
                    samples.append((time.monotonic() - start, read, rss_kib(kaflow.pid)))
                    show(*samples[-1])
                except (OSError, IndexError):
                    return

        t = threading.Thread(target=watch)
        t.start()
        if isinstance(feed, threading.Thread):
            feed.join()
        else:
            feed.wait()
        kaflow.wait()
        done.set()
        t.join()
        return samples


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("--runs", type=int, default=3)
    lat.add_argument("--scenario", default="idle-race-get")
    lat.add_argument("--from", dest="dirs", nargs="+", type=Path)
    lat.add_argument("--markdown", action="store_true")
    mem = sub.add_parser("memory")
    mem.add_argument("--packets", type=int, default=100_000_000)
    mem.add_argument("--profile", default="small", choices=("mixed", "small"))
    mem.add_argument("--every", type=float, default=5.0)
    mem.add_argument("--loop", type=Path, help="a capture gen.py wrote, streamed --times over")
    mem.add_argument("--times", type=int, default=10)
    mem.add_argument(
        "--whole", action="store_true", help="analyze the stream as one capture, not --follow"
    )
    args = ap.parse_args()
    if args.cmd == "latency":
        dirs = args.dirs or []
        tmp = Path(tempfile.mkdtemp(prefix="kaflow-follow-"))
        for i in range(0 if args.dirs else args.runs):
            dirs.append(lab_run(args.scenario, tmp / str(i)))
        rows = [r for d in dirs for r in latencies(d)]
        print(latency_table(rows, args.markdown))
        return 0
    print("seconds  MiB read  RSS MiB", flush=True)

    def show(s: float, read: int, rss: int) -> None:
        print(f"{s:7.0f}  {read / 2**20:8.0f}  {rss / 1024:7.1f}", flush=True)

    loop = None if args.loop is None else (args.loop, args.times)
    samples = memory(args.packets, args.profile, args.every, show, loop, args.whole)
    rss = [r for _, _, r in samples]
    if rss:
        tenth = rss[len(rss) // 10]
        print(f"RSS at 10% of the run {tenth / 1024:.1f} MiB, peak {max(rss) / 1024:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``kaflow`` command: a thin layer over :func:`pcapkit.analyze` and the reporters.

This is the only module that writes to the terminal. It turns the library's own errors into one
line on stderr and exit code 2, and the presence of findings into exit code 1, so scripts and CI
jobs can act on the result without parsing it.
"""

# No ``from __future__ import annotations`` here: typer would compile every option's annotation
# string again on each run (~15 ms of start-up). Names imported only for type checking are
# quoted where they annotate a function or a class.
import gc

# The command's imports (typer and the standard library it loads) allocate tens of thousands of
# objects that live as long as the process. The cyclic garbage collector would go over them ~30
# times while they load and again at exit, freeing none of them: it is off while they load, and
# they are frozen (never scanned again). Both passes cost ~15-25 ms of every start-up.
_collecting = gc.isenabled()
gc.disable()
try:
    import os
    import sys
    import time
    from collections.abc import Callable
    from enum import StrEnum
    from pathlib import Path
    from typing import TYPE_CHECKING, Annotated, NamedTuple, NoReturn, TextIO

    import typer

    from pcapkit import __version__
finally:
    gc.freeze()
    if _collecting:  # a program that turned the collector off before importing keeps it off
        gc.enable()

if TYPE_CHECKING:
    from pcapkit.client import ClientKind
    from pcapkit.model import Analysis, ConnectionRef
    from pcapkit.series import Edge
    from pcapkit.store import TextCodec

    _Keep = Callable[[ConnectionRef, bool], bool]

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2

app = typer.Typer(
    name="kaflow",
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help=(
        "Explain every nginx↔upstream keepalive connection in a packet capture: who closed it, "
        "which requests were lost to the upstream's FIN, and which nginx retried.\n\n"
        "Capture the upstream port on the nginx host, then analyze it:\n\n"
        "  tcpdump -i any -B 16384 -U --immediate-mode -w dump.pcap 'tcp port 8080'\n\n"
        "  kaflow analyze dump.pcap\n\n"
        "Exit codes: 0 no findings, 1 findings (with --nginx-log, also upstream errors nginx "
        "logged while the capture ran that it does not explain), 2 bad input or usage."
    ),
)


class Window(NamedTuple):
    """--since and --until as the core takes them."""

    since: "Edge | None"
    until: "Edge | None"


class ClientOption(StrEnum):
    nginx = "nginx"
    haproxy = "haproxy"
    other = "other"


class Format(StrEnum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"
    html = "html"
    parquet = "parquet"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"kaflow {__version__}")
        raise typer.Exit(EXIT_CLEAN)


@app.callback()
def main_options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """kaflow: nginx↔upstream keepalive forensics from a packet capture."""


class _ProgressBar:
    """A one-line progress bar on stderr, redrawn at most ten times a second."""

    def __init__(self, name: str, stream: TextIO) -> None:
        self.name = name
        self.stream = stream
        self.last = 0.0
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.1 or total <= 0:
            return
        self.last = now
        frac = min(1.0, done / total)
        bar = "#" * int(frac * 30)
        self.stream.write(
            f"\r{self.name} [{bar:<30}] {frac:4.0%} {done / 1e6:,.0f}/{total / 1e6:,.0f} MB"
        )
        self.stream.flush()
        self.drawn = True

    def clear(self) -> None:
        if self.drawn:
            self.stream.write("\r\033[K")
            self.stream.flush()


def _fail(message: str) -> typer.Exit:
    typer.echo(f"kaflow: error: {message}", err=True)
    return typer.Exit(EXIT_ERROR)


def _wanted(wanted: list[str]) -> tuple[set[int], set[int]]:
    """--connection values as (ids, client ports): ``12`` or ``#12`` an id, ``:45678`` a port.

    A bare number may be either, so it is both until the analysis says which it is.
    """
    ids: set[int] = set()
    ports: set[int] = set()
    for raw in wanted:
        text = raw.lstrip("#:")
        if not text.isdigit():
            raise _fail(
                f"--connection {raw!r}: give a connection id (12) or a client port (:45678)"
            )
        if not raw.startswith(":"):
            ids.add(int(text))
        if not raw.startswith("#"):
            ports.add(int(text))
    return ids, ports


def _select(kept: dict[int, int], wanted: list[str], total: int) -> tuple[int, ...]:
    """Resolve --connection values among the kept connections (id → client port)."""
    by_port: dict[int, list[int]] = {}
    for cid, port in kept.items():
        by_port.setdefault(port, []).append(cid)
    out: list[int] = []
    for raw in wanted:
        n = int(raw.lstrip("#:"))
        if not raw.startswith(":") and n in kept:
            out.append(n)
        elif not raw.startswith("#") and n in by_port:
            out.extend(by_port[n])
        else:
            raise _fail(
                f"--connection {raw}: no connection with that id or client port "
                f"(ids run from 1 to {total})"
            )
    return tuple(dict.fromkeys(out))


@app.command()
def analyze(
    dumps: Annotated[
        list[Path],
        typer.Argument(
            help="pcap or pcapng captures of the traffic between nginx and its upstream "
            "(tcpdump -w, dumpcap, Wireshark), optionally gzip-compressed; - is standard "
            "input; a folder stands for the captures in it. Several files that follow each "
            "other in time (a rotated series: tcpdump -C/-G/-W, editcap -c, dumpcap's ring "
            "buffer) are one capture, merged in time order; files overlapping in time are "
            "analyzed separately, in parallel, one per CPU.",
            show_default=False,
            metavar="DUMP...",
            # kaflow's reader says what is wrong with a path, in one line; click would not
            exists=False,
            readable=False,
        ),
    ],
    port: Annotated[
        list[int] | None,
        typer.Option(
            "--port",
            "-p",
            help="The upstream's port; the side on it is the server. Repeat for several "
            "upstreams. [default: 8080]",
            show_default=False,
            metavar="PORT",
        ),
    ] = None,
    fmt: Annotated[
        Format,
        typer.Option(
            "--format",
            "-f",
            help="table for people; html (one self-contained page: timelines, sequence "
            "diagrams, the idle-time histogram); json (schema kaflow.analysis/1) or csv (one row "
            "per event) for tools; parquet (connections, events and findings tables in the -o "
            "folder; needs kaflow[parquet]). With --follow: table (a line per finding) or jsonl "
            "(a kaflow.finding/1 object per line).",
        ),
    ] = Format.table,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write the report to this file instead of stdout (parquet: this folder).",
            metavar="FILE",
        ),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(
            "--host",
            help="parquet: the host column, naming the nginx host the capture came from. "
            "[default: the capture's file name]",
            show_default=False,
            metavar="NAME",
        ),
    ] = None,
    show_all: Annotated[
        bool, typer.Option("--all", "-a", help="Show the timeline of every connection.")
    ] = False,
    connection: Annotated[
        list[str] | None,
        typer.Option(
            "--connection",
            "-c",
            help="Show only this connection's timeline: its id (12 or #12) or nginx's local "
            "port (:45678). Repeatable.",
            show_default=False,
            metavar="ID",
        ),
    ] = None,
    limit: Annotated[
        int,
        typer.Option(
            help="Most timelines shown by default (the connections with the worst findings).",
            min=0,
            metavar="N",
        ),
    ] = 20,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    merge: Annotated[
        bool,
        typer.Option(
            "--merge",
            help="Merge the files given into one capture even if their times overlap "
            "(captures of one host's several interfaces).",
        ),
    ] = False,
    separate: Annotated[
        bool,
        typer.Option(
            "--separate", help="Analyze each file given on its own, even a rotated series."
        ),
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(
            help="Analyze only packets from this time on: +10m (after the capture's first "
            "packet), 2026-12-03T02:57:01Z (UTC) or 2026-12-03 03:57:01 (local time). "
            "Connections open at the edge are partial.",
            metavar="TIME",
            show_default=False,
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            help="Analyze only packets before this time (as --since).",
            metavar="TIME",
            show_default=False,
        ),
    ] = None,
    client: Annotated[
        ClientOption | None,
        typer.Option(
            help="The proxy that sent the requests: its rules decide retries and the advice "
            "('other': no proxy's rules or settings are claimed). [default: told by the "
            "requests' header names (HAProxy 2 writes them in lower case), else nginx]",
            show_default=False,
            case_sensitive=False,
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            help="Captures analyzed at once when several are given (one process each). "
            "[default: the CPUs]",
            min=1,
            show_default=False,
            metavar="N",
        ),
    ] = None,
    nginx_log: Annotated[
        list[str] | None,
        typer.Option(
            help="nginx's error log or access log (rotated, gzipped: repeat for each file): "
            "its lines are joined to the findings.",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option(
            help="The access log's log_format string, or its name in --nginx-conf. "
            "[default: the config's formats, combined]",
            metavar="FMT",
            show_default=False,
        ),
    ] = None,
    nginx_conf: Annotated[
        str | None,
        typer.Option(
            help="nginx's config (or nginx -T output): the access log's format, and the "
            "configured timeouts held against the ones the capture measured.",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    upstream_config: Annotated[
        list[str] | None,
        typer.Option(
            help="The upstream's config (server.xml, application.yaml, gunicorn.conf.py): its "
            "configured idle timeout and max requests held against the measured ones.",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    log_tz: Annotated[
        str | None,
        typer.Option(
            help="The error log's time zone (+02:00, UTC, Europe/Berlin). [default: from the "
            "access log's $time_local, or inferred from the matches]",
            metavar="TZ",
            show_default=False,
        ),
    ] = None,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-F",
            help="Keep reading as the capture arrives and print each finding as soon as it is "
            "decided: - (tcpdump -U -w - | kaflow analyze - --follow), a named pipe, or a file "
            "tcpdump is still writing (followed like tail -f). Stop with Ctrl-C.",
        ),
    ] = False,
    every: Annotated[
        float,
        typer.Option(
            help="With --follow: print a summary line this often (seconds), and at the end.",
            min=0.1,
            metavar="SECONDS",
        ),
    ] = 60.0,
) -> None:
    """Analyze a capture: summary, findings worst first, and the worst connections' timelines.

    Findings: server_initiated_close (the upstream's FIN/RST came first; why: idle timeout,
    Connection: close, or a request in flight), request_lost_to_fin (no response because the
    upstream closed), retry (nginx sent the lost request again; on a new or a cached
    connection), connect_failed (SYN unanswered or refused).

    Exit codes: 0 no findings; 1 findings, or (with --nginx-log) upstream errors nginx logged
    while the capture ran that it shows no evidence of; 2 bad input or usage. Log errors from
    outside the capture's time are listed but do not change the exit code.

    Examples:

      kaflow analyze dump.pcap

      kaflow analyze dump.pcapng --port 8080 --port 8443 --all

      kaflow analyze dump.pcap --connection :45678

      kaflow analyze dump.pcap -f json -o analysis.json

      kaflow analyze dump.pcap -f html -o report.html

      kaflow analyze dump.pcap -f parquet -o lake/web-1/ --host web-1

      kaflow analyze dump.pcap dump.pcap1 dump.pcap2     (a tcpdump -C series: one capture)

      kaflow analyze dump.pcap --since +10m --until +20m

      tcpdump -i any -U -w - 'tcp port 8080' | kaflow analyze - --follow

      kaflow analyze captures/ --separate --jobs 2

      kaflow analyze dump.pcap --nginx-log error.log --nginx-log access.log --nginx-conf nginx.conf
    """
    from pcapkit.analysis import expand
    from pcapkit.errors import CaptureError, InputError, KaflowError, NotOneCaptureError
    from pcapkit.series import parse_edge

    files = expand(dumps)
    nginx = bool(nginx_log or nginx_conf or upstream_config)
    kind: ClientKind | None = None if client is None else client.value
    if merge and separate:
        raise _fail("--merge and --separate contradict each other: give one")
    try:
        window = Window(
            parse_edge(since, "--since") if since is not None else None,
            parse_edge(until, "--until") if until is not None else None,
        )
    except KaflowError as e:
        raise _fail(str(e)) from None
    if follow:
        _follow(files, port or [8080], fmt, every, kind, window, extra=bool(nginx or connection))
    if fmt is Format.jsonl:
        raise _fail("--format jsonl is --follow's: for a whole capture use json or csv")
    if fmt is Format.parquet:
        _parquet_ready(output)

    def apart(why: str | None = None) -> NoReturn:
        if connection:
            raise _fail("--connection picks a connection of one capture: give one capture")
        if nginx:
            raise _fail("nginx's logs and configs are joined to one capture: give one capture")
        if fmt is Format.html:
            raise _fail("--format html shows one capture: give one capture")
        if why is not None:
            typer.echo(f"kaflow: {why}: analyzed separately (--merge merges them)", err=True)
        _analyze_many(
            files, port or [8080], fmt, output, show_all, limit, quiet, jobs, host, window, kind
        )

    if len(files) > 1 and separate:
        apart()
    dump = files[0]
    from pcapkit.analysis import analyze as run_analysis
    from pcapkit.report import ReportOptions, reporter

    keep, spool = _keeping(fmt, connection, show_all, limit)
    if fmt is Format.html:  # the page chooses what it draws: --connection and --all do not apply
        connection = None
        from pcapkit.report.html_report import PageKeep

        keep = page = PageKeep()
    if (nginx_conf or upstream_config) and not connection:
        # nginx's idle closes and the upstream's Keep-Alive announcements are read off every
        # connection: kept, spooled as objects
        keep, spool = _every(keep), True
    bar = _ProgressBar(dump.name, sys.stderr) if sys.stderr.isatty() and not quiet else None
    try:
        result = run_analysis(
            files if len(files) > 1 else dump,
            port or [8080],
            progress=bar,
            keep=keep,
            spool=spool,
            merge=merge,
            since=window.since,
            until=window.until,
            client=kind,
        )
        if nginx:
            result = _with_nginx(
                result, nginx_log or [], log_format, nginx_conf, upstream_config or [], log_tz
            )
    except NotOneCaptureError as e:
        if bar is not None:
            bar.clear()
        apart(str(e))
    except (InputError, CaptureError) as e:
        if len(files) == 1 or merge:
            raise _fail(str(e)) from None
        apart()  # each file says what is wrong with it, and the others are analyzed
    except KaflowError as e:
        raise _fail(str(e)) from None
    finally:
        if bar is not None:
            bar.clear()

    for warning in result.capture.warnings:
        typer.echo(f"kaflow: warning: {warning}", err=True)

    selection: tuple[int, ...] | str | None = None
    if connection:
        kept = {c.id: c.client_port for c in result.connections}
        selection = _select(kept, connection, result.summary.connections)
    elif show_all:
        selection = "all"
    if fmt is Format.parquet and output is not None:
        _write_parquet([(result, host)], output)
        raise typer.Exit(_exit_code(result))
    options = ReportOptions(connections=selection, limit=limit)
    rep = reporter(fmt.value)
    if fmt is Format.html:
        from pcapkit.report.html_report import HtmlReporter

        rep = HtmlReporter(page.spans)
    _write(output, lambda out: rep.render(result, out, options))
    raise typer.Exit(_exit_code(result))


def _follow(
    files: list[Path],
    ports: list[int],
    fmt: Format,
    every: float,
    client: "ClientKind | None",
    window: Window,
    extra: bool,
) -> NoReturn:
    """Print findings as they are decided, until the input ends or Ctrl-C / SIGTERM; exit as
    for a whole capture."""
    import signal

    from pcapkit.errors import KaflowError
    from pcapkit.follow import Follow, Tally
    from pcapkit.report import lines

    if len(files) != 1:
        raise _fail("--follow reads one capture as it arrives: give one (- for standard input)")
    if fmt not in (Format.table, Format.jsonl):
        raise _fail("--follow prints a line per finding: --format table or jsonl")
    if extra:
        raise _fail(
            "--follow prints findings only: --connection and nginx's logs and configs "
            "need a whole capture"
        )
    text = fmt is Format.table
    follower = Follow(
        files[0],
        tuple(sorted(set(ports))),
        client=client,
        since=window.since,
        until=window.until,
        every=every,
    )

    def show(update: object) -> None:
        if isinstance(update, Tally):
            line = lines.tally_text(update) if text else lines.tally_json(update)
        else:
            line = lines.finding_text(update) if text else lines.finding_json(update)  # type: ignore[arg-type]
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        for update in follower:
            show(update)
    except KeyboardInterrupt:
        for f in follower.stop():
            show(f)
        show(follower.tally(final=True))
    except KaflowError as e:
        raise _fail(str(e)) from None
    except BrokenPipeError:
        # the reader went away (| head): nothing more to say, to anyone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    for warning in follower.capture.warnings if follower.capture is not None else ():
        typer.echo(f"kaflow: warning: {warning}", err=True)
    found = sum(follower.counts.values())
    raise typer.Exit(EXIT_FINDINGS if found else EXIT_CLEAN)


def _exit_code(result: "Analysis") -> int:
    """1 when the capture has findings, or when nginx logged an upstream failure while the
    capture ran that the capture does not explain (a read timeout, a refused connect, no live
    upstreams, a loss it missed): a CI gate fed both must not pass on them. Log errors from
    outside the capture's time are reported but do not count: a day's error log beside ten
    minutes of capture would otherwise always fail."""
    logged = result.logs.unexplained_in_capture if result.logs is not None else 0
    return EXIT_FINDINGS if result.has_findings or logged else EXIT_CLEAN


def _every(keep: "_Keep | None") -> "_Keep | None":
    """Keep every connection, still telling ``keep`` of each (the page notes their spans)."""
    if keep is None:
        return None
    told = keep

    def every(ref: "ConnectionRef", flagged: bool) -> bool:
        told(ref, flagged)
        return True

    return every


def _with_nginx(
    result: "Analysis",
    logs: list[str],
    log_format: str | None,
    nginx_conf: str | None,
    upstream_configs: list[str],
    tz: str | None,
) -> "Analysis":
    """The analysis with nginx's logs joined to it and its measured timers held against the
    configured ones (``--nginx-log``, ``--nginx-conf``, ``--upstream-config``)."""
    from dataclasses import replace  # not at the top: --help would load dataclasses (~1 ms)

    from pcapkit.config import backends, read_nginx
    from pcapkit.config.compare import compare

    conf = read_nginx(nginx_conf) if nginx_conf else None
    found = backends(upstream_configs)
    joined = None
    if logs:
        from pcapkit.logs import join_logs

        formats = conf.log_formats if conf is not None else ()
        joined = join_logs(result, logs, log_format=log_format, formats=formats, tz=tz)
    configured = compare(result, conf, found) if conf is not None or found else ()
    return replace(result, logs=joined, configured=configured)


def _parquet_ready(output: Path | None) -> None:
    """Fail before the analysis, not after it, when Parquet cannot be written."""
    from pcapkit.errors import KaflowError
    from pcapkit.report.parquet_report import require_pyarrow

    if output is None:
        raise _fail("--format parquet writes a folder of tables: name it with -o DIR")
    if output.exists() and not output.is_dir():
        raise _fail(f"--format parquet writes a folder of tables, and {output} is a file")
    try:
        require_pyarrow()
    except KaflowError as e:
        raise _fail(str(e)) from None


def _write_parquet(analyses: "list[tuple[Analysis, str | None]]", output: Path) -> None:
    from pcapkit.errors import KaflowError
    from pcapkit.report.parquet_report import write

    try:
        write(analyses, output)
    except KaflowError as e:
        raise _fail(str(e)) from None


def _keeping(
    fmt: Format, connection: list[str] | None, show_all: bool, limit: int
) -> "tuple[Callable[[ConnectionRef, bool], bool] | None, bool | TextCodec]":
    """What the report will read of the connections: (keep, spool) for ``analyze()``.

    JSON, CSV and ``--all`` read every connection, once, in order: they are spooled to a
    temporary file rather than held. The default table reads a few timelines; ``--connection``
    reads the ones named, matched by id or port as each connection is finished.
    """
    if connection:
        ids, ports = _wanted(connection)
        return (lambda c, _: c.id in ids or c.client_port in ports), True
    if fmt is Format.json:
        from pcapkit.report.json_report import JSON_LINES

        return None, JSON_LINES  # written as JSON once, as each connection is labelled
    if fmt is Format.csv:
        from pcapkit.report.csv_report import CSV_ROWS

        return None, CSV_ROWS  # written as CSV rows by the core, as each connection is labelled
    if fmt is not Format.table or show_all:
        return None, True
    from pcapkit.report.table import WorstFirst

    return WorstFirst(limit), True


def _write(output: Path | None, render: Callable[[TextIO], None]) -> None:
    """Render to stdout or a file; a closed pipe is not an error, an unwritable file is."""
    try:
        if output is None:
            render(sys.stdout)
            sys.stdout.flush()
        else:
            with output.open("w", encoding="utf-8", newline="") as fh:
                render(fh)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError as e:
        raise _fail(f"cannot write {output}: {e.strerror}") from None


def _analyze_many(
    files: list[Path],
    ports: list[int],
    fmt: Format,
    output: Path | None,
    show_all: bool,
    limit: int,
    quiet: bool,
    jobs: int | None,
    host: str | None,
    window: Window,
    client: "ClientKind | None" = None,
) -> NoReturn:
    """Several captures: analyzed in parallel, reported in the order given.

    Exit code: 2 if any capture could not be read (each says why on stderr), else 1 if any has
    findings, else 0.
    """
    from dataclasses import replace

    from pcapkit.analysis import analyze_many
    from pcapkit.errors import KaflowError
    from pcapkit.report import ReportOptions, reporter

    results: list[tuple[Path, Analysis]] = []
    failed = 0
    show = sys.stderr.isatty() and not quiet
    keep = None
    if fmt is Format.table and not show_all:
        from functools import partial

        from pcapkit.report.table import WorstFirst

        keep = partial(WorstFirst, limit)  # only the timelines shown cross back from workers
    analyses = analyze_many(
        files,
        ports,
        jobs=jobs,
        keep=keep,
        since=window.since,
        until=window.until,
        client=client,
    )
    for done, (path, res) in enumerate(analyses, start=1):
        if show:
            sys.stderr.write(f"\r[{done}/{len(files)} captures]")
            sys.stderr.flush()
        if isinstance(res, KaflowError):
            if show:
                sys.stderr.write("\r\033[K")
            typer.echo(f"kaflow: error: {res}", err=True)
            failed += 1
        else:
            results.append((path, res))
            for warning in res.capture.warnings:
                typer.echo(f"kaflow: warning: {warning}", err=True)
    if show:
        sys.stderr.write("\r\033[K")
    options = ReportOptions(connections="all" if show_all else None, limit=limit)
    if fmt is Format.parquet and output is not None:
        _write_parquet([(a, host) for _, a in results], output)

    def render(out: TextIO) -> None:
        if fmt is Format.json:
            import json

            from pcapkit.report.json_report import many_dict

            json.dump(many_dict([a for _, a in results], failed), out, indent=1, ensure_ascii=False)
            out.write("\n")
            return
        rep = reporter(fmt.value)
        for i, (path, analysis) in enumerate(results):
            if fmt is Format.csv:
                rep.render(analysis, out, replace(options, capture_column=True, header=i == 0))
            else:
                out.write(f"{'' if i == 0 else chr(10)}==> {path} <==\n")
                rep.render(analysis, out, options)
        if fmt is Format.table:
            with_findings = sum(1 for _, a in results if a.has_findings)
            out.write(
                f"\n{len(files)} captures: {with_findings} with findings, "
                f"{len(results) - with_findings} without, {failed} unreadable\n"
            )

    if fmt is not Format.parquet:
        _write(output, render)
    if failed:
        raise typer.Exit(EXIT_ERROR)
    raise typer.Exit(EXIT_FINDINGS if any(a.has_findings for _, a in results) else EXIT_CLEAN)


class CheckFormat(StrEnum):
    table = "table"
    json = "json"


def _duration(text: str | None, option: str) -> float | None:
    if text is None:
        return None
    from pcapkit.config.upstream import spring_duration

    try:
        return spring_duration(text, default_unit="s")
    except ValueError:
        raise _fail(f"{option} {text!r}: give a duration such as 5s, 500ms or 75") from None


@app.command()
def check(
    nginx_conf: Annotated[
        str,
        typer.Argument(
            help="nginx's main config file (its includes are followed), or nginx -T output "
            "in a file or, as -, on standard input.",
            metavar="NGINX-CONF",
            show_default=False,
        ),
    ],
    upstream_configs: Annotated[
        list[str] | None,
        typer.Argument(
            help="The upstream's config: Tomcat server.xml, Spring Boot application.yaml or "
            ".properties, gunicorn.conf.py.",
            metavar="UPSTREAM-CONFIG",
            show_default=False,
        ),
    ] = None,
    nginx_version: Annotated[
        str | None,
        typer.Option(
            help="nginx's version, for its defaults (keepalive is on by default since 1.29.7). "
            "[default: from nginx -T -V output]",
            metavar="X.Y.Z",
            show_default=False,
        ),
    ] = None,
    upstream_command: Annotated[
        list[str] | None,
        typer.Option(
            help="The upstream's command line, e.g. 'gunicorn -k gthread --keep-alive 5 app:app' "
            "or 'uvicorn --timeout-keep-alive 5 app:app'. Repeatable.",
            metavar="CMD",
            show_default=False,
        ),
    ] = None,
    upstream: Annotated[
        str | None,
        typer.Option(
            help="The upstream's kind, for its documented defaults: tomcat, spring-boot, "
            "gunicorn, uvicorn, node, jetty, puma, go.",
            metavar="KIND",
            show_default=False,
        ),
    ] = None,
    upstream_idle_timeout: Annotated[
        str | None,
        typer.Option(help="The upstream's idle timeout (5s, 500ms, 75).", metavar="DURATION"),
    ] = None,
    upstream_max_requests: Annotated[
        int | None,
        typer.Option(
            help="The upstream's max requests per connection (0 or -1: unlimited).", metavar="N"
        ),
    ] = None,
    upstream_max_connections: Annotated[
        int | None,
        typer.Option(help="The connections the upstream accepts at once.", metavar="N"),
    ] = None,
    fmt: Annotated[
        CheckFormat,
        typer.Option("--format", "-f", help="table for people; json (kaflow.check/1) for tools."),
    ] = CheckFormat.table,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the report to this file.", metavar="FILE"),
    ] = None,
) -> None:
    """Check nginx's upstream keepalive settings against the upstream's: can the idle-close race
    happen, and what to change.

    Rules: the upstream's idle timeout must exceed nginx's keepalive_timeout (equal still
    races); its max requests per connection must exceed keepalive_requests; it must accept
    worker_processes x keepalive connections; keepalive must be in effect (HTTP/1.1, no
    Connection: close); POSTs lost to the race are not retried without non_idempotent;
    max_fails turns races into "no live upstreams"; proxy_next_upstream_tries below the servers
    leaves failed connects unretried (a race's loss is retried anyway); a
    proxy_next_upstream_timeout under 1 s cuts the race's retries short; proxy_request_buffering
    off leaves lost requests with a body unretried; keepalive_time is a connection's life, not an
    idle timer.

    Exit codes: 0 compatible, 1 problems found, 2 unreadable input.

    Examples:

      kaflow check /etc/nginx/nginx.conf server.xml

      nginx -T | kaflow check - src/main/resources/application.yaml --nginx-version 1.26.2

      kaflow check nginx.conf --upstream-command 'gunicorn -k gthread --keep-alive 5 app:app'

      kaflow check nginx.conf --upstream node --upstream-idle-timeout 65s -f json
    """
    from pcapkit.config import check_files
    from pcapkit.config.upstream import KINDS
    from pcapkit.errors import KaflowError

    if upstream is not None and upstream not in KINDS:
        raise _fail(f"--upstream {upstream!r}: one of {', '.join(KINDS)}")
    commands = list(upstream_command or [])
    idle = _duration(upstream_idle_timeout, "--upstream-idle-timeout")
    max_requests = upstream_max_requests
    if max_requests is not None and max_requests < 0:
        max_requests = 0
    text = None
    if nginx_conf == "-":
        text = sys.stdin.read()
        nginx_conf = "<stdin>"
    try:
        result = check_files(
            nginx_conf,
            upstream_configs or [],
            nginx_text=text,
            version=nginx_version,
            commands=commands,
            kind=upstream,
            idle_timeout=idle,
            max_requests=max_requests,
            max_connections=upstream_max_connections,
        )
    except KaflowError as e:
        raise _fail(str(e)) from None
    from pcapkit.report.check_report import write_json, write_table

    render = write_json if fmt is CheckFormat.json else write_table
    _write(output, lambda out: render(result, out))
    raise typer.Exit(EXIT_CLEAN if result.compatible else EXIT_FINDINGS)


def main() -> None:
    """Entry point of the ``kaflow`` command."""
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("kaflow: interrupted\n")
        sys.exit(130)
    finally:
        # The process ends here: the collector's passes at exit over every object still alive
        # (~10 ms after a small capture's report) would free nothing the exit does not. Temporary
        # files are closed by weakref.finalize, which runs at exit all the same.
        gc.freeze()

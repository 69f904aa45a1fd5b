"""The ``ddfs`` command line (click): ``rescue`` (a drop-in for ddrescue), ``simulate``, ``demo``.

This module only parses arguments and reports; the work is done by ``engine`` and the FUSE
modules of this package.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys
from typing import Any

import click

from engine import __version__
from engine.errors import DdfsError
from engine.numbers import parse_number, parse_rational_time, parse_time
from engine.options import RescueOptions

PROG = "ddfs"


def fail(message: str, code: int = 1) -> None:
    """Print ``ddfs: MESSAGE`` on stderr and exit with ``code``."""
    lines = message.split("\n")
    indent = " " * (len(PROG) + 2)
    sys.stderr.write(f"{PROG}: {lines[0]}\n" + "".join(f"{indent}{x}\n" for x in lines[1:]))
    sys.stderr.flush()
    raise SystemExit(code)


#: Old (pre-1.27) long option names -> (current long name, short name). ``--no-split`` was
#: "don't split failed blocks", the quick first pass of old manuals; 1.27 spells that pass
#: ``-n`` (--no-scrape), which still trims (add ``-N`` to skip trimming too).
OLD_OPTIONS = {
    "--no-split": ("--no-scrape", "-n"),
    "--max-retries": ("--retry-passes", "-r"),
    "--direct": ("--idirect", "-d"),
    "--block-size": ("--sector-size", "-b"),
    "--generate-logfile": ("--generate-mode", "-G"),
    "--max-errors": ("--max-bad-areas", "-e"),
}


def rewrite_old_options(command: click.Command, args: list[str]) -> tuple[list[str], list[str]]:
    """Replace the old option names of :data:`OLD_OPTIONS` in ``args`` by their short options.

    Only names the command knows are rewritten; values of options that take one and
    everything after ``--`` are left alone. Returns the new args and one note per alias used.
    """
    takes_value: set[str] = set()
    known: set[str] = set()
    for param in command.params:
        if isinstance(param, click.Option) and param.expose_value:
            known.update(param.opts)
            if not param.is_flag and not param.count:
                takes_value.update(param.opts)
    out: list[str] = []
    notes: list[str] = []
    skip_value = False
    for i, arg in enumerate(args):
        if skip_value:
            skip_value = False
            out.append(arg)
            continue
        if arg == "--":
            out.extend(args[i:])
            break
        name, eq, value = arg.partition("=")
        if name in OLD_OPTIONS and OLD_OPTIONS[name][1] in known:
            long, short = OLD_OPTIONS[name]
            note = f"option '{name}' is now '{long}' ({short})"
            if note not in notes:
                notes.append(note)
            if short in takes_value:
                out.append(short + value if eq else short)
                skip_value = not eq
            else:
                out.append(arg if eq else short)  # "--direct=x": let click refuse it
            continue
        out.append(arg)
        if arg in takes_value:
            skip_value = True
        elif arg.startswith("-") and not arg.startswith("--") and len(arg) > 1:
            # a cluster of short options: the last one may take the next argument
            for j, ch in enumerate(arg[1:], 1):
                if "-" + ch in takes_value:
                    skip_value = j == len(arg) - 1
                    break
    return out, notes


class DdrescueCommand(click.Command):
    """A click command whose usage errors exit 1, as ddrescue's do.

    The old long option names of :data:`OLD_OPTIONS` are accepted, each with a note on stderr
    (not with ``-q``) naming the current spelling.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # -P and --data-preview take an optional value, attached only (getopt's rule)
        args = ["--data-preview=3" if a in ("-P", "--data-preview") else a for a in args]
        args, notes = rewrite_old_options(self, args)
        rest = super().parse_args(ctx, args)
        if notes and not ctx.params.get("quiet"):
            for note in notes:
                sys.stderr.write(f"{PROG}: {note}\n")
            sys.stderr.flush()
        return rest

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else "")
            raise SystemExit(0) from None
        except click.UsageError as exc:
            fail(f"{exc.format_message()}\nTry '{PROG} rescue --help' for more information.")
        except click.exceptions.Exit as exc:
            raise SystemExit(exc.exit_code) from None
        except click.Abort:
            raise SystemExit(1) from None


@click.group()
@click.version_option(__version__, prog_name="ddfs")
def main() -> None:
    """ddfs: rescue a failing disk the GNU ddrescue way, and use the image while it runs."""


def _parse_cpass(text: str) -> list[int]:
    if text.strip() == "0":
        return []
    out: set[int] = set()
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-", 1)
            if not (a.isdigit() and b.isdigit()) or not 1 <= int(a) <= int(b) <= 5:
                raise DdfsError("Invalid pass range in option '--cpass'.")
            out.update(range(int(a), int(b) + 1))
        elif part.isdigit() and 1 <= int(part) <= 5:
            out.add(int(part))
        else:
            raise DdfsError("Invalid pass number in option '--cpass'.")
    return sorted(out)


def build_options(kw: dict[str, Any], argv: list[str]) -> RescueOptions:
    """Turn the raw option strings into :class:`RescueOptions` (ddrescue's number syntax)."""
    o = RescueOptions()
    num = parse_number
    if kw["sector_size"] is not None:
        o.sector_size = num(kw["sector_size"], "-b", 512, 1, 2**28)
    ss = o.sector_size
    if kw["cluster_size"] is not None:
        o.cluster_sectors = num(kw["cluster_size"], "-c", ss, 1, 2**31 // ss - 1)
    if kw["skip_size"] is not None:
        first, _, second = kw["skip_size"].partition(",")
        if first:
            o.skip_initial = num(first, "-K", ss, 0, 2**60)
            if 0 < o.skip_initial < 65536:
                raise DdfsError("Value out of limits [65536,1152921504606846976] in option '-K'.")
        if second:
            o.skip_max = num(second, "-K", ss, 65536, 2**60)
        if o.skip_initial is not None and o.skip_max is not None and o.skip_initial > o.skip_max:
            raise DdfsError("Initial skip size is larger than max skip size in option '-K'.")
    if kw["retry_passes"] is not None:
        o.max_retries = num(kw["retry_passes"], "-r", ss, -1, 2**31 // 2)
    if kw["cpass"] is not None:
        o.cpass = _parse_cpass(kw["cpass"])
    if kw["input_position"] is not None:
        o.input_pos = num(kw["input_position"], "-i", ss, 0)
    if kw["output_position"] is not None:
        o.output_pos = num(kw["output_position"], "-o", ss, 0)
    if kw["size"] is not None:
        o.domain_size = num(kw["size"], "-s", ss, -1)
    if kw["max_bad_areas"] is not None:
        text = kw["max_bad_areas"]
        o.max_bad_areas_relative = text.startswith("+")
        o.max_bad_areas = num(text.lstrip("+"), "-e", ss, 0)
    if kw["max_read_errors"] is not None:
        o.max_read_errors = num(kw["max_read_errors"], "-X", ss, 0)
    if kw["timeout"] is not None:
        o.timeout = parse_time(kw["timeout"], "-T")
    if kw["min_outfile_size"] is not None:
        o.min_outfile_size = num(kw["min_outfile_size"], "-x", ss, 1)
    if kw["mapfile_interval"] is not None:
        save, _, sync = kw["mapfile_interval"].partition(",")
        if save and save != "-1":
            o.save_interval = parse_time(save, "--mapfile-interval")
        if sync:
            o.sync_interval = max(5, parse_time(sync, "--mapfile-interval"))
        if o.save_interval > o.sync_interval:
            raise DdfsError("SAVE interval must not be larger than SYNC in '--mapfile-interval'.")
    for flag in (
        "reverse",
        "unidirectional",
        "no_trim",
        "no_scrape",
        "try_again",
        "retrim",
        "complete_only",
        "direct_in",
        "direct_out",
        "force",
        "truncate",
        "sparse",
        "preallocate",
        "synchronous",
        "compare",
        "same_file",
        "loose_domain",
        "quiet",
        "binary_prefixes",
    ):
        setattr(o, flag, bool(kw[flag]))
    o.verbosity = kw["verbose"]
    _rate_options(o, kw)
    _mode_options(o, kw)
    # test mode reproduces ddrescue's read sequence; --cpass=0 reads nothing new
    o.metadata_first = not kw["no_metadata_first"] and kw["test_mode"] is None and o.cpass != []
    o.test_map = kw["test_mode"]
    o.command_line = " ".join(shlex.quote(a) for a in argv)
    return o


def _rate_options(o: RescueOptions, kw: dict[str, Any]) -> None:
    """Slow reads, rates, pauses, checks and logs: ``-a -E -Z -O -J -I -P --ask ...``."""
    ss = o.sector_size
    if kw["min_read_rate"] is not None:
        o.min_read_rate = parse_number(kw["min_read_rate"], "-a", ss, 0)
    if kw["max_error_rate"] is not None:
        o.max_error_rate = parse_number(kw["max_error_rate"], "-E", ss, 0)
    if kw["max_read_rate"] is not None:
        o.max_read_rate = parse_number(kw["max_read_rate"], "-Z", ss, 1)
    if kw["delay_slow"] is not None:
        o.delay_slow = parse_time(kw["delay_slow"], "--delay-slow")
    if kw["max_slow_reads"] is not None:
        o.max_slow_reads = parse_number(kw["max_slow_reads"], "--max-slow-reads", 0, 0)
    if kw["pause_on_pass"] is not None:
        o.pause_on_pass = parse_time(kw["pause_on_pass"], "--pause-on-pass")
    if kw["pause_on_error"] is not None:
        text = kw["pause_on_error"]
        o.simulated_pause = text.startswith("s")
        if o.simulated_pause:
            o.pause_on_error = float(parse_rational_time(text[1:], "--pause-on-error"))
        else:
            o.pause_on_error = parse_time(text, "--pause-on-error")
    if kw["data_preview"] is not None:
        o.preview_lines = parse_number(kw["data_preview"], "-P", 0, 1, 32)
    for flag in (
        "reset_slow",
        "reopen_on_error",
        "verify_on_error",
        "verify_input_size",
        "ask",
        "allow_other_source",
    ):
        setattr(o, flag, bool(kw[flag]))
    for name in ("log_events", "log_rates", "log_reads"):
        path = kw[name]
        if path == "-":
            raise DdfsError("I won't write log data to standard output.")
        if path and os.path.exists(path) and not os.path.isfile(path):
            raise DdfsError(f"{path}: Logfile exists and is not a regular file.")
        setattr(o, name, path or None)


def _mode_options(o: RescueOptions, kw: dict[str, Any]) -> None:
    """``-m`` (once only), ``-F TYPES``, ``-G`` and ``-w`` (fill mode only)."""
    from engine.modes.fill import check_types

    try_help = f"\nTry '{PROG} rescue --help' for more information."
    domain_maps = kw["domain_mapfile"] or ()
    if len(domain_maps) > 1:
        raise DdfsError("Option '-m' can be specified only once.")
    o.domain_map = domain_maps[0] if domain_maps else None
    if kw["fill_mode"] is not None:
        o.fill_types = check_types(kw["fill_mode"])
    o.generate = bool(kw["generate_mode"])
    o.ignore_write_errors = bool(kw["ignore_write_errors"])
    if o.fill_types is not None and o.generate:
        raise DdfsError("Only one operation can be specified." + try_help)
    if o.ask and (o.fill_types is not None or o.generate):
        mode = "generate" if o.generate else "fill"
        raise DdfsError(f"Option '--ask' is incompatible with {mode} mode." + try_help)
    if o.ignore_write_errors and o.fill_types is None:
        mode = "generate" if o.generate else "rescue"
        raise DdfsError(f"Option '-w' is incompatible with {mode} mode." + try_help)


def _opt(*decls: str, flag: bool = False, help: str = "") -> Any:
    if flag:
        return click.option(*decls, is_flag=True, default=False, help=help)
    return click.option(*decls, default=None, metavar="N", help=help)


RESCUE_OPTIONS = [
    _opt("-a", "--min-read-rate", help="minimum read rate of good areas in bytes/s"),
    _opt("-A", "--try-again", flag=True, help="mark non-trimmed and non-scraped as non-tried"),
    _opt("-b", "--sector-size", help="sector size of input device [default 512]"),
    _opt("-B", "--binary-prefixes", flag=True, help="show binary multipliers in numbers"),
    _opt("-c", "--cluster-size", help="sectors to copy at a time [128]"),
    _opt("-C", "--complete-only", flag=True, help="don't read new data beyond mapfile limits"),
    _opt("-d", "--idirect", "direct_in", flag=True, help="use direct disc access for input file"),
    _opt("-D", "--odirect", "direct_out", flag=True, help="use direct disc access for output"),
    _opt("-e", "--max-bad-areas", help="maximum number of [new] bad areas allowed"),
    _opt("-E", "--max-error-rate", help="maximum allowed rate of read errors per second"),
    _opt("-f", "--force", flag=True, help="overwrite output device or partition"),
    _opt("-F", "--fill-mode", help="fill blocks of given types with data (?*/-+l)"),
    _opt("-G", "--generate-mode", flag=True, help="generate approximate mapfile from partial copy"),
    _opt("-H", "--test-mode", help="set test mode (only + blocks of this map are readable)"),
    _opt("-i", "--input-position", help="starting position of domain in input file [0]"),
    _opt("-I", "--verify-input-size", flag=True, help="verify input file size with mapfile"),
    _opt("-J", "--verify-on-error", flag=True, help="reread latest good sector after errors"),
    _opt("-K", "--skip-size", help="initial size to skip on read error [64KiB],max"),
    _opt("-L", "--loose-domain", flag=True, help="accept unordered domain/test map with gaps"),
    click.option(
        "-m",
        "--domain-mapfile",
        multiple=True,
        metavar="FILE",
        help="restrict domain to finished blocks in FILE",
    ),
    _opt("-M", "--retrim", flag=True, help="mark all failed blocks as non-trimmed"),
    _opt("-n", "--no-scrape", flag=True, help="skip the scraping phase"),
    _opt("-N", "--no-trim", flag=True, help="skip the trimming phase"),
    _opt("-o", "--output-position", help="starting position in output file [ipos]"),
    _opt("-O", "--reopen-on-error", flag=True, help="reopen input file after every read error"),
    _opt("-p", "--preallocate", flag=True, help="preallocate space on disc for output file"),
    _opt("-P", "--data-preview", help="show some lines of the latest data read [3]"),
    _opt("-q", "--quiet", flag=True, help="suppress all messages"),
    _opt("-r", "--retry-passes", help="exit after N retry passes (-1=infinity) [0]"),
    _opt("-R", "--reverse", flag=True, help="reverse the direction of all passes"),
    _opt("-s", "--size", help="maximum size of input data to be copied"),
    _opt("-S", "--sparse", flag=True, help="use sparse writes for output file"),
    _opt("-t", "--truncate", flag=True, help="truncate output file to zero size"),
    _opt("-T", "--timeout", help="maximum time since last successful read"),
    _opt("-u", "--unidirectional", flag=True, help="run all passes in the same direction"),
    _opt("-w", "--ignore-write-errors", flag=True, help="make fill mode ignore write errors"),
    _opt("-W", "--compare-before-write", "compare", flag=True, help="compare before writing"),
    _opt("-x", "--extend-outfile", "min_outfile_size", help="extend outfile size to be at least N"),
    _opt("-X", "--max-read-errors", help="maximum number of read errors allowed"),
    _opt("-y", "--synchronous", flag=True, help="use synchronous writes for output file"),
    _opt("-Z", "--max-read-rate", help="maximum read rate in bytes/s"),
    _opt("--ask", flag=True, help="ask for confirmation before starting the copy"),
    _opt("--cpass", help="select copying pass(es) to run [1-5]"),
    _opt("--delay-slow", help="initial delay before checking slow reads [30]"),
    _opt("--log-events", help="log significant events in file"),
    _opt("--log-rates", help="log rates and error sizes in file"),
    _opt("--log-reads", help="log all read operations to file"),
    _opt("--mapfile-interval", help="save/sync mapfile every SAVE/SYNC seconds [auto,300]"),
    _opt("--max-slow-reads", help="maximum number of slow reads allowed"),
    _opt("--pause-on-error", help="time to wait after each read error [0]"),
    _opt("--pause-on-pass", help="time to wait between passes [0]"),
    _opt("--reset-slow", flag=True, help="reset slow reads if rate rises above min"),
    _opt("--same-file", flag=True, help="allow infile and outfile to be the same file"),
    _opt(
        "--allow-other-source",
        flag=True,
        help="resume although the mapfile records another source (merging copies)",
    ),
    _opt("--no-metadata-first", flag=True, help="plain ddrescue order: no filesystem tiers"),
]


def _old_option_help(name: str, long: str, short: str) -> Any:
    """A help-only entry for an old option name (the argv is rewritten before parsing)."""
    takes_value = short in ("-r", "-b", "-e")
    return click.option(
        name,
        "_old_" + name[2:].replace("-", "_"),
        is_flag=not takes_value,
        default=None,
        metavar="N" if takes_value else None,
        expose_value=False,
        help=f"old name of {long} ({short})",
    )


OLD_OPTION_HELP = [_old_option_help(name, *new) for name, new in OLD_OPTIONS.items()]


def rescue_options(fn: Any) -> Any:
    for decorator in reversed(RESCUE_OPTIONS + OLD_OPTION_HELP):
        fn = decorator(fn)
    return click.option("-v", "--verbose", count=True, help="be verbose (a 2nd -v gives more)")(fn)


@main.command(cls=DdrescueCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("infile")
@click.argument("outfile")
@click.argument("mapfile", required=False)
@rescue_options
def rescue(infile: str, outfile: str, mapfile: str | None, **kw: Any) -> None:
    """Rescue INFILE into OUTFILE, keeping the map in MAPFILE, as GNU ddrescue 1.27 does."""
    from ddfs.commands.rescue import run_rescue

    try:
        opts = build_options(kw, ["ddfs", "rescue", *sys.argv[2:]])
    except DdfsError as exc:
        fail(exc.message, exc.exit_code)
    raise SystemExit(run_rescue(infile, outfile, mapfile, opts))


@main.command(cls=DdrescueCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("infile")
@click.argument("outfile")
@click.argument("mapfile")
@click.argument("mountpoint")
@rescue_options
@click.option(
    "--read-timeout",
    default="5",
    metavar="SECONDS",
    help="answer an on-demand read by then (EIO or zeros) [5]",
)
@click.option(
    "--unreadable",
    type=click.Choice(["eio", "zero"]),
    default="eio",
    help="what a read of bad or unrescued data returns [eio]",
)
@click.option("--allow-other", is_flag=True, help="let other users read the mount")
@click.option("--loop", is_flag=True, help="also attach image and partitions as loop devices")
@click.option(
    "--overlay",
    metavar="OVERLAY",
    help="make image and partitions writable; writes go to OVERLAY (copy-on-write)",
)
@click.option(
    "--repair-view",
    is_flag=True,
    help="serve a rescued backup in place of a lost primary structure (read-only)",
)
def mount(
    infile: str,
    outfile: str,
    mapfile: str,
    mountpoint: str,
    read_timeout: str,
    unreadable: str,
    allow_other: bool,
    loop: bool,
    overlay: str | None,
    repair_view: bool,
    **kw: Any,
) -> None:
    """Rescue INFILE as `ddfs rescue` does and serve the image at MOUNTPOINT while it runs.

    MOUNTPOINT holds `image`, `p1`, `p2`, ... (one per partition), `mapfile` (the live map) and
    `status.json`. Reads of data not rescued yet jump the queue.
    """
    from ddfs.commands.mount import MountOptions, run_mount

    try:
        opts = build_options(kw, ["ddfs", "mount", *sys.argv[2:]])
        if opts.fill_types is not None or opts.generate:
            raise DdfsError("Fill and generate modes are not available in 'ddfs mount'.")
        timeout = float(read_timeout)
        if timeout <= 0:
            raise DdfsError("--read-timeout must be positive.")
    except (DdfsError, ValueError) as exc:
        fail(exc.message if isinstance(exc, DdfsError) else f"Bad --read-timeout: {exc}")
    mopts = MountOptions(
        read_timeout=timeout,
        unreadable=unreadable,
        allow_other=allow_other,
        loop=loop,
        overlay=overlay,
        repair_view=repair_view,
    )
    raise SystemExit(run_mount(infile, outfile, mapfile, mountpoint, opts, mopts))


@main.command(cls=DdrescueCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("infile")
@click.argument("outfile")
@click.argument("mapfile")
@click.argument("domain_map")
@click.option(
    "--tier",
    type=click.Choice(["metadata", "used", "all"]),
    default="metadata",
    help="metadata (P0-P3), used (file data, P4) or all (P0-P4) [metadata]",
)
@click.option("-q", "--quiet", is_flag=True, help="suppress all messages")
def domain(
    infile: str, outfile: str, mapfile: str, domain_map: str, tier: str, quiet: bool
) -> None:
    """Write DOMAIN_MAP, a ddrescue domain mapfile of the filesystem metadata of INFILE.

    What the planner reads is rescued into OUTFILE and recorded in MAPFILE, as ddfs rescue
    would; then `ddrescue -m DOMAIN_MAP INFILE OUTFILE MAPFILE` rescues those areas first.
    """
    from ddfs.commands.domain import run_domain

    opts = RescueOptions(quiet=quiet, command_line=" ".join(["ddfs", "domain", *sys.argv[2:]]))
    raise SystemExit(run_domain(infile, outfile, mapfile, domain_map, tier, opts))


@main.command()
@click.argument("image", type=click.Path(exists=True, dir_okay=False))
@click.argument("mountpoint", type=click.Path(exists=True, file_okay=False))
@click.option("--bad", "bad", metavar="TESTMAP", help="ddrescue map: - * / blocks read as bad")
@click.option("--rate", default="0", metavar="BYTES/S", help="transfer rate (0: unlimited)")
@click.option("--seek-ms", default=0.0, type=float, help="time of a non-sequential read")
@click.option("--error-ms", default=0.0, type=float, help="extra time of a failed read")
@click.option("--weak", multiple=True, metavar="POS:SIZE:TRIES", help="area that fails TRIES times")
@click.option("--hang", "hang", metavar="POS:SIZE", multiple=True, help="area whose reads hang")
@click.option("--log-reads", metavar="FILE", help="append 'pos size ok|error' for every read")
@click.option(
    "--foreground/--background",
    default=True,
    help="stay in the foreground [default]; --background returns once mounted "
    "(the server's messages then go to a log file named on stderr)",
)
def simulate(**kw: Any) -> None:
    """Serve IMAGE as a failing disk MOUNTPOINT/disk (read-only FUSE), with stats.json."""
    from ddfs.simulate.fusefs import main as simulate_main

    raise SystemExit(simulate_main(**kw))


@main.command()
@click.option("--size", default="64Mi", help="size of the generated disk [64Mi]")
@click.option("--keep", is_flag=True, help="keep the demo directory")
def demo(size: str, keep: bool) -> None:
    """Use a generated disk's files while a simulated failing disk is being rescued."""
    from ddfs.commands.demo import run_demo

    raise SystemExit(run_demo(parse_number(size, "--size"), keep))


def install_signal_handlers(on_signal: Any) -> None:
    """SIGINT, SIGTERM and SIGHUP record the first signal; SIGUSR1/2 are ignored."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


def reraise(signum: int) -> None:
    """Die by the same signal, so the shell sees 128+signum (ddrescue does this)."""
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


# the other commands register themselves on the group
import ddfs.commands.log  # noqa: E402
import ddfs.commands.map  # noqa: E402
import ddfs.commands.overlay  # noqa: E402
import ddfs.commands.report  # noqa: E402, F401

"""The options of ``ddfs rescue`` and ``ddfs mount``: GNU ddrescue's flags as click options
(:func:`rescue_options`, with help-only entries for the old names), and :func:`build_options`,
which turns their raw strings into :class:`RescueOptions` with ddrescue's number syntax.

Where ddrescue 1.30 changed an option's meaning (``-N``, ``--cpass``, ``-x 0``, ``-M``, ``-O``,
the initial skip size), 1.30's holds; ``--schedule=ddrescue-1.27`` gives 1.27's meanings."""

from __future__ import annotations

import os
import shlex
from typing import Any

import click

from ddfs.commands.common import OLD_OPTIONS, PROG
from engine.errors import DdfsError
from engine.numbers import parse_number, parse_rational_time, parse_time
from engine.options import RescueOptions
from engine.schedule.choose import schedule_named

#: The on/off options copied as they are (``kw`` name = :class:`RescueOptions` field).
_FLAGS = (
    "reverse",
    "unidirectional",
    "no_trim",
    "no_sweep",
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
)

#: The on/off options of :func:`_rate_options`.
_RATE_FLAGS = (
    "reset_slow",
    "reopen_on_error",
    "verify_on_error",
    "verify_input_size",
    "ask",
    "allow_other_source",
)


def _parse_cpass(text: str, last: int) -> list[int]:
    """``--cpass=1,3-4``: passes 1 to ``last`` (4 in 1.30, whose pass 5 became sweeping)."""
    if text.strip() == "0":
        return []
    out: set[int] = set()
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-", 1)
            if not (a.isdigit() and b.isdigit()) or not 1 <= int(a) <= int(b) <= last:
                raise DdfsError("Invalid pass range in option '--cpass'.")
            out.update(range(int(a), int(b) + 1))
        elif part.isdigit() and 1 <= int(part) <= last:
            out.add(int(part))
        else:
            raise DdfsError("Invalid pass number in option '--cpass'.")
    return sorted(out)


def _parse_errnos(text: str) -> tuple[int, ...]:
    """``--continue-on-errno=N[,N]``: errno codes (1 or more) not to stop on."""
    try:
        return tuple(
            parse_number(part, "--continue-on-errno", 0, 1, 2**31 - 1) for part in text.split(",")
        )
    except DdfsError:
        raise DdfsError("Invalid errno value in option '--continue-on-errno'.") from None


def _read_bad_sector_data(path: str, sector_size: int) -> bytes:
    """``--bad-sector-data=FILE``: its first sector is the content a drive returns for a
    sector it could not read."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(sector_size)
    except OSError as exc:
        raise DdfsError(
            f"{path}: Can't open bad-sector-data file for reading: {exc.strerror}"
        ) from None
    if len(data) != sector_size:
        raise DdfsError(f"{path}: Error reading bad-sector-data file")
    return data


def build_options(kw: dict[str, Any], argv: list[str]) -> RescueOptions:
    """Turn the raw option strings into :class:`RescueOptions` (ddrescue's number syntax)."""
    o = RescueOptions()
    if kw["schedule"] is not None:
        o.schedule = schedule_named(kw["schedule"]).name
    _size_options(o, kw)
    _limit_options(o, kw)
    for flag in _FLAGS:
        setattr(o, flag, bool(kw[flag]))
    if o.old_meanings and o.no_sweep:  # ddrescue 1.27's -N
        o.no_trim, o.no_sweep = True, False
    o.verbosity = kw["verbose"]
    _rate_options(o, kw)
    _mode_options(o, kw)
    # test mode reproduces ddrescue's read sequence; --cpass=0 reads nothing new; a copy
    # within one file (--same-file) depends on ddrescue's order where the areas overlap
    o.metadata_first = (
        not kw["no_metadata_first"]
        and kw["test_mode"] is None
        and o.cpass != []
        and not o.same_file
    )
    o.test_map = kw["test_mode"]
    if kw["continue_on_errno"] is not None:
        o.continue_errnos = _parse_errnos(kw["continue_on_errno"])
    if kw["bad_sector_data"] is not None:
        o.bad_sector_data = _read_bad_sector_data(kw["bad_sector_data"], o.sector_size)
    o.command_line = " ".join(shlex.quote(a) for a in argv)
    return o


def _size_options(o: RescueOptions, kw: dict[str, Any]) -> None:
    """Sizes, passes and positions: ``-b -c -K -r --cpass -i -o -s``."""
    num = parse_number
    if kw["sector_size"] is not None:
        o.sector_size = num(kw["sector_size"], "-b", 512, 1, 2**28)
    ss = o.sector_size
    if kw["cluster_size"] is not None:
        o.cluster_sectors = num(kw["cluster_size"], "-c", ss, 1, 2**31 // ss - 1)
    if kw["skip_size"] is not None:
        _skip_options(o, kw["skip_size"])
    if kw["retry_passes"] is not None:
        o.max_retries = num(kw["retry_passes"], "-r", ss, -1, 2**31 // 2)
    if kw["cpass"] is not None:
        o.cpass = _parse_cpass(kw["cpass"], 5 if o.old_meanings else 4)
    if kw["input_position"] is not None:
        o.input_pos = num(kw["input_position"], "-i", ss, 0)
    if kw["output_position"] is not None:
        o.output_pos = num(kw["output_position"], "-o", ss, 0)
    if kw["size"] == "output" and not o.old_meanings:
        o.size_from_output = True
    elif kw["size"] is not None:
        o.domain_size = num(kw["size"], "-s", ss, -1)


def _skip_options(o: RescueOptions, text: str) -> None:
    """``-K INITIAL[,MAX]``."""
    ss = o.sector_size
    first, comma, second = text.partition(",")
    if first or not comma:  # '-K ""' is a bad number, as is nothing after the comma
        o.skip_initial = parse_number(first, "-K", ss, 0, 2**60)
        if 0 < o.skip_initial < 65536:
            raise DdfsError("Value out of limits [65536,1152921504606846976] in option '-K'.")
    if comma:
        o.skip_max = parse_number(second, "-K", ss, 65536, 2**60)
    if o.skip_initial is not None and o.skip_max is not None and o.skip_initial > o.skip_max:
        raise DdfsError("Initial skip size is larger than max skip size in option '-K'.")


def _limit_options(o: RescueOptions, kw: dict[str, Any]) -> None:
    """Limits, output size and mapfile intervals: ``-e -X -T -x --mapfile-interval``."""
    ss = o.sector_size
    if kw["max_bad_areas"] is not None:
        text = kw["max_bad_areas"]
        o.max_bad_areas_relative = text.startswith("+")
        o.max_bad_areas = parse_number(text.lstrip("+"), "-e", ss, 0)
    if kw["max_read_errors"] is not None:
        o.max_read_errors = parse_number(kw["max_read_errors"], "-X", ss, 0)
    if kw["timeout"] is not None:
        o.timeout = parse_time(kw["timeout"], "-T")
    if kw["min_outfile_size"] is not None:
        least = 1 if o.old_meanings else 0
        o.min_outfile_size = parse_number(kw["min_outfile_size"], "-x", ss, least)
        o.extend_to_input = o.min_outfile_size == 0
    if kw["mapfile_interval"] is not None:
        save, comma, sync = kw["mapfile_interval"].partition(",")
        if save and save != "-1":
            o.save_interval = parse_time(save, "--mapfile-interval")
        if comma:  # nothing after the comma is a bad interval
            o.sync_interval = parse_time(sync, "--mapfile-interval")
        if o.sync_interval < 5:
            raise DdfsError("Sync interval must be >= 5 seconds in '--mapfile-interval'.")
        if o.save_interval > o.sync_interval:
            raise DdfsError("SAVE interval must not be larger than SYNC in '--mapfile-interval'.")


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
    for flag in _RATE_FLAGS:
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
    o.command_mode = bool(kw["command_mode"])
    o.ignore_write_errors = bool(kw["ignore_write_errors"])
    if (o.fill_types is not None) + o.generate + o.command_mode > 1:
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
    _opt(
        "-I",
        "--check-input-size",
        "--verify-input-size",
        "verify_input_size",
        flag=True,
        help="compare input file size with size in mapfile",
    ),
    _opt(
        "-J",
        "--check-on-error",
        "--verify-on-error",
        "verify_on_error",
        flag=True,
        help="reread latest good sector after every error",
    ),
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
    _opt(
        "-N",
        "--no-sweep",
        "no_sweep",
        flag=True,
        help="skip the sweeping phase (with --schedule=ddrescue-1.27: skip trimming)",
    ),
    _opt("--no-trim", flag=True, help="skip the trimming phase"),
    _opt("-o", "--output-position", help="starting position in output file [ipos]"),
    _opt("-O", "--reopen-on-error", flag=True, help="reopen input file after every read error"),
    _opt("-p", "--preallocate", flag=True, help="preallocate space on disc for output file"),
    _opt("-P", "--data-preview", help="show some lines of the latest data read [3]"),
    _opt("-q", "--quiet", flag=True, help="suppress all messages"),
    _opt("-r", "--retry-passes", help="exit after N retry passes (-1=infinity) [0]"),
    _opt("-R", "--reverse", flag=True, help="reverse the direction of all passes"),
    _opt("-s", "--size", help="maximum size of input data to be copied ('output': its size)"),
    _opt("-S", "--sparse", flag=True, help="use sparse writes for output file"),
    _opt("-t", "--truncate", flag=True, help="truncate output file to zero size"),
    _opt("-T", "--timeout", help="maximum time since last successful read"),
    _opt("-u", "--unidirectional", flag=True, help="run all passes in the same direction"),
    _opt("-w", "--ignore-write-errors", flag=True, help="make fill mode ignore write errors"),
    _opt("-W", "--compare-before-write", "compare", flag=True, help="compare before writing"),
    _opt(
        "-x",
        "--extend-outfile",
        "min_outfile_size",
        help="extend outfile size to be at least N (0: the input size)",
    ),
    _opt("-X", "--max-read-errors", help="maximum number of read errors allowed"),
    _opt("-y", "--synchronous", flag=True, help="use synchronous writes for output file"),
    _opt("-Z", "--max-read-rate", help="maximum read rate in bytes/s"),
    _opt("--ask", flag=True, help="ask for confirmation before starting the copy"),
    _opt("--bad-sector-data", help="treat sectors with this file's data as read errors"),
    _opt("--command-mode", flag=True, help="execute commands from standard input"),
    _opt("--continue-on-errno", help="treat errno code N[,N] as non-fatal"),
    _opt("--cpass", help="select copying pass(es) to run [1-4]"),
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
    click.option(
        "--schedule",
        default=None,
        metavar="NAME",
        help="ddfs (fewer failed reads; default) or ddrescue-1.27 (its exact reads)",
    ),
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
    """Decorate a command with ddrescue's options, the old names' help entries and ``-v``."""
    for decorator in reversed(RESCUE_OPTIONS + OLD_OPTION_HELP):
        fn = decorator(fn)
    return click.option("-v", "--verbose", count=True, help="be verbose (a 2nd -v gives more)")(fn)

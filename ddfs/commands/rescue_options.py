"""The options of ``ddfs rescue`` and ``ddfs mount``: GNU ddrescue's flags
(:data:`ddfs.commands.rescue_table.OPTIONS`) as click options (:func:`rescue_options`, with
help-only entries for the old names), and :func:`build_options`, which turns their raw strings
into :class:`RescueOptions` with ddrescue's number syntax. click is imported only to decorate.

Where ddrescue 1.30 changed an option's meaning (``-N``, ``--cpass``, ``-x 0``, ``-M``, ``-O``,
the initial skip size), 1.30's holds; ``--schedule=ddrescue-1.27`` gives 1.27's meanings."""

from __future__ import annotations

import os
import shlex
from typing import Any

from ddfs.commands.process import OLD_OPTIONS, PROG
from ddfs.commands.rescue_table import COUNT, FLAG, MULTIPLE, OPTIONS, VERBOSE, Spec
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
    _first_options(o, kw)
    o.notify_command = kw["notify_command"]
    if kw["hash"] is not None:
        from engine.damage.record import parse_algorithms

        o.hashes = parse_algorithms(kw["hash"])
    if kw["continue_on_errno"] is not None:
        o.continue_errnos = _parse_errnos(kw["continue_on_errno"])
    if kw["bad_sector_data"] is not None:
        o.bad_sector_data = _read_bad_sector_data(kw["bad_sector_data"], o.sector_size)
    o.command_line = " ".join(shlex.quote(a) for a in argv)
    return o


def _first_options(o: RescueOptions, kw: dict[str, Any]) -> None:
    """``--first VOLUME:/PATH`` (repeatable): checked here, resolved once the metadata is in."""
    o.first = list(kw["first"])
    if o.first:
        from engine.damage.files import parse_spec

        for spec in o.first:
            parse_spec(spec)  # raises DdfsError on a bad one
    if o.first and not o.metadata_first:
        raise DdfsError(
            "Option '--first' needs metadata first"
            " (not with '-H', '--cpass=0', '--same-file' or '--no-metadata-first')."
        )


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


def _click_option(spec: Spec) -> Any:
    import click

    if spec.kind == FLAG:
        return click.option(*spec.decls, is_flag=True, default=False, help=spec.help)
    if spec.kind == COUNT:
        return click.option(*spec.decls, count=True, help=spec.help)
    return click.option(
        *spec.decls,
        default=None,
        metavar=spec.metavar,
        multiple=spec.kind == MULTIPLE,
        help=spec.help,
    )


def _old_option_help(name: str, long: str, short: str) -> Any:
    """A help-only entry for an old option name (the argv is rewritten before parsing)."""
    import click

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


def rescue_options(fn: Any) -> Any:
    """Decorate a command with ddrescue's options (:data:`OPTIONS`), the old names' help
    entries and ``-v``."""
    decorators = [_click_option(spec) for spec in OPTIONS]
    decorators += [_old_option_help(name, *new) for name, new in OLD_OPTIONS.items()]
    for decorator in reversed(decorators):
        fn = decorator(fn)
    return _click_option(VERBOSE)(fn)

"""The options of ``ddfs rescue`` and ``ddfs mount`` as one table, without click: GNU
ddrescue's flags (:data:`OPTIONS`), from which :func:`ddfs.commands.rescue_options.rescue_options`
makes the click options, and :func:`parse_fast`, which reads a plain valid ``ddfs rescue``
command line by the same table and click's parsing rules, so that a rescue starts without
importing click (about 15 ms of its start-up).

:func:`parse_fast` accepts only what click would accept with the same result
(``tests/test_rescue_table.py`` compares the two); anything else (help, a version request, an
unknown or old option name, a missing value or file name) returns None and click parses it,
with its messages.
"""

from __future__ import annotations

from typing import Any

FLAG, VALUE, MULTIPLE, COUNT = "flag", "value", "multiple", "count"


class Spec:
    """One option: its names, the keyword it fills, how it takes values, its help line."""

    __slots__ = ("decls", "help", "kind", "metavar", "name", "names")

    def __init__(
        self, *decls: str, kind: str = VALUE, metavar: str = "N", help: str = ""
    ) -> None:
        self.decls = decls  # as given to click (an explicit keyword name last)
        self.names = tuple(d for d in decls if d.startswith("-"))
        explicit = [d for d in decls if not d.startswith("-")]
        longs = [d for d in self.names if d.startswith("--")]
        # click's rule: an explicit name, else the first long name, else the short one
        self.name = explicit[0] if explicit else (longs or self.names)[0].lstrip("-")
        self.name = self.name.replace("-", "_").lower()
        self.kind = kind
        self.metavar = metavar
        self.help = help

    def default(self) -> Any:
        return {FLAG: False, VALUE: None, MULTIPLE: (), COUNT: 0}[self.kind]


def _flag(*decls: str, help: str) -> Spec:
    return Spec(*decls, kind=FLAG, help=help)


OPTIONS = [
    Spec("-a", "--min-read-rate", help="minimum read rate of good areas in bytes/s"),
    _flag("-A", "--try-again", help="mark non-trimmed and non-scraped as non-tried"),
    Spec("-b", "--sector-size", help="sector size of input device [default 512]"),
    _flag("-B", "--binary-prefixes", help="show binary multipliers in numbers"),
    Spec("-c", "--cluster-size", help="sectors to copy at a time [128]"),
    _flag("-C", "--complete-only", help="don't read new data beyond mapfile limits"),
    _flag("-d", "--idirect", "direct_in", help="use direct disc access for input file"),
    _flag("-D", "--odirect", "direct_out", help="use direct disc access for output"),
    Spec("-e", "--max-bad-areas", help="maximum number of [new] bad areas allowed"),
    Spec("-E", "--max-error-rate", help="maximum allowed rate of read errors per second"),
    _flag("-f", "--force", help="overwrite output device or partition"),
    Spec("-F", "--fill-mode", help="fill blocks of given types with data (?*/-+l)"),
    _flag("-G", "--generate-mode", help="generate approximate mapfile from partial copy"),
    Spec("-H", "--test-mode", help="set test mode (only + blocks of this map are readable)"),
    Spec("-i", "--input-position", help="starting position of domain in input file [0]"),
    _flag(
        "-I",
        "--check-input-size",
        "--verify-input-size",
        "verify_input_size",
        help="compare input file size with size in mapfile",
    ),
    _flag(
        "-J",
        "--check-on-error",
        "--verify-on-error",
        "verify_on_error",
        help="reread latest good sector after every error",
    ),
    Spec("-K", "--skip-size", help="initial size to skip on read error [64KiB],max"),
    _flag("-L", "--loose-domain", help="accept unordered domain/test map with gaps"),
    Spec(
        "-m",
        "--domain-mapfile",
        kind=MULTIPLE,
        metavar="FILE",
        help="restrict domain to finished blocks in FILE",
    ),
    _flag("-M", "--retrim", help="mark all failed blocks as non-trimmed"),
    _flag("-n", "--no-scrape", help="skip the scraping phase"),
    _flag(
        "-N",
        "--no-sweep",
        "no_sweep",
        help="skip the sweeping phase (with --schedule=ddrescue-1.27: skip trimming)",
    ),
    _flag("--no-trim", help="skip the trimming phase"),
    Spec("-o", "--output-position", help="starting position in output file [ipos]"),
    _flag("-O", "--reopen-on-error", help="reopen input file after every read error"),
    _flag("-p", "--preallocate", help="preallocate space on disc for output file"),
    Spec("-P", "--data-preview", help="show some lines of the latest data read [3]"),
    _flag("-q", "--quiet", help="suppress all messages"),
    Spec("-r", "--retry-passes", help="exit after N retry passes (-1=infinity) [0]"),
    _flag("-R", "--reverse", help="reverse the direction of all passes"),
    Spec("-s", "--size", help="maximum size of input data to be copied ('output': its size)"),
    _flag("-S", "--sparse", help="use sparse writes for output file"),
    _flag("-t", "--truncate", help="truncate output file to zero size"),
    Spec("-T", "--timeout", help="maximum time since last successful read"),
    _flag("-u", "--unidirectional", help="run all passes in the same direction"),
    _flag("-w", "--ignore-write-errors", help="make fill mode ignore write errors"),
    _flag("-W", "--compare-before-write", "compare", help="compare before writing"),
    Spec(
        "-x",
        "--extend-outfile",
        "min_outfile_size",
        help="extend outfile size to be at least N (0: the input size)",
    ),
    Spec("-X", "--max-read-errors", help="maximum number of read errors allowed"),
    _flag("-y", "--synchronous", help="use synchronous writes for output file"),
    Spec("-Z", "--max-read-rate", help="maximum read rate in bytes/s"),
    _flag("--ask", help="ask for confirmation before starting the copy"),
    Spec("--bad-sector-data", help="treat sectors with this file's data as read errors"),
    _flag("--command-mode", help="execute commands from standard input"),
    Spec("--continue-on-errno", help="treat errno code N[,N] as non-fatal"),
    Spec("--cpass", help="select copying pass(es) to run [1-4]"),
    Spec("--delay-slow", help="initial delay before checking slow reads [30]"),
    Spec("--log-events", help="log significant events in file"),
    Spec("--log-rates", help="log rates and error sizes in file"),
    Spec("--log-reads", help="log all read operations to file"),
    Spec("--mapfile-interval", help="save/sync mapfile every SAVE/SYNC seconds [auto,300]"),
    Spec("--max-slow-reads", help="maximum number of slow reads allowed"),
    Spec("--pause-on-error", help="time to wait after each read error [0]"),
    Spec("--pause-on-pass", help="time to wait between passes [0]"),
    _flag("--reset-slow", help="reset slow reads if rate rises above min"),
    _flag("--same-file", help="allow infile and outfile to be the same file"),
    _flag(
        "--allow-other-source",
        help="resume although the mapfile records another source (merging copies)",
    ),
    _flag("--no-metadata-first", help="plain ddrescue order: no filesystem tiers"),
    Spec(
        "--hash",
        metavar="ALGS",
        help="at the end, hash the image (and each partition) into MAPFILE.record: sha256,md5",
    ),
    Spec(
        "--notify-command",
        metavar="CMD",
        help="run CMD when the rescue ends or stops (DDFS_STATUS, DDFS_EXIT in its environment)",
    ),
    Spec(
        "--first",
        kind=MULTIPLE,
        metavar="VOL:/PATH",
        help="rescue these files and folders right after the metadata (p1:/dir; repeatable)",
    ),
    Spec(
        "--schedule",
        metavar="NAME",
        help="ddfs (fewer failed reads; default) or ddrescue-1.27 (its exact reads)",
    ),
]

VERBOSE = Spec("-v", "--verbose", kind=COUNT, help="be verbose (a 2nd -v gives more)")


def preview_default(args: list[str]) -> list[str]:
    """``-P`` and ``--data-preview`` take an optional value, attached only (getopt's rule):
    alone, they mean ``--data-preview=3``."""
    return ["--data-preview=3" if a in ("-P", "--data-preview") else a for a in args]


def parse_fast(args: list[str]) -> tuple[list[str], dict[str, Any]] | None:
    """The file names and the option keywords of ``ddfs rescue ARGS`` as click would give
    them, or None where click must parse (and perhaps refuse) the command line."""
    specs = [*OPTIONS, VERBOSE]
    by_name = {name: spec for spec in specs for name in spec.names}
    kw: dict[str, Any] = {spec.name: spec.default() for spec in specs}
    files: list[str] = []
    args = preview_default(args)
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            files.extend(args[i:])
            break
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            spec = by_name.get(name)
            if spec is None:
                return None
            if spec.kind in (FLAG, COUNT):
                if eq:
                    return None
                _set(kw, spec, None)
                continue
            if not eq:
                if i >= len(args):
                    return None
                value, i = args[i], i + 1
            _set(kw, spec, value)
        elif arg.startswith("-") and arg != "-":
            j = 1
            while j < len(arg):
                spec = by_name.get("-" + arg[j])
                if spec is None:
                    return None
                j += 1
                if spec.kind in (FLAG, COUNT):
                    _set(kw, spec, None)
                    continue
                value = arg[j:]
                if not value:
                    if i >= len(args):
                        return None
                    value, i = args[i], i + 1
                _set(kw, spec, value)
                break
        else:
            files.append(arg)
    if len(files) not in (2, 3):
        return None
    return files, kw


def _set(kw: dict[str, Any], spec: Spec, value: str | None) -> None:
    if spec.kind == FLAG:
        kw[spec.name] = True
    elif spec.kind == COUNT:
        kw[spec.name] += 1
    elif spec.kind == MULTIPLE:
        kw[spec.name] = (*kw[spec.name], value)
    else:
        kw[spec.name] = value

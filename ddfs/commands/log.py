"""``ddfs log``: a drop-in for GNU ddrescuelog 1.27, plus 1.30's ``-H``/``--make-test``. This is
the command line; the operations are in :mod:`ddfs.commands.log_ops` (the work is done by
engine.map.logtool)."""

from __future__ import annotations

from typing import Any

import click

from ddfs.commands.common import PROG, DdrescueCommand, fail, main
from engine.errors import DdfsError

_OPTIONAL = {"-C": "--complete-mapfile=?", "--complete-mapfile": "--complete-mapfile=?"}
_OPTIONAL.update({"-c": "--create-mapfile=+-", "--create-mapfile": "--create-mapfile=+-"})


class LogCommand(DdrescueCommand):
    """Lets ``-C``/``-c`` take an optional attached value, as getopt does; usage errors point
    at ``ddfs log --help``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return click.Command.parse_args(self, ctx, [_OPTIONAL.get(a, a) for a in args])
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:
            fail(f"{exc.format_message()}\nTry '{PROG} log --help' for more information.")
            raise  # not reached: fail() exits


@main.command("log", cls=LogCommand, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("mapfiles", nargs=-1, required=True)
@click.option("-a", "--change-types", metavar="OT,NT", help="change the block types of mapfile")
@click.option("-A", "--annotate-mapfile", is_flag=True, help="add human-readable comments")
@click.option("-b", "--block-size", default="512", help="block (sector) size in bytes [512]")
@click.option("-B", "--binary-prefixes", is_flag=True, help="show binary multipliers")
@click.option("-c", "--create-mapfile", metavar="TT", help="create mapfile from list of blocks")
@click.option("-C", "--complete-mapfile", metavar="T", help="complete mapfile adding blocks")
@click.option("-d", "--delete-if-done", is_flag=True, help="delete the mapfile if finished")
@click.option("-D", "--done-status", is_flag=True, help="return 0 if rescue is finished")
@click.option("-f", "--force", is_flag=True, help="overwrite existing output files")
@click.option("-F", "--format", "fmt", default="list", help="format for -c and -l")
@click.option(
    "-H",
    "--make-test",
    metavar="C:H:S[-S2[,T]]:F|FF:B",
    help="create a test-mode map of a disk with a dead head (ddrescuelog 1.30)",
)
@click.option("-i", "--input-position", default="0", help="start of rescue domain [0]")
@click.option("-l", "--list-blocks", metavar="TYPES", help="print block numbers of given types")
@click.option("-L", "--loose-domain", is_flag=True, help="accept unordered domain mapfile")
@click.option("-m", "--domain-mapfile", metavar="FILE", help="restrict domain to finished blocks")
@click.option("-n", "--invert-mapfile", is_flag=True, help="invert block types")
@click.option("-o", "--output-position", default=None, help="starting position in output")
@click.option("-p", "--compare-mapfile", metavar="FILE", help="compare block types in domain")
@click.option("-P", "--compare-as-domain", metavar="FILE", help="compare finished blocks only")
@click.option("-q", "--quiet", is_flag=True, help="suppress all messages")
@click.option("-s", "--size", default="-1", help="maximum size of rescue domain")
@click.option("-t", "--show-status", is_flag=True, help="show a summary of mapfile contents")
@click.option("-v", "--verbose", count=True, help="be verbose")
@click.option("-x", "--xor-mapfile", metavar="FILE", help="XOR the finished blocks in file")
@click.option("-y", "--and-mapfile", metavar="FILE", help="AND the finished blocks in file")
@click.option("-z", "--or-mapfile", metavar="FILE", help="OR the finished blocks in file")
@click.option("--shift", is_flag=True, help="shift all block positions by (opos - ipos)")
def log(mapfiles: tuple[str, ...], **kw: Any) -> None:
    """Manipulate ddrescue mapfiles, as GNU ddrescuelog 1.27 does (and -H, 1.30's --make-test)."""
    from ddfs.commands.log_ops import run  # loaded when the command runs, not at every start

    try:
        code = run(mapfiles, kw)
    except DdfsError as exc:
        if kw["quiet"]:
            raise SystemExit(exc.exit_code) from None
        fail(exc.message, exc.exit_code)
    raise SystemExit(code)

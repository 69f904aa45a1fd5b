"""``ddfs log``: a drop-in for GNU ddrescuelog 1.27 (the work is done by engine.map.logtool)."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import click

from ddfs.commands.cli import PROG, DdrescueCommand, fail, main
from engine.errors import DdfsError
from engine.map.mapfile import parse_mapfile
from engine.numbers import parse_number

if TYPE_CHECKING:
    from engine.map import logtool as lt

_OPTIONAL = {"-C": "--complete-mapfile=?", "--complete-mapfile": "--complete-mapfile=?"}
_OPTIONAL.update({"-c": "--create-mapfile=+-", "--create-mapfile": "--create-mapfile=+-"})


_FORMATS = {"list": None, "bitmap": True, "bitmap-le": True, "bitmap-be": False}


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


def _read_text(path: str) -> str:
    try:
        if path == "-":
            return sys.stdin.buffer.read().decode("latin-1")
        with open(path, "rb") as fh:
            return fh.read().decode("latin-1")
    except OSError:
        raise DdfsError(f"{path}: Mapfile does not exist or is not readable.") from None


def _load(path: str, loose: bool) -> lt.LogMap:
    from engine.map import logtool as lt

    if loose:
        return lt.loose_map(_read_text(path), path)
    if path != "-" and not os.access(path, os.R_OK):
        raise DdfsError(f"{path}: Mapfile does not exist or is not readable.")
    return lt.from_mapdata(parse_mapfile(path))


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
    """Manipulate ddrescue mapfiles, as GNU ddrescuelog 1.27 does."""
    try:
        code = _run(mapfiles, kw)
    except DdfsError as exc:
        if kw["quiet"]:
            raise SystemExit(exc.exit_code) from None
        fail(exc.message, exc.exit_code)
    raise SystemExit(code)


def _run(mapfiles: tuple[str, ...], kw: dict[str, Any]) -> int:
    from engine.map import logtool as lt  # loaded when the command runs, not at every start

    ops = [
        k
        for k in (
            "change_types",
            "annotate_mapfile",
            "create_mapfile",
            "complete_mapfile",
            "delete_if_done",
            "done_status",
            "list_blocks",
            "invert_mapfile",
            "compare_mapfile",
            "compare_as_domain",
            "show_status",
            "xor_mapfile",
            "and_mapfile",
            "or_mapfile",
            "shift",
        )
        if kw[k] not in (None, False)
    ]
    if len(ops) != 1:
        what = "Only one operation can be specified." if ops else "You must specify the operation."
        raise DdfsError(f"{what}\nTry 'ddfs log --help' for more information.")
    op = ops[0]
    if kw["fmt"] not in _FORMATS:
        raise DdfsError(f"'{kw['fmt']}': Invalid format name in option '-F'.")
    little = _FORMATS[kw["fmt"]]
    if len(mapfiles) != 1 and op != "show_status":
        raise DdfsError("Too many files.\nTry 'ddfs log --help' for more information.")
    bs = parse_number(kw["block_size"], "-b", 512, 1, 2**28)
    ipos = parse_number(kw["input_position"], "-i", bs, 0)
    opos = (
        ipos if kw["output_position"] is None else parse_number(kw["output_position"], "-o", bs, 0)
    )
    size = parse_number(kw["size"], "-s", bs, -1)
    binary = kw["binary_prefixes"]
    cmdline = " ".join(["ddfs", *sys.argv[1:]])
    path = mapfiles[0]
    out = sys.stdout

    if op == "create_mapfile":
        tt = kw["create_mapfile"]
        lt.parse_types(tt, "-c")
        if len(tt) != 2 or tt[0] == tt[1]:
            raise DdfsError(f"'{tt}': Invalid type in argument of option '-c'.")
        dmap = _load(kw["domain_mapfile"], kw["loose_domain"]) if kw["domain_mapfile"] else None
        domain = lt.raw_domain(ipos, size, dmap)
        if not domain:
            raise DdfsError("Nothing to do; domain is empty.", 0)
        if (opos - ipos) % bs:
            raise DdfsError("Offset between '-i' and '-o' must be 0 or a multiple of sector size.")
        if little is not None and sys.stdin.isatty():
            raise DdfsError("(stdin): I won't read bitmap data from a terminal.")
        if path != "-" and os.path.exists(path) and not kw["force"]:
            raise DdfsError(f"{path}: Mapfile exists. Use '--force' to overwrite it.")
        data = sys.stdin.buffer.read()
        if little is None:
            runs = lt.list_runs(data.decode("latin-1"), "(stdin)", bs)
        else:
            runs = lt.bitmap_runs(data, little)
        blocks = lt.create_map(runs, bs, domain, (tt[0], tt[1]), opos - ipos, little is None)
        result = lt.map_text(lt.LogMap(), blocks, cmdline)
        if path == "-":
            out.write(result)
            return 0
        with open(path, "w", encoding="latin-1") as fh:
            fh.write(result)
        return 0
    if op == "shift" and ipos != 0 and opos != 0:
        raise DdfsError("Either '-i' or '-o' must be 0")
    if op == "list_blocks":
        if (opos - ipos) % bs:
            raise DdfsError("Offset between '-i' and '-o' must be 0 or a multiple of sector size.")
        if little is not None and sys.stdout.isatty():
            raise DdfsError("(stdout): I won't write bitmap data to a terminal.")
    if op == "complete_mapfile":
        t = lt.parse_types(kw["complete_mapfile"], "-C")
        if len(t) != 1:
            raise DdfsError(f"'{t}': Invalid type in argument of option '-C'.")
        lmap = lt.loose_map(_read_text(path), path, t)
        out.write(lt.map_text(lmap, lmap.blocks, cmdline))
        return 0

    dmap = _load(kw["domain_mapfile"], kw["loose_domain"]) if kw["domain_mapfile"] else None
    if op == "show_status":
        texts = []
        for name in mapfiles:
            lmap = _load(name, kw["loose_domain"])
            domain = lt.make_domain(lmap, ipos, size, dmap)
            if not domain:
                raise DdfsError("Nothing to do; domain is empty.", 0)
            texts.append(lt.show_status(lmap, domain, binary))
        out.write("".join(texts))
        return 0

    as_domain = op == "compare_as_domain"
    lmap = _load(path, kw["loose_domain"] and as_domain)  # -L: only -t, -P and -m read loosely
    domain = lt.make_domain(lmap, ipos, size, dmap)
    if not domain:
        raise DdfsError("Nothing to do; domain is empty.", 0)
    if op in ("done_status", "delete_if_done"):
        if not lt.is_done(lmap, domain):
            return 1
        if op == "delete_if_done" and path != "-":
            try:
                os.unlink(path)
            except OSError as exc:
                raise DdfsError(f"Error deleting mapfile '{path}': {exc.strerror}") from None
            if kw["verbose"] and not kw["quiet"]:
                sys.stderr.write(f"ddfs: {path}: Mapfile successfully deleted.\n")
        return 0
    if op == "list_blocks":
        types = lt.parse_types(kw["list_blocks"], "-l")
        if little is None:
            out.write(lt.list_blocks(lmap, domain, types, bs, opos - ipos))
        else:
            out.flush()
            sys.stdout.buffer.write(lt.list_bitmap(lmap, domain, types, bs, opos - ipos, little))
        return 0
    if op == "shift":
        out.write(lt.map_text(lmap, lt.shift(lmap.blocks, domain[-1][1], opos - ipos), cmdline))
        return 0
    if op == "annotate_mapfile":
        out.write(lt.annotate(lmap, domain, binary, cmdline))
        return 0
    if op in ("compare_mapfile", "compare_as_domain"):
        other_name = kw[op]
        other = _load(other_name, kw["loose_domain"] and as_domain)
        if not lt.make_domain(other, ipos, size, dmap):
            raise DdfsError("Nothing to do; domain is empty.", 0)
        if lt.compare(lmap, other, lt.raw_domain(ipos, size, dmap), as_domain):
            return 0
        if not kw["quiet"]:
            sys.stderr.write(f"ddfs: Mapfiles '{path}' and '{other_name}' differ.\n")
        return 1
    if op == "change_types":
        blocks = lt.change_types(lmap, domain, kw["change_types"])
    elif op == "invert_mapfile":
        blocks = lt.invert(lmap, domain)
    else:
        other = _load(kw[op], False)
        if not lt.crop(domain, other.begin, other.end):
            raise DdfsError("Nothing to do; domain is empty.", 0)
        blocks = lt.combine(
            lmap, other, domain, {"xor_mapfile": "x", "and_mapfile": "y"}.get(op, "z")
        )
    out.write(lt.map_text(lmap, blocks, cmdline))
    return 0

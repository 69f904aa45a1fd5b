"""The operations of ``ddfs log`` (GNU ddrescuelog 1.27's, and 1.30's ``-H``), run once
:mod:`ddfs.commands.log` has parsed the options: files are read and written here, the work is
done by :mod:`engine.map.logtool`. The command imports this module when it runs, not at every
start."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

from engine.errors import DdfsError
from engine.map import logtool as lt
from engine.map.mapfile import parse_mapfile, save_mapfile
from engine.numbers import parse_number

#: ``-F`` names -> None (a list of block numbers) or True/False (a little/big-endian bitmap).
_FORMATS = {"list": None, "bitmap": True, "bitmap-le": True, "bitmap-be": False}

#: The operations, one of which must be given.
_OPERATIONS = (
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
    "make_test",
)

_EMPTY = "Nothing to do; domain is empty."
_BAD_OFFSET = "Offset between '-i' and '-o' must be 0 or a multiple of sector size."


@dataclass
class LogArgs:
    """The checked arguments of one ``ddfs log`` run."""

    op: str
    mapfiles: tuple[str, ...]
    kw: dict[str, Any]
    little: bool | None  # None: a list of block numbers; else a bitmap of this endianness
    bs: int
    ipos: int
    opos: int
    size: int
    cmdline: str
    geometry: lt.Geometry | None = None  # -H

    @property
    def path(self) -> str:
        return self.mapfiles[0]

    @property
    def offset(self) -> int:
        return self.opos - self.ipos


def _read_text(path: str) -> str:
    try:
        if path == "-":
            return sys.stdin.buffer.read().decode("latin-1")
        with open(path, "rb") as fh:
            return fh.read().decode("latin-1")
    except OSError:
        raise DdfsError(f"{path}: Mapfile does not exist or is not readable.") from None


def _load(path: str, loose: bool) -> lt.LogMap:
    if loose:
        return lt.loose_map(_read_text(path), path)
    if path != "-" and not os.access(path, os.R_OK):
        raise DdfsError(f"{path}: Mapfile does not exist or is not readable.")
    return lt.from_mapdata(parse_mapfile(path))


def _parse(mapfiles: tuple[str, ...], kw: dict[str, Any]) -> LogArgs:
    """The one operation, the format and the positions, checked in ddrescuelog's order."""
    ops = [k for k in _OPERATIONS if kw[k] not in (None, False)]
    if len(ops) != 1:
        what = "Only one operation can be specified." if ops else "You must specify the operation."
        raise DdfsError(f"{what}\nTry 'ddfs log --help' for more information.")
    op = ops[0]
    # ddrescuelog checks the geometry as it meets the option, before counting the files
    geometry = _geometry(kw["make_test"]) if op == "make_test" else None
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
    cmdline = " ".join(["ddfs", *sys.argv[1:]])
    return LogArgs(op, mapfiles, kw, little, bs, ipos, opos, size, cmdline, geometry)


def _geometry(arg: str) -> lt.Geometry:
    """``-H``'s geometry; messages name the option as it was spelt (``-H``, ``--make-test``)."""
    long_name = any(a.startswith("--make-test") for a in sys.argv[1:])
    if not arg:  # ddrescuelog's option parser takes an empty argument as a missing one
        what = "option '--make-test' requires" if long_name else "option requires"
        tail = "" if long_name else " -- 'H'"
        raise DdfsError(f"{what} an argument{tail}\nTry 'ddfs log --help' for more information.")
    return lt.parse_geometry(arg, "--make-test" if long_name else "-H")


def run(mapfiles: tuple[str, ...], kw: dict[str, Any]) -> int:
    """Run the operation ``kw`` selects; return the exit status (errors raise DdfsError)."""
    a = _parse(mapfiles, kw)
    if a.op == "make_test":
        return _make_test(a)
    if a.op == "create_mapfile":
        return _create(a)
    if a.op == "shift" and a.ipos != 0 and a.opos != 0:
        raise DdfsError("Either '-i' or '-o' must be 0")
    if a.op == "list_blocks":
        if a.offset % a.bs:
            raise DdfsError(_BAD_OFFSET)
        if a.little is not None and sys.stdout.isatty():
            raise DdfsError("(stdout): I won't write bitmap data to a terminal.")
    if a.op == "complete_mapfile":
        t = lt.parse_types(kw["complete_mapfile"], "-C")
        if len(t) != 1:
            raise DdfsError(f"'{t}': Invalid type in argument of option '-C'.")
        lmap = lt.loose_map(_read_text(a.path), a.path, t)
        sys.stdout.write(lt.map_text(lmap, lmap.blocks, a.cmdline))
        return 0
    dmap = _load(kw["domain_mapfile"], kw["loose_domain"]) if kw["domain_mapfile"] else None
    if a.op == "show_status":
        return _show_status(a, dmap)
    return _on_map(a, dmap)


def _create(a: LogArgs) -> int:
    """``-c TT``: a mapfile from a list (or bitmap) of blocks read on stdin."""
    kw = a.kw
    tt = kw["create_mapfile"]
    lt.parse_types(tt, "-c")
    if len(tt) != 2 or tt[0] == tt[1]:
        raise DdfsError(f"'{tt}': Invalid type in argument of option '-c'.")
    dmap = _load(kw["domain_mapfile"], kw["loose_domain"]) if kw["domain_mapfile"] else None
    domain = lt.raw_domain(a.ipos, a.size, dmap)
    if not domain:
        raise DdfsError(_EMPTY, 0)
    if a.offset % a.bs:
        raise DdfsError(_BAD_OFFSET)
    if a.little is not None and sys.stdin.isatty():
        raise DdfsError("(stdin): I won't read bitmap data from a terminal.")
    if a.path != "-" and os.path.exists(a.path) and not kw["force"]:
        raise DdfsError(f"{a.path}: Mapfile exists. Use '--force' to overwrite it.")
    data = sys.stdin.buffer.read()
    if a.little is None:
        runs = lt.list_runs(data.decode("latin-1"), "(stdin)", a.bs)
    else:
        runs = lt.bitmap_runs(data, a.little)
    blocks = lt.create_map(runs, a.bs, domain, (tt[0], tt[1]), a.offset, a.little is None)
    result = lt.map_text(lt.LogMap(), blocks, a.cmdline)
    if a.path == "-":
        sys.stdout.write(result)
        return 0
    with open(a.path, "w", encoding="latin-1") as fh:
        fh.write(result)
    return 0


def _make_test(a: LogArgs) -> int:
    """``-H C:H:S[-S2[,T]]:F|FF:B``: ddrescuelog 1.30's test map of a disk with a dead head.

    As ddrescuelog, an existing OUTFILE is read as a mapfile first and, without ``-f``, left
    alone: "Mapfile exists" (exit 1), or the mapfile error (exit 2) if it is not one. A regular
    file is then replaced atomically; anything else (a device, a FIFO, a symlink) is written
    through, as ddrescuelog does."""
    assert a.geometry is not None
    if a.path != "-" and not a.kw["force"]:
        _refuse_existing(a.path)
    pieces = lt.make_test_text(a.geometry, a.bs, a.cmdline)  # checks the size before writing
    if a.path == "-":
        sys.stdout.writelines(pieces)
        return 0
    try:
        if os.path.lexists(a.path) and (os.path.islink(a.path) or not os.path.isfile(a.path)):
            with open(a.path, "w", encoding="latin-1") as fh:
                fh.writelines(pieces)
        else:
            save_mapfile(a.path, pieces)
    except OSError as exc:
        raise DdfsError(f"{a.path}: Error writing mapfile: {exc.strerror}") from None
    return 0


def _refuse_existing(path: str) -> None:
    """Refuse to overwrite a mapfile, as ddrescuelog does (without ``-f``)."""
    if not os.path.exists(path) or not os.access(path, os.R_OK):
        return  # ddrescuelog cannot read it: it goes on to write it
    if os.path.isdir(path):
        raise DdfsError(f"{path}: Error in mapfile, line 0: Read error.")
    parse_mapfile(path)  # MapfileError (exit 2) if it is not a mapfile
    raise DdfsError(f"{path}: Mapfile exists. Use '--force' to overwrite it.")


def _show_status(a: LogArgs, dmap: lt.LogMap | None) -> int:
    """``-t``: a summary of each mapfile."""
    texts = []
    for name in a.mapfiles:
        lmap = _load(name, a.kw["loose_domain"])
        domain = lt.make_domain(lmap, a.ipos, a.size, dmap)
        if not domain:
            raise DdfsError(_EMPTY, 0)
        texts.append(lt.show_status(lmap, domain, a.kw["binary_prefixes"]))
    sys.stdout.write("".join(texts))
    return 0


def _on_map(a: LogArgs, dmap: lt.LogMap | None) -> int:
    """The operations on the one mapfile, within its domain."""
    op, kw = a.op, a.kw
    as_domain = op == "compare_as_domain"
    lmap = _load(a.path, kw["loose_domain"] and as_domain)  # -L: only -t, -P and -m read loosely
    domain = lt.make_domain(lmap, a.ipos, a.size, dmap)
    if not domain:
        raise DdfsError(_EMPTY, 0)
    if op in ("done_status", "delete_if_done"):
        return _done(a, lmap, domain)
    if op == "list_blocks":
        types = lt.parse_types(kw["list_blocks"], "-l")
        if a.little is None:
            sys.stdout.write(lt.list_blocks(lmap, domain, types, a.bs, a.offset))
        else:
            sys.stdout.flush()
            blocks = lt.list_bitmap(lmap, domain, types, a.bs, a.offset, a.little)
            sys.stdout.buffer.write(blocks)
        return 0
    if op == "annotate_mapfile":
        sys.stdout.write(lt.annotate(lmap, domain, kw["binary_prefixes"], a.cmdline))
        return 0
    if op in ("compare_mapfile", "compare_as_domain"):
        return _compare(a, lmap, dmap)
    sys.stdout.write(lt.map_text(lmap, _new_blocks(a, lmap, domain), a.cmdline))
    return 0


def _done(a: LogArgs, lmap: lt.LogMap, domain: lt.Domain) -> int:
    """``-D`` and ``-d``: 0 if the rescue is finished (``-d`` then deletes the mapfile)."""
    if not lt.is_done(lmap, domain):
        return 1
    if a.op == "delete_if_done" and a.path != "-":
        try:
            os.unlink(a.path)
        except OSError as exc:
            raise DdfsError(f"Error deleting mapfile '{a.path}': {exc.strerror}") from None
        if a.kw["verbose"] and not a.kw["quiet"]:
            sys.stderr.write(f"ddfs: {a.path}: Mapfile successfully deleted.\n")
    return 0


def _compare(a: LogArgs, lmap: lt.LogMap, dmap: lt.LogMap | None) -> int:
    """``-p FILE`` and ``-P FILE``: 0 if the block types (or finished blocks) are the same."""
    as_domain = a.op == "compare_as_domain"
    other_name = a.kw[a.op]
    other = _load(other_name, a.kw["loose_domain"] and as_domain)
    if not lt.make_domain(other, a.ipos, a.size, dmap):
        raise DdfsError(_EMPTY, 0)
    if lt.compare(lmap, other, lt.raw_domain(a.ipos, a.size, dmap), as_domain):
        return 0
    if not a.kw["quiet"]:
        sys.stderr.write(f"ddfs: Mapfiles '{a.path}' and '{other_name}' differ.\n")
    return 1


def _new_blocks(a: LogArgs, lmap: lt.LogMap, domain: lt.Domain) -> list[lt.Block]:
    """The blocks of the rewritten map: ``--shift -a -n -x -y -z``."""
    if a.op == "shift":
        return lt.shift(lmap.blocks, domain[-1][1], a.offset)
    if a.op == "change_types":
        return lt.change_types(lmap, domain, a.kw["change_types"])
    if a.op == "invert_mapfile":
        return lt.invert(lmap, domain)
    other = _load(a.kw[a.op], False)
    if not lt.crop(domain, other.begin, other.end):
        raise DdfsError(_EMPTY, 0)
    return lt.combine(lmap, other, domain, {"xor_mapfile": "x", "and_mapfile": "y"}.get(a.op, "z"))

"""Preparing a run: ddrescue's safety checks, loading and normalising the map, the domain.

:func:`prepare` turns paths and options into a ready :class:`engine.rescue.book.RescueBook`, or
raises :class:`DdfsError` with ddrescue's message and exit status before anything is written.
"""

from __future__ import annotations

import os
import stat
from itertools import pairwise
from typing import Any

from engine.errors import DdfsError
from engine.map.blockmap import (
    BAD_SECTOR,
    FINISHED,
    NON_SCRAPED,
    NON_TRIED,
    NON_TRIMMED,
    BlockMap,
)
from engine.map.mapfile import MapData, parse_mapfile
from engine.map.ranges import intersect
from engine.numbers import LLONG_MAX, format_num3, format_size
from engine.options import RescueOptions
from engine.rescue.identity import identify
from engine.rescue.inuse import device_in_use
from engine.rescue.source import Source

TRY_HELP = "Try 'ddfs rescue --help' for more information."
USE_C = "Use '-C' if you are reading from a partial copy.\n"


class Declined(DdfsError):
    """``--ask`` was not answered yes: exit 1, nothing written."""


class NothingToDo(DdfsError):
    """An empty domain: ddrescue says so and exits 0."""

    exit_code = 0


def same_file(a: str, b: str) -> bool:
    """Same name, or the same device and inode (ddrescue's sameness test)."""
    if os.path.abspath(a) == os.path.abspath(b):
        return True
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    if (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino):
        return True
    return bool(sa.st_rdev and sa.st_rdev == sb.st_rdev)


def check_paths(infile: str, outfile: str, mapfile: str | None, opts: RescueOptions) -> None:
    """The refusals ddrescue makes before opening anything for writing."""
    if not opts.same_file and same_file(infile, outfile):
        raise DdfsError(f"{outfile}: Infile and outfile are the same.")
    if mapfile is not None:
        for other, what in ((infile, "Infile"), (outfile, "Outfile")):
            if same_file(mapfile, other):
                raise DdfsError(f"{mapfile}: {what} and mapfile are the same.")
            if same_file(mapfile + ".bak", other):
                raise DdfsError(f"{mapfile}.bak: {what} and mapfile backup are the same.")
        if os.path.exists(mapfile) and not os.path.isfile(mapfile):
            raise DdfsError(f"{mapfile}: Mapfile exists and is not a regular file.")
    if opts.truncate and opts.same_file:
        raise DdfsError("Options '-t' and '--same-file' are incompatible.")
    try:
        st = os.stat(outfile)
    except OSError:
        return
    if stat.S_ISBLK(st.st_mode):
        use = device_in_use(st.st_rdev)
        if use is not None:  # even with -f: it would destroy a live filesystem
            raise DdfsError(f"{outfile}: Output device is in use ({use}); not writing to it.")
    if not stat.S_ISREG(st.st_mode):
        needs = opts.sparse or opts.preallocate or opts.min_outfile_size or opts.extend_to_input
        if not opts.force or needs:
            raise DdfsError(
                f"{outfile}: Output file exists and is not a regular file.\n"
                "Use '--force' if you really want to overwrite it, but be\n"
                "aware that all existing data in the output file will be lost.\n"
                + _with_force(opts)
                + TRY_HELP
            )


def _with_force(opts: RescueOptions) -> str:
    """``"That is: ddfs rescue -f ARGS\n"``, the command line with ``-f`` added (if not there)."""
    words = opts.command_line.split(" ")
    if opts.force or len(words) < 2:
        return ""
    return "That is: " + " ".join([*words[:2], "-f", *words[2:]]) + "\n"


def load_map(mapfile: str | None) -> MapData:
    if mapfile is None or not os.path.exists(mapfile):
        return MapData()
    if not os.access(mapfile, os.W_OK):
        raise DdfsError(f"{mapfile}: Mapfile is not writable.")
    return parse_mapfile(mapfile)


def normalise(data: MapData, insize: int, opts: RescueOptions) -> list[int]:
    """Extend or crop the map to the input size, then the subsector join. With ``-C`` the map
    stays as it is (the domain ends at the input's end, :func:`make_domain`), as in ddrescue.

    Returns the borders :func:`join_subsectors` keeps between blocks of equal status.
    """
    if opts.complete_only:
        if data.bmap.end == 0:
            raise DdfsError("Nothing to complete; mapfile is missing or empty.")
    else:
        fit_to_input(data, insize)
    return join_subsectors(data.bmap, opts.sector_size)


def fit_to_input(data: MapData, insize: int) -> None:
    """Crop the map to the input size, or extend it there with a ``?`` block (-1: unknown)."""
    bm = data.bmap
    if insize < 0:
        insize = 2**63 - 1
    if bm.end > insize:
        _crop(data, insize)
    elif bm.end < insize:
        bm.set_end(insize, NON_TRIED)


_ORDER = "?*/-"


def join_subsectors(bm: BlockMap, ss: int) -> list[int]:
    """ddrescue's subsector join: a sector split between two unfinished blocks goes wholly to
    the less processed one (``? < * < / < -``); ``+`` blocks are never altered. A block left
    holding only the fragment disappears into its neighbour.

    Works on a plain block list, as ddrescue does, and returns the borders of the result that
    separate blocks of equal status (ddrescue keeps such blocks apart until a read joins them).
    """
    starts, _ = bm.arrays()
    if ss <= 1 or not any(s % ss for s in starts):
        return []
    blocks: list[list[Any]] = [[p, p + n, st] for p, n, st in bm]
    i = 0
    while i + 1 < len(blocks):
        start, end, left = blocks[i]
        _, next_end, right = blocks[i + 1]
        if end % ss == 0 or FINISHED in (left, right):
            i += 1
            continue
        sector_start = end - end % ss
        if _ORDER.index(left) <= _ORDER.index(right):
            upto = min(sector_start + ss, next_end)
            blocks[i][1] = upto
            if upto == next_end:
                del blocks[i + 1]
            else:
                blocks[i + 1][0] = upto
        else:
            lo = max(sector_start, start)
            blocks[i + 1][0] = lo
            if lo == start:
                del blocks[i]
                i = max(i - 1, 0)
            else:
                blocks[i][1] = lo
    for s, e, st in blocks:
        bm.set_status(s, e - s, st)
    return [b[0] for a, b in pairwise(blocks) if a[2] == b[2]]


def _crop(data: MapData, insize: int) -> None:
    bm = data.bmap
    last_status = bm.block_at(bm.end - 1)[2]
    if data.last_pos > insize or (data.last_pos == insize and last_status == FINISHED):
        raise DdfsError("Last block in mapfile begins past end of input file.\n" + USE_C + TRY_HELP)
    if bm.find_forward(insize, FINISHED) is not None:
        raise DdfsError("Rescued data in mapfile goes past end of input file.\n" + USE_C + TRY_HELP)
    bm.set_end(insize)


def read_domain_map(opts: RescueOptions) -> list[tuple[int, int]] | None:
    """The ``+`` blocks of the ``-m`` map as sorted ``(start, end)`` ranges (None: no ``-m``).

    Raises:
        DdfsError: the file is missing (exit 1) or malformed (exit 2).
    """
    path = opts.domain_map
    if path is None:
        return None
    if path != "-" and not os.access(path, os.R_OK):
        raise DdfsError(f"{path}: Mapfile does not exist or is not readable.")
    bm = parse_mapfile(path, loose=opts.loose_domain).bmap
    return [(s, e) for s, e, st in bm.blocks_from(0) if st == FINISHED]


def make_domain(
    bm: BlockMap,
    insize: int,
    opts: RescueOptions,
    domain_map: list[tuple[int, int]] | None = None,
) -> list[tuple[int, int]]:
    """The domain: ``[-i, -i + -s)`` cropped to the input (the map with ``-C`` or an unknown
    size), intersected with ``domain_map`` (the ``+`` ranges of ``-m``) if given."""
    start = opts.input_pos
    if insize < 0:
        limit = bm.end
    else:
        limit = min(insize, bm.end) if opts.complete_only else insize
    first = start
    if domain_map is not None:  # ddrescue looks where the domain map's first '+' block starts
        reach = LLONG_MAX if opts.domain_size < 0 else start + opts.domain_size
        first = next(iter(intersect([(start, reach)], domain_map)), (0, 0))[0]
    if insize >= 0 and first >= insize and not (opts.domain_size == 0):
        raise DdfsError(
            f"Can't start reading at pos {format_num3(first)}.\n"
            f"Input file is only {format_num3(insize)} bytes long."
        )
    end = limit if opts.domain_size < 0 else min(limit, start + opts.domain_size)
    if end <= start:
        return []
    if domain_map is None:
        return [(start, end)]
    return intersect([(start, end)], domain_map)


def block_borders(bm: BlockMap, domain: list[tuple[int, int]]) -> list[int]:
    """The block borders strictly inside the domain ranges."""
    out: list[int] = []
    for a, b in domain:
        for s, _, _ in bm.blocks_from(a):
            if s >= b:
                break
            if s > a:
                out.append(s)
    return out


def sticky_borders(bm: BlockMap, borders: list[int]) -> dict[str, list[int]]:
    """Those of ``borders`` that now separate blocks of equal status, by status.

    ddrescue applies -M and -A block by block without joining the blocks, so two neighbours
    that end up with the same status stay apart (a read, a trim, a pass-2 skip ends there)
    until a read changes one of them.
    """
    out: dict[str, list[int]] = {}
    for p in borders:
        st = bm.status_at(p)
        if bm.status_at(p - 1) == st:
            out.setdefault(st, []).append(p)
    return out


def change_statuses(bm: BlockMap, domain: list[tuple[int, int]], frm: str, to: str) -> None:
    for a, b in domain:
        pos = a
        while True:
            found = bm.find_forward(pos, frm, b)
            if found is None:
                break
            bm.set_status(found[0], found[1] - found[0], to)
            pos = found[1]


def retrim_adjacent(bm: BlockMap, domain: list[tuple[int, int]]) -> None:
    """``-M`` as ddrescue 1.30 does it: only the ``/`` and ``-`` blocks next to a non-tried or
    finished block (or the map's ends) become ``*`` again. A block cut by the domain's edge has
    itself as its neighbour there."""
    marked: list[tuple[int, int]] = []
    for a, b in domain:
        for start, end, status in list(bm.blocks_from(a)):
            if start >= b:
                break
            if status not in NON_SCRAPED + BAD_SECTOR:
                continue
            left = status if start < a else (bm.status_at(start - 1) if start > 0 else "")
            right = status if end > b else (bm.status_at(end) if end < bm.end else "")
            if {left, right} & {"", NON_TRIED, FINISHED}:
                marked.append((max(start, a), min(end, b)))
    for start, end in marked:
        bm.set_status(start, end - start, NON_TRIMMED)


def about_to_copy(
    infile: str, outfile: str, source: Source, domain: list[tuple[int, int]], binary: bool
) -> str:
    """``--ask``'s summary: what is copied, from and to where, with device IDs and sizes."""
    size = sum(b - a for a, b in domain)
    what = "an unknown number of " if source.size < 0 else format_size(size, binary)
    return (
        f"About to copy {what}Bytes\n"
        f"from '{infile}'{_device_id_and_size(source.fd, source.size)}\n"
        f"  to '{outfile}'{_device_id_and_size(outfile, -1)}\n"
    )


def _device_id_and_size(where: int | str, size: int) -> str:
    """`` [model::serial] (size)`` for a block device, `` (size)`` for a file, "" if absent."""
    try:
        fd = where if isinstance(where, int) else os.open(where, os.O_RDONLY)
    except OSError:
        return ""
    try:
        st = os.fstat(fd)
        if size < 0:
            size = os.lseek(fd, 0, os.SEEK_END)
        text = ""
        if stat.S_ISBLK(st.st_mode):
            ident = identify(fd, size)
            known = ident.model and ident.serial
            text = f" [{ident.model}::{ident.serial}]" if known else " [UNKNOWN]"
        return f"{text} ({format_num3(size)})"
    except OSError:
        return ""
    finally:
        if not isinstance(where, int):
            os.close(fd)


def verify_input_size(data: MapData, insize: int, mapfile: str | None) -> None:
    """``-I``: the input size must equal the extent of the map as read."""
    extent = data.bmap.end
    if mapfile is None or not os.path.exists(mapfile) or insize <= 0 or extent <= 0:
        raise DdfsError(
            "Can't verify input file size.\nMapfile is unfinished or missing, or size is invalid."
        )
    if extent != insize:
        raise DdfsError("Input file size differs from size calculated from mapfile.")

"""GNU ddrescue's mapfile format: lenient reading, exact writing, atomic saves with ``MAP.bak``.

Reading follows ddrescue 1.27 (``sscanf``-style fields, C integer syntax, ``#`` comments, trailing
text ignored) and raises :class:`MapfileError` (exit 2) with the line number for every malformed
line. A ddrescue-written file takes a fast path (C-level splitting and integer conversion in
4 MiB slices); anything unusual falls back to the line-by-line reader, which gives the same
result or the precise error.

Writing produces ddrescue's layout byte for byte in the data lines. Unlike ddrescue, which
rewrites the file in place, :func:`save_mapfile` writes a temporary file beside it, fsyncs it,
renames it over and fsyncs the directory, so a crash never leaves a truncated mapfile. Only on
a full filesystem, where a second copy does not fit, is the map rewritten in place as ddrescue
does.
"""

from __future__ import annotations

import errno
import os
import re
import time
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import repeat
from operator import add, sub
from typing import IO

from engine import DDRESCUE_VERSION, __version__
from engine.errors import DdfsError, MapfileError
from engine.map.blockmap import STATUSES, BlockMap

PHASES = "?*/-FG+"
PHASE_NAMES = {
    "?": "copying",
    "*": "trimming",
    "/": "scraping",
    "-": "retrying",
    "F": "filling",
    "G": "generating",
    "+": "finished",
}
_INT = r"[+-]?(?:0[xX][0-9a-fA-F]++|0[0-7]*+|[1-9][0-9]*+)"
_STATUS_RE = re.compile(rf"\s*({_INT})\s*(\S)(?:\s*([+-]?[0-9]++))?")
_BLOCK_RE = re.compile(rf"\s*({_INT})\s*({_INT})\s*(\S)")
_SLICE = 1 << 20
_STATUS_BYTES = STATUSES.encode()


@dataclass
class MapData:
    """The content of a mapfile: the status line and the blocks."""

    bmap: BlockMap = field(default_factory=BlockMap)
    current_pos: int = 0
    current_status: str = "?"
    current_pass: int = 1
    blank: bool = True  # no status line: a new rescue
    first_pos: int = 0  # where the first block line started (the gap before it is '?')
    last_pos: int = 0  # where the last block line started


def _c_int(text: str) -> int:
    sign = -1 if text[0] == "-" else 1
    digits = text.lstrip("+-")
    if digits[:2] in ("0x", "0X"):
        return sign * int(digits[2:], 16)
    if len(digits) > 1 and digits[0] == "0":
        return sign * int(digits[1:], 8)
    return sign * int(digits)


def _content(line: str) -> str | None:
    s = line.lstrip()
    if not s or s[0] == "#":
        return None
    return s[:127]


class _Builder:
    """Collects validated blocks; checks contiguity; knows the current line number."""

    def __init__(self, path: str, loose: bool) -> None:
        self.path = path
        self.loose = loose
        self.starts = array("q")
        self.sts = bytearray()
        self.next_pos: int | None = None
        self.zero_block = False
        self.loose_blocks: list[tuple[int, int, str, int]] = []

    def error(self, line: int, what: str) -> MapfileError:
        return MapfileError(self.path, line, what)

    def add_line(self, text: str, lineno: int) -> None:
        m = _BLOCK_RE.match(text)
        if not m:
            raise self.error(lineno, "Bad block line in list.")
        pos, size, st = _c_int(m.group(1)), _c_int(m.group(2)), m.group(3)
        if pos < 0 or st not in STATUSES or size < 0:
            raise self.error(lineno, "Bad block line in list.")
        if size == 0:
            if pos != 0 or self.next_pos is not None or self.zero_block:
                raise self.error(lineno, "Bad block line in list.")
            self.zero_block = True
            return
        if self.zero_block:
            raise self.error(lineno, "Blocks are not contiguous.")
        if self.loose:
            self.loose_blocks.append((pos, size, st, lineno))
            return
        if self.next_pos is not None and pos != self.next_pos:
            raise self.error(lineno, "Blocks are not contiguous.")
        self.starts.append(pos)
        self.sts.append(ord(st))
        self.next_pos = pos + size

    def add_fast(self, chunk: bytes, nlines: int) -> bool:
        """Try the C-level path for a slice of plain block lines; False if it does not apply."""
        if b"#" in chunk:
            return False
        toks = chunk.split()
        if len(toks) != 3 * nlines or self.loose or self.zero_block:
            return False
        # what is left after deleting digits, 'x' and blanks is the status column
        sts = chunk.translate(None, b"0123456789ABCDEFabcdefxX \t\r\n\v\f")
        if len(sts) != nlines or sts.translate(None, _STATUS_BYTES):
            return False
        try:
            pos = array("q", map(int, toks[0::3], repeat(0)))
            sizes = array("q", map(int, toks[1::3], repeat(0)))
        except (ValueError, OverflowError):
            return False
        if min(pos) < 0 or min(sizes) <= 0:
            return False
        if self.next_pos is not None and pos[0] != self.next_pos:
            return False
        ends = array("q", map(add, pos, sizes))
        if ends[:-1] != pos[1:]:
            return False
        self.starts.extend(pos)
        self.sts.extend(sts)
        self.next_pos = ends[-1]
        return True

    def last_pos(self) -> int:
        if self.loose:
            return max((p for p, _, _, _ in self.loose_blocks), default=0)
        return self.starts[-1] if self.starts else 0

    def build(self) -> tuple[BlockMap, int]:
        if self.loose:
            return self._build_loose()
        if not self.starts:
            return BlockMap(0), 0
        first = self.starts[0]
        end = self.next_pos or 0
        starts, sts = self.starts, self.sts
        if first > 0:
            starts = array("q", [0])
            starts.extend(self.starts)
            sts = bytearray(b"?") + self.sts
        return BlockMap.from_arrays(starts, sts, end), first

    def _build_loose(self) -> tuple[BlockMap, int]:
        blocks = sorted(self.loose_blocks)
        if not blocks:
            return BlockMap(0), 0
        end = max(p + s for p, s, _, _ in blocks)
        bm = BlockMap(end)
        prev_end = 0
        prev_st = ""
        for pos, size, st, lineno in blocks:
            if pos < prev_end and st != prev_st:
                raise self.error(lineno, "Blocks of different status overlap.")
            bm.set_status(pos, size, st)
            if pos + size > prev_end:
                prev_end, prev_st = pos + size, st
        return bm, blocks[0][0]


def parse_mapfile(path: str, loose: bool = False, display: str | None = None) -> MapData:
    """Read a mapfile (``-`` for stdin).

    Raises:
        MapfileError: a malformed line (exit 2).
        DdfsError: the file could not be read (exit 1).
    """
    name = display or path
    try:
        if path == "-":
            import sys

            fh = sys.stdin.buffer
            close = False
        else:
            fh = open(path, "rb")  # noqa: SIM115
            close = True
    except OSError as exc:
        raise DdfsError(f"{name}: Can't open mapfile: {exc.strerror}") from None
    try:
        return _parse_stream(fh, name, loose)
    except OSError:
        raise DdfsError(f"{name}: Read error.") from None
    finally:
        if close:
            fh.close()


def parse_mapfile_text(text: str, name: str = "mapfile", loose: bool = False) -> MapData:
    """Parse mapfile content given as a string."""
    import io

    return _parse_stream(io.BytesIO(text.encode("latin-1")), name, loose)


def _parse_stream(fh, name: str, loose: bool) -> MapData:  # type: ignore[no-untyped-def]
    data = MapData()
    builder = _Builder(name, loose)
    lineno = 0
    carry = b""
    have_status = False
    while True:
        block = fh.read(_SLICE)
        if not block:
            chunk, carry = carry, b""
            if not chunk:
                break
        else:
            buf = carry + block
            cut = buf.rfind(b"\n") + 1
            if cut == 0:
                carry = buf
                continue
            chunk, carry = buf[:cut], buf[cut:]
        if not have_status:
            # header lines up to the status line, one by one
            # (and the comment lines right after it, so the rest can take the fast path)
            offset = 0
            while offset < len(chunk):
                nl = chunk.find(b"\n", offset)
                nxt = len(chunk) if nl < 0 else nl + 1
                text = _content(chunk[offset:nxt].decode("latin-1"))
                if text is not None:
                    if have_status:
                        break
                    _parse_status(text, lineno + 1, name, data)
                    have_status = True
                lineno += 1
                offset = nxt
            chunk = chunk[offset:]
            if not chunk:
                if not block:
                    break
                continue
        nlines = chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)
        if builder.add_fast(chunk, nlines):
            lineno += nlines
        else:
            for raw in chunk.decode("latin-1").split("\n")[:nlines]:
                lineno += 1
                text = _content(raw)
                if text is not None:
                    builder.add_line(text, lineno)
        if not block:
            break
    data.blank = not have_status
    data.bmap, data.first_pos = builder.build()
    data.last_pos = builder.last_pos()
    return data


def _parse_status(text: str, lineno: int, name: str, data: MapData) -> None:
    m = _STATUS_RE.match(text)
    if not m:
        raise MapfileError(name, lineno, "Bad or missing status line.")
    pos = _c_int(m.group(1))
    st = m.group(2)
    passno = int(m.group(3)) if m.group(3) else 1
    if pos < 0 or st not in PHASES or passno < 1:
        raise MapfileError(name, lineno, "Bad or missing status line.")
    data.current_pos, data.current_status, data.current_pass = pos, st, passno


# ---------------------------------------------------------------------- writing
def format_header(
    command_line: str | None,
    start_time: float | None,
    current_time: float | None,
    message: str,
    tool: str = "ddfs",
) -> str:
    """The comment lines ddrescue writes before the status line.

    They are comments only, so a name Latin-1 cannot hold (a path in another script, a
    surrogate from undecodable bytes) shows as ``?`` rather than stop the map being saved."""
    lines = [f"# Mapfile. Created by {tool} {__version__} (GNU ddrescue {DDRESCUE_VERSION} format)"]
    if command_line is not None:
        lines.append(f"# Command line: {command_line}")
    if start_time is not None:
        lines.append(f"# Start time:   {_stamp(start_time)}")
    if current_time is not None:
        lines.append(f"# Current time: {_stamp(current_time)}")
    if message:
        lines.append(f"# {message}")
    text = "\n".join(lines) + "\n"
    return text.encode("latin-1", "replace").decode("latin-1")


def _stamp(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def iter_mapfile_text(
    bmap: BlockMap, current_pos: int, current_status: str, current_pass: int, header: str
) -> Iterable[str]:
    """The mapfile text in pieces of at most 65536 block lines."""
    yield header
    yield "# current_pos  current_status  current_pass\n"
    yield f"0x{current_pos:08X}     {current_status}               {current_pass}\n"
    yield "#      pos        size  status\n"
    line = "0x%08X  0x%08X  %c\n"
    for s, sts, piece_end in bmap.array_pieces(65536):
        e = s[1:]
        e.append(piece_end)
        flat: list[int] = [0] * (3 * len(s))
        flat[0::3] = s
        flat[1::3] = list(map(sub, e, s))
        flat[2::3] = sts
        yield (line * len(s)) % tuple(flat)


def mapfile_text(
    bmap: BlockMap,
    current_pos: int = 0,
    current_status: str = "?",
    current_pass: int = 1,
    header: str = "",
) -> str:
    return "".join(iter_mapfile_text(bmap, current_pos, current_status, current_pass, header))


#: errnos of a full filesystem: the atomic save then falls back to rewriting the map in place
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


class _NoSpace(Exception):
    """Writing the temporary map ran out of space; ``pieces`` holds the whole text."""

    def __init__(self, exc: OSError, pieces: list[str]) -> None:
        super().__init__(str(exc))
        self.exc = exc
        self.pieces = pieces


def save_mapfile(
    path: str,
    pieces: Iterable[str],
    rotate_backup: bool = False,
) -> None:
    """Write a mapfile atomically: temp file, fsync, (``MAP.bak`` rotation), rename, fsync dir.

    On a full filesystem (ENOSPC, EDQUOT) there is no room for a second copy. The map is then
    rewritten in place, as ddrescue always does (truncate, write, fsync): the old map's blocks
    are freed first, so the save still fits, and the output was fsynced before, so the map never
    claims data that is not on disk. The one cost is atomicity during that one write.

    Raises:
        OSError: the file could not be written; unless the filesystem was full, the old
            mapfile is left as it was.
    """
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        try:
            _write_temp(tmp, pieces)
        except _NoSpace as full:
            _unlink(tmp)
            if not os.path.isfile(path):
                raise full.exc from None
            _rewrite_in_place(path, full.pieces, full.exc)
        else:
            if rotate_backup and os.path.exists(path):
                bak = path + ".bak"
                bak_tmp = tmp + ".bak"
                os.link(path, bak_tmp)
                os.replace(bak_tmp, bak)
            os.replace(tmp, path)
    except BaseException:
        _unlink(tmp)
        raise
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if (directory, path) not in _swept:
        _swept.add((directory, path))
        _sweep_stale_temps(directory, os.path.basename(path))


#: (directory, mapfile) pairs whose stale temporary files this process has already removed
_swept: set[tuple[str, str]] = set()


def _sweep_stale_temps(directory: str, base: str) -> None:
    """Remove the temporary maps a killed run left (``.MAP.tmpPID`` of a dead PID).

    Done once per process and mapfile, after its first successful save.
    """
    prefix = f".{base}.tmp"
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if not name.startswith(prefix):
            continue
        pid = name[len(prefix) :].removesuffix(".bak")
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            _unlink(os.path.join(directory, name))
        except OSError:
            pass


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _write_temp(tmp: str, pieces: Iterable[str]) -> None:
    """Write and fsync ``tmp``; raise :class:`_NoSpace` (with all the text) when it is full.

    An error raised by ``pieces`` itself propagates as it is.
    """
    kept: list[str] = []
    it = iter(pieces)
    with open(tmp, "w", encoding="latin-1") as fh:
        try:
            for piece in it:  # an error of the generator itself propagates as it is
                kept.append(piece)
                _write_piece(fh, piece)
            _write_piece(fh, "", sync=True)
        except _Full as full:
            kept.extend(it)
            try:
                fh.close()
            except OSError:
                pass
            raise _NoSpace(full.exc, kept) from None


class _Full(Exception):
    def __init__(self, exc: OSError) -> None:
        super().__init__(str(exc))
        self.exc = exc


def _write_piece(fh: IO[str], piece: str, sync: bool = False) -> None:
    try:
        fh.write(piece)
        if sync:
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        if exc.errno in NO_SPACE:
            raise _Full(exc) from None
        raise


def _rewrite_in_place(path: str, pieces: list[str], cause: OSError) -> None:
    """ddrescue's way: truncate the map, write it again, fsync (the filesystem is full)."""
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    try:
        data = "".join(pieces).encode("latin-1")
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    except OSError:
        raise cause from None
    finally:
        os.close(fd)

"""Reading GNU ddrescue's mapfile format, leniently, into a :class:`MapData`.

Reading follows ddrescue 1.27 (``sscanf``-style fields, C integer syntax, ``#`` comments, trailing
text ignored) and raises :class:`MapfileError` (exit 2) with the line number for every malformed
line. A ddrescue-written file takes a fast path (C-level splitting and integer conversion in
4 MiB slices); anything unusual falls back to the line-by-line reader, which gives the same
result or the precise error.
"""

from __future__ import annotations

import re
from array import array
from dataclasses import dataclass, field
from itertools import repeat
from operator import add

from engine.errors import DdfsError, MapfileError
from engine.map.blockmap import STATUSES, BlockMap
from engine.numbers import LLONG_MAX

PHASES = "?*/-FG+"
# ddrescue 1.30's status line may say "sweeping non-tried blocks"; ddfs reads it as copying, so
# every map it writes is one that ddrescue 1.27 (and ddrescuelog) read too
SWEEPING = "%"
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
    sweeping: bool = False  # the status line said '%' (ddrescue 1.30 was sweeping), read as '?'


def c_int(text: str) -> int:
    """A C integer of a map line: decimal, ``0x`` hex or leading-0 octal, maybe signed; out of
    range it saturates to a 64-bit ``long long``, as ddrescue's ``strtoll`` does."""
    sign = -1 if text[0] == "-" else 1
    digits = text.lstrip("+-")
    if digits[:2] in ("0x", "0X"):
        value = sign * int(digits[2:], 16)
    elif len(digits) > 1 and digits[0] == "0":
        value = sign * int(digits[1:], 8)
    else:
        value = sign * int(digits)
    return max(-LLONG_MAX - 1, min(value, LLONG_MAX))


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
        pos, size, st = c_int(m.group(1)), c_int(m.group(2)), m.group(3)
        if pos < 0 or st not in STATUSES or size < 0:
            raise self.error(lineno, "Bad block line in list.")
        size = min(size, LLONG_MAX - pos)  # a block ends by 2^63 - 1 (ddrescue's fix_size)
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
        try:
            ends = array("q", map(add, pos, sizes))
        except OverflowError:  # past 2^63 - 1: the line-by-line reader cuts it as ddrescue does
            return False
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
    pos = c_int(m.group(1))
    st = m.group(2)
    if st == SWEEPING:  # ddrescue 1.30 sweeping non-tried blocks: copying them, as 1.27 says
        st = "?"
        data.sweeping = True
    passno = min(int(m.group(3)), (1 << 31) - 1) if m.group(3) else 1  # (an int in ddrescue)
    if pos < 0 or st not in PHASES or passno < 1:
        raise MapfileError(name, lineno, "Bad or missing status line.")
    data.current_pos, data.current_status, data.current_pass = pos, st, passno

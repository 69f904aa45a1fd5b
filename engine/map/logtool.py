"""The operations of ``ddfs log`` (GNU ddrescuelog 1.27), as pure functions.

Each operation takes already-read maps and options and returns ``(text, exit_code)``;
reading files, printing and deleting are left to the caller. Maps are handled as lists of
``(pos, size, status)`` blocks: unlike ddrescue, ddrescuelog keeps a map that starts after 0
as it is (the gap is not filled).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from engine.errors import DdfsError
from engine.map.mapfile import PHASE_NAMES, MapData, format_header, parse_mapfile_text
from engine.numbers import format_size

INF = 2**63 - 1
STATUSES = "?*/-+"
Block = tuple[int, int, str]
Domain = list[tuple[int, int]]
_BLOCK_RE = re.compile(
    r"\s*([+-]?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*))\s+"
    r"([+-]?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*))\s*(\S)"
)
_SECTOR_RE = re.compile(r"\s*([+-]?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*))")


@dataclass
class LogMap:
    """A mapfile as ddrescuelog sees it: status line and compacted blocks."""

    blocks: list[Block] = field(default_factory=list)
    current_pos: int = 0
    current_status: str = "?"
    current_pass: int = 1

    @property
    def begin(self) -> int:
        return self.blocks[0][0] if self.blocks else 0

    @property
    def end(self) -> int:
        return self.blocks[-1][0] + self.blocks[-1][1] if self.blocks else 0


def compact(blocks: Iterable[Block]) -> list[Block]:
    """Merge adjacent blocks of the same status (and drop empty ones)."""
    out: list[Block] = []
    for pos, size, st in blocks:
        if size <= 0:
            continue
        if out and out[-1][2] == st and out[-1][0] + out[-1][1] == pos:
            out[-1] = (out[-1][0], out[-1][1] + size, st)
        else:
            out.append((pos, size, st))
    return out


def _c_int(text: str) -> int:
    sign = -1 if text[0] == "-" else 1
    text = text.lstrip("+-")
    if text[:2] in ("0x", "0X"):
        return sign * int(text[2:], 16)
    if len(text) > 1 and text[0] == "0":
        return sign * int(text[1:], 8)
    return sign * int(text)


def from_mapdata(data: MapData) -> LogMap:
    """Convert a parsed (strict) mapfile, dropping the '?' gap the parser adds before it."""
    first = data.first_pos
    blocks: list[Block] = []
    for pos, size, st in data.bmap:
        end = pos + size
        if end <= first:
            continue
        pos = max(pos, first)
        blocks.append((pos, end - pos, st))
    return LogMap(compact(blocks), data.current_pos, data.current_status, data.current_pass)


def loose_map(text: str, name: str, fill: str = "?") -> LogMap:
    """Read a map loosely (``-L``/``-C``): unordered blocks, gaps from 0 filled with ``fill``.

    A last block of status ``fill`` is extended to the largest position, as ddrescuelog does.
    """
    data = parse_mapfile_text(text, name, loose=True)  # validation and the status line
    raw: list[Block] = []
    seen_status = False
    for line in text.split("\n"):
        stripped = line.lstrip()
        if not stripped or stripped[0] == "#":
            continue
        if not seen_status:
            seen_status = True
            continue
        m = _BLOCK_RE.match(line)
        if m:
            raw.append((_c_int(m.group(1)), _c_int(m.group(2)), m.group(3)))
    raw.sort()
    blocks: list[Block] = []
    pos = 0
    for bpos, bsize, st in raw:
        if bpos > pos:
            blocks.append((pos, bpos - pos, fill))
        if bpos + bsize > pos:
            start = max(pos, bpos)
            blocks.append((start, bpos + bsize - start, st))
            pos = bpos + bsize
    blocks = compact(blocks)
    if blocks and blocks[-1][2] == fill:
        blocks[-1] = (blocks[-1][0], INF - blocks[-1][0], fill)
    return LogMap(blocks, data.current_pos, data.current_status, data.current_pass)


def raw_domain(ipos: int, size: int, domain_map: LogMap | None = None) -> Domain:
    """The uncropped rescue domain: ``[ipos, ipos+size)`` ∩ finished blocks of ``domain_map``."""
    end = INF if size < 0 else min(INF, ipos + size)
    if domain_map is None:
        return [(ipos, end)] if ipos < end else []
    return crop([(p, p + s) for p, s, st in domain_map.blocks if st == "+"], ipos, end)


def crop(domain: Domain, begin: int, end: int) -> Domain:
    """``domain`` ∩ ``[begin, end)``, adjacent areas merged."""
    out: Domain = []
    for b, e in domain:
        b, e = max(b, begin), min(e, end)
        if b < e:
            if out and out[-1][1] == b:
                out[-1] = (out[-1][0], e)
            else:
                out.append((b, e))
    return out


def make_domain(lmap: LogMap, ipos: int, size: int, domain_map: LogMap | None = None) -> Domain:
    """The rescue domain: ``[ipos, ipos+size)`` ∩ finished blocks of ``domain_map`` ∩ extent."""
    return crop(raw_domain(ipos, size, domain_map), lmap.begin, lmap.end)


def split(blocks: Sequence[Block], domain: Domain) -> list[tuple[int, int, str, bool]]:
    """The blocks cut at the domain borders, each with whether it lies in the domain."""
    borders = sorted({x for b, e in domain for x in (b, e)})
    out: list[tuple[int, int, str, bool]] = []
    di = 0
    bi = 0
    for pos, size, st in blocks:
        end = pos + size
        while bi < len(borders) and borders[bi] <= pos:
            bi += 1
        cur = pos
        j = bi
        while cur < end:
            nxt = min(end, borders[j]) if j < len(borders) else end
            while di < len(domain) and domain[di][1] <= cur:
                di += 1
            inside = di < len(domain) and domain[di][0] <= cur < domain[di][1]
            out.append((cur, nxt - cur, st, inside))
            cur = nxt
            if j < len(borders) and borders[j] == nxt:
                j += 1
    return out


def map_text(lmap: LogMap, blocks: Iterable[Block], command_line: str | None) -> str:
    """Mapfile text as ddrescuelog writes it (no Current time line)."""
    parts = [format_header(command_line, None, None, "", tool="ddfs log")]
    parts.append("# current_pos  current_status  current_pass\n")
    parts.append(f"0x{lmap.current_pos:08X}     {lmap.current_status}               ")
    parts.append(f"{lmap.current_pass}\n#      pos        size  status\n")
    parts.extend(f"0x{p:08X}  0x{s:08X}  {st}\n" for p, s, st in blocks)
    return "".join(parts)


# ---------------------------------------------------------------------- operations
def _num(n: int, binary: bool) -> str:
    return format_size(n, binary)


def _percent(num: int, den: int) -> str:
    """ddrescuelog's percentage: exact values without trailing zeros, others with 2 decimals."""
    scaled = num * 100 * 100
    if scaled % den == 0:
        whole, frac = divmod(scaled // den, 100)
        text = f"{whole:3d}" + (f".{frac:02d}".rstrip("0") if frac else "")
    else:
        value = round(num * 100 * 100 / den)
        whole, frac = divmod(value, 100)
        text = f"{whole:3d}.{frac:02d}"
    return text + "%"


def show_status(lmap: LogMap, domain: Domain, binary: bool) -> str:
    """``-t``: the summary of one mapfile."""
    lines = [
        "",
        f"   current pos:{_num(lmap.current_pos, binary):>10}B,  current status: "
        f"{PHASE_NAMES[lmap.current_status]}",
        f"mapfile extent:{_num(lmap.end - lmap.begin, binary):>10}B,  in "
        f"{len(lmap.blocks):6d} area(s)",
    ]
    dsize = sum(e - b for b, e in domain)
    if len(domain) != 1 or domain[0][0] != 0 or domain[0][1] != lmap.end:
        lines.append(
            f"  domain begin:{_num(domain[0][0], binary):>10}B,  domain end:"
            f"{_num(domain[-1][1], binary):>10}B"
        )
        lines.append(f"   domain size:{_num(dsize, binary):>10}B,  in {len(domain):6d} area(s)")
    lines.append("")
    sizes = dict.fromkeys(STATUSES, 0)
    areas = dict.fromkeys(STATUSES, 0)
    prev: tuple[int, str] | None = None
    for pos, size, st, inside in split(lmap.blocks, domain):
        if not inside:
            prev = None
            continue
        sizes[st] += size
        if prev != (pos, st):
            areas[st] += 1
        prev = (pos + size, st)
    names = [
        ("?", "     non-tried"),
        ("+", "       rescued"),
        ("*", "   non-trimmed"),
        ("/", "   non-scraped"),
        ("-", "    bad-sector"),
    ]
    for st, name in names:
        lines.append(
            f"{name}:{_num(sizes[st], binary):>10}B,  in {areas[st]:6d} area(s)  "
            f"({_percent(sizes[st], dsize)})"
        )
    return "\n".join(lines) + "\n"


def is_done(lmap: LogMap, domain: Domain) -> bool:
    """``-D``/``-d``: every block in the domain is finished."""
    return all(st == "+" for _, _, st, inside in split(lmap.blocks, domain) if inside)


def _transform(lmap: LogMap, domain: Domain, fn) -> list[Block]:  # type: ignore[no-untyped-def]
    out = [
        (pos, size, fn(st) if inside else st)
        for pos, size, st, inside in split(lmap.blocks, domain)
    ]
    return compact(out)


def parse_types(text: str, option: str, allow_empty: bool = False) -> str:
    """Check a string of block types (``?*/-+``)."""
    if (not text and not allow_empty) or any(c not in STATUSES for c in text):
        raise DdfsError(f"'{text}': Invalid type in argument of option '{option}'.")
    return text


def change_types(lmap: LogMap, domain: Domain, arg: str) -> list[Block]:
    """``-a OLD,NEW``: translate statuses in the domain, like ``tr``."""
    old, sep, new = arg.partition(",")
    if not sep or not old or len(old) != len(new):
        raise DdfsError(f"'{arg}': Invalid type in argument of option '-a'.")
    parse_types(old, "-a")
    try:
        parse_types(new, "-a")
    except DdfsError:
        raise DdfsError(f"'{arg}': Invalid type in argument of option '-a'.") from None
    table = {o: n for o, n in reversed(list(zip(old, new, strict=True)))}
    return _transform(lmap, domain, lambda st: table.get(st, st))


def invert(lmap: LogMap, domain: Domain) -> list[Block]:
    """``-n``: finished becomes bad-sector, everything else finished."""
    return _transform(lmap, domain, lambda st: "-" if st == "+" else "+")


def list_blocks(lmap: LogMap, domain: Domain, types: str, bs: int, offset: int) -> str:
    """``-l TYPES``: the sectors touched by blocks of TYPES, one decimal number per line."""
    if offset % bs:
        raise DdfsError("Offset between '-i' and '-o' must be 0 or a multiple of sector size.")
    shift = offset // bs
    out: list[str] = []
    last = -1
    for pos, size, st, inside in split(lmap.blocks, domain):
        if not inside or st not in types:
            continue
        first = max(pos // bs, last + 1)
        end = (pos + size - 1) // bs
        out.extend(f"{n + shift}\n" for n in range(first, end + 1) if n + shift >= 0)
        last = max(last, end)
    return "".join(out)


def annotate(lmap: LogMap, domain: Domain, binary: bool, command_line: str | None) -> str:
    """``-A``: the mapfile with human-readable pos/size comments on the blocks in the domain."""
    lines = [
        format_header(command_line, None, None, "", tool="ddfs log"),
        "# current_pos  current_status  current_pass\n",
        f"0x{lmap.current_pos:08X}     {lmap.current_status}               "
        f"{lmap.current_pass}\t#  {_num(lmap.current_pos, binary)}B\n",
        "#      pos        size  status\n",
    ]
    for pos, size, st, inside in split(lmap.blocks, domain):
        line = f"0x{pos:08X}  0x{size:08X}  {st}"
        if inside:
            ssize = _num(size, binary)
            unit = "B" if not ssize.endswith(" ") else " "
            line += f"\t# {_num(pos, binary):>10}B {ssize:>10}{unit}"
        lines.append(line + "\n")
    return "".join(lines)


def combine(lmap: LogMap, other: LogMap, domain: Domain, op: str) -> list[Block]:
    """``-x``/``-y``/``-z``: XOR/AND/OR the finished blocks of ``other`` into ``lmap``."""
    out: list[Block] = []
    for pos, size, st, inside in split(lmap.blocks, domain):
        if not inside:
            out.append((pos, size, st))
            continue
        pieces = [(p, s, ost) for p, s, ost, ins in split(other.blocks, [(pos, pos + size)]) if ins]
        cur = pos
        for p, s, ost in pieces:
            if p > cur:
                out.append((cur, p - cur, st))
            new = st
            if op == "x" and ost == "+":
                new = "-" if st == "+" else "+"
            elif op == "y" and ost != "+" and st == "+":
                new = "-"
            elif op == "z" and ost == "+":
                new = "+"
            out.append((p, s, new))
            cur = p + s
        if cur < pos + size:
            out.append((cur, pos + size - cur, st))
    return compact(out)


def compare(lmap: LogMap, other: LogMap, domain: Domain, finished_only: bool) -> bool:
    """``-p``/``-P``: True if both maps have the same block types (or finished blocks).

    ``domain`` is the uncropped domain; it is cropped to the extent of each map. With ``-p``
    the two cropped domains must be equal, then the blocks in them must be the same.
    """

    def view(m: LogMap) -> list[Block]:
        dom = crop(domain, m.begin, m.end)
        return [
            (p, s, st)
            for p, s, st, ins in split(m.blocks, dom)
            if ins and (st == "+" or not finished_only)
        ]

    if not finished_only and crop(domain, lmap.begin, lmap.end) != crop(
        domain, other.begin, other.end
    ):
        return False
    return view(lmap) == view(other)


def shift(blocks: Sequence[Block], end: int, offset: int, fill: str = "?") -> list[Block]:
    """``--shift``: ``blocks`` truncated at ``end``, then moved by ``offset``.

    Like ddrescuelog, a positive shift enlarges a leading ``fill`` block (keeping its position)
    or inserts a ``fill`` block ``[0, offset)``; a negative one drops what falls before 0.
    """
    cut = [(p, min(s, end - p), st) for p, s, st in blocks if p < end]
    if not cut:
        return []
    out: list[Block] = []
    if offset > 0:
        p0, s0, st0 = cut[0]
        if st0 == fill:
            out.append((p0, min(s0 + offset, INF - p0), st0))
            cut = cut[1:]
        else:
            out.append((0, offset, fill))
        for p, s, st in cut:
            if p + offset >= INF:
                break
            out.append((p + offset, min(s, INF - p - offset), st))
    elif offset < 0:
        for p, s, st in cut:
            b, e = max(0, p + offset), p + s + offset
            if e > 0:
                out.append((b, e - b, st))
    else:
        out = cut
    return compact(out)


def _put_bits(out: bytearray, state: list[int], bits: int, one: bool, little: bool) -> None:
    """Append ``bits`` bits to a bitmap; ``state`` is ``[bitnum, byte]`` of the partial byte."""
    bitnum, byte = state
    while bits > 0 and bitnum != 0:
        bits -= 1
        if one:
            byte |= 1 << (bitnum if little else 7 - bitnum)
        bitnum += 1
        if bitnum >= 8:
            bitnum = 0
            out.append(byte)
    if bits > 0:
        out.extend((b"\xff" if one else b"\0") * (bits // 8))
        bits %= 8
        byte = 0
        for _ in range(bits):
            if one:
                byte |= 1 << (bitnum if little else 7 - bitnum)
            bitnum += 1
    state[:] = [bitnum, byte]


def list_bitmap(
    lmap: LogMap, domain: Domain, types: str, bs: int, offset: int, little: bool
) -> bytes:
    """``-l TYPES -F bitmap-le|bitmap-be``: one bit per sector, as ddrescuelog writes it."""
    if offset % bs:
        raise DdfsError("Offset between '-i' and '-o' must be 0 or a multiple of sector size.")
    out = bytearray()
    state = [0, 0]
    skip = -offset // bs if offset < 0 else 0
    pos = lmap.begin
    prev_one = False
    if offset >= bs:
        _put_bits(out, state, offset // bs, False, little)
    if pos >= bs:
        _put_bits(out, state, pos // bs, False, little)
    for bpos, size, st, inside in split(lmap.blocks, domain):
        end = bpos + size
        one = inside and st in types
        if pos % bs:  # complete a partial sector
            rest = bs - pos % bs
            if one:
                prev_one = True
            if size < rest:
                pos += size
                continue
            if skip > 0:
                skip -= 1
            else:
                _put_bits(out, state, 1, prev_one, little)
            pos += rest
        run = (end - pos) // bs
        pos += run * bs
        if skip > 0:
            taken = min(skip, run)
            skip -= taken
            run -= taken
        if run > 0:
            _put_bits(out, state, run, one, little)
        if pos < end:
            pos = end
            prev_one = one
    if pos % bs and skip <= 0:
        _put_bits(out, state, 1, prev_one, little)
    if state[0]:
        out.append(state[1])
    return bytes(out)


def bitmap_runs(data: bytes, little: bool) -> list[tuple[int, int]]:
    """The runs of 1 bits of a bitmap, as ``(first_sector, end_sector)``."""
    runs: list[tuple[int, int]] = []
    first = -1
    for n, byte in enumerate(data):
        for i in range(8):
            bit = (byte >> i) & 1 if little else (byte >> (7 - i)) & 1
            if bit:
                if first < 0:
                    first = 8 * n + i
            elif first >= 0:
                runs.append((first, 8 * n + i))
                first = -1
    if first >= 0:
        runs.append((first, 8 * len(data)))
    return runs


def list_runs(text: str, name: str, bs: int) -> list[tuple[int, int]]:
    """The sectors of a badblocks-style list, each as a run ``(n, n + 1)``."""
    runs: list[tuple[int, int]] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        m = _SECTOR_RE.match(line)
        n = _c_int(m.group(1)) if m and m.end() == len(line) else -1
        if n < 0 or n > INF // bs:
            raise DdfsError(f"{name}: Error reading block number at line {lineno}", 2)
        runs.append((n, n + 1))
    return runs


def _includes(domain: Domain, b: int, e: int) -> bool:
    return any(db <= b and e <= de for db, de in domain)


def create_map(
    runs: Iterable[tuple[int, int]],
    bs: int,
    domain: Domain,
    types: tuple[str, str],
    offset: int,
    per_sector: bool,
) -> list[Block]:
    """``-c``: sectors in ``runs`` and in ``domain`` get ``types[0]``, the rest ``types[1]``.

    With ``per_sector`` (a list) each sector must lie wholly in the domain; a bitmap run is
    marked whole if it lies in the domain, else sector by sector while they do (ddrescuelog).
    """
    if offset % bs:
        raise DdfsError("Offset between '-i' and '-o' must be 0 or a multiple of sector size.")
    marked: Domain = []
    for first, last in runs:
        if last > INF // bs:
            raise DdfsError("(stdin): Too many blocks in bitmap.", 2)
        b, e = first * bs, last * bs
        if per_sector or _includes(domain, b, e):
            if _includes(domain, b, e):
                marked.append((b, e))
            continue
        if any(b < de and db < e for db, de in domain):
            cur = b
            while cur < e and _includes(domain, cur, cur + bs):
                cur += bs
            if cur > b:
                marked.append((b, cur))
    marked.sort()
    t1, t2 = types
    blocks: list[Block] = []
    pos = 0
    for b, e in marked:
        if e <= pos:
            continue
        b = max(b, pos)
        if b > pos:
            blocks.append((pos, b - pos, t2))
        blocks.append((b, e - b, t1))
        pos = e
    blocks.append((pos, INF - pos, t2))
    return shift(compact(blocks), domain[-1][1], offset, t2)

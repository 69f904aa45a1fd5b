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
from engine.mapfile import PHASE_NAMES, MapData, format_header, parse_mapfile_text
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


def make_domain(lmap: LogMap, ipos: int, size: int, domain_map: LogMap | None = None) -> Domain:
    """The rescue domain: ``[ipos, ipos+size)`` ∩ finished blocks of ``domain_map`` ∩ extent."""
    begin = max(ipos, lmap.begin)
    end = lmap.end if size < 0 else min(lmap.end, ipos + size)
    if domain_map is None:
        return [(begin, end)] if begin < end else []
    out: Domain = []
    for pos, bsize, st in domain_map.blocks:
        if st != "+":
            continue
        b, e = max(pos, begin), min(pos + bsize, end)
        if b < e:
            if out and out[-1][1] == b:
                out[-1] = (out[-1][0], e)
            else:
                out.append((b, e))
    return out


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


def create_blocks(text: str, bs: int, size: int, t1: str, t2: str, name: str) -> list[Block]:
    """``-c``: a map from a list of sector numbers; listed sectors get t1, the rest t2."""
    sectors: set[int] = set()
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line:
            continue
        m = _SECTOR_RE.match(line)
        if not m or m.end() != len(line) or _c_int(m.group(1)) < 0:
            raise DdfsError(f"{name}: Error reading block number at line {lineno}", 2)
        sectors.add(_c_int(m.group(1)))
    end = INF if size < 0 else size
    blocks: list[Block] = []
    pos = 0
    for n in sorted(sectors):
        b = n * bs
        if b >= end:
            break
        e = min(b + bs, end)
        if b > pos:
            blocks.append((pos, b - pos, t2))
        blocks.append((b, e - b, t1))
        pos = e
    if pos < end:
        blocks.append((pos, end - pos, t2))
    return compact(blocks)


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
    """``-p``/``-P``: True if both maps have the same block types (or finished-ness) in domain."""

    def view(m: LogMap) -> list[Block]:
        pieces = [(p, s, st) for p, s, st, ins in split(m.blocks, domain) if ins]
        if finished_only:
            pieces = [(p, s, "+" if st == "+" else "?") for p, s, st in pieces]
        return compact(pieces)

    return view(lmap) == view(other)

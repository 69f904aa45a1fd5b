"""Maps as ddrescuelog sees them (:class:`LogMap`): read strictly or loosely, written back.

Unlike ddrescue, ddrescuelog keeps a map that starts after 0 as it is (the gap is not filled),
so a map is a list of compacted ``(pos, size, status)`` blocks rather than a
:class:`~engine.map.blockmap.BlockMap`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from engine.map.mapfile_read import MapData, c_int, parse_mapfile_text
from engine.map.mapfile_write import format_header

INF = 2**63 - 1
STATUSES = "?*/-+"
Block = tuple[int, int, str]
Domain = list[tuple[int, int]]
_BLOCK_RE = re.compile(
    r"\s*([+-]?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*))\s+"
    r"([+-]?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*))\s*(\S)"
)


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
            raw.append((c_int(m.group(1)), c_int(m.group(2)), m.group(3)))
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


def map_text(lmap: LogMap, blocks: Iterable[Block], command_line: str | None) -> str:
    """Mapfile text as ddrescuelog writes it (no Current time line)."""
    parts = [format_header(command_line, None, None, "", tool="ddfs log")]
    parts.append("# current_pos  current_status  current_pass\n")
    parts.append(f"0x{lmap.current_pos:08X}     {lmap.current_status}               ")
    parts.append(f"{lmap.current_pass}\n#      pos        size  status\n")
    parts.extend(f"0x{p:08X}  0x{s:08X}  {st}\n" for p, s, st in blocks)
    return "".join(parts)

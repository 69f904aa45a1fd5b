"""The map as a grid of cells, as ddrescueview draws it: each cell covers an equal share of the
disk and shows the worst status inside it (bad sector, then non-scraped, non-trimmed,
non-tried, finished). A cell wholly outside the domain is marked ``X``.

Pure computation over a :class:`~engine.map.blockmap.BlockMap`; the pictures are drawn by
``ddfs.draw.picture``.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.map.blockmap import BlockMap

OUTSIDE = "X"
#: worst first
SEVERITY = "-/*?+"
_RANK = {st: i for i, st in enumerate(SEVERITY)}

#: ddrescueview's default colours (RGB)
COLOURS = {
    "+": (0x20, 0xE0, 0x20),  # finished: green
    "?": (0x90, 0x90, 0x90),  # non-tried: grey
    "*": (0xFF, 0xE0, 0x00),  # non-trimmed: yellow
    "/": (0x20, 0x20, 0xFF),  # non-scraped: blue
    "-": (0xFF, 0x00, 0x00),  # bad sector: red
    OUTSIDE: (0x34, 0x34, 0x34),  # outside the domain: dark grey
}
LEGEND = {
    "+": "finished",
    "?": "non-tried",
    "*": "non-trimmed",
    "/": "non-scraped",
    "-": "bad sector",
    OUTSIDE: "outside domain",
}


@dataclass
class Grid:
    """``cells[i]`` is the status of ``[i * cell_size, (i + 1) * cell_size)`` (the last cell
    ends at ``size``); ``labels[i]`` names the outlined area (a partition) it belongs to."""

    size: int
    cell_size: int
    columns: int
    cells: list[str]
    labels: list[str]
    tiers: list[str]  # the filesystem tier the cell holds ("metadata", "used data" or "")

    @property
    def rows(self) -> int:
        return -(-len(self.cells) // self.columns)


def worst_per_cell(
    bmap: BlockMap, domain: list[tuple[int, int]] | None, cell_size: int, count: int
) -> list[str]:
    """The worst status inside each cell, ``X`` where no byte of the cell is in the domain."""
    cells = [OUTSIDE] * count
    spans = domain if domain is not None else [(0, bmap.end)]
    for a, b in spans:
        for s, e, st in bmap.blocks_from(a):
            if s >= b:
                break
            lo, hi = max(s, a), min(e, b)
            if lo >= hi:
                continue
            first, last = lo // cell_size, min((hi - 1) // cell_size, count - 1)
            rank = _RANK.get(st, 0)
            for i in range(first, last + 1):
                cur = cells[i]
                if cur == OUTSIDE or rank < _RANK[cur]:
                    cells[i] = st
    return cells


def make_grid(
    bmap: BlockMap,
    columns: int = 64,
    rows: int | None = None,
    domain: list[tuple[int, int]] | None = None,
    areas: list[tuple[int, int, str]] | None = None,
    tiers: list[tuple[str, list[tuple[int, int]]]] | None = None,
) -> Grid:
    """A grid of ``columns`` columns (and ``rows`` rows, by default as many as the columns
    give a square-ish picture: at most ``columns`` x ``columns // 2`` cells, fewer for a small
    map). ``areas`` are ``(start, end, label)`` outlined areas (partitions); ``tiers`` are
    ``(name, ranges)`` filesystem tiers, the first named winning where they share a cell."""
    size = max(bmap.end, 1)
    if rows is None:
        rows = max(1, columns // 2)
    count = columns * rows
    cell_size = max(1, -(-size // count))
    count = -(-size // cell_size)
    cells = worst_per_cell(bmap, domain, cell_size, count)
    labels = [""] * count
    for start, end, label in areas or []:
        for i in range(start // cell_size, min(-(-end // cell_size), count)):
            labels[i] = label
    tier_of = [""] * count
    for name, ranges in reversed(tiers or []):
        for start, end in ranges:
            for i in range(start // cell_size, min(-(-end // cell_size), count)):
                tier_of[i] = name
    return Grid(size, cell_size, columns, cells, labels, tier_of)

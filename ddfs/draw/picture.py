"""Drawing a :class:`~engine.map.grid.Grid`: PNG (Pillow), SVG, a self-refreshing HTML page and
coloured block characters for a terminal. Colours and legend are ddrescueview's; partitions
are outlined in white, the filesystem tiers (metadata magenta, used data cyan) inside them.

The PNG and SVG pictures start with a header: the title, the summary and the scale (bytes per
cell), then the legend, wrapped to the picture's width. In the HTML page each cell has a
tooltip (its byte range and status), and the picture shrinks with a narrower window."""

from __future__ import annotations

import html
import time
from collections.abc import Iterator

from engine.map.grid import COLOURS, LEGEND, OUTSIDE, Grid
from engine.numbers import format_size

CELL = 12  # pixels per cell side in PNG and SVG
GAP = 1
OUTLINE = (255, 255, 255)
TIER_OUTLINES = {"metadata": (255, 0, 255), "used data": (0, 255, 255)}
LINE = 16  # pixels per header line (title, summary and scale, each legend row)
MIN_WIDTH = 360  # a narrow grid still gets a readable header


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _ansi(rgb: tuple[int, int, int]) -> str:
    return "\x1b[38;2;{};{};{}m\u2588".format(*rgb)


def cell_origin(grid: Grid, index: int) -> tuple[int, int]:
    """The top-left pixel of cell ``index`` in the PNG and SVG pictures."""
    row, col = divmod(index, grid.columns)
    return col * CELL, header_height(grid) + row * CELL


def _legend_items() -> list[tuple[str, tuple[int, int, int], bool]]:
    """``(name, colour, filled)``: the statuses (filled), then the outlines."""
    items = [(LEGEND[st], COLOURS[st], True) for st in "+?*/-" + OUTSIDE]
    return items + [(n, c, False) for n, c in (*TIER_OUTLINES.items(), ("partition", OUTLINE))]


def _legend_layout(width: int) -> list[tuple[int, int, str, tuple[int, int, int], bool]]:
    """Where each legend item goes: ``(x, y, name, colour, filled)``, in rows that fit."""
    out = []
    x, y = 2, 2 * LINE + 3
    for name, colour, filled in _legend_items():
        w = 20 + 7 * len(name)
        if x > 2 and x + w > width:
            x, y = 2, y + LINE
        out.append((x, y, name, colour, filled))
        x += w
    return out


def header_height(grid: Grid) -> int:
    """Title, summary and scale lines, then the legend rows."""
    first_row = 2 * LINE + 3
    rows = 1 + (max(y for _, y, *_ in _legend_layout(_width(grid))) - first_row) // LINE
    return (2 + rows) * LINE + 6


def _width(grid: Grid) -> int:
    return max(grid.columns * CELL, MIN_WIDTH)


def _subtitle(grid: Grid, summary: str) -> str:
    return "; ".join(t for t in (summary, scale_text(grid)) if t)


def scale_text(grid: Grid) -> str:
    """``1 cell = 64 MiB`` (the bytes each cell stands for)."""
    return f"1 cell = {format_size(grid.cell_size, binary=True, limit=1023)}B"


def _borders(grid: Grid, labels: list[str]) -> Iterator[tuple[int, int, int, int]]:
    """Line segments ``(x1, y1, x2, y2)`` around the cells of each label (partitions, tiers)."""
    n = len(grid.cells)
    for i in range(n):
        label = labels[i]
        if not label:
            continue
        x, y = cell_origin(grid, i)
        row, col = divmod(i, grid.columns)
        left = labels[i - 1] if col > 0 else None
        right = labels[i + 1] if col + 1 < grid.columns and i + 1 < n else None
        up = labels[i - grid.columns] if row > 0 else None
        down = labels[i + grid.columns] if i + grid.columns < n else None
        if left != label:
            yield x, y, x, y + CELL
        if right != label:
            yield x + CELL, y, x + CELL, y + CELL
        if up != label:
            yield x, y, x + CELL, y
        if down != label:
            yield x, y + CELL, x + CELL, y + CELL


def _size(grid: Grid) -> tuple[int, int]:
    return _width(grid), header_height(grid) + grid.rows * CELL


def png(grid: Grid, path: str, title: str = "", summary: str = "") -> None:
    """Write the picture as a PNG file."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", _size(grid), (0, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.text((2, 2), title, fill=(255, 255, 255))
    draw.text((2, 2 + LINE), _subtitle(grid, summary), fill=(200, 200, 200))
    for x, y, name, colour, filled in _legend_layout(_width(grid)):
        if filled:
            draw.rectangle((x, y, x + 11, y + 11), fill=colour)
        else:
            draw.rectangle((x, y, x + 11, y + 11), outline=colour)
        draw.text((x + 15, y), name, fill=(255, 255, 255))
    for i, st in enumerate(grid.cells):
        cx, cy = cell_origin(grid, i)
        draw.rectangle((cx, cy, cx + CELL - 1 - GAP, cy + CELL - 1 - GAP), fill=COLOURS[st])
    for name, colour in TIER_OUTLINES.items():
        tier_cells = [t if t == name else "" for t in grid.tiers]
        for x1, y1, x2, y2 in _borders(grid, tier_cells):
            draw.line((x1, y1, x2, y2), fill=colour, width=1)
    for x1, y1, x2, y2 in _borders(grid, grid.labels):
        draw.line((x1, y1, x2, y2), fill=OUTLINE, width=1)
    img.save(path, "PNG")


def svg(grid: Grid, title: str = "", summary: str = "", tooltips: bool = False) -> str:
    """The picture as an SVG document (``tooltips``: each cell names its range and status)."""
    w, h = _size(grid)
    text = 'font-family="sans-serif" font-size="11"'
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" shape-rendering="crispEdges">',
        f"<title>{html.escape(title)}</title>",
        f'<rect width="{w}" height="{h}" fill="#000000"/>',
        f'<text x="2" y="13" {text} fill="#ffffff">{html.escape(title)}</text>',
        f'<text x="2" y="{13 + LINE}" {text} fill="#c8c8c8">'
        f"{html.escape(_subtitle(grid, summary))}</text>",
    ]
    for x, y, name, colour, filled in _legend_layout(w):
        if filled:  # 12 px legend squares: the cells are 11 px
            out.append(f'<rect x="{x}" y="{y}" width="12" height="12" fill="{_hex(colour)}"/>')
        else:
            box = f'x="{x}" y="{y}" width="11" height="11"'
            out.append(f'<rect {box} fill="none" stroke="{_hex(colour)}"/>')
        out.append(f'<text x="{x + 15}" y="{y + 10}" {text} fill="#ffffff">{name}</text>')
    side = CELL - GAP
    for i, st in enumerate(grid.cells):
        cx, cy = cell_origin(grid, i)
        rect = f'<rect x="{cx}" y="{cy}" width="{side}" height="{side}" fill="{_hex(COLOURS[st])}"'
        if tooltips:
            start = i * grid.cell_size
            end = min(start + grid.cell_size, grid.size)
            tip = f"0x{start:X}-0x{end - 1:X}: {LEGEND[st]}"
            out.append(f"{rect}><title>{tip}</title></rect>")
        else:
            out.append(rect + "/>")
    for name, colour in TIER_OUTLINES.items():
        tier_cells = [t if t == name else "" for t in grid.tiers]
        for x1, y1, x2, y2 in _borders(grid, tier_cells):
            out.append(f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{_hex(colour)}"/>')
    for x1, y1, x2, y2 in _borders(grid, grid.labels):
        out.append(f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="#ffffff"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def html_page(grid: Grid, title: str, summary: list[str], refresh: int = 0) -> str:
    """A page with the SVG inline and the figures; with ``refresh`` it reloads itself (ddfs
    map --watch rewrites it meanwhile), so a browser follows a running rescue."""
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    lines = "".join(f"<li>{html.escape(s)}</li>" for s in summary)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"{meta}<title>{html.escape(title)}</title>"
        "<style>body{background:#000;color:#ddd;font-family:sans-serif;margin:0}"
        "svg{display:block;max-width:100%;height:auto}ul{margin:8px 16px}</style></head><body>"
        f"{svg(grid, title, summary[1] if len(summary) > 1 else '', tooltips=True)}"
        f"<ul>{lines}<li>updated {stamp}</li></ul></body></html>\n"
    )


def terminal(grid: Grid, colour: bool = True) -> str:
    """Rows of block characters in 24-bit colour (``colour=False``: one letter per status)."""
    out = []
    for row in range(grid.rows):
        cells = grid.cells[row * grid.columns : (row + 1) * grid.columns]
        if colour:
            out.append("".join(_ansi(COLOURS[st]) for st in cells) + "\x1b[0m")
        else:
            out.append("".join("." if st == OUTSIDE else st for st in cells))
    legend = []
    for st in "+?*/-" + OUTSIDE:
        mark = _ansi(COLOURS[st]) + "\x1b[0m" if colour else ("." if st == OUTSIDE else st)
        legend.append(f"{mark} {LEGEND[st]}")
    return "\n".join(out) + "\n" + "  ".join(legend) + "\n"

"""Drawing a :class:`~engine.map.grid.Grid`: PNG (Pillow), SVG, a self-refreshing HTML page and
coloured block characters for a terminal. Colours and legend are ddrescueview's; partitions
are outlined in white, the filesystem tiers (metadata magenta, used data cyan) inside them."""

from __future__ import annotations

import html
import time
from collections.abc import Iterator

from engine.map.grid import COLOURS, LEGEND, OUTSIDE, Grid

CELL = 12  # pixels per cell side in PNG and SVG
GAP = 1
OUTLINE = (255, 255, 255)
TIER_OUTLINES = {"metadata": (255, 0, 255), "used data": (0, 255, 255)}
LEGEND_HEIGHT = 22


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _ansi(rgb: tuple[int, int, int]) -> str:
    return "\x1b[38;2;{};{};{}m\u2588".format(*rgb)


def cell_origin(grid: Grid, index: int) -> tuple[int, int]:
    """The top-left pixel of cell ``index`` in the PNG and SVG pictures."""
    row, col = divmod(index, grid.columns)
    return col * CELL, LEGEND_HEIGHT + row * CELL


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
    return grid.columns * CELL, LEGEND_HEIGHT + grid.rows * CELL


def png(grid: Grid, path: str) -> None:
    """Write the picture as a PNG file."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", _size(grid), (0, 0, 0))
    draw = ImageDraw.Draw(img)
    x = 2
    for st in "+?*/-" + OUTSIDE:
        draw.rectangle((x, 5, x + 11, 16), fill=COLOURS[st])
        draw.text((x + 15, 5), LEGEND[st], fill=(255, 255, 255))
        x += 20 + 7 * len(LEGEND[st])
    for name, colour in (*TIER_OUTLINES.items(), ("partition", OUTLINE)):
        draw.rectangle((x, 5, x + 11, 16), outline=colour)
        draw.text((x + 15, 5), name, fill=(255, 255, 255))
        x += 20 + 7 * len(name)
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


def svg(grid: Grid, title: str = "") -> str:
    """The picture as an SVG document."""
    w, h = _size(grid)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" shape-rendering="crispEdges">',
        f"<title>{html.escape(title)}</title>",
        f'<rect width="{w}" height="{h}" fill="#000000"/>',
    ]
    x = 2
    for st in "+?*/-" + OUTSIDE:
        out.append(f'<rect x="{x}" y="5" width="12" height="12" fill="{_hex(COLOURS[st])}"/>')
        out.append(
            f'<text x="{x + 15}" y="15" font-family="sans-serif" font-size="11" '
            f'fill="#ffffff">{LEGEND[st]}</text>'
        )
        x += 20 + 7 * len(LEGEND[st])
    for name, colour in (*TIER_OUTLINES.items(), ("partition", OUTLINE)):
        out.append(
            f'<rect x="{x}" y="5" width="11" height="11" fill="none" stroke="{_hex(colour)}"/>'
        )
        out.append(
            f'<text x="{x + 15}" y="15" font-family="sans-serif" font-size="11" '
            f'fill="#ffffff">{name}</text>'
        )
        x += 20 + 7 * len(name)
    side = CELL - GAP
    for i, st in enumerate(grid.cells):
        cx, cy = cell_origin(grid, i)
        out.append(
            f'<rect x="{cx}" y="{cy}" width="{side}" height="{side}" fill="{_hex(COLOURS[st])}"/>'
        )
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
        "svg{display:block}ul{margin:8px 16px}</style></head><body>"
        f"{svg(grid, title)}<ul>{lines}<li>updated {stamp}</li></ul></body></html>\n"
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

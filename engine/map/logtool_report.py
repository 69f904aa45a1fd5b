"""The reports of ``ddfs log`` on one map: the summary (``-t``), whether the domain is finished
(``-D``/``-d``) and the annotated mapfile (``-A``).
"""

from __future__ import annotations

from engine.map.logtool_domain import split
from engine.map.logtool_maps import STATUSES, Domain, LogMap
from engine.map.mapfile_read import PHASE_NAMES
from engine.map.mapfile_write import format_header
from engine.numbers import format_percentage, format_size


def _num(n: int, binary: bool) -> str:
    return format_size(n, binary)


def _percent(num: int, den: int) -> str:
    """ddrescuelog's percentage: only the decimals needed, rounded, 64-bit steps included."""
    return format_percentage(num, den)


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

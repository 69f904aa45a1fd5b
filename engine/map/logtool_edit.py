"""The operations of ``ddfs log`` that compute new blocks: changing types (``-a``), inverting
(``-n``), combining with a second map (``-x``/``-y``/``-z``), shifting (``--shift``), and
comparing two maps (``-p``/``-P``).
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.errors import DdfsError
from engine.map.logtool_domain import crop, split
from engine.map.logtool_maps import INF, STATUSES, Block, Domain, LogMap, compact


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

"""The rescue domain of ``ddfs log`` (``-i``, ``-s``, ``-m``) and the cutting of a map at its
borders, which every operation on the blocks inside the domain starts with.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.map.logtool_maps import INF, Block, Domain, LogMap


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

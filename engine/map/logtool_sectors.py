"""Maps as lists of sectors: listing the sectors of some block types as decimal numbers or a
bitmap (``-l``, ``-F``), and creating a map from such a list or bitmap (``-c``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from engine.errors import DdfsError
from engine.map.logtool_domain import split
from engine.map.logtool_edit import shift
from engine.map.logtool_maps import INF, Block, Domain, LogMap, compact
from engine.map.mapfile_read import c_int

_SECTOR_RE = re.compile(r"\s*([+-]?(?:0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*))")


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
        n = c_int(m.group(1)) if m and m.end() == len(line) else -1
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

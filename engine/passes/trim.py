"""Trimming non-trimmed blocks: leading edge forwards, trailing edge backwards (§2.4)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from engine.blockmap import BAD_SECTOR, NON_SCRAPED, NON_TRIMMED

if TYPE_CHECKING:
    from engine.rescuer import Read, Rescuer


def trimming_phase(r: Rescuer) -> Iterator[Read]:
    """Trim every ``*`` block of the domain, in block order (reverse order with ``-R``)."""
    forward = not r.opts.reverse
    r.set_phase(
        NON_TRIMMED, 1, f"Trimming failed blocks... ({'forwards' if forward else 'backwards'})"
    )
    pos = r.domain_start if forward else r.domain_end
    while True:
        blk = r.find_forward(pos, NON_TRIMMED) if forward else r.find_backward(pos, NON_TRIMMED)
        if blk is None:
            return
        yield from trim_block(r, *blk)
        pos = blk[1] if forward else blk[0]


def trim_block(r: Rescuer, start: int, end: int) -> Iterator[Read]:
    from engine.rescuer import Read

    ss = r.ss
    lbad = r.status_before(start) == BAD_SECTOR
    rbad = r.status_after(end) == BAD_SECTOR
    a, b = start, end
    if not lbad or not rbad:
        if not lbad:
            while a < b:
                read = Read(a, min((a // ss + 1) * ss, b) - a)
                yield read
                a = read.end
                if read.failed or read.copied < read.size:
                    break
        if not rbad:
            while b > a:
                s = max(((b - 1) // ss) * ss, a)
                read = Read(s, b - s, backward=True)
                yield read
                b = s
                if read.failed:
                    break
    if a < b and r.bmap.find_forward(a, NON_TRIMMED, b) is not None:
        r.bmap.set_status(a, b - a, NON_SCRAPED)

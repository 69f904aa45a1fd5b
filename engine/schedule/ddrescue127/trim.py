"""Trimming non-trimmed blocks: leading edge forwards, trailing edge backwards (§2.4).

Each ``*`` block of the domain is visited in block order (reverse order with ``-R``). Unless the
block before it is bad (``-``), its leading edge is read one sector at a time forwards until a
read fails; then, unless the block after it is bad, its trailing edge is read backwards until a
read fails. What is left in the middle becomes ``/`` without being read. The phase (status
``*``, pass 1) is set at the first read, so a trimming that reads nothing leaves the saved
status line as it was.

A ``*`` block with bad sectors on both sides becomes ``/`` without reads. ddrescue makes that
change without counting it in its non-scraped size, which decides whether the scraping phase
runs at all; :func:`uncounted_scrape_size` gives the bytes so changed, for the scraping phase.
"""

from __future__ import annotations

from collections.abc import Iterator

from engine.map.blockmap import BAD_SECTOR, NON_SCRAPED, NON_TRIMMED
from engine.schedule.base import Read, ScheduleContext


def uncounted_scrape_size(ctx: ScheduleContext) -> int:
    """Bytes this run's trimming turned ``*`` -> ``/`` without reads (both sides bad)."""
    return ctx.uncounted_scrape


def trimming_phase(ctx: ScheduleContext) -> Iterator[Read]:
    """Trim every ``*`` block of the domain, in block order (reverse order with ``-R``)."""
    forward = not ctx.opts.reverse
    message = f"Trimming failed blocks... ({'forwards' if forward else 'backwards'})"
    pos = ctx.book.domain_start if forward else ctx.book.domain_end
    started = False
    while True:
        blk = (
            ctx.book.find_forward(pos, NON_TRIMMED)
            if forward
            else ctx.book.find_backward(pos, NON_TRIMMED)
        )
        if blk is None:
            return
        for read in trim_block(ctx, *blk):
            if not started:
                ctx.announce(NON_TRIMMED, 1, message)
                started = True
            yield read
        pos = blk[1] if forward else blk[0]


def _sector_end(pos: int, ss: int, limit: int) -> int:
    """The end of the sector holding ``pos``, not beyond ``limit``."""
    return min((pos // ss + 1) * ss, limit)


def _sector_start(end: int, ss: int, limit: int) -> int:
    """The start of the sector holding ``end - 1``, not below ``limit``."""
    return max(((end - 1) // ss) * ss, limit)


def trim_block(ctx: ScheduleContext, start: int, end: int) -> Iterator[Read]:
    """Trim the ``*`` block ``[start, end)``: the edges sector by sector, the middle to ``/``."""
    ss = ctx.ss
    lbad = ctx.book.status_before(start) == BAD_SECTOR
    rbad = ctx.book.status_after(end) == BAD_SECTOR
    if lbad and rbad:
        ctx.book.mark(start, end - start, NON_SCRAPED)
        ctx.uncounted_scrape += end - start
        return
    a, b = start, end
    if not lbad:
        while a < b:
            read = Read(a, _sector_end(a, ss, b) - a)
            yield read
            a = read.end
            if read.failed or read.copied < read.size:
                break
    if not rbad:
        while b > a:
            s = _sector_start(b, ss, a)
            read = Read(s, b - s, backward=True)
            yield read
            b = s
            if read.failed:
                break
    if a < b and ctx.book.bmap.find_forward(a, NON_TRIMMED, b) is not None:
        ctx.book.mark(a, b - a, NON_SCRAPED)

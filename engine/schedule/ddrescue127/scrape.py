"""Scraping non-scraped blocks: every sector read forwards, one at a time (§2.5).

The ``/`` blocks of the domain are visited in block order (reverse order with ``-R``), each read
forwards over its whole length. The phase (status ``/``, pass 1) is set at the first read.
As in ddrescue, the phase does nothing when the only ``/`` data is what trimming marked
without reads (see :func:`engine.schedule.ddrescue127.trim.uncounted_scrape_size`).
"""

from __future__ import annotations

from collections.abc import Iterator

from engine.map.blockmap import NON_SCRAPED
from engine.schedule.base import Read, ScheduleContext
from engine.schedule.ddrescue127.trim import uncounted_scrape_size


def scraping_phase(ctx: ScheduleContext) -> Iterator[Read]:
    """Scrape every ``/`` block of the domain (block order reversed with ``-R``)."""
    if ctx.book.domain_size_of(NON_SCRAPED) <= uncounted_scrape_size(ctx):
        return
    forward = not ctx.opts.reverse
    message = f"Scraping failed blocks... ({'forwards' if forward else 'backwards'})"
    pos = ctx.book.domain_start if forward else ctx.book.domain_end
    started = False
    while True:
        blk = (
            ctx.book.find_forward(pos, NON_SCRAPED)
            if forward
            else ctx.book.find_backward(pos, NON_SCRAPED)
        )
        if blk is None:
            return
        if not started:
            ctx.announce(NON_SCRAPED, 1, message)
            started = True
        yield from _scrape_block(ctx, *blk)
        pos = blk[1] if forward else blk[0]


def _scrape_block(ctx: ScheduleContext, a: int, b: int) -> Iterator[Read]:
    """Read ``[a, b)`` forwards one sector at a time (the first read may be shorter)."""
    ss = ctx.ss
    while a < b:
        read = Read(a, min((a // ss + 1) * ss, b) - a)
        yield read
        if read.copied + read.error_size < read.size:  # EOF
            return
        a = read.end

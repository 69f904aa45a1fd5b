"""Scraping non-scraped blocks: every sector read forwards, one at a time (§2.5).

The ``/`` blocks of the domain are visited in block order (reverse order with ``-R``), each read
forwards over its whole length. The phase (status ``/``, pass 1) is set at the first read.
As in ddrescue, the phase does nothing when the only ``/`` data is what trimming marked
without reads (see :func:`engine.schedule.ddrescue127.trim.uncounted_scrape_size`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from engine.map.blockmap import NON_SCRAPED
from engine.schedule.ddrescue127.trim import uncounted_scrape_size

if TYPE_CHECKING:
    from engine.rescue.rescuer import Read, Rescuer


def scraping_phase(r: Rescuer) -> Iterator[Read]:
    """Scrape every ``/`` block of the domain (block order reversed with ``-R``)."""
    if r.domain_size_of(NON_SCRAPED) <= uncounted_scrape_size(r):
        return
    forward = not r.opts.reverse
    message = f"Scraping failed blocks... ({'forwards' if forward else 'backwards'})"
    pos = r.domain_start if forward else r.domain_end
    started = False
    while True:
        blk = r.find_forward(pos, NON_SCRAPED) if forward else r.find_backward(pos, NON_SCRAPED)
        if blk is None:
            return
        if not started:
            r.set_phase(NON_SCRAPED, 1, message)
            started = True
        yield from _scrape_block(r, *blk)
        pos = blk[1] if forward else blk[0]


def _scrape_block(r: Rescuer, a: int, b: int) -> Iterator[Read]:
    """Read ``[a, b)`` forwards one sector at a time (the first read may be shorter)."""
    from engine.rescue.rescuer import Read

    ss = r.ss
    while a < b:
        read = Read(a, min((a // ss + 1) * ss, b) - a)
        yield read
        if read.copied + read.error_size < read.size:  # EOF
            return
        a = read.end

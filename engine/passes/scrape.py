"""Scraping non-scraped blocks: every sector read forwards, one at a time (§2.5)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from engine.blockmap import NON_SCRAPED

if TYPE_CHECKING:
    from engine.rescuer import Read, Rescuer


def scraping_phase(r: Rescuer) -> Iterator[Read]:
    """Scrape every ``/`` block of the domain (block order reversed with ``-R``)."""
    from engine.rescuer import Read

    forward = not r.opts.reverse
    r.set_phase(
        NON_SCRAPED, 1, f"Scraping failed blocks... ({'forwards' if forward else 'backwards'})"
    )
    ss = r.ss
    pos = r.domain_start if forward else r.domain_end
    while True:
        blk = r.find_forward(pos, NON_SCRAPED) if forward else r.find_backward(pos, NON_SCRAPED)
        if blk is None:
            return
        a, b = blk
        while a < b:
            read = Read(a, min((a // ss + 1) * ss, b) - a)
            yield read
            if read.copied + read.error_size < read.size:
                break
            a = read.end
        pos = blk[1] if forward else blk[0]

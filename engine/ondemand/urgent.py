"""On-demand reads: rescue a range now, outside the schedule, recorded as the schedule would.

Non-tried data is read in cluster-sized pieces as the copying phase would; where such a read
fails, and in non-trimmed or non-scraped areas, only the requested sectors are read, one at a
time (not with ``scrape=False``, for read-ahead and metadata planning). Known bad sectors are
not read again (retry passes do that). Called between two steps of the rescue book, in the
thread that owns the source.
"""

from __future__ import annotations

from engine.map.blockmap import NON_TRIED
from engine.rescue.book import RescueBook
from engine.schedule.base import Read


def read_urgent(book: RescueBook, pos: int, size: int, scrape: bool = True) -> None:
    """Rescue ``[pos, pos+size)`` now (see the module docstring)."""
    ss, softbs = book.ss, book.softbs
    lo = pos - pos % ss
    hi = min(-(-(pos + size) // ss) * ss, book.map.bmap.end)
    p = lo
    while p < hi:
        found = book.map.unfinished_in(p, hi - p, "?*/" if scrape else "?")
        if found is None:
            return
        s, e, status = found
        if status == NON_TRIED:
            chunk_end = min(e, s + softbs)
            if chunk_end < e:
                chunk_end = max(chunk_end - chunk_end % softbs, min(e, s + ss))
            read = Read(s, chunk_end - s)
            book.do_read(read, copying=True)
            if read.failed and scrape:
                _scrape(book, max(read.pos + read.copied, lo), min(read.end, hi))
            p = read.end
        else:
            _scrape(book, s, e)
            p = e


def _scrape(book: RescueBook, start: int, end: int) -> None:
    """Read ``[start, end)`` one sector at a time, skipping what is finished."""
    ss = book.ss
    p = start
    while p < end:
        n = min((p // ss + 1) * ss, end) - p
        if not book.map.is_finished(p, n):
            book.do_read(Read(p, n), copying=False)
        p += n

"""ddrescue 1.30's sweeping phase: read what the copying passes skipped.

After trimming, each ``?`` block of the domain, in block order (reverse order with ``-R``), is
read whole, a cluster at a time from its start (from its end backwards, the first read taking
the odd part), without skipping; a failed read marks its bytes ``*`` (one sector: ``-``). After
each block a trimming pass (1.30's, :mod:`engine.schedule.ddrescue130.trim`) runs over the
whole domain under the sweeping message, so the new bad areas are delimited from their good
edges before the next block is swept. ddrescue 1.30 saves the status ``%`` meanwhile; ddfs
saves ``?`` (copying), which every ddrescue reads.
"""

from __future__ import annotations

from collections.abc import Iterator

from engine.map.blockmap import NON_TRIED
from engine.schedule.base import Read, ScheduleContext
from engine.schedule.ddrescue130.trim import Walk, trimming_phase


def sweeping_phase(ctx: ScheduleContext) -> Iterator[Read]:
    """Sweep the ``?`` blocks of the domain (see the module docstring).

    ddrescue walks its block list by index and keeps the index across the trimming pass that
    follows each swept block, which joins and splits blocks before it; so the walk may pass
    over a ``?`` block, which then stays unread. The walk here is by index too, to make the
    same reads.
    """
    forward = not ctx.opts.reverse
    message = f"Sweeping non-tried blocks... ({'forwards' if forward else 'backwards'})"
    ctx.announce(NON_TRIED, 1, message)
    walk = Walk(ctx, forward)
    i = 0
    while (found := walk.find(i, NON_TRIED)) is not None:
        i, start, end = found
        yield from _sweep_block(ctx, start, end, forward)
        yield from trimming_phase(ctx, message)
        walk.changed()


def _sweep_block(ctx: ScheduleContext, start: int, end: int, forward: bool) -> Iterator[Read]:
    softbs = ctx.softbs
    if forward:
        for pos in range(start, end, softbs):
            yield Read(pos, min(softbs, end - pos))
        return
    pos = end - 1 - (end - start - 1) % softbs if end - start > softbs else start
    while start <= pos < end:
        yield Read(pos, min(softbs, end - pos), backward=True)
        pos -= softbs

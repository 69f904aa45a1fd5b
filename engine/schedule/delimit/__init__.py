"""ddfs's failure-aware schedule: fewer failed reads before all readable data is safe.

:class:`Delimit` runs :class:`~engine.schedule.delimit.copy.Delimiter` (a first copying pass
that reads good runs, delimits each bad area from its good edges and learns where the next one
lies), then ddrescue 1.27's phases over what is left: the inside of the bad areas, read (the
sweep, which ``-N`` turns off), trimmed, scraped and retried as ddrescue would. The result is
ddrescue's; the order and the failed reads change. Metadata tiers run ddrescue 1.27's phases
over their small areas.
"""

from __future__ import annotations

from collections.abc import Iterator

from engine.map.blockmap import FINISHED, NON_TRIED
from engine.schedule.base import Phase, Read, ScheduleContext
from engine.schedule.ddrescue127 import Ddrescue127
from engine.schedule.delimit.copy import Delimiter
from engine.schedule.delimit.predictor import BandPredictor


class Delimit:
    """The default schedule (``--schedule=ddfs``)."""

    name = "ddfs"

    def __init__(self) -> None:
        self.predictor = BandPredictor()
        self.rest = Ddrescue127(scrape_all=True, sweeping=True)

    def tier_phases(self, ctx: ScheduleContext) -> list[tuple[str, Phase]]:
        return self.rest.tier_phases(ctx)

    def reads(self, ctx: ScheduleContext) -> Iterator[Read]:
        self.predictor.sector = ctx.ss
        if ctx.book.domain_size_of(NON_TRIED):
            ctx.check_limits()
            resume = ctx.resume
            start = ctx.book.domain_start
            if resume.status == NON_TRIED and resume.passno == 1:
                start = max(start, resume.pos)
            yield from Delimiter(ctx, self.predictor).reads(start)
            resume.status = FINISHED  # the phases below start afresh
        yield from self.rest.reads(ctx)  # scraping in the same run (scrape_all)

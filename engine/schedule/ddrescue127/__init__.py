"""GNU ddrescue 1.27's schedule as a strategy: copying (passes 1-5), trimming, scraping and
retrying, one module per phase, each a generator over a
:class:`~engine.schedule.base.ScheduleContext` that yields
:class:`~engine.schedule.base.Read` objects and looks at their outcome after the rescue book
performed them. The read sequence is exactly ddrescue 1.27's (the oracle tests compare it).
"""

from __future__ import annotations

from collections.abc import Iterator

from engine.map.blockmap import BAD_SECTOR, NON_SCRAPED, NON_TRIED, NON_TRIMMED
from engine.schedule.base import Phase, Read, ScheduleContext
from engine.schedule.ddrescue127.copy import copying_phase
from engine.schedule.ddrescue127.retry import retrying_phase
from engine.schedule.ddrescue127.scrape import scraping_phase
from engine.schedule.ddrescue127.trim import trimming_phase


class Ddrescue127:
    """ddrescue 1.27's phases in order; the limits are checked before each phase."""

    name = "ddrescue-1.27"

    def __init__(self, scrape_all: bool = False, sweeping: bool = False) -> None:
        # ddrescue 1.27 skips scraping when trimming alone made the '/' blocks (the next run
        # scrapes them); with scrape_all they are scraped in the same run
        self.scrape_all = scrape_all
        # sweeping: the copying phase reads what an earlier pass skipped, as 1.30's sweeping
        # phase does, and -N (--no-sweep) turns it off
        self.sweeping = sweeping

    def phases(self, ctx: ScheduleContext) -> list[tuple[str, bool, Phase]]:
        """``(status, enabled, phase)`` in the order they run."""
        o = ctx.opts
        return [
            (NON_TRIED, not (self.sweeping and o.no_sweep), copying_phase),
            (NON_TRIMMED, not o.no_trim, trimming_phase),
            (NON_SCRAPED, not o.no_scrape, scraping_phase),
            (BAD_SECTOR, o.max_retries != 0, retrying_phase),
        ]

    def tier_phases(self, ctx: ScheduleContext) -> list[tuple[str, Phase]]:
        """The phases a metadata tier runs: all but retrying."""
        return [(st, ph) for st, on, ph in self.phases(ctx)[:-1] if on]

    def reads(self, ctx: ScheduleContext) -> Iterator[Read]:
        yield from self.run_phases(ctx, self.phases(ctx))

    def run_phases(
        self, ctx: ScheduleContext, phases: list[tuple[str, bool, Phase]]
    ) -> Iterator[Read]:
        """Each enabled phase that has data of its status, the limits checked before it."""
        for status, enabled, phase in phases:
            if status == NON_SCRAPED and self.scrape_all:
                ctx.uncounted_scrape = 0
            if enabled and ctx.book.domain_size_of(status):
                ctx.check_limits()
                yield from phase(ctx)

"""GNU ddrescue 1.30's schedule as a strategy (``--schedule=ddrescue-1.30``): copying passes
1-4 (2-4 only next to finished data), trimming only the edges next to finished data, the
sweeping phase over what copying skipped, then scraping and retrying as 1.27 does them. The
read sequence is 1.30's (compared with recorded read logs of the 1.30 binary in
``tests/data/ddrescue130``). A map 1.30 saved while sweeping (``%``) resumes with the sweep, as
1.30 does; ddfs itself saves ``?`` there (every ddrescue reads it), so a map ddfs saved while
sweeping resumes with copying.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

from engine.map.blockmap import BAD_SECTOR, NON_SCRAPED, NON_TRIED, NON_TRIMMED
from engine.schedule.base import Phase, Read, ScheduleContext
from engine.schedule.ddrescue127 import Ddrescue127
from engine.schedule.ddrescue127.copy import RULES_130, copying_phase
from engine.schedule.ddrescue127.retry import retrying_phase
from engine.schedule.ddrescue127.scrape import scraping_phase
from engine.schedule.ddrescue130.sweep import sweeping_phase
from engine.schedule.ddrescue130.trim import trimming_phase


class Ddrescue130(Ddrescue127):
    """ddrescue 1.30's phases in order, run as 1.27's are (1.30 counts every ``/`` it makes,
    so scraping always runs: ``scrape_all``)."""

    name = "ddrescue-1.30"

    def __init__(self) -> None:
        super().__init__(scrape_all=True)

    def phases(self, ctx: ScheduleContext) -> list[tuple[str, bool, Phase]]:
        """``(status, enabled, phase)`` in the order they run."""
        o = ctx.opts
        return [
            (NON_TRIED, True, partial(copying_phase, rules=RULES_130)),
            (NON_TRIMMED, not o.no_trim, trimming_phase),
            (NON_TRIED, not o.no_sweep, sweeping_phase),
            (NON_SCRAPED, not o.no_scrape, scraping_phase),
            (BAD_SECTOR, o.max_retries != 0, retrying_phase),
        ]

    def reads(self, ctx: ScheduleContext) -> Iterator[Read]:
        phases = self.phases(ctx)
        if ctx.resume.sweeping:  # as 1.30: a sweep resumes without copying and trimming
            phases = phases[2:]
        yield from self.run_phases(ctx, phases)

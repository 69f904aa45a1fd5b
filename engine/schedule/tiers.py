"""Metadata first as a schedule wrapper: an inner schedule's copying, trimming and scraping
run over each tier in turn (metadata, redundancy, used data), then its whole schedule.

Only the order of work changes: the map, its rules and the final schedule over the whole
domain are the inner schedule's. After the tiers, ``replan`` is asked for grown tiers (what
they rescued may unlock more metadata: a structure in a failed cluster, scraped since); they
are worked through in turn, until nothing more is found (at most :data:`ROUNDS` rounds).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from engine.map.blockmap import FINISHED
from engine.map.ranges import intersect
from engine.schedule.base import Phase, Read, Schedule, ScheduleContext

Tiers = list[tuple[str, list[tuple[int, int]]]]
ROUNDS = 4


class MetadataFirst:
    """``inner`` with the tiers of a metadata plan worked through first."""

    def __init__(
        self, inner: Schedule, tiers: Tiers, replan: Callable[[], Tiers | None] | None = None
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.tiers = tiers
        self.replan = replan
        self.tier = ""  # the tier being worked through ("" outside them)

    def tier_phases(self, ctx: ScheduleContext) -> list[tuple[str, Phase]]:
        return self.inner.tier_phases(ctx)

    def reads(self, ctx: ScheduleContext) -> Iterator[Read]:
        yield from self._tier_runs(ctx)
        yield from self.inner.reads(ctx)

    def _tier_runs(self, ctx: ScheduleContext) -> Iterator[Read]:
        book, resume = ctx.book, ctx.resume
        saved = (resume.status, resume.passno, resume.pos)
        domain = book.domain
        try:
            for _round in range(ROUNDS):
                for name, ranges in self.tiers:
                    self.tier = name
                    with book.narrowed(intersect(ranges, domain)):
                        resume.status = FINISHED  # no resume inside a tier: each starts afresh
                        for status, phase in self.tier_phases(ctx):
                            if book.domain_size_of(status):
                                ctx.check_limits()
                                yield from phase(ctx)
                grown = self.replan() if self.replan is not None else None
                if not grown or grown == self.tiers:
                    break
                self.tiers = grown
        finally:
            resume.status, resume.passno, resume.pos = saved
            self.tier = ""

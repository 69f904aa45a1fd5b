"""How a rescue reacts to what its reads show, as ddrescue does: the rates sampled after each read
of the schedule (a slow read, ``--max-slow-reads``), and after an error or a slow read the input
reopened (``-O``) and the pause (``--pause-on-error``). A base of
:class:`engine.rescue.book.RescueBook`.
"""

from __future__ import annotations

import time

from engine.errors import Stop
from engine.map.blockmap import NON_TRIED
from engine.map.book import MapBook
from engine.options import RescueOptions
from engine.rescue.rates import RateClock
from engine.rescue.source import Source


class Reactions:
    """ddrescue's reactions to slow and failed reads (the rescue book's attributes they use)."""

    opts: RescueOptions
    source: Source
    map: MapBook
    rates: RateClock
    good_bytes: int
    interrupted: int
    preempt: bool

    def sample(self) -> bool:
        """After a read of the schedule: sample the rates and count a slow read (copying
        passes 1 and 2). Returns whether the read counts as slow.

        Raises:
            Stop: more slow reads than ``--max-slow-reads``.
        """
        slow = self.rates.update(self.good_bytes)
        slow = slow and self.map.status == NON_TRIED and self.map.current_pass <= 2
        if slow:
            self.rates.slow_reads += 1
            if 0 <= self.opts.max_slow_reads < self.rates.slow_reads:
                raise Stop("Too many slow reads")
        return slow

    def react(self, failed: bool, slow: bool) -> None:
        """After an error or a slow read (its data already written and marked): reopen the
        input (``-O``: in every phase; in copying only with ddrescue 1.27's meanings) and
        pause (``--pause-on-error``).

        Raises:
            DdfsError: the input could not be opened again.
        """
        if not (failed or slow):
            return
        if self.opts.reopen_on_error and (
            self.map.status == NON_TRIED or not self.opts.old_meanings  # 1.29: every phase
        ):
            self.source.reopen()
        if self.opts.pause_on_error > 0:
            if self.opts.simulated_pause:
                self.rates.pause += self.opts.pause_on_error
            elif self.opts.pause_on_error >= 1:
                self.pause(int(self.opts.pause_on_error))

    def pause(self, seconds: float) -> None:
        """Sleep, but not past a signal or an urgent request (checked ten times a second)."""
        deadline = time.monotonic() + seconds
        while not (self.interrupted or self.preempt):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.1, left))

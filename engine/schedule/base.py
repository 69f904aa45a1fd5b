"""What a schedule is: a strategy that yields the next :class:`Read` and sees how it went.

A schedule gets a :class:`ScheduleContext` (the map book's queries, the options, the rates, the
saved status line, and two callbacks: announce a phase, check the limits) and yields reads.
The rescue book (:mod:`engine.rescue.book`) performs each read and records its outcome in the
map and in the :class:`Read` before the schedule goes on, so a schedule looks at the map
afresh before every read: a read done by someone else in between (an on-demand read of the
live mount) is never done again.

Schedules know nothing of sources, outputs, threads or files: only the map and the outcomes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from engine.map.book import MapBook
from engine.options import RescueOptions


@dataclass
class Read:
    """One read of the schedule; ``copied`` and ``error_size`` are filled in when done."""

    pos: int
    size: int
    backward: bool = False
    copied: int = 0
    error_size: int = 0
    run_end: int = 0  # copying: may go on cluster by cluster up to here (see RescueBook)
    ran: bool = False  # good clusters were read before the one this Read now describes
    slow: bool = False  # a slow sample (-a) after this read, in copying pass 1 or 2
    sampled: bool = False  # the rates were already sampled after this read

    @property
    def end(self) -> int:
        return self.pos + self.size

    @property
    def failed(self) -> bool:
        return self.error_size > 0


class Rates(Protocol):
    """What a schedule sees of the rate clock (:class:`engine.rescue.rates.RateClock`)."""

    @property
    def prev_slow(self) -> bool: ...

    @property
    def c_rate(self) -> int: ...

    def block_changed(self) -> None: ...


@dataclass
class Resume:
    """The status line a run starts from (ddrescue resumes a phase and pass from it)."""

    status: str
    passno: int
    pos: int
    sweeping: bool = False  # ddrescue 1.30 saved the map while sweeping ('%')


@dataclass
class ScheduleContext:
    """The narrow interface a schedule works with.

    Attributes:
        book: the map book (queries; trimming also marks blocks ``/`` without reads).
        opts: the options.
        rates: the rate clock (slow reads, the skip after one, block changes).
        resume: where the saved status line says the run was.
        skip_initial, skip_max: the skip sizes of the copying passes.
        announce: ``announce(status, passno, message)``: a phase or pass begins; it becomes
            current with its next read.
        check_limits: raises when a limit (``-e``, ``-T``, ...) ends the run.
        has_started: whether a phase of this run has read anything yet.
        uncounted_scrape: bytes trimming turned ``*`` -> ``/`` without reads (both sides bad),
            which ddrescue leaves out of the size that decides whether scraping runs.
    """

    book: MapBook
    opts: RescueOptions
    rates: Rates
    resume: Resume
    skip_initial: int
    skip_max: int
    announce: Callable[[str, int, str], None]
    check_limits: Callable[[], None]
    has_started: Callable[[], bool]
    uncounted_scrape: int = 0

    @property
    def ss(self) -> int:
        return self.opts.sector_size

    @property
    def softbs(self) -> int:
        return self.opts.cluster_size

    def direction(self, passno: int) -> bool:
        """True for forwards: odd passes go the normal way, even ones the other (not with -u)."""
        normal_forward = not self.opts.reverse
        if self.opts.unidirectional or passno % 2 == 1:
            return normal_forward
        return not normal_forward


Phase = Callable[[ScheduleContext], Iterator[Read]]


class Schedule(Protocol):
    """A schedule strategy.

    ``reads`` yields the whole run's reads. ``tier_phases`` are the phases a metadata tier
    runs over its narrowed domain before the whole run (copying, trimming, scraping): each a
    ``(status, phase)`` pair, run when ``status`` data is in the tier.
    """

    name: str

    def reads(self, ctx: ScheduleContext) -> Iterator[Read]: ...

    def tier_phases(self, ctx: ScheduleContext) -> list[tuple[str, Phase]]: ...

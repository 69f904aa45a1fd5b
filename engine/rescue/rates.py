"""ddrescue's rate clock: one sample per second of wall time, and what hangs on it.

GNU ddrescue samples its rates when the second changes (``Rescuebook::update_rates``): the
average and current rescue rates, the error rate of ``-E``, slow reads for ``-a`` (after
``--delay-slow`` seconds), and the crude ``-Z`` brake (a one-second sleep once more than the
limit was rescued within the current second). :class:`RateClock` keeps those figures the same
way, in whole seconds, for the rescuer, the rates log and the events log.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from engine.options import RescueOptions


class RateClock:
    """The once-a-second figures of a rescue run.

    Args:
        opts: ``-a``, ``--delay-slow``, ``--reset-slow``, ``-E`` and ``-Z`` are read from it.
        clock: wall time in seconds (tests pass a fake one).
        sleep: how the ``-Z`` brake waits.
    """

    def __init__(
        self,
        opts: RescueOptions,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.clock = clock
        self.sleep = sleep
        self.min_read_rate = opts.min_read_rate  # None: slow reads are not checked
        self.delay_slow = opts.delay_slow
        self.reset_slow = opts.reset_slow
        self.max_error_rate = opts.max_error_rate
        self.max_read_rate = opts.max_read_rate
        self.t0 = self.t1 = int(clock())
        self.first_size = self.last_size = 0
        self.a_rate = self.c_rate = 0
        self.error_sum = 0
        self.error_rate = 0
        self.error_rate_exceeded = False
        self.current_slow = self.prev_slow = False
        self.slow_reads = 0
        self.pause = 0.0  # simulated pauses (--pause-on-error=sN) not yet added to the clock
        self.updated = True  # a new sample since the last look (the first one counts)

    @property
    def elapsed(self) -> int:
        """Whole seconds of run time as the logs show it (``t1 - t0``)."""
        return self.t1 - self.t0

    def add_error(self, size: int) -> None:
        self.error_sum += size

    def block_changed(self) -> None:
        """A copying pass moved to another block: the slow streak starts afresh."""
        self.current_slow = False

    def update(self, finished: int, force: bool = False) -> bool:
        """Take a sample if the second changed; ``finished`` counts the bytes rescued so far.

        Returns True for a slow sample (only when ``-a`` is active).
        """
        t2 = int(self.clock())
        if (
            self.max_read_rate > 0
            and finished - self.last_size > self.max_read_rate
            and t2 == self.t1
        ):
            self.sleep(1)
            t2 = int(self.clock())
        if t2 < self.t1:  # the clock jumped back
            delta = min(self.t0 - 1, self.t1 - t2)
            self.t0 -= delta
            self.t1 = t2
        force_update = force and t2 <= self.t1
        if force_update:
            t2 = self.t1 + 1
        if t2 <= self.t1:
            return False
        if self.pause > 0:
            delta = min(self.t0 - 1, round(self.pause))
            self.t0 -= delta
            self.t1 -= delta
            self.pause = 0.0
        self.a_rate = (finished - self.first_size) // (t2 - self.t0)
        self.c_rate = (finished - self.last_size) // (t2 - self.t1)
        self.last_size = finished
        if not self.error_rate_exceeded:
            self.error_rate = self.error_sum // (t2 - self.t1)
            self.error_sum = 0
            if 0 <= self.max_error_rate < self.error_rate:
                self.error_rate_exceeded = True
        self.updated = True
        if force_update:
            return False
        self.t1 = t2
        self.prev_slow = self.current_slow
        rate = self.min_read_rate
        self.current_slow = self.t1 - self.t0 > self.delay_slow and (
            (rate is not None and rate > 0 and self.c_rate < rate)
            or (rate == 0 and self.c_rate < self.a_rate // 10)
        )
        if not self.current_slow and self.reset_slow:
            self.slow_reads = 0
        return self.current_slow

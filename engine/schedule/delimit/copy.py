"""The first copying pass of the failure-aware schedule: good runs first, each bad area
delimited from its good edges and jumped with as few failed reads as its shape allows.

Forwards over the non-tried data of the domain:

* Where the disk reads well, reads grow from one cluster to :data:`MAX_RUN` (fewer commands
  for the drive, fewer system calls); at the first failure they go back to clusters.
* A failed read is cut down to the failed cluster, whose sectors are read forwards until the
  first bad one: the exact start of the bad area.
* Its end is found by probing one sector at a time, ahead by a step that doubles while the
  probes fail, or at once at the end the :class:`BandPredictor` expects; from the first good
  probe, the gap back to the bad area is read backwards (clusters, then sectors) until the
  first bad sector: the exact end. The inside of the area is left non-tried for the last
  phases, after all the data that can be read.
* Once the failures repeat with a period (a dead head), the predictor also says where the next
  area starts: reads stop just before it and the edge is looked for sector by sector, so a
  well-predicted area costs a failed read at each edge and nothing else.
"""

from __future__ import annotations

from collections.abc import Generator

from engine.map.blockmap import NON_TRIED, NON_TRIMMED
from engine.schedule.base import Read, ScheduleContext
from engine.schedule.delimit.predictor import BandPredictor

MAX_RUN = 1 << 20  # the longest read where the disk reads well
GROW_AFTER = 4  # good reads in a row before the reads grow
PROBE_GROWTH = 2  # each failed probe for the end of a bad area goes this much farther
MESSAGE = "Copying non-tried blocks... Pass 1 (forwards)"

Reads = Generator[Read, None, int | None]


class Delimiter:
    """One forward pass over the domain (see the module docstring)."""

    def __init__(self, ctx: ScheduleContext, predictor: BandPredictor) -> None:
        self.ctx = ctx
        self.book = ctx.book
        self.ss = ctx.ss
        self.cluster = max(ctx.softbs, ctx.ss)
        self.predictor = predictor
        # the first step past a bad area: ddrescue 1.30's initial skip (input size / 32,768)
        size = ctx.book.bmap.end
        self.step0 = max(ctx.skip_initial, self.cluster, size // 32768 // ctx.ss * ctx.ss)
        self.run = self.cluster
        # -E limits the error rate in bytes/s: a failed long read would count all its bytes
        self.max_run = self.cluster if ctx.opts.max_error_rate >= 0 else MAX_RUN
        self.good_in_row = 0
        self.started = False
        self.failed_run: tuple[int, int] | None = None

    # ------------------------------------------------------------------ reads
    def _read(self, pos: int, size: int, backward: bool = False) -> Generator[Read, None, Read]:
        if not self.started:
            self.ctx.announce(NON_TRIED, 1, MESSAGE)
            self.started = True
        read = Read(pos, size, backward=backward)
        yield read
        return read

    def _sector_good(self, pos: int) -> Generator[Read, None, bool]:
        read = yield from self._read(pos, min(self.ss, self.book.bmap.end - pos))
        return not read.failed and read.copied > 0

    # ------------------------------------------------------------------ the pass
    def reads(self, start: int) -> Generator[Read, None, None]:
        pos = start
        while True:
            blk = self._next_block(pos)
            if blk is None:
                return
            pos = max(pos, blk[0])
            end = blk[1]
            bad = yield from self._copy_until_bad(pos, end)
            if bad is None:
                pos = end
                continue
            pos = yield from self._jump(bad, end)

    def _next_block(self, pos: int) -> tuple[int, int] | None:
        """The next data to read: what is left of the last failed run (the book marked it
        non-trimmed, but only its first bad sector was looked at), else non-tried data."""
        if self.failed_run is not None:
            s0, s1 = self.failed_run
            found = self.book.find_forward(max(pos, s0), NON_TRIMMED)
            if found is not None and found[0] < s1:
                return found[0], min(found[1], s1)
            self.failed_run = None
        return self.book.find_forward(pos, NON_TRIED)

    def _copy_until_bad(self, pos: int, end: int) -> Reads:
        """Read ``[pos, end)`` in growing runs; return the first bad sector met (None if all
        read well). A predicted start is approached and searched for sector by sector."""
        while pos < end:
            guess = self.predictor.next_start(pos)
            stop = end
            if guess is not None and guess.at - guess.window < end:
                stop = max(pos, guess.at - guess.window)
            if pos < stop:
                bad = yield from self._runs(pos, stop)
                if bad is not None:
                    return bad
                pos = stop
            if guess is not None and pos < end:
                limit = min(end, guess.at + guess.window)
                bad = yield from self._scan_forward(pos, limit)
                if bad is not None:
                    return bad
                pos = limit
        return None

    def _runs(self, pos: int, stop: int) -> Reads:
        """Good runs over ``[pos, stop)``; at a failure, the failed run is read again in
        clusters and the failed cluster sector by sector: the first bad sector is returned."""
        while pos < stop:
            size = min(self._longest(pos), stop - pos)
            if pos + size < stop:  # runs end on cluster boundaries
                size -= (pos + size) % self.cluster
            read = yield from self._read(pos, size)
            if not read.failed and read.copied == read.size:
                pos = read.end
                self._good()
                continue
            if not read.failed:  # end of input
                return None
            self.run, self.good_in_row = self.cluster, 0
            if read.size > self.cluster:
                self.failed_run = (read.pos, read.end)
            return (yield from self._narrow(read.pos, read.end))
        return None

    def _longest(self, pos: int) -> int:
        """The length of the next read: growing while reads go well, and one cluster once bad
        areas are seen, except well before the next one a period predicts (a failed long
        read costs one failed read more)."""
        room = self.predictor.clear_ahead(pos)
        if room is None:
            return self.run
        room -= room % self.cluster
        return max(self.cluster, min(self.run, room))

    def _good(self) -> None:
        self.good_in_row += 1
        if self.good_in_row >= GROW_AFTER and self.run < self.max_run:
            self.run *= 2
            self.good_in_row = 0

    def _narrow(self, pos: int, end: int) -> Reads:
        """A read of ``[pos, end)`` failed: find its first bad sector (clusters, then sectors)."""
        if end - pos > self.cluster:
            p = pos
            while p < end:
                n = min(self.cluster - p % self.cluster, end - p)
                read = yield from self._read(p, n)
                if read.failed:
                    return (yield from self._scan_forward(p, p + n))
                p += n
            return None  # it reads now: a passing error
        return (yield from self._scan_forward(pos, end))

    def _scan_forward(self, pos: int, end: int) -> Reads:
        """Sectors of ``[pos, end)`` forwards, finished ones skipped: the first bad one."""
        p = pos
        while p < end:
            n = min(self.ss - p % self.ss, end - p)
            if not self.book.is_finished(p, n):
                good = yield from self._sector_good(p)
                if not good:
                    return p
            p += n
        return None

    def _scan_backward(self, start: int, end: int) -> Reads:
        """Sectors of ``[start, end)`` backwards: the end of the bad sector met first."""
        p = end
        while p > start:
            s = max(start, p - 1 - (p - 1) % self.ss)
            if not self.book.is_finished(s, p - s):
                read = yield from self._read(s, p - s, backward=True)
                if read.failed:
                    return p
            p = s
        return None

    # ------------------------------------------------------------------ jumping a bad area
    def _jump(self, bad: int, limit: int) -> Generator[Read, None, int]:
        """The bad area starting at ``bad`` (inside the block ending at ``limit``): find its
        end, learn it, and return where the pass goes on."""
        last_bad = bad + self.ss  # the bad sector just read
        step = self.step0
        guess = self.predictor.end_after(bad)
        if guess is not None and guess.at + guess.window < limit:
            probe = max(last_bad, guess.at + guess.window)
            if (yield from self._sector_good(probe)):
                low = max(last_bad, guess.at - guess.window)
                end = yield from self._scan_backward(low, probe)
                if end is None:
                    end = yield from self._find_end(last_bad, low)
                self.predictor.learn(bad, end)
                return probe + self.ss
            last_bad, step = probe + self.ss, guess.window
        else:
            rough = self.predictor.rough_end(bad)
            if rough is not None:
                probe = max(last_bad, rough[0] + rough[1])
                probe -= probe % self.ss
                if probe < limit:
                    if (yield from self._sector_good(probe)):
                        end = yield from self._find_end(last_bad, probe)
                        self.predictor.learn(bad, end)
                        return probe + self.ss
                    last_bad, step = probe + self.ss, max(step, rough[1])
        found = yield from self._probe_forward(last_bad, limit, step)
        if found is None:
            return limit  # bad to the end of the block: the last phases read it
        last_bad, good_at = found
        end = yield from self._find_end(last_bad, good_at)
        self.predictor.learn(bad, end)
        return good_at + self.ss

    def _probe_forward(
        self, pos: int, limit: int, step: int
    ) -> Generator[Read, None, tuple[int, int] | None]:
        """Probe one sector at a time, ``step`` ahead and doubling while the probes
        fail: returns the end of the last bad probe and the first good probe (None: bad up to
        ``limit``)."""
        last_bad = pos
        while True:
            probe = last_bad + step
            probe -= probe % self.ss
            if probe >= limit:
                return None
            if (yield from self._sector_good(probe)):
                return last_bad, probe
            last_bad = probe + self.ss
            step *= PROBE_GROWTH

    def _find_end(self, last_bad: int, good_at: int) -> Generator[Read, None, int]:
        """The exact end of a bad area known bad up to ``last_bad`` and good at ``good_at``:
        clusters backwards from ``good_at``, then the failed cluster sector by sector."""
        p = good_at
        while p > last_bad:
            s = max(last_bad, (p - 1) // self.cluster * self.cluster)
            if not self.book.is_finished(s, p - s):
                read = yield from self._read(s, p - s, backward=True)
                if read.failed:
                    if p - s <= self.ss:
                        return p
                    end = yield from self._scan_backward(s, p)
                    if end is not None:
                        return end
            p = s
        return last_bad

"""The rescue driver: ddrescue's phase pipeline, one read per :meth:`Rescuer.step`.

The passes (``engine.schedule.ddrescue127``) are generators that look at the map, decide the next
read and yield it; the :class:`Rescuer` performs it, records the outcome in the map exactly as
ddrescue does, and keeps the counters, the read log and the periodic mapfile saves. Because the
passes consult the map afresh before every read, a caller may slip its own reads in between two
steps (:meth:`Rescuer.read_urgent`): the live mount does that for urgent requests.
"""

from __future__ import annotations

import os
import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from engine.errors import DdfsError
from engine.map.blockmap import BAD_SECTOR, FINISHED, NON_SCRAPED, NON_TRIED, NON_TRIMMED, BlockMap
from engine.map.mapfile import MapData, format_header, iter_mapfile_text, save_mapfile
from engine.map.ranges import intersect
from engine.numbers import format_size
from engine.options import RescueOptions
from engine.progress.figures import Rates
from engine.rescue.output import Output
from engine.rescue.rates import RateClock
from engine.rescue.readlog import ReadLog
from engine.rescue.runlogs import EventLog, RateLog
from engine.rescue.source import Source, classify_error


@dataclass
class Read:
    """One read of the schedule; ``copied`` and ``error_size`` are filled in when done."""

    pos: int
    size: int
    backward: bool = False
    copied: int = 0
    error_size: int = 0
    run_end: int = 0  # copying: may go on cluster by cluster up to here (see do_run)
    ran: bool = False  # do_run read good clusters before the one this Read now describes
    slow: bool = False  # a slow sample (-a) after this read, in copying pass 1 or 2
    sampled: bool = False  # the rates were already sampled after this read (do_run)

    @property
    def end(self) -> int:
        return self.pos + self.size

    @property
    def failed(self) -> bool:
        return self.error_size > 0


RUN_BATCH = 1 << 20  # good clusters written (and marked) together during a run


class Stop(Exception):
    """The run stops before a read: an interrupt or a limit. ``signum`` is set for a signal."""

    def __init__(self, message: str, signum: int = 0) -> None:
        super().__init__(message)
        self.signum = signum


class Rescuer:
    """Drives one rescue run over a source, an output and a map.

    Args:
        opts: the options.
        source: the input, already open.
        output: the output, already open.
        data: the map as loaded (already normalised by :func:`engine.rescue.setup.prepare`).
        domain: the rescue domain as sorted, disjoint ``(start, end)`` ranges.
        mapfile: where the map is saved (None: no mapfile).
        sticky: block borders ddrescue keeps between blocks of equal status (after -M, -A or
            the subsector join),
            as sorted positions per status (see :func:`engine.rescue.setup.sticky_borders`).
        resume: the saved status line allows resuming (ddrescue's rules).
    """

    def __init__(
        self,
        opts: RescueOptions,
        source: Source,
        output: Output,
        data: MapData,
        domain: list[tuple[int, int]],
        mapfile: str | None,
        sticky: dict[str, list[int]] | None = None,
    ) -> None:
        self.opts = opts
        self.source = source
        self.output = output
        self.bmap: BlockMap = data.bmap
        self.domain = domain
        self._whole_domain: list[tuple[int, int]] | None = None  # set while a tier runs
        self.mapfile = mapfile
        self.offset = (opts.output_pos if opts.output_pos is not None else opts.input_pos) - (
            opts.input_pos
        )
        self.ss = opts.sector_size
        self.softbs = opts.cluster_size
        self.skip_initial, self.skip_max = opts.skip_sizes(source.size)
        self.saved_status = data.current_status
        self.saved_pass = data.current_pass
        self.saved_pos = data.current_pos
        self.current_pos = data.current_pos
        # as in ddrescue, the loaded status line stays until a phase reads or the run ends
        self.status = data.current_status
        self.current_pass = data.current_pass
        self.sticky: dict[str, list[int]] = sticky or {}
        self.message = ""
        self._pending_phase: tuple[str, int, str] | None = None
        self.interrupted = 0  # the signal number once one arrives
        self.start_time = time.time()
        self.read_errors = 0
        self.error_bytes = 0
        self.reads = 0
        self.rescued_this_run = 0
        self.good_bytes = 0  # bytes read well, counted at once (the rates' clock)
        self.error_read_seconds = 0.0  # time spent in failed reads (for remaining-time ranges)
        self.timed_error_reads = 0
        self.last_good_read: float | None = None
        self.last_read_pos = opts.input_pos
        self.initial_bad_areas = self.bad_areas()
        self.finished = False
        self._buf = bytearray(max(self.softbs, self.ss))
        self._view = memoryview(self._buf)
        self._runbuf = bytearray()
        self._runview = memoryview(self._runbuf)
        self.preempt = False  # set by a scheduler when an urgent read is queued
        self.tiers: list[tuple[str, list[tuple[int, int]]]] = []  # metadata first
        self.replan: Callable[[], list[tuple[str, list[tuple[int, int]]]] | None] | None = None
        self.tier = ""
        self._pending_run: tuple[int, int] | None = None
        self._schedule = self._pipeline()
        self._logged_message = ""
        self.rates = RateClock(opts)
        self.readlog: ReadLog | None = None
        self.eventlog: EventLog | None = None
        self.ratelog: RateLog | None = None
        self.open_logs()
        # sample the rates after every read, also inside a copying run (else once per batch)
        self._per_read_rates = bool(
            opts.min_read_rate is not None
            or opts.max_read_rate > 0
            or opts.max_error_rate >= 0
            or opts.log_rates
            or opts.preview_lines
            or opts.verify_on_error
        )
        self._first_read = True
        self.preview: tuple[int, bytes] = (-1, b"")  # -P: the latest data read, and where
        self._voe: tuple[int, bytes] | None = None  # -J: the latest good sector, and where
        self._voe_failure = ""
        if opts.save_interval >= 0:
            self._save_interval = opts.save_interval
        else:
            self._save_interval = -1
        self._sync_interval = opts.sync_interval
        self._last_save = time.monotonic()
        self._last_sync = time.monotonic()
        self._prev_save_was_sync = False
        self.on_progress: Callable[[Rescuer], None] | None = None  # after each read
        self.lock = threading.RLock()  # guards the map against readers in other threads
        self.urgent_reads = False  # set by a scheduler that slips in on-demand reads
        self.identity_line = ""  # the source's identity, kept in the mapfile's header

    # ------------------------------------------------------------------ domain helpers
    def find_forward(self, pos: int, statuses: str) -> tuple[int, int] | None:
        """The first run of ``statuses`` inside the domain at or after ``pos``."""
        for a, b in self.domain:
            if b <= pos:
                continue
            found = self.bmap.find_forward(max(a, pos), statuses, b)
            if found:
                return self._clip_sticky(*found) if self.sticky else found
        return None

    def find_backward(self, pos: int, statuses: str) -> tuple[int, int] | None:
        """The last run of ``statuses`` inside the domain before ``pos``."""
        for a, b in reversed(self.domain):
            if a >= pos:
                continue
            found = self.bmap.find_backward(min(b, pos), statuses, a)
            if found:
                return self._clip_sticky(*found, backward=True) if self.sticky else found
        return None

    def _clip_sticky(self, s: int, e: int, backward: bool = False) -> tuple[int, int]:
        """Cut the run ``[s, e)`` at its first (last, backwards) sticky border.

        A border holds while the blocks on both sides keep the status they had at the start
        (statuses only progress), that is while it lies inside a run of that status.
        """
        marks = self.sticky.get(self.bmap.status_at(s))
        if not marks:
            return s, e
        if backward:
            i = bisect_left(marks, e) - 1
            if i >= 0 and marks[i] > s:
                s = marks[i]
        else:
            i = bisect_right(marks, s)
            if i < len(marks) and marks[i] < e:
                e = marks[i]
        return s, e

    def bad_areas(self) -> int:
        """ddrescue's bad-area count: the runs of ``-`` inside the (whole) domain."""
        domain = self.whole_domain
        if len(domain) == 1 and domain[0] == (0, self.bmap.end):
            return self.bmap.count_of(BAD_SECTOR)
        count = 0
        for a, b in domain:
            for s, _, st in self.bmap.blocks_from(a):
                if s >= b:
                    break
                count += st == BAD_SECTOR
        return count

    def status_before(self, pos: int) -> str:
        return self.bmap.status_at(pos - 1) if 0 < pos <= self.bmap.end else ""

    def status_after(self, pos: int) -> str:
        return self.bmap.status_at(pos) if 0 <= pos < self.bmap.end else ""

    @property
    def domain_start(self) -> int:
        return self.domain[0][0] if self.domain else 0

    @property
    def domain_end(self) -> int:
        return self.domain[-1][1] if self.domain else 0

    def domain_size_of(self, statuses: str, whole: bool = False) -> int:
        """Bytes of ``statuses`` inside the domain (``whole``: the run's whole domain, not the
        tier being worked through)."""
        domain = self.whole_domain if whole else self.domain
        if len(domain) == 1 and domain[0] == (0, self.bmap.end):
            return sum(self.bmap.size_of(s) for s in statuses)
        return self.bmap.size_in(domain, statuses)

    @property
    def whole_domain(self) -> list[tuple[int, int]]:
        """The domain of the run, also while a metadata tier narrows :attr:`domain`."""
        return self._whole_domain if self._whole_domain is not None else self.domain

    def direction(self, passno: int) -> bool:
        """True for forwards: odd passes go the normal way, even ones the other (not with -u)."""
        normal_forward = not self.opts.reverse
        if self.opts.unidirectional or passno % 2 == 1:
            return normal_forward
        return not normal_forward

    def set_phase(self, status: str, passno: int, message: str) -> None:
        """Announce a phase or pass; it becomes current with its first read (as in ddrescue,
        a pass that reads nothing leaves no trace in the map or the read log)."""
        self._pending_phase = (status, passno, message)

    def _apply_phase(self) -> None:
        if self._pending_phase is not None:
            if not self._first_read and self.opts.pause_on_pass > 0:
                self.message = "Paused"
                if self.on_progress is not None:
                    self.on_progress(self)
                self.pause(self.opts.pause_on_pass)
            self.status, self.current_pass, self.message = self._pending_phase
            if self.tier:
                self.message = f"[{self.tier} first] {self.message}"
            self._pending_phase = None
            if self.eventlog is not None:
                self.eventlog.event(self.rates.elapsed, self.percent_rescued(), self.message)
        self._first_read = False

    def header_text(self) -> str:
        """The mapfile's comment lines: ddrescue's, then the source's identity and the rates."""
        header = format_header(self.opts.command_line, self.start_time, time.time(), self.message)
        if self.identity_line:
            header += self.identity_line + "\n"
        return header + self.measured_rates().line() + "\n"

    def measured_rates(self) -> Rates:
        """The rates as measured so far (kept in the mapfile for ``ddfs status``)."""
        elapsed = max(time.time() - self.start_time, 1e-9)
        n = self.timed_error_reads
        per_error = self.error_read_seconds / n if n else 0.0
        current = self.rates.c_rate if self.rates.elapsed else self.rescued_this_run / elapsed
        return Rates(self.rescued_this_run / elapsed, current, per_error)

    def percent_rescued(self) -> str:
        """The rescued share of the domain as the logs show it (``  0.00%``)."""
        from engine.progress.screen import pct

        size = sum(b - a for a, b in self.whole_domain)
        return f"{pct(self.domain_size_of(FINISHED, whole=True), size):>7}"

    def _show(self, ipos: int) -> None:
        """Before a read: the rates log gets a line once per new sample (ddrescue's
        ``show_status``, which logs the position of the read about to be made)."""
        if self.rates.updated:
            self.rates.updated = False
            if self.ratelog is not None:
                self.ratelog.line(
                    self.rates.elapsed,
                    ipos,
                    self.rates.c_rate,
                    self.rates.a_rate,
                    self.bad_areas(),
                    self.domain_size_of(BAD_SECTOR, whole=True),
                )

    def _sample(self) -> bool:
        """After a read of the schedule: sample the rates and count a slow read (copying
        passes 1 and 2). Returns whether the read counts as slow.

        Raises:
            Stop: more slow reads than ``--max-slow-reads``.
        """
        slow = self.rates.update(self.good_bytes)
        slow = slow and self.status == NON_TRIED and self.current_pass <= 2
        if slow:
            self.rates.slow_reads += 1
            if 0 <= self.opts.max_slow_reads < self.rates.slow_reads:
                raise Stop("Too many slow reads")
        return slow

    def _react(self, failed: bool, slow: bool) -> None:
        """After an error or a slow read (its data already written and marked): reopen the
        input (``-O``, copying phase) and pause (``--pause-on-error``).

        Raises:
            DdfsError: the input could not be opened again.
        """
        if not (failed or slow):
            return
        if self.status == NON_TRIED and self.opts.reopen_on_error:
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

    # ------------------------------------------------------------------ the pipeline
    def _pipeline(self) -> Iterator[Read]:
        """The phases in order; -e and -T are checked before each phase and at the end."""
        from engine.schedule.ddrescue127 import copy, retry, scrape, trim

        phases = (
            (NON_TRIED, True, copy.copying_phase),
            (NON_TRIMMED, not self.opts.no_trim, trim.trimming_phase),
            (NON_SCRAPED, not self.opts.no_scrape, scrape.scraping_phase),
            (BAD_SECTOR, self.opts.max_retries != 0, retry.retrying_phase),
        )
        if self.tiers:
            yield from self._tier_runs(phases[:3])
        for status, enabled, phase in phases:
            if enabled and self.domain_size_of(status):
                self.check_error_limits()
                yield from phase(self)
        if not self.rates.updated:
            self.rates.update(self.good_bytes, force=True)  # the error rate at the end
        self.check_error_limits()

    def set_tiers(
        self,
        tiers: list[tuple[str, list[tuple[int, int]]]],
        replan: Callable[[], list[tuple[str, list[tuple[int, int]]]] | None] | None = None,
    ) -> None:
        """Metadata first: run copying, trimming and scraping over each ``(name, ranges)`` in
        turn before the normal schedule. Only the order of work changes: the map, its rules
        and the final schedule over the whole domain are ddrescue's.

        ``replan`` is called after the tiers; when what they rescued unlocks more metadata
        (a structure that was in a failed cluster, scraped since), it returns the grown tiers,
        which are worked through in turn, until nothing more is found (at most 4 rounds)."""
        self.tiers = tiers
        self.replan = replan

    def _tier_runs(self, phases: tuple) -> Iterator[Read]:  # type: ignore[type-arg]
        domain, saved = self.domain, (self.saved_status, self.saved_pass, self.saved_pos)
        self._whole_domain = domain
        try:
            for _round in range(4):
                for name, ranges in self.tiers:
                    self.tier = name
                    self.domain = intersect(ranges, domain)
                    self.saved_status = FINISHED  # no resume inside a tier: each starts afresh
                    for status, enabled, phase in phases:
                        if enabled and self.domain_size_of(status):
                            self.check_error_limits()
                            yield from phase(self)
                self.domain = domain
                grown = self.replan() if self.replan is not None else None
                if not grown or grown == self.tiers:
                    break
                self.tiers = grown
        finally:
            self.domain = domain
            self.saved_status, self.saved_pass, self.saved_pos = saved
            self.tier = ""
            self._whole_domain = None

    def step(self) -> bool:
        """Do the next read of the schedule. Returns False once the schedule is complete.

        Raises:
            Stop: a signal arrived or a limit was reached (checked before the read).
            DdfsError: a fatal read error, a write error or an EOF below finished data.
        """
        if self.finished:
            return False
        try:
            read = next(self._schedule)
        except StopIteration:
            self.finished = True
            self.status = FINISHED
            self.message = "Finished"
            return False
        self._apply_phase()
        self.current_pos = read.end if read.backward else read.pos
        self._show(read.pos)
        self.check_limits()
        if self.urgent_reads and self.is_finished(read.pos, read.size):
            read.copied = read.size  # rescued meanwhile by an on-demand read
            return True
        if read.run_end > read.end:
            self.do_run(read)
        else:
            self.do_read(read)
        if 0 <= self.opts.max_read_errors < self.read_errors:
            raise Stop("Too many read errors")  # right after the read, as in ddrescue
        if not read.sampled:
            read.slow = self._sample()
            self._react(read.failed, read.slow)
        return True

    def check_error_limits(self) -> None:
        """ddrescue's ``errors_or_timeout``: before each read, each phase and at the end."""
        o = self.opts
        if o.max_bad_areas >= 0:
            limit = o.max_bad_areas + (self.initial_bad_areas if o.max_bad_areas_relative else 0)
            if self.bad_areas() > limit:
                raise Stop("Too many bad areas in input file")
        if 0 <= o.max_read_errors < self.read_errors:
            raise Stop("Too many read errors")
        if o.timeout >= 0 and self.read_errors:
            since = self.last_good_read if self.last_good_read is not None else self.start_time
            if time.time() - since > o.timeout:
                raise Stop("Timeout expired")
        if self.rates.error_rate_exceeded:
            rate = format_size(self.rates.error_rate, o.binary_prefixes)
            raise Stop(f"Too high error rate reading input file ({rate}B/s)")
        if self._voe_failure:
            raise DdfsError(self._voe_failure)

    def check_limits(self) -> None:
        """ddrescue's checks before each read: the limits, then the interrupt flag."""
        self.check_error_limits()
        if self.interrupted:
            raise Stop("Interrupted by user", self.interrupted)

    def do_read(self, read: Read, copying: bool | None = None) -> None:
        """Read from the source, write what was read, and record the outcome in the map.

        A failure bigger than one sector becomes ``*`` in the copying phase (or when
        ``copying`` says so), ``-`` otherwise; finished data is never downgraded.
        """
        view = self._view if read.size <= len(self._buf) else memoryview(bytearray(read.size))
        self._log_phase()
        started = time.monotonic()
        copied, err = self.source.read_into(read.pos, read.size, view)
        if err:
            self.error_read_seconds += time.monotonic() - started
            self.timed_error_reads += 1
        self.reads += 1
        self._record(read, copied, err, view, copying)

    def _log_phase(self) -> None:
        if self.readlog is not None and self.message != self._logged_message:
            self.readlog.phase(self.message, time.time() - self.start_time)
            self._logged_message = self.message

    def _record(
        self, read: Read, copied: int, err: int, view: memoryview, copying: bool | None = None
    ) -> None:
        """Everything after a read: the data written, then the map, the counters, the log."""
        if copying is None:
            copying = self.status == NON_TRIED
        error_size = 0
        if err:
            classify_error(err, copied)
            error_size = read.size - copied
        read.copied, read.error_size = copied, error_size
        if self.opts.preview_lines:
            n = 16 * self.opts.preview_lines
            self.preview = (read.pos, bytes(view[:n])) if copied else (-1, b"")
        if self.opts.verify_on_error:
            self._verify_on_error(read.pos, copied, error_size, view)
        if error_size:
            self.rates.add_error(error_size)
        self.good_bytes += copied
        if copied:
            self.output.write(read.pos + self.offset, view[:copied])
            self.last_good_read = time.time()
            self.rescued_this_run += copied
        with self.lock:
            self.bmap.set_status(read.pos, copied, FINISHED)
            if error_size:
                self.read_errors += 1
                self.error_bytes += error_size
                bad = NON_TRIMMED if (error_size > self.ss and copying) else BAD_SECTOR
                self._mark_unfinished(read.pos + copied, error_size, bad)
            elif copied < read.size:
                self._hit_eof(read.pos + copied)
        self.last_read_pos = read.pos
        if self.readlog is not None:
            self.readlog.read(
                read.pos, read.size, copied, error_size, time.time() - self.start_time
            )
        if err:
            self.source.check_present()
        self.maybe_save()
        if self.on_progress is not None:
            self.on_progress(self)

    def _verify_on_error(self, pos: int, copied: int, error_size: int, view: memoryview) -> None:
        """``-J``: keep the latest good sector; after an error read it again, and stop the run
        (before the next read) if it fails or differs, or if no read had succeeded yet."""
        ss = self.ss
        if copied >= ss and pos % ss == 0:
            self._voe = (pos, bytes(view[:ss]))
        if not error_size or self._voe_failure:
            return
        path = self.source.path
        if self._voe is None:
            self._voe_failure = f"{path}: Read error found before the first good read."
            return
        again, err = self.source.reread(self._voe[0], ss)
        if len(again) != ss:
            reason = f": {os.strerror(err)}" if err else ""
            self._voe_failure = f"{path}: Input file no longer returns data{reason}"
        elif again != self._voe[1]:
            self._voe_failure = f"{path}: Input file returns inconsistent data."

    def do_run(self, read: Read) -> None:
        """Read cluster after cluster forward from ``read`` up to ``read.run_end`` while every
        read fully succeeds; ``read`` then describes the last cluster read.

        The reads are exactly those the copying pass would yield one by one (each a cluster,
        ending on cluster boundaries), but the good data is written and marked finished once
        per :data:`RUN_BATCH` bytes, which keeps the per-cluster cost near the syscalls'. A run
        ends early, between two reads, for a signal, a queued urgent read (:attr:`preempt`) or
        an active limit, so nothing waits for more than one read.
        """
        softbs = self.softbs
        if len(self._runbuf) < RUN_BATCH + softbs:
            self._runbuf = bytearray(RUN_BATCH + softbs)
            self._runview = memoryview(self._runbuf)
        view = self._runview
        self._log_phase()
        timed = self.readlog is not None
        limits = self._limits_active
        per_read = self._per_read_rates
        preview = 16 * self.opts.preview_lines
        # --mapfile-interval=0 saves after every read, and -S decides per read whether to
        # write: then every read is its own batch
        cap = softbs if self._save_interval == 0 or self.output.sparse else RUN_BATCH
        pos, size = read.pos, read.size
        bstart, blen = pos, 0
        while True:
            piece = view[blen : blen + size]
            try:
                copied, err = self.source.read_into(pos, size, piece)
            except DdfsError:  # the source is gone: keep the good clusters read so far
                self._flush(bstart, blen)
                raise
            self.reads += 1
            if copied != size or err:
                self._flush(bstart, blen)
                read.ran = pos != read.pos
                read.pos, read.size = pos, size
                self._record(read, copied, err, piece)
                return
            if timed:
                self.readlog.read(pos, size, size, 0, time.time() - self.start_time)  # type: ignore[union-attr]
            self.good_bytes += size  # the rates count a read when it is made
            if per_read:
                if preview:
                    self.preview = (pos, bytes(piece[:preview]))
                if self.opts.verify_on_error and pos % self.ss == 0:
                    self._voe = (pos, bytes(piece[: self.ss]))
                self.last_read_pos = pos
                try:
                    slow = self._sample()
                except Stop:  # too many slow reads: keep what was read
                    self._flush(bstart, blen + size)
                    raise
                if slow:  # the pass skips ahead from here
                    self._flush(bstart, blen + size)  # data first, then reopen and pause
                    read.ran = pos != read.pos
                    read.pos, read.size, read.copied, read.error_size = pos, size, size, 0
                    read.slow = read.sampled = True
                    self._react(False, True)
                    return
            blen += size
            self._pending_run = (bstart, blen)  # for an emergency save (flush_pending)
            nxt = pos + size
            stop = nxt >= read.run_end or self.interrupted or self.preempt
            if stop or limits or blen + softbs > cap:
                self._flush(bstart, blen)
                bstart, blen = nxt, 0
                if stop or (limits and self._limit_reached()):
                    read.ran = pos != read.pos
                    read.pos, read.size, read.copied, read.error_size = pos, size, size, 0
                    return
            pos = nxt
            size = min(pos - pos % softbs + softbs, read.run_end) - pos
            self.current_pos = pos
            if per_read:
                self._show(pos)

    def flush_pending(self) -> None:
        """Write and mark the good clusters a run holds, from another thread, while the engine
        thread is stuck in a read that does not return (the run does not touch them then)."""
        pending, self._pending_run = self._pending_run, None
        if pending is not None:
            self._flush(*pending)

    def _flush(self, start: int, size: int) -> None:
        """Write a batch of good clusters, then mark it finished (data before map)."""
        self._pending_run = None
        if size <= 0:
            return
        try:
            self.output.write(start + self.offset, self._runview[:size])
        except DdfsError:
            self.current_pos = start  # a resume starts at the first unwritten cluster
            raise
        self.last_good_read = time.time()
        self.rescued_this_run += size
        with self.lock:
            self.bmap.set_status(start, size, FINISHED)
        self.last_read_pos = start + size - min(size, self.softbs)
        self.maybe_save()
        if self.on_progress is not None:
            self.on_progress(self)

    @property
    def _limits_active(self) -> bool:
        o = self.opts
        return (
            o.max_bad_areas >= 0
            or o.max_read_errors >= 0
            or o.timeout >= 0
            or o.max_error_rate >= 0
            or o.verify_on_error
        )

    def _limit_reached(self) -> bool:
        try:
            self.check_error_limits()
        except Stop:
            return True
        return False

    def _mark_unfinished(self, pos: int, size: int, status: str) -> None:
        """Give ``status`` to the parts of ``[pos, pos+size)`` that are not finished."""
        end = pos + size
        while pos < end:
            found = self.bmap.find_forward(pos, "?*/-", end)
            if found is None:
                return
            self.bmap.set_status(found[0], found[1] - found[0], status)
            pos = found[1]

    def is_finished(self, pos: int, size: int) -> bool:
        """Whether every byte of ``[pos, pos+size)`` is finished (callers hold no lock)."""
        with self.lock:
            return self.bmap.find_forward(pos, "?*/-", pos + size) is None

    def read_urgent(self, pos: int, size: int, scrape: bool = True) -> None:
        """Rescue ``[pos, pos+size)`` now, outside the schedule (an on-demand read).

        Non-tried data is read in cluster-sized pieces as the copying phase would; where such
        a read fails, and in non-trimmed or non-scraped areas, only the requested sectors are
        read, one at a time (not with ``scrape=False``, for read-ahead). Known bad sectors are
        not read again (retry passes do that).
        Outcomes are recorded exactly as the pass schedule would record them.
        """
        ss, softbs = self.ss, self.softbs
        lo = pos - pos % ss
        hi = min(-(-(pos + size) // ss) * ss, self.bmap.end)
        p = lo
        while p < hi:
            with self.lock:
                found = self.bmap.find_forward(p, "?*/" if scrape else "?", hi)
                status = self.bmap.status_at(found[0]) if found else ""
            if found is None:
                return
            s, e = found
            if status == NON_TRIED:
                chunk_end = min(e, s + softbs)
                if chunk_end < e:
                    chunk_end = max(chunk_end - chunk_end % softbs, min(e, s + ss))
                read = Read(s, chunk_end - s)
                self.do_read(read, copying=True)
                if read.failed and scrape:
                    self._scrape(max(read.pos + read.copied, lo), min(read.end, hi))
                p = read.end
            else:
                self._scrape(s, e)
                p = e

    def _scrape(self, start: int, end: int) -> None:
        ss = self.ss
        p = start
        while p < end:
            n = min((p // ss + 1) * ss, end) - p
            if not self.is_finished(p, n):
                self.do_read(Read(p, n), copying=False)
            p += n

    def _hit_eof(self, eof: int) -> None:
        if self.bmap.find_forward(eof, FINISHED) is not None:
            raise DdfsError("EOF found below the size calculated from mapfile.")
        if self.opts.complete_only:
            self.domain = [(a, min(b, eof)) for a, b in self.domain if a < eof]
        else:
            self.bmap.set_end(eof)
            self.domain = [(a, min(b, eof)) for a, b in self.domain if a < eof]

    # ------------------------------------------------------------------ saving
    def save_interval(self) -> int:
        if self._save_interval >= 0:
            return self._save_interval
        return 30 + min(270, len(self.bmap) // 38)

    def maybe_save(self) -> None:
        if self.mapfile is None:
            return
        elapsed = time.monotonic() - self._last_save
        # the auto interval is never below 30 s: skip counting the blocks until then
        if self._save_interval < 0 and elapsed < 30:
            return
        if elapsed >= self.save_interval():
            self.save()

    def save(self, final: bool = False) -> None:
        """fsync the output, then write the mapfile atomically (``MAP.bak`` as ddrescue keeps it).

        Raises:
            DdfsError: the mapfile could not be written (the previous one is intact).
        """
        if self.mapfile is None:
            return
        self.output.fsync()
        now = time.monotonic()
        is_sync = final or now - self._last_sync >= self._sync_interval
        header = self.header_text()
        try:
            save_mapfile(
                self.mapfile,
                iter_mapfile_text(
                    self.bmap, self.current_pos, self.status, self.current_pass, header
                ),
                rotate_backup=self._prev_save_was_sync,
            )
        except OSError as exc:
            raise DdfsError(f"Error writing mapfile '{self.mapfile}': {exc.strerror}") from None
        self._prev_save_was_sync = is_sync
        if is_sync:
            self._last_sync = now
        self._last_save = time.monotonic()

    def open_logs(self) -> None:
        """Open ``--log-reads``, ``--log-events`` and ``--log-rates``.

        Raises:
            DdfsError: ddrescue's message for a log file that cannot be opened.
        """
        o = self.opts
        for path, kind, attr, cls in (
            (o.log_events, "events", "eventlog", EventLog),
            (o.log_rates, "rates", "ratelog", RateLog),
            (o.log_reads, "reads", "readlog", ReadLog),
        ):
            if not path:
                continue
            try:
                setattr(self, attr, cls(path, o.command_line))
            except OSError as exc:
                self.close()
                raise DdfsError(
                    f"{path}: Can't open file for logging {kind}: {exc.strerror}"
                ) from None

    def log_end(self, final_message: str) -> None:
        """The end of the events log: the message that ended the run, then the end of run."""
        if self.eventlog is not None:
            if final_message and final_message != "Finished":
                self.eventlog.echo(final_message.strip())
            status = FINISHED if self.finished else self.status
            self.eventlog.end_of_run(
                self.rates.elapsed, self.percent_rescued(), self.current_pos, status
            )

    def close(self) -> None:
        for log in (self.readlog, self.eventlog, self.ratelog):
            if log is not None:
                log.close()
        self.readlog = self.eventlog = self.ratelog = None

    # ------------------------------------------------------------------ whole run
    def run(self) -> None:
        """Step until the schedule is complete (raises :class:`Stop` as :meth:`step` does)."""
        while self.step():
            pass

    def finish_output(self) -> None:
        """The end-of-run output adjustments of ``-x`` and ``-S``."""
        if self.opts.sparse and self.output.sparse_end:
            self.output.extend_to(self.output.sparse_end)
        if self.opts.min_outfile_size:
            self.output.extend_to(self.opts.min_outfile_size)


def same_file(a: str, b: str) -> bool:
    """Same name, or the same device and inode (ddrescue's sameness test)."""
    if os.path.abspath(a) == os.path.abspath(b):
        return True
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    if (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino):
        return True
    return bool(sa.st_rdev and sa.st_rdev == sb.st_rdev)

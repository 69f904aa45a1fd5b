"""The rescue book: performs the schedule's reads, one per :meth:`RescueBook.step`.

A schedule (:mod:`engine.schedule`) decides the next :class:`~engine.schedule.base.Read`; the
rescue book reads it from the source, writes what was read to the output, records the outcome
in the map book (:class:`engine.map.book.MapBook`) exactly as ddrescue does, and keeps the
counters, the logs, the rates, the limits, the interrupt flag and the periodic saves (data
fsynced before the map that claims it). Copying reads that go well are made as one run of
clusters (:mod:`engine.rescue.clusters`). Because the schedule consults the map afresh before
every read, a caller may slip its own reads in between two steps: the on-demand reads of the
live mount (:mod:`engine.ondemand.urgent`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from engine.errors import DdfsError, Stop
from engine.map.blockmap import BAD_SECTOR, FINISHED, NON_TRIED, NON_TRIMMED
from engine.map.book import MapBook
from engine.map.mapfile import format_header
from engine.numbers import pct
from engine.options import RescueOptions
from engine.progress.figures import Rates
from engine.rescue import maplock
from engine.rescue.clusters import ClusterRun
from engine.rescue.limits import Counters, Limits, VerifyOnError
from engine.rescue.logs import RunLogs
from engine.rescue.output import Output
from engine.rescue.rates import RateClock
from engine.rescue.reactions import Reactions
from engine.rescue.source import Source, classify_error
from engine.schedule.base import Read, Resume, Schedule, ScheduleContext
from engine.schedule.ddrescue127 import Ddrescue127

if TYPE_CHECKING:
    from engine.damage.files import Request as FileRequest


class RescueBook(Reactions):
    """Drives one rescue run over a source, an output and a map book.

    Args:
        opts: the options.
        source: the input, already open.
        output: the output, already open.
        book: the map book (the map as loaded and normalised, its domain, its saves).
        schedule: the schedule strategy (ddrescue 1.27's by default).
    """

    def __init__(
        self,
        opts: RescueOptions,
        source: Source,
        output: Output,
        book: MapBook,
        schedule: Schedule | None = None,
    ) -> None:
        self.opts = opts
        self.source = source
        self.output = output
        self.map = book
        self.schedule: Schedule = schedule if schedule is not None else Ddrescue127()
        out_pos = opts.output_pos if opts.output_pos is not None else opts.input_pos
        self.offset = out_pos - opts.input_pos
        self.ss = opts.sector_size
        self.softbs = opts.cluster_size
        self.skip_initial, self.skip_max = opts.skip_sizes(source.size)
        self.resume = Resume(
            book.status, book.current_pass, book.current_pos, book.resumed_sweeping
        )
        self.message = ""
        self._pending_phase: tuple[str, int, str] | None = None
        self.interrupted = 0  # the signal number once one arrives
        self.preempt = False  # set by the engine thread when an urgent read is queued
        self.urgent_reads = False  # set by an engine thread that slips in on-demand reads
        self.map_lock: bytes | None = None  # one process per mapfile (engine.rescue.maplock)
        self.first_requests: list[FileRequest] = []  # --first: what each resolved to
        self.start_time = time.time()
        self.counters = Counters()
        self.error_bytes = 0
        self.reads = 0
        self.rescued_this_run = 0
        self.good_bytes = 0  # bytes read well, counted at once (the rates' clock)
        self.error_read_seconds = 0.0  # time spent in failed reads (for remaining-time ranges)
        self.timed_error_reads = 0
        self.last_read_pos = opts.input_pos
        self.finished = False
        self._buf = bytearray(max(self.softbs, self.ss))
        self._view = memoryview(self._buf)
        self._reads: Iterator[Read] | None = None
        self._first_read = True
        self.rates = RateClock(opts)
        self.logs = RunLogs(opts)
        self.verify = VerifyOnError(source, self.ss) if opts.verify_on_error else None
        self.limits = Limits(
            opts, self.counters, book.bad_areas, self.rates, self.start_time, self.verify
        )
        self.preview: tuple[int, bytes] = (-1, b"")  # -P: the latest data read, and where
        self.on_progress: Callable[[RescueBook], None] | None = None  # after each read
        self.identity_line = ""  # the source's identity, kept in the mapfile's header
        self.notices: list[str] = []  # said before the run (merging another copy of the disk)
        self.ctx = ScheduleContext(
            book, opts, self.rates, self.resume, self.skip_initial, self.skip_max,
            self.set_phase, self.check_error_limits, lambda: bool(self.message),
        )  # fmt: skip
        self.clusters = ClusterRun(self)

    # ------------------------------------------------------------------ counters
    @property
    def read_errors(self) -> int:
        return self.counters.read_errors

    @property
    def last_good_read(self) -> float | None:
        return self.counters.last_good_read

    @property
    def initial_bad_areas(self) -> int:
        return self.limits.initial_bad_areas

    @property
    def tier(self) -> str:
        """The metadata tier being worked through ("" outside them)."""
        return str(getattr(self.schedule, "tier", ""))

    # ------------------------------------------------------------------ phases
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
            status, passno, self.message = self._pending_phase
            self.map.set_status_line(status, passno)
            if self.tier:
                self.message = f"[{self.tier} first] {self.message}"
            self._pending_phase = None
            if self.logs.events is not None:
                self.logs.events.event(self.rates.elapsed, self.percent_rescued(), self.message)
        self._first_read = False

    # ------------------------------------------------------------------ figures
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
        size = self.map.domain_in_size
        return f"{pct(self.map.domain_size_of(FINISHED, whole=True), size):>7}"

    def show(self, ipos: int) -> None:
        """Before a read: the rates log gets a line once per new sample (ddrescue's
        ``show_status``, which logs the position of the read about to be made)."""
        if self.rates.updated:
            self.rates.updated = False
            if self.logs.rates is not None:
                self.logs.rates.line(
                    self.rates.elapsed,
                    ipos,
                    self.rates.c_rate,
                    self.rates.a_rate,
                    self.map.bad_areas(),
                    self.map.domain_size_of(BAD_SECTOR, whole=True),
                )

    # ------------------------------------------------------------------ the schedule
    def set_schedule(self, schedule: Schedule) -> None:
        """Replace the schedule before the first step (metadata first wraps it)."""
        self.schedule = schedule

    def step(self) -> bool:
        """Do the next read of the schedule. Returns False once the schedule is complete.

        Raises:
            Stop: a signal arrived or a limit was reached (checked before the read).
            DdfsError: a fatal read error, a write error or an EOF below finished data.
        """
        if self.finished:
            return False
        if self._reads is None:
            self._reads = self.schedule.reads(self.ctx)
        try:
            read = next(self._reads)
        except StopIteration:
            self._end_of_schedule()
            return False
        self._apply_phase()
        self.map.current_pos = read.end if read.backward else read.pos
        self.show(read.pos)
        self.check_limits()
        if self.urgent_reads and self.map.is_finished(read.pos, read.size):
            read.copied = read.size  # rescued meanwhile by an on-demand read
            return True
        if read.run_end > read.end:
            self.clusters.run(read)
        else:
            self.do_read(read)
        self.limits.check_read_errors()  # right after the read, as in ddrescue
        if not read.sampled:
            read.slow = self.sample()
            self.react(read.failed, read.slow)
        return True

    def _end_of_schedule(self) -> None:
        if not self.rates.updated:
            self.rates.update(self.good_bytes, force=True)  # the error rate at the end
        self.check_error_limits()
        self.finished = True
        self.map.set_status_line(FINISHED, self.map.current_pass)
        self.message = "Finished"

    def run(self) -> None:
        """Step until the schedule is complete (raises :class:`Stop` as :meth:`step` does)."""
        while self.step():
            pass

    def check_error_limits(self) -> None:
        """ddrescue's ``errors_or_timeout``: before each read, each phase and at the end."""
        self.limits.check()

    def check_limits(self) -> None:
        """ddrescue's checks before each read: the limits, then the interrupt flag."""
        self.limits.check()
        if self.interrupted:
            raise Stop("Interrupted by user", self.interrupted)

    # ------------------------------------------------------------------ reads
    def do_read(self, read: Read, copying: bool | None = None) -> None:
        """Read from the source, write what was read, and record the outcome in the map.

        A failure bigger than one sector becomes ``*`` in the copying phase (or when
        ``copying`` says so), ``-`` otherwise; finished data is never downgraded.
        """
        self.log_phase()
        started = time.monotonic()
        # a long read (a good stretch) is copied in the kernel where it can be (ClusterRun)
        spliced = self.clusters.splice(read, self.offset) if read.size > self.softbs else None
        if spliced is None:
            if read.size > len(self._buf):  # longer than any read before: keep a larger buffer
                self._buf = bytearray(read.size)
                self._view = memoryview(self._buf)
            copied, err = self.source.read_into(read.pos, read.size, self._view)
        else:
            copied, err = spliced
        if err:
            self.error_read_seconds += time.monotonic() - started
            self.timed_error_reads += 1
        self.reads += 1
        self.record(read, copied, err, self._view, copying, written=spliced is not None)

    def log_phase(self) -> None:
        self.logs.phase(self.message, time.time() - self.start_time)

    def record(
        self,
        read: Read,
        copied: int,
        err: int,
        view: memoryview,
        copying: bool | None = None,
        written: bool = False,
    ) -> None:
        """Everything after a read: the data written (unless ``written`` already), then the
        map, the counters, the log."""
        if copying is None:
            copying = self.map.status == NON_TRIED
        error_size = 0
        if err:
            classify_error(err, copied, self.source.continue_errnos, self.source.path)
            error_size = read.size - copied
        read.copied, read.error_size = copied, error_size
        if self.opts.preview_lines:
            n = 16 * self.opts.preview_lines
            self.preview = (read.pos, bytes(view[:n])) if copied else (-1, b"")
        if self.verify is not None:
            self.verify.after_read(read.pos, copied, error_size, view)
        if error_size:
            self.rates.add_error(error_size)
        self.good_bytes += copied
        if copied and not written:
            self.output.write(read.pos + self.offset, view[:copied])
        if copied:
            self.counters.last_good_read = time.time()
            self.rescued_this_run += copied
        with self.map.lock:
            self.map.bmap.set_status(read.pos, copied, FINISHED)
            if error_size:
                self.counters.read_errors += 1
                self.error_bytes += error_size
                bad = NON_TRIMMED if (error_size > self.ss and copying) else BAD_SECTOR
                self.map.mark_unfinished(read.pos + copied, error_size, bad)
            elif copied < read.size:
                self._hit_eof(read.pos + copied)
        self.last_read_pos = read.pos
        if self.logs.reads is not None:
            elapsed = time.time() - self.start_time
            self.logs.reads.read(read.pos, read.size, copied, error_size, elapsed, err)
        if err:
            self.source.check_present()
        self.maybe_save()
        if self.on_progress is not None:
            self.on_progress(self)

    def _hit_eof(self, eof: int) -> None:
        if self.map.bmap.find_forward(eof, FINISHED) is not None:
            raise DdfsError("EOF found below the size calculated from mapfile.")
        self.map.cut_at(eof, keep_end=self.opts.complete_only)

    # ------------------------------------------------------------------ saving and the end
    def maybe_save(self) -> None:
        if self.map.save_due():
            self.save()

    def save(self, final: bool = False) -> None:
        """fsync the output, then write the mapfile atomically (``MAP.bak`` as ddrescue keeps it).

        Raises:
            DdfsError: the mapfile could not be written (the previous one is intact).
        """
        if self.map.mapfile is None:
            return
        self.output.fsync()
        self.map.save(self.header_text(), final)

    def log_end(self, final_message: str) -> None:
        """The end of the events log: the message that ended the run, then the end of run."""
        events = self.logs.events
        if events is not None:
            if final_message and final_message != "Finished":
                events.echo(final_message.strip())
            status = FINISHED if self.finished else self.map.status
            events.end_of_run(
                self.rates.elapsed, self.percent_rescued(), self.map.current_pos, status
            )

    def close(self) -> None:
        """Close the logs and give the mapfile's lock back."""
        self.logs.close()
        if self.map_lock is not None:
            maplock.release(self.map_lock)
            self.map_lock = None

    def finish_output(self) -> None:
        """The end-of-run output adjustments of ``-x`` and ``-S``."""
        if self.opts.sparse and self.output.sparse_end:
            self.output.extend_to(self.output.sparse_end)
        if self.opts.min_outfile_size:
            self.output.extend_to(self.opts.min_outfile_size)

"""A copying run: cluster after cluster forward while every read fully succeeds.

The reads are exactly those the copying pass would yield one by one (each a cluster, ending
on cluster boundaries), but the good data is written and marked finished once per
:data:`RUN_BATCH` bytes, which keeps the per-cluster cost near the syscalls'. A run ends early,
between two reads, for a signal, a queued urgent read (``preempt``) or an active limit, so
nothing waits for more than one read. When the source hangs, another thread may save the
batch read so far (:meth:`ClusterRun.flush_pending`).

The reads longer than a cluster that a schedule makes where the disk reads well are copied
in the kernel where the files allow it (:meth:`ClusterRun.splice`, see
:class:`engine.rescue.output.Splice`): no byte of them passes through Python.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from engine.errors import DdfsError, Stop
from engine.map.blockmap import FINISHED
from engine.map.book import MapBook
from engine.options import RescueOptions
from engine.rescue.limits import Counters, Limits, VerifyOnError
from engine.rescue.logs import RunLogs
from engine.rescue.output import Output, Splice
from engine.rescue.source import Source
from engine.schedule.base import Read

RUN_BATCH = 1 << 20  # good clusters written (and marked) together during a run


class RunHost(Protocol):
    """What a run uses of the rescue book that owns it (:class:`engine.rescue.book.RescueBook`)."""

    opts: RescueOptions
    source: Source
    output: Output
    map: MapBook
    logs: RunLogs
    limits: Limits
    verify: VerifyOnError | None
    softbs: int
    ss: int
    offset: int
    counters: Counters
    start_time: float
    reads: int
    rescued_this_run: int
    good_bytes: int
    last_read_pos: int
    interrupted: int
    preempt: bool
    preview: tuple[int, bytes]
    on_progress: Callable[[Any], None] | None

    def log_phase(self) -> None: ...
    def record(self, read: Read, copied: int, err: int, view: memoryview) -> None: ...
    def show(self, ipos: int) -> None: ...
    def sample(self) -> bool: ...
    def react(self, failed: bool, slow: bool) -> None: ...
    def maybe_save(self) -> None: ...


class ClusterRun:
    """The copying runs of one rescue book (its buffer and the batch not yet written)."""

    def __init__(self, book: RunHost) -> None:
        self.book = book
        o = book.opts
        self._buf = bytearray()
        self._view = memoryview(self._buf)
        self._pending: tuple[int, int] | None = None
        self._splice: Splice | bool | None = None  # False: the data passes through the buffer
        # sample the rates after every read, also inside a run (else once per batch)
        self.per_read = bool(
            o.min_read_rate is not None
            or o.max_read_rate > 0
            or o.max_error_rate >= 0
            or o.log_rates
            or o.preview_lines
            or o.verify_on_error
        )

    def splice(self, read: Read, offset: int) -> tuple[int, int] | None:
        """Copy a long read from the source to the output at ``read.pos + offset`` in the
        kernel; returns ``(copied, errno)`` as :meth:`Source.read_into`, or None when its data
        must pass through the buffer (``-P`` and ``-J`` look at it; the files, see
        :meth:`Output.splice_from`).

        Raises:
            DdfsError: the source is gone, or the output could not be written.
        """
        if self._splice is None:  # decided at the first long read
            b = self.book
            looked_at = b.opts.preview_lines or b.verify is not None
            self._splice = (None if looked_at else b.output.splice_from(b.source)) or False
        if not isinstance(self._splice, Splice):
            return None
        return self._splice.copy(read.pos, read.size, read.pos + offset)

    def _buffer(self) -> memoryview:
        softbs = self.book.softbs
        if len(self._buf) < RUN_BATCH + softbs:
            self._buf = bytearray(RUN_BATCH + softbs)
            self._view = memoryview(self._buf)
        return self._view

    def _cap(self) -> int:
        """Bytes per batch: ``--mapfile-interval=0`` saves after every read, and ``-S``
        decides per read whether to write: then every read is its own batch."""
        b = self.book
        return b.softbs if b.opts.save_interval == 0 or b.output.sparse else RUN_BATCH

    def run(self, read: Read) -> None:
        """Read from ``read`` up to ``read.run_end``; ``read`` then describes the last
        cluster read (``ran`` set when good clusters came before it)."""
        b = self.book
        softbs, view, cap = b.softbs, self._buffer(), self._cap()
        b.log_phase()
        readlog = b.logs.reads
        limits = b.limits.active
        pos, size = read.pos, read.size
        bstart, blen = pos, 0
        while True:
            piece = view[blen : blen + size]
            try:
                copied, err = b.source.read_into(pos, size, piece)
            except DdfsError:  # the source is gone: keep the good clusters read so far
                self.flush(bstart, blen)
                raise
            b.reads += 1
            if copied != size or err:
                self.flush(bstart, blen)
                read.ran = pos != read.pos
                read.pos, read.size = pos, size
                b.record(read, copied, err, piece)
                return
            if readlog is not None:
                readlog.read(pos, size, size, 0, time.time() - b.start_time)
            b.good_bytes += size  # the rates count a read when it is made
            if self.per_read and self._sample_slow(read, pos, size, bstart, blen, piece):
                return
            blen += size
            self._pending = (bstart, blen)  # for an emergency save (flush_pending)
            nxt = pos + size
            stop = nxt >= read.run_end or b.interrupted or b.preempt
            if stop or limits or blen + softbs > cap:
                self.flush(bstart, blen)
                bstart, blen = nxt, 0
                if stop or (limits and b.limits.reached()):
                    _ended_at(read, pos, size)
                    return
            pos = nxt
            size = min(pos - pos % softbs + softbs, read.run_end) - pos
            b.map.current_pos = pos
            if self.per_read:
                b.show(pos)

    def _sample_slow(
        self, read: Read, pos: int, size: int, bstart: int, blen: int, piece: memoryview
    ) -> bool:
        """After a good read when rates are sampled per read: ``-P`` and ``-J`` keep what it
        read, and a slow sample (``-a``) ends the run there. Returns whether it ended."""
        b = self.book
        if b.opts.preview_lines:
            b.preview = (pos, bytes(piece[: 16 * b.opts.preview_lines]))
        if b.verify is not None and pos % b.ss == 0:
            b.verify.keep(pos, piece)
        b.last_read_pos = pos
        try:
            slow = b.sample()
        except Stop:  # too many slow reads: keep what was read
            self.flush(bstart, blen + size)
            raise
        if not slow:
            return False
        self.flush(bstart, blen + size)  # data first, then reopen and pause
        _ended_at(read, pos, size)
        read.slow = read.sampled = True
        b.react(False, True)  # the pass skips ahead from here
        return True

    def flush_pending(self) -> None:
        """Write and mark the good clusters a run holds, from another thread, while the engine
        thread is stuck in a read that does not return (the run does not touch them then)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            self.flush(*pending)

    def flush(self, start: int, size: int) -> None:
        """Write a batch of good clusters, then mark it finished (data before map)."""
        self._pending = None
        if size <= 0:
            return
        b = self.book
        try:
            b.output.write(start + b.offset, self._view[:size])
        except DdfsError:
            b.map.current_pos = start  # a resume starts at the first unwritten cluster
            raise
        b.counters.last_good_read = time.time()
        b.rescued_this_run += size
        b.map.mark(start, size, FINISHED)  # data before map
        b.last_read_pos = start + size - min(size, b.softbs)
        b.maybe_save()
        if b.on_progress is not None:
            b.on_progress(b)


def _ended_at(read: Read, pos: int, size: int) -> None:
    """The run's last read was the good cluster ``[pos, pos+size)``."""
    read.ran = pos != read.pos
    read.pos, read.size, read.copied, read.error_size = pos, size, size, 0

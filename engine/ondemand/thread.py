"""The scheduler: one thread owns the source and runs the rescue; others submit urgent reads.

:meth:`Scheduler.run` is the body of the engine thread. Between two background reads of the
pass schedule it serves queued requests, most urgent first, so an on-demand read waits for at
most the one background read in progress, and only this thread ever reads the source: a failing
disk is never read in parallel. When the schedule is finished (or stopped by a limit) the thread
stays to serve requests until :meth:`Scheduler.stop`; then it does the final save.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.errors import DdfsError, Stop
from engine.ondemand.first_queue import FirstJob, FirstQueue, resolve_job
from engine.ondemand.urgent import read_urgent
from engine.rescue.book import RescueBook

URGENT = 0  # a reader is waiting
READAHEAD = 1  # a sequential reader will want it soon
# After an urgent read, the engine waits this long for the reader's next request before the
# pass goes on: a reader that reads again at once (fsck, a file copy) would otherwise wait for
# a background read each time, and the disk would seek to the pass and back for every read.
ANTICIPATE = 0.005


@dataclass(order=True)
class Request:
    """A range to rescue ahead of the schedule. ``done`` is set when it has been tried."""

    priority: int
    seq: int
    pos: int = field(compare=False)
    size: int = field(compare=False)
    submitted: float = field(compare=False, default_factory=time.monotonic)
    done: threading.Event = field(compare=False, default_factory=threading.Event)
    callbacks: list[Callable[[], None]] = field(compare=False, default_factory=list)


class Scheduler:
    """Runs a :class:`RescueBook` in the calling thread; :meth:`submit` and :meth:`stop` are
    thread-safe."""

    def __init__(
        self, rescuer: RescueBook, prelude: Callable[[Scheduler], None] | None = None
    ) -> None:
        self.rescuer = rescuer
        self.prelude = prelude  # runs first in the engine thread (metadata planning)
        rescuer.urgent_reads = True
        self._cv = threading.Condition()
        self._queue: list[Request] = []
        self._seq = itertools.count()
        self._stopping = False
        self.background_done = False
        self.outcome: BaseException | None = None  # Stop or DdfsError that ended the schedule
        self.save_error: DdfsError | None = None
        self.served = 0
        self.serve_seconds = 0.0
        self._anticipate_until = 0.0
        self.finished = threading.Event()
        self.first = FirstQueue()  # ``ddfs first``: read before the schedule's next read
        self._jobs: list[FirstJob] = []

    # ------------------------------------------------------------------ other threads
    def submit(
        self,
        pos: int,
        size: int,
        priority: int = URGENT,
        callback: Callable[[], None] | None = None,
    ) -> Request:
        """Queue ``[pos, pos+size)``; ``callback`` runs in the engine thread when it is done."""
        req = Request(priority, next(self._seq), pos, size)
        if callback is not None:
            req.callbacks.append(callback)
        with self._cv:
            if self._stopping or self.finished.is_set():
                self._complete(req)
                return req
            heapq.heappush(self._queue, req)
            self.rescuer.preempt = True  # a copying run stops at its next read
            self._cv.notify()
        return req

    def add_first(self, specs: list[str]) -> FirstJob:
        """Queue files-first requests; the job's ``done`` is set once they are resolved (or
        the rescue stopped first: then ``error`` says so)."""
        job = FirstJob(list(specs))
        with self._cv:
            if self._stopping or self.finished.is_set():
                job.error = "the rescue is stopping"
                job.done.set()
                return job
            self._jobs.append(job)
            self._cv.notify()
        return job

    def stop(self, signum: int = 0) -> None:
        """Stop between two reads (recording ``signum`` as the interrupting signal)."""
        with self._cv:
            self._stopping = True
            self.rescuer.preempt = True
            if signum and not self.rescuer.interrupted:
                self.rescuer.interrupted = signum
            self._cv.notify()

    def pending(self) -> list[tuple[int, int, int, float]]:
        """The queue as ``(priority, pos, size, age)``."""
        now = time.monotonic()
        with self._cv:
            return [(r.priority, r.pos, r.size, now - r.submitted) for r in sorted(self._queue)]

    # ------------------------------------------------------------------ the engine thread
    def run(self) -> None:
        """The engine thread's body; returns after :meth:`stop` and the final save."""
        try:
            if self.prelude is not None:
                self._guarded(self.prelude, self)
            while True:
                req = self._next()
                if req is not None:
                    self._serve(req)
                    continue
                if self._stopping:
                    break
                if self._first_step():
                    continue
                if not self.background_done:
                    self._background_step()
        finally:
            with self._cv:
                pending, self._queue = self._queue, []
                jobs, self._jobs = self._jobs, []
            for req in pending:
                self._complete(req)
            for job in jobs:
                job.error = "the rescue stopped"
                job.done.set()
            try:
                if self.rescuer.reads or not self.rescuer.map.on_disk():
                    self.rescuer.save(final=True)
                # (else nothing was read from the source: the mapfile is left bit for bit as
                # it was, its header too; a repair session on a finished rescue changes none
                # of the rescue's files)
            except DdfsError as exc:
                self.save_error = exc
            self.finished.set()

    def serve_pending(self) -> None:
        """Serve the queued requests now (called between the reads of a long prelude)."""
        while True:
            with self._cv:
                if self._stopping:
                    return
                if not self._queue:
                    wait = self._anticipate_until - time.monotonic()
                    if wait <= 0:
                        return
                    self._cv.wait(wait)
                    continue
                req = heapq.heappop(self._queue)
                self.rescuer.preempt = bool(self._queue)
            self._serve(req)

    def _next(self) -> Request | None:
        with self._cv:
            while True:
                if self._stopping:
                    return None
                if self._queue:
                    req = heapq.heappop(self._queue)
                    self.rescuer.preempt = bool(self._queue)
                    return req
                if not self.background_done or self._first_work():
                    wait = self._anticipate_until - time.monotonic()
                    if wait <= 0:
                        return None
                    self._cv.wait(wait)
                    continue
                self._cv.wait()

    def _first_work(self) -> bool:
        """A ``ddfs first`` job waits, or its queue has reads the rescue may still do."""
        return bool(self._jobs) or (self.first.pending and self.outcome is None)

    def _first_step(self) -> bool:
        """A ``ddfs first`` job, or one read of its queue; False when there is neither."""
        with self._cv:
            job = self._jobs.pop(0) if self._jobs else None
        if job is not None:
            before = self.outcome
            try:
                if isinstance(before, DdfsError):  # the source is gone
                    job.error = str(before)
                else:
                    self._guarded(resolve_job, self.rescuer, self.first, job, self.serve_pending)
                    if self.outcome is not before:
                        job.error = str(self.outcome)
            finally:
                job.done.set()
            return True
        if not self._first_work():  # (after a limit or an error the queue waits for ever)
            return False
        return bool(self._guarded(self.first.step, self.rescuer))

    def _background_step(self) -> None:
        if not self._guarded(self.rescuer.step):
            self._background_over()

    def _background_over(self) -> None:
        """The schedule is complete (or stopped): say so once to the progress callback (the
        status screen then shows the end while the mount goes on serving)."""
        if self.background_done:
            return
        self.background_done = True
        if self.rescuer.on_progress is not None:
            self.rescuer.on_progress(self.rescuer)

    def _guarded(self, fn: Callable[..., object], *args: object) -> object:
        """Run a piece of the schedule; a stop (limit or signal) or a fatal error ends the
        background work, and a signal ends the thread too."""
        try:
            return fn(*args)
        except Stop as exc:
            self.outcome = exc
            self._background_over()
            if exc.signum:
                self.stop()
        except DdfsError as exc:
            self.outcome = exc
            self._background_over()
        return True

    def _serve(self, req: Request) -> None:
        start = time.monotonic()
        try:
            if not isinstance(self.outcome, DdfsError):  # a fatal error: the source is gone
                read_urgent(self.rescuer, req.pos, req.size, scrape=req.priority == URGENT)
        except DdfsError as exc:
            self.outcome = exc
            self.background_done = True
        finally:
            self.served += 1
            self.serve_seconds += time.monotonic() - start
            self._complete(req)
            if req.priority == URGENT:
                self._anticipate_until = time.monotonic() + ANTICIPATE

    @staticmethod
    def _complete(req: Request) -> None:
        req.done.set()
        for cb in req.callbacks:
            cb()

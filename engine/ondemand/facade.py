"""The narrow facade a live view talks to: snapshots of a running rescue, and "rescue this
range now, tell me when it is done".

:class:`LiveRescue` owns the engine thread (:class:`engine.ondemand.thread.Scheduler`) over a
rescue book. Everything here may be called from any thread: the queries take the map book's
lock for as long as a lookup lasts, and requests are queued for the engine thread, the only
one that reads the source. :func:`build_live` makes one from paths and options, for
``ddfs mount`` and for the tests.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable

from engine.errors import DdfsError, Stop
from engine.map.blockmap import NON_TRIED
from engine.map.mapfile import PHASE_NAMES
from engine.metadata.volume import Plan
from engine.ondemand.first_queue import FirstJob
from engine.ondemand.metadata_first import (
    first_line,
    first_progress,
    metadata_first,
    tier_line,
    tier_progress,
)
from engine.ondemand.thread import READAHEAD, URGENT, Request, Scheduler
from engine.options import RescueOptions
from engine.rescue.book import RescueBook
from engine.rescue.builder import prepare

ENGINE_GRACE = 3.0  # seconds the engine thread gets to finish its read when stopping


class LiveRescue:
    """A rescue running in its engine thread, as a live view sees it."""

    def __init__(self, book: RescueBook, plan_first: bool = False) -> None:
        self.book = book
        self.plan: Plan | None = None  # metadata first, once planned
        self.scheduler = Scheduler(book, self._plan if plan_first else None)
        self._thread: threading.Thread | None = None
        self._samples: deque[tuple[float, int]] = deque()  # for the current rate

    def _plan(self, s: Scheduler) -> None:
        self.plan = metadata_first(s.rescuer, s.serve_pending)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the engine thread (a daemon: a source that hangs for ever cannot hold the
        process)."""
        self._thread = threading.Thread(target=self.scheduler.run, name="ddfs-engine", daemon=True)
        self._thread.start()

    def stop(self, signum: int = 0) -> None:
        """Stop between two reads (recording ``signum`` as the interrupting signal)."""
        self.scheduler.stop(signum)

    def join(self, timeout: float | None = ENGINE_GRACE) -> bool:
        """Wait for the engine thread; returns whether it ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def create_mapfile(self) -> None:
        """Write a mapfile that does not exist yet, at once (before the engine starts).

        Raises:
            DdfsError: it could not be created.
        """
        path = self.book.map.mapfile
        if path is not None and not os.path.exists(path):
            self.book.save()

    def abandon(self) -> None:
        """Close the logs, the source and the output (a rescue whose engine never started, or
        after :meth:`close` wrote the logs' last lines)."""
        self.book.close()
        self.book.source.close()
        self.book.output.close()

    def save_without_engine(self) -> None:
        """The engine thread is stuck in a read that does not return: save the good clusters it
        holds and the map from here (the map is consistent between reads).

        Raises:
            DdfsError: the map could not be saved.
        """
        with self.book.map.lock:
            self.book.clusters.flush_pending()
            self.book.save(final=True)

    def close(self) -> None:
        """After the engine thread ended: the logs' last lines, then close the files."""
        outcome = self.scheduler.outcome
        self.book.log_end(str(outcome) if isinstance(outcome, Stop) else "")
        self.abandon()

    # ------------------------------------------------------------------ facts
    @property
    def size(self) -> int:
        return self.book.source.size

    @property
    def offset(self) -> int:
        """Where the image's byte 0 lies in the output file."""
        return self.book.offset

    @property
    def output_path(self) -> str:
        return self.book.output.path

    @property
    def background_done(self) -> bool:
        return self.scheduler.background_done

    @property
    def outcome(self) -> BaseException | None:
        return self.scheduler.outcome

    @property
    def save_error(self) -> DdfsError | None:
        return self.scheduler.save_error

    # ------------------------------------------------------------------ snapshot queries
    def is_finished(self, pos: int, size: int) -> bool:
        return self.book.map.is_finished(pos, size)

    def first_unfinished(self, pos: int, size: int) -> int | None:
        """Where the first byte in ``[pos, pos+size)`` that is not finished lies, if any."""
        return self.book.map.first_unfinished(pos, size)

    def unfinished_ranges(self, pos: int, size: int) -> list[tuple[int, int]]:
        """The runs in ``[pos, pos+size)`` that are not finished."""
        return self.book.map.unfinished_ranges(pos, size)

    def untried(self, pos: int, size: int) -> bool:
        """Whether some of ``[pos, pos+size)`` was never tried."""
        return self.book.map.first_unfinished(pos, size, NON_TRIED) is not None

    def map_text(self) -> bytes:
        """A consistent snapshot of the live map in ddrescue's format."""
        book = self.book
        return book.map.text(book.header_text()).encode("latin-1", "replace")

    def engine_status(self) -> dict[str, object]:
        """The engine's part of ``status.json``."""
        b, s = self.book, self.scheduler
        sizes, bad_areas = b.map.sizes()
        elapsed = max(time.time() - b.start_time, 1e-9)
        if s.background_done:
            phase = "stopped" if s.outcome is not None else "finished"
        else:
            phase = PHASE_NAMES.get(b.map.status, b.map.status)
        return {
            "phase": phase,
            "finished": s.background_done and s.outcome is None,  # stays true once true
            "message": b.message,
            "pass": b.map.current_pass,
            "current_pos": b.map.current_pos,
            "size": self.size,
            "bytes": {
                "non_tried": sizes["?"],
                "non_trimmed": sizes["*"],
                "non_scraped": sizes["/"],
                "bad_sector": sizes["-"],
                "finished": sizes["+"],
            },
            "bad_areas": bad_areas,
            "read_errors": b.read_errors,
            "reads": b.reads,
            "average_rate": b.rescued_this_run / elapsed,
            "current_rate": self._current_rate(),
            "error_read_seconds": b.measured_rates().error_read_seconds,
            "error_bytes": b.error_bytes,
            "run_time": elapsed,
            "time_since_last_good_read": (
                None if b.last_good_read is None else time.time() - b.last_good_read
            ),
            "stop_reason": None if s.outcome is None else str(s.outcome),
        }

    def _current_rate(self) -> float:
        """Bytes rescued per second over the last few seconds of status requests."""
        now = time.monotonic()
        samples = self._samples
        samples.append((now, self.book.rescued_this_run))
        while len(samples) > 2 and now - samples[1][0] >= 5.0:
            samples.popleft()
        t0, b0 = samples[0]
        return (samples[-1][1] - b0) / (now - t0) if now > t0 else 0.0

    def tier_progress(self) -> list[dict[str, object]]:
        """Per tier of the metadata plan: its size and how much of it is finished."""
        return [] if self.plan is None else tier_progress(self.plan, self.book)

    def tier_line(self) -> str:
        """The tiers' line and a line per files-first request (those alone without a plan)."""
        return first_line(self.book) if self.plan is None else tier_line(self.plan, self.book)

    def first_progress(self) -> list[dict[str, object]]:
        """Per ``--first`` request: its files done, damaged and pending."""
        return first_progress(self.book)

    # ------------------------------------------------------------------ requests
    def request(
        self, pos: int, size: int, urgent: bool = True, callback: Callable[[], None] | None = None
    ) -> Request:
        """Rescue ``[pos, pos+size)`` ahead of the schedule; ``callback`` runs (in the engine
        thread) once it has been tried. Urgent requests go before read-ahead ones."""
        return self.scheduler.submit(pos, size, URGENT if urgent else READAHEAD, callback)

    def add_first(self, specs: list[str]) -> FirstJob:
        """Rescue the files ``specs`` name (``p1:/dir``) before the rest of the schedule; the
        job is done once the engine thread has found them.

        Raises:
            DdfsError: a spec is not ``[pN:|disk:]/path``.
        """
        from engine.damage.files import parse_spec

        for spec in specs:
            parse_spec(spec)
        return self.scheduler.add_first(specs)

    def pending(self) -> list[tuple[int, int, int, float]]:
        """The queue as ``(priority, pos, size, age)``."""
        return self.scheduler.pending()

    def served(self) -> tuple[int, float]:
        """Requests served so far, and the seconds spent on them."""
        return self.scheduler.served, self.scheduler.serve_seconds


def build_live(
    infile: str,
    outfile: str,
    mapfile: str | None,
    opts: RescueOptions,
    confirm: Callable[[str], bool] | None = None,
    plan_first: bool | None = None,
) -> tuple[LiveRescue, bool]:
    """Prepare the rescue exactly as ``ddfs rescue`` does and wrap it for a live view
    (metadata first when the options ask for it; ``plan_first`` overrides them). The engine
    thread is not started. Returns the facade and whether the map existed.

    Raises:
        DdfsError: a refusal or a bad file (nothing written).
    """
    book, existed = prepare(infile, outfile, mapfile, opts, confirm=confirm)
    plan = opts.metadata_first if plan_first is None else plan_first
    return LiveRescue(book, plan_first=plan), existed

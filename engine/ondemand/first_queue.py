"""Files first while a live rescue runs (``ddfs first MOUNTPOINT p1:/dir``).

:func:`resolve_job` is run by the engine thread between two reads: it finds the named files with
the scanners of ``ddfs report`` through a reader that rescues what it reads (as ``--first`` does
once the metadata is planned), adds them to the rescuer's ``first_requests`` (the status shows
their progress) and their ranges to a :class:`FirstQueue`. The engine thread then takes one read
at a time from the queue before each read of the schedule: first the untried clusters (the
good parts), then the sectors of their failed clusters one by one. Urgent reads still go first,
so a reader waits for at most one read of the queue, as for any background read. Known bad
sectors are left to the retry passes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.map.blockmap import NON_TRIED
from engine.map.ranges import merge
from engine.ondemand.metadata_first import engine_reader, find_files
from engine.ondemand.urgent import read_urgent
from engine.rescue.book import RescueBook
from engine.schedule.base import Read

COPY, SCRAPE = NON_TRIED, "*/"  # the two sweeps over the queue, by the statuses they read


class FirstQueue:
    """The ranges still to read for runtime files-first requests (engine thread only)."""

    def __init__(self) -> None:
        self.sweeps: dict[str, list[tuple[int, int]]] = {COPY: [], SCRAPE: []}

    @property
    def pending(self) -> bool:
        return any(self.sweeps.values())

    def add(self, spans: list[tuple[int, int]]) -> None:
        """Queue ``spans`` (``(start, end)``) for both sweeps."""
        self.sweeps = {st: merge([*ranges, *spans]) for st, ranges in self.sweeps.items()}

    def step(self, book: RescueBook) -> bool:
        """One read of the queue; False when there was nothing left to read."""
        for statuses, ranges in self.sweeps.items():
            while ranges:
                start, end = ranges[0]
                found = book.map.unfinished_in(start, end - start, statuses)
                if found is None:
                    ranges.pop(0)
                    continue
                pos, run_end, _status = found
                ranges[0] = (pos, end)
                if statuses == COPY:  # one cluster, as the copying pass reads it
                    read_urgent(book, pos, min(run_end, pos + book.softbs) - pos, scrape=False)
                else:  # one sector of a failed cluster
                    sector_end = min((pos // book.ss + 1) * book.ss, run_end)
                    book.do_read(Read(pos, sector_end - pos), copying=False)
                return True
        return False


@dataclass
class FirstJob:
    """``ddfs first``'s request as the engine thread answers it."""

    specs: list[str]
    found: list[dict[str, object]] = field(default_factory=list)  # per spec: files, found
    notes: list[str] = field(default_factory=list)
    error: str | None = None  # why nothing was done (the rescue stopped)
    done: threading.Event = field(default_factory=threading.Event)


def resolve_job(
    book: RescueBook, queue: FirstQueue, job: FirstJob, between: Callable[[], None]
) -> None:
    """Resolve ``job.specs`` and queue their ranges (engine thread; ``between`` serves the
    urgent requests between the reads of the scan)."""
    fd = os.open(book.output.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        requests, notes, spans = find_files(book, engine_reader(book, fd, between), job.specs)
    finally:
        os.close(fd)
    queue.add(spans)
    job.found = [{"request": r.spec, "found": r.found, "files": len(r.files)} for r in requests]
    job.notes = notes

"""The map book: the block map of a run with its domain, its status line, its lock and its saves.

GNU ddrescue keeps these apart from the reads (``Mapfile`` and ``Mapbook``); so does ddfs. The
rescue book (:mod:`engine.rescue.book`) is the only writer, from the engine thread; the
schedule asks it where the next work is (:meth:`MapBook.find_forward` and the other queries),
and readers in other threads take :attr:`MapBook.lock` or use the snapshot queries
(:meth:`MapBook.is_finished`, :meth:`MapBook.unfinished_in`, :meth:`MapBook.sizes`), which
take it themselves.

The domain is the run's: sorted, disjoint ``(start, end)`` ranges. While a metadata tier runs
it is narrowed (:meth:`MapBook.narrowed`); :attr:`MapBook.whole_domain` is the run's domain all
the same. Sticky borders are block borders ddrescue keeps between blocks of equal status (after
``-M``, ``-A`` or the subsector join): a lookup stops at them.
"""

from __future__ import annotations

import os
import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from contextlib import contextmanager

from engine.errors import DdfsError
from engine.map.blockmap import BAD_SECTOR, BlockMap
from engine.map.mapfile import MapData, iter_mapfile_text, mapfile_text, save_mapfile

UNFINISHED = "?*/-"


class MapBook:
    """The map of one run (see the module docstring).

    Args:
        data: the map as loaded and normalised (:func:`engine.rescue.setup.prepare`).
        domain: the rescue domain as sorted, disjoint ``(start, end)`` ranges.
        mapfile: where the map is saved (None: no mapfile).
        sticky: sorted sticky borders per status (:func:`engine.rescue.setup.sticky_borders`).
        save_interval: seconds between two saves (-1: ddrescue's automatic interval).
        sync_interval: seconds between two sync saves (they decide when ``MAP.bak`` rotates).
    """

    def __init__(
        self,
        data: MapData,
        domain: list[tuple[int, int]],
        mapfile: str | None,
        sticky: dict[str, list[int]] | None = None,
        save_interval: int = -1,
        sync_interval: int = 300,
    ) -> None:
        self.bmap: BlockMap = data.bmap
        self.domain = domain
        self._whole: list[tuple[int, int]] | None = None  # set while a tier narrows the domain
        self.mapfile = mapfile
        self.sticky: dict[str, list[int]] = sticky or {}
        # the status line as loaded; it stays until a phase reads or the run ends (ddrescue)
        self.current_pos = data.current_pos
        self.status = data.current_status
        self.resumed_sweeping = data.sweeping  # the map said '%' (kept as '?')
        self.current_pass = data.current_pass
        self.lock = threading.RLock()  # guards the map against readers in other threads
        self._save_interval = save_interval if save_interval >= 0 else -1
        self._sync_interval = sync_interval
        self._last_save = self._last_sync = time.monotonic()
        self._prev_save_was_sync = False
        self.cut_past_eof = 0  # domain bytes past an EOF found during the run (see cut_at)

    # ------------------------------------------------------------------ the domain
    @property
    def whole_domain(self) -> list[tuple[int, int]]:
        """The domain of the run, also while a metadata tier narrows :attr:`domain`."""
        return self._whole if self._whole is not None else self.domain

    @property
    def domain_start(self) -> int:
        return self.domain[0][0] if self.domain else 0

    @property
    def domain_end(self) -> int:
        return self.domain[-1][1] if self.domain else 0

    @property
    def is_whole_disk(self) -> bool:
        """The domain is the whole map (no ``-i``, ``-s``, ``-m`` or ``-C`` chose an area)."""
        return self.whole_domain == [(0, self.bmap.end)]

    @contextmanager
    def narrowed(self, ranges: list[tuple[int, int]]) -> Iterator[None]:
        """Work inside ``ranges`` (already within the domain) for a while: a metadata tier."""
        domain = self.domain
        outer = self._whole
        self._whole = self.whole_domain
        self.domain = ranges
        try:
            yield
        finally:
            self.domain = domain
            self._whole = outer

    def cut_at(self, eof: int, keep_end: bool = False) -> None:
        """The input ends at ``eof``: cut the domain there (and the map, unless ``keep_end``).

        Without ``keep_end`` (``-C``) ddrescue cuts only its map: the share rescued is still
        counted against the domain as it was (a source truncated half-way ends at 50 %), so
        the size cut off is kept in :attr:`cut_past_eof` for :attr:`domain_in_size`."""
        before = sum(b - a for a, b in self.whole_domain)

        def cut(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
            return [(a, min(b, eof)) for a, b in ranges if a < eof]

        if self._whole is not None:  # (inside a metadata tier: the run's domain too)
            self._whole = cut(self._whole)
        self.domain = cut(self.domain)
        if not keep_end:
            self.bmap.set_end(eof)
            self.cut_past_eof += before - sum(b - a for a, b in self.whole_domain)

    @property
    def domain_in_size(self) -> int:
        """The size the rescued share is counted against (ddrescue's ``domain().in_size()``)."""
        return sum(b - a for a, b in self.whole_domain) + self.cut_past_eof

    # ------------------------------------------------------------------ the schedule's queries
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

    def status_before(self, pos: int) -> str:
        return self.bmap.status_at(pos - 1) if 0 < pos <= self.bmap.end else ""

    def status_after(self, pos: int) -> str:
        return self.bmap.status_at(pos) if 0 <= pos < self.bmap.end else ""

    def domain_size_of(self, statuses: str, whole: bool = False) -> int:
        """Bytes of ``statuses`` inside the domain (``whole``: the run's whole domain, not the
        tier being worked through)."""
        domain = self.whole_domain if whole else self.domain
        if len(domain) == 1 and domain[0] == (0, self.bmap.end):
            return sum(self.bmap.size_of(s) for s in statuses)
        return self.bmap.size_in(domain, statuses)

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

    # ------------------------------------------------------------------ updates (engine thread)
    def mark(self, pos: int, size: int, status: str) -> None:
        """Give ``status`` to ``[pos, pos+size)``, under the lock."""
        with self.lock:
            self.bmap.set_status(pos, size, status)

    def mark_unfinished(self, pos: int, size: int, status: str) -> None:
        """Give ``status`` to the parts of ``[pos, pos+size)`` that are not finished."""
        end = pos + size
        with self.lock:
            while pos < end:
                found = self.bmap.find_forward(pos, UNFINISHED, end)
                if found is None:
                    return
                self.bmap.set_status(found[0], found[1] - found[0], status)
                pos = found[1]

    def set_status_line(self, status: str, current_pass: int) -> None:
        self.status, self.current_pass = status, current_pass

    # ------------------------------------------------------------------ snapshot queries
    def is_finished(self, pos: int, size: int) -> bool:
        """Whether every byte of ``[pos, pos+size)`` is finished (any thread)."""
        with self.lock:
            return self.bmap.find_forward(pos, UNFINISHED, pos + size) is None

    def first_unfinished(self, pos: int, size: int, statuses: str = UNFINISHED) -> int | None:
        """Where the first byte of ``statuses`` in ``[pos, pos+size)`` is, if any (any thread)."""
        found = self.unfinished_in(pos, size, statuses)
        return None if found is None else found[0]

    def unfinished_in(
        self, pos: int, size: int, statuses: str = UNFINISHED
    ) -> tuple[int, int, str] | None:
        """The first run of ``statuses`` in ``[pos, pos+size)`` with its status (any thread)."""
        with self.lock:
            found = self.bmap.find_forward(pos, statuses, pos + size)
            if found is None:
                return None
            return found[0], found[1], self.bmap.status_at(found[0])

    def unfinished_ranges(self, pos: int, size: int) -> list[tuple[int, int]]:
        """The runs in ``[pos, pos+size)`` that are not finished (any thread)."""
        out: list[tuple[int, int]] = []
        end = pos + size
        with self.lock:
            while True:
                found = self.bmap.find_forward(pos, UNFINISHED, end)
                if found is None:
                    return out
                out.append(found)
                pos = found[1]

    def sizes(self) -> tuple[dict[str, int], int]:
        """Bytes per status over the whole map and the count of bad areas (any thread)."""
        with self.lock:
            return {st: self.bmap.size_of(st) for st in "?*/-+"}, self.bmap.count_of(BAD_SECTOR)

    def text(self, header: str) -> str:
        """The mapfile text as it stands, with ``header`` (any thread)."""
        with self.lock:
            return mapfile_text(self.bmap, self.current_pos, self.status, self.current_pass, header)

    # ------------------------------------------------------------------ saving
    def save_interval(self) -> int:
        """Seconds between two saves: the option's, or ddrescue's 30 s plus 1 s per 38 blocks
        (at most 300 s)."""
        if self._save_interval >= 0:
            return self._save_interval
        return 30 + min(270, len(self.bmap) // 38)

    def save_due(self) -> bool:
        if self.mapfile is None:
            return False
        elapsed = time.monotonic() - self._last_save
        # the auto interval is never below 30 s: skip counting the blocks until then
        if self._save_interval < 0 and elapsed < 30:
            return False
        return elapsed >= self.save_interval()

    def on_disk(self) -> bool:
        """Whether the mapfile exists (a run that has one and read nothing need not save)."""
        return self.mapfile is not None and os.path.exists(self.mapfile)

    def save(self, header: str, final: bool = False) -> None:
        """Write the mapfile atomically (``MAP.bak`` as ddrescue keeps it). The caller has
        fsynced the data the map claims.

        Raises:
            DdfsError: the mapfile could not be written (the previous one is intact).
        """
        if self.mapfile is None:
            return
        now = time.monotonic()
        is_sync = final or now - self._last_sync >= self._sync_interval
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

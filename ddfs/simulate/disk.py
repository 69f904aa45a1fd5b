"""The pure model of a failing disk behind ``ddfs simulate``: which reads fail, and how long.

No FUSE here: :class:`FailingDisk` decides, for one read request ``(pos, size)``, whether it
succeeds, how many seconds it takes on the modelled spindle, and whether it hangs; it keeps
the head position, the weak-area counters and the statistics. ``ddfs/simulate/fusefs.py`` is only
the adapter that sleeps for the planned time and answers the kernel.

The model, per read request (after clipping it at the end of the image):

* **hang**: a read touching a hang area never completes (the adapter waits until unmount).
  It changes nothing else: no time, no head movement, no weak-area count.
* **bad**: a read touching a block of status ``-``, ``*`` or ``/`` of the test map fails
  (``?`` and ``+`` blocks, and positions past the end of the map, read fine).
* **weak**: every read touching a weak area counts one try of that area (even if it fails
  for another reason); the area fails while its count is ``<= TRIES``, so it fails TRIES
  times and reads fine from then on.
* **time**: ``seek`` when the read does not start where the previous one ended (the head
  starts at 0), plus the transfer time at ``rate`` bytes/s (0: instantaneous) of the bytes
  read (for a failed read, the bytes before the first failing one), plus ``error`` on a
  failed read. Zero-byte reads (at or past the end) take no time and do not move the head.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from engine.errors import DdfsError
from engine.map.blockmap import BlockMap
from engine.numbers import parse_number

BAD_STATUSES = "-*/"
MAX_SIZE_KEYS = 256  # distinct request sizes kept in the read_sizes histogram


@dataclass
class WeakArea:
    """An area that fails ``tries`` times, then reads fine; ``reads`` counts reads touching it."""

    pos: int
    size: int
    tries: int
    reads: int = 0

    @property
    def end(self) -> int:
        return self.pos + self.size


@dataclass(frozen=True)
class ReadPlan:
    """What the disk does with one read request.

    ``size`` is the request clipped at the end of the image; ``error_pos`` is the first
    failing byte of a failed read; ``seconds`` is the modelled duration (0 for a hang).
    """

    pos: int
    size: int
    ok: bool
    seconds: float
    hang: bool = False
    seek: bool = False
    error_pos: int | None = None


def _parse_fields(text: str, option: str, count: int) -> list[int]:
    parts = text.split(":")
    if len(parts) != count:
        shape = "POS:SIZE:TRIES" if count == 3 else "POS:SIZE"
        raise DdfsError(f"Bad argument '{text}' in option '{option}' (expected {shape}).")
    minimums = [0, 1, 0]
    return [parse_number(p, option, minimum=m) for p, m in zip(parts, minimums, strict=False)]


def parse_weak(text: str) -> WeakArea:
    """Parse ``POS:SIZE:TRIES`` (ddrescue number syntax) of ``--weak``.

    Raises:
        DdfsError: malformed or out of limits.
    """
    pos, size, tries = _parse_fields(text, "--weak", 3)
    return WeakArea(pos, size, tries)


def parse_hang(text: str) -> tuple[int, int]:
    """Parse ``POS:SIZE`` (ddrescue number syntax) of ``--hang``.

    Raises:
        DdfsError: malformed or out of limits.
    """
    pos, size = _parse_fields(text, "--hang", 2)
    return pos, size


def _touches(pos: int, end: int, area_pos: int, area_end: int) -> bool:
    return pos < area_end and area_pos < end


@dataclass
class FailingDisk:
    """A disk of ``size`` bytes with bad blocks, weak areas, hang areas and a timing model.

    Args:
        size: the size of the disk (the image) in bytes.
        bad: the test map; blocks of status ``-``, ``*``, ``/`` are unreadable.
        rate: transfer rate in bytes/s, 0 for instantaneous transfers.
        seek_s: seconds of a read that does not start where the previous one ended.
        error_s: extra seconds of a failed read.
        weak: areas that fail a number of times before reading fine.
        hang: ``(pos, size)`` areas whose reads never complete.
    """

    size: int
    bad: BlockMap | None = None
    rate: int = 0
    seek_s: float = 0.0
    error_s: float = 0.0
    weak: list[WeakArea] = field(default_factory=list)
    hang: list[tuple[int, int]] = field(default_factory=list)
    head: int = 0
    reads: int = 0
    bytes_read: int = 0
    errors: int = 0
    seeks: int = 0
    hangs: int = 0
    busy_seconds: float = 0.0
    read_sizes: Counter[int] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        if self.rate < 0 or self.seek_s < 0 or self.error_s < 0:
            raise ValueError("rate and times must not be negative")

    # ------------------------------------------------------------------ queries
    def first_bad(self, pos: int, end: int) -> int | None:
        """The first unreadable byte of the test map in ``[pos, end)``, or None."""
        if self.bad is None:
            return None
        found = self.bad.find_forward(pos, BAD_STATUSES, end)
        return None if found is None else found[0]

    def hangs_at(self, pos: int, end: int) -> bool:
        """True if ``[pos, end)`` touches a hang area."""
        return any(_touches(pos, end, p, p + s) for p, s in self.hang)

    def bad_bytes(self) -> int:
        """Bytes of the disk in unreadable blocks of the test map."""
        if self.bad is None:
            return 0
        total = 0
        for pos, size, status in self.bad:
            if pos >= self.size:
                break
            if status in BAD_STATUSES:
                total += min(pos + size, self.size) - pos
        return total

    # ------------------------------------------------------------------ the model
    def plan_read(self, pos: int, size: int) -> ReadPlan:
        """Plan one read request and account for it (counters, weak tries, head, time)."""
        if pos < 0 or size < 0:
            raise ValueError(f"bad read request ({pos}, {size})")
        self.reads += 1
        self._count_size(size)  # the requested size: what the reader asked for
        size = max(0, min(size, self.size - pos))
        end = pos + size
        if size == 0:
            return ReadPlan(pos, 0, ok=True, seconds=0.0)
        if self.hangs_at(pos, end):
            self.hangs += 1
            return ReadPlan(pos, size, ok=False, seconds=0.0, hang=True)
        error_pos = self._first_failure(pos, end)
        seek = pos != self.head
        seconds = self.seek_s if seek else 0.0
        good = size if error_pos is None else error_pos - pos
        if self.rate:
            seconds += good / self.rate
        if error_pos is None:
            self.bytes_read += size
        else:
            seconds += self.error_s
            self.errors += 1
        self.seeks += seek
        self.head = end
        self.busy_seconds += seconds
        return ReadPlan(pos, size, error_pos is None, seconds, seek=seek, error_pos=error_pos)

    def _first_failure(self, pos: int, end: int) -> int | None:
        """The first failing byte of ``[pos, end)``; counts a try of every weak area touched."""
        failures = []
        bad = self.first_bad(pos, end)
        if bad is not None:
            failures.append(bad)
        for area in self.weak:
            if _touches(pos, end, area.pos, area.end):
                area.reads += 1
                if area.reads <= area.tries:
                    failures.append(max(pos, area.pos))
        return min(failures, default=None)

    def _count_size(self, size: int) -> None:
        if size in self.read_sizes or len(self.read_sizes) < MAX_SIZE_KEYS:
            self.read_sizes[size] += 1
        else:
            self.read_sizes[-1] += 1  # "other sizes"

    def stats(self) -> dict[str, Any]:
        """The counters and the configuration, JSON-ready."""
        return {
            "size": self.size,
            "reads": self.reads,
            "bytes": self.bytes_read,
            "errors": self.errors,
            "seeks": self.seeks,
            "hangs": self.hangs,
            "busy_seconds": round(self.busy_seconds, 6),
            "head": self.head,
            "read_sizes": {("other" if k < 0 else str(k)): v for k, v in self.read_sizes.items()},
            "bad_bytes": self.bad_bytes(),
            "rate": self.rate,
            "seek_ms": self.seek_s * 1000,
            "error_ms": self.error_s * 1000,
            "weak": [
                {"pos": a.pos, "size": a.size, "tries": a.tries, "reads": a.reads}
                for a in self.weak
            ],
            "hang": [{"pos": p, "size": s} for p, s in self.hang],
        }

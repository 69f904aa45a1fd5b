"""What a filesystem module works with: a volume it can read, and the plan it adds areas to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from engine.map.ranges import merge

#: ``read(pos, size)``: the bytes of the disk, or None when they cannot be had (bad sector,
#: not rescued within the budget). Positions are absolute disk positions.
Reader = Callable[[int, int], bytes | None]

P0, P1, P2, P3, P4 = range(5)
PAGE = 4096


@dataclass(frozen=True)
class Area:
    """A disk range the planner wants rescued, with its tier and what it is."""

    start: int
    size: int
    tier: int
    what: str

    @property
    def end(self) -> int:
        return self.start + self.size


@dataclass
class Plan:
    """The areas found so far, and notes on what could not be read or was substituted."""

    disk_size: int
    areas: list[Area] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    filesystems: list[tuple[int, int, str]] = field(default_factory=list)  # start, size, name
    counts: dict[str, int] = field(default_factory=dict)  # e.g. "ext:directories" -> 42

    def count(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n

    def add(self, start: int, size: int, tier: int, what: str) -> None:
        """Plan ``[start, start+size)``, rounded out to whole 4 KiB pages (the kernel reads
        pages, and a cluster read covers them anyway), clipped to the disk."""
        if size <= 0:
            return
        end = start + size
        start = max(0, start - start % PAGE)
        end = -(-end // PAGE) * PAGE
        if self.disk_size > 0:
            end = min(end, self.disk_size)
        if end > start:
            self.areas.append(Area(start, end - start, tier, what))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def ranges(self, max_tier: int, min_tier: int = 0) -> list[tuple[int, int]]:
        """The union of the areas of tiers ``min_tier..max_tier`` as sorted ``(start, end)``."""
        return merge((a.start, a.end) for a in self.areas if min_tier <= a.tier <= max_tier)

    def size_of(self, max_tier: int, min_tier: int = 0) -> int:
        return sum(e - s for s, e in self.ranges(max_tier, min_tier))


@dataclass
class Volume:
    """A filesystem's extent on the disk: reads are relative to its start."""

    read_disk: Reader
    start: int
    size: int
    plan: Plan
    memo: dict[str, object] = field(default_factory=dict)  # what a probe found, for plan()

    def read(self, pos: int, size: int) -> bytes | None:
        """``size`` bytes at volume offset ``pos``, or None (unreadable, or past the end)."""
        if pos < 0 or size <= 0 or pos + size > self.size:
            return None
        data = self.read_disk(self.start + pos, size)
        if data is None or len(data) < size:
            return None
        return data

    def add(self, pos: int, size: int, tier: int, what: str) -> None:
        """Plan ``[pos, pos+size)`` of this volume (clipped to it)."""
        end = min(pos + size, self.size)
        if end > pos >= 0:
            self.plan.add(self.start + pos, end - pos, tier, what)

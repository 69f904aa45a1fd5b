"""The common model of the damage report: where the map says bytes are missing, a reader that
only gives finished bytes, and what each filesystem module reports (entries, metadata hits).

* :class:`Damage` holds the not-finished ranges of a mapfile (``-`` bad, ``?``/``*``/``/``
  unrescued; past the map's end counts as unrescued) and counts, for any list of disk ranges,
  how many of their bytes are bad and how many unrescued.
* :class:`ImageReader` reads the image with ``pread`` and answers None for any range that is
  not wholly finished: an unrescued area reads as zeros in the image, so nothing is parsed
  from it.
* :class:`Entry` (a file or directory), :class:`MetaHit` (a metadata structure) and
  :class:`VolumeReport` are what a filesystem module (:mod:`engine.damage.ext`, ...) returns.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from engine.map.blockmap import BAD_SECTOR, FINISHED, BlockMap
from engine.map.ranges import merge

Span = tuple[int, int]  # (start, end), absolute disk bytes


class Damage:
    """The not-finished ranges of a map over a disk of ``disk_size`` bytes."""

    def __init__(self, bmap: BlockMap, disk_size: int) -> None:
        ranges: list[tuple[int, int, bool]] = []
        for pos, size, status in bmap:
            if status != FINISHED and pos < disk_size:
                end = min(pos + size, disk_size)
                bad = status == BAD_SECTOR
                if ranges and ranges[-1][1] == pos and ranges[-1][2] == bad:
                    ranges[-1] = (ranges[-1][0], end, bad)
                else:
                    ranges.append((pos, end, bad))
        if bmap.end < disk_size:
            start = max(bmap.end, 0)
            if ranges and ranges[-1][1] == start and not ranges[-1][2]:
                ranges[-1] = (ranges[-1][0], disk_size, False)
            else:
                ranges.append((start, disk_size, False))
        self.disk_size = disk_size
        self.ranges = ranges
        self.starts = [r[0] for r in ranges]

    def _from(self, pos: int) -> int:
        return max(0, bisect.bisect_right(self.starts, pos) - 1)

    def hits(self, start: int, end: int) -> bool:
        """Whether any byte of ``[start, end)`` is not finished."""
        if end <= start:
            return False
        i = self._from(start)
        while i < len(self.ranges) and self.ranges[i][0] < end:
            if self.ranges[i][1] > start:
                return True
            i += 1
        return False

    def within(self, start: int, end: int) -> list[Span]:
        """The not-finished parts of ``[start, end)``."""
        out: list[Span] = []
        i = self._from(start)
        while i < len(self.ranges) and self.ranges[i][0] < end:
            s, e = max(self.ranges[i][0], start), min(self.ranges[i][1], end)
            if e > s:
                if out and out[-1][1] == s:
                    out[-1] = (out[-1][0], e)
                else:
                    out.append((s, e))
            i += 1
        return out

    def count(self, spans: Iterable[Span]) -> tuple[int, int]:
        """``(bad, unrescued)`` bytes of the union of ``spans``."""
        bad = unrescued = 0
        for start, end in merge(spans):
            i = self._from(start)
            while i < len(self.ranges) and self.ranges[i][0] < end:
                s, e, is_bad = self.ranges[i]
                n = min(e, end) - max(s, start)
                if n > 0:
                    if is_bad:
                        bad += n
                    else:
                        unrescued += n
                i += 1
        return bad, unrescued


def damage_of(read: object) -> Damage | None:
    """The :class:`Damage` behind a reader, if it is an :class:`ImageReader`."""
    return read.damage if isinstance(read, ImageReader) else None


class ImageReader:
    """``read(pos, size)`` over the image: the bytes if the map calls them all finished."""

    def __init__(self, path: str, damage: Damage) -> None:
        self.fd = os.open(path, os.O_RDONLY)
        self.size = os.lseek(self.fd, 0, os.SEEK_END)
        self.damage = damage

    def close(self) -> None:
        os.close(self.fd)

    def __call__(self, pos: int, size: int) -> bytes | None:
        if pos < 0 or size <= 0 or pos + size > self.size:
            return None
        if self.damage.hits(pos, pos + size):
            return None
        data = os.pread(self.fd, size, pos)
        return data if len(data) == size else None


# ------------------------------------------------------------------ what modules report
FILE, DIRECTORY, SYMLINK, OTHER = "file", "directory", "symlink", "other"
KNOWN, PARTIAL, UNKNOWN = "known", "partial", "unknown"  # how much of an extent is known


@dataclass
class Entry:
    """A file or directory: where its bytes are, and what is known of its name and extent.

    ``spans`` are the absolute disk ranges of its content (clipped to its size; a directory's
    are its blocks or clusters). ``extent`` is :data:`KNOWN`, :data:`PARTIAL` (part of its
    block list is unreadable) or :data:`UNKNOWN` (its inode, record or directory entry is).
    """

    ident: str  # "inode 12", "MFT 57", "cluster 345"
    kind: str
    size: int | None
    spans: list[Span] = field(default_factory=list)
    extent: str = KNOWN
    reason: str = ""
    path: str = ""
    name_lost: bool = False
    bad: int = 0
    unrescued: int = 0


@dataclass
class MetaHit:
    """A metadata structure with bytes not finished."""

    what: str
    start: int
    size: int
    bad: int
    unrescued: int


@dataclass
class MetaArea:
    """A metadata structure of a filesystem, before it is intersected with the map."""

    what: str
    start: int  # absolute
    size: int


@dataclass
class VolumeReport:
    """What a filesystem module found on one volume."""

    filesystem: str
    entries: list[Entry] = field(default_factory=list)
    metadata: list[MetaArea] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def meta(self, what: str, start: int, size: int) -> None:
        if size > 0:
            self.metadata.append(MetaArea(what, start, size))


def path_of(
    node: int,
    names: dict[int, tuple[int | None, str]],
    root: int,
    placeholder: Callable[[int], str],
) -> tuple[str, bool]:
    """The path of ``node`` from ``names`` (node -> (parent or None, name)), and whether a
    component had to be a placeholder (``placeholder(n)``) or the chain did not reach
    ``root`` (then the path starts with ``<unknown>``)."""
    parts: list[str] = []
    lost = False
    seen: set[int] = set()
    cur: int | None = node
    while cur is not None and cur != root:
        if cur in seen or len(parts) > 4096:
            parts.append("<loop>")
            lost = True
            cur = None
            break
        seen.add(cur)
        parent, name = names.get(cur, (None, ""))
        if not name:
            name = placeholder(cur)
            lost = True
        parts.append(name)
        cur = parent
    if cur is None:
        parts.append("<unknown>")
        lost = True
        return "/".join(reversed(parts)), lost
    return "/" + "/".join(reversed(parts)), lost

"""The block map: which status every byte of the input has, fast with a million fragments.

A :class:`BlockMap` covers ``[0, end)`` with consecutive blocks, each with one of ddrescue's
status characters (``?`` non-tried, ``*`` non-trimmed, ``/`` non-scraped, ``-`` bad sector,
``+`` finished). It is kept compacted: two neighbours never share a status, so a bad area is
one ``-`` block and the bad-area count is the number of ``-`` blocks.

Storage is a list of chunks, each an ``array('q')`` of block starts and a ``bytearray`` of
statuses, with an index of first starts, so a lookup is two binary searches and an update
touches one or two chunks of at most ``2 * LOAD`` entries (O(log n) plus a bounded memmove).
A million blocks take about 9 MB.

This module builds and resizes the map; the storage and the queries are in
:mod:`engine.map.blockmap_query`, the status updates in :mod:`engine.map.blockmap_update`, the
status characters in :mod:`engine.map.statuses`.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from itertools import compress

from engine.map.blockmap_update import BlockMapUpdates
from engine.map.statuses import (
    BAD_SECTOR,
    FINISHED,
    NON_SCRAPED,
    NON_TRIED,
    NON_TRIMMED,
    STATUS_CODE,
    STATUSES,
)

__all__ = [
    "BAD_SECTOR",
    "FINISHED",
    "NON_SCRAPED",
    "NON_TRIED",
    "NON_TRIMMED",
    "STATUSES",
    "BlockMap",
]

_MASKS = {ord(c): bytes(1 if i == ord(c) else 0 for i in range(256)) for c in STATUSES}


class BlockMap(BlockMapUpdates):
    """Consecutive, compacted ``(pos, size, status)`` blocks covering ``[0, end)``."""

    LOAD = 512

    def __init__(self, end: int = 0, status: str = NON_TRIED) -> None:
        self._end = end
        self._starts: list[array] = []
        self._sts: list[bytearray] = []
        self._index: list[int] = []
        self._bytes = dict.fromkeys(STATUSES, 0)
        self._count = dict.fromkeys(STATUSES, 0)
        if end > 0:
            self._starts = [array("q", [0])]
            self._sts = [bytearray(status, "ascii")]
            self._index = [0]
            self._bytes[status] = end
            self._count[status] = 1

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(cls, starts: array, statuses: bytearray, end: int) -> BlockMap:
        """Build from consecutive blocks (``starts[0] == 0``), compacting if needed."""
        if len(starts) == 0 or end <= 0:
            return cls(0)
        if any(c * 2 in statuses for c in (b"?", b"*", b"/", b"-", b"+")):
            starts, statuses = _compact(starts, statuses)
        bm = cls(0)
        bm._end = end
        n = len(starts)
        step = cls.LOAD
        bm._starts = [starts[i : i + step] for i in range(0, n, step)]
        bm._sts = [statuses[i : i + step] for i in range(0, n, step)]
        bm._index = [c[0] for c in bm._starts]
        ends = starts[1:]
        ends.append(end)
        for ch in STATUSES:
            code = ord(ch)
            count = statuses.count(code)
            bm._count[ch] = count
            if count == n:
                bm._bytes[ch] = end
            elif count:
                # sum of the sizes without an array of sizes: sum(ends) - sum(starts)
                mask = statuses.translate(_MASKS[code])
                bm._bytes[ch] = sum(compress(ends, mask)) - sum(compress(starts, mask))
        return bm

    @classmethod
    def from_blocks(cls, blocks: Iterable[tuple[int, int, str]]) -> BlockMap:
        """Build from ``(pos, size, status)`` triples that are consecutive from 0."""
        starts = array("q")
        sts = bytearray()
        end = 0
        for pos, size, st in blocks:
            if size <= 0:
                continue
            starts.append(pos)
            sts.append(STATUS_CODE[st])
            end = pos + size
        return cls.from_arrays(starts, sts, end)

    def set_end(self, end: int, status: str = NON_TRIED) -> None:
        """Crop the map to ``end``, or extend it with a ``status`` block up to ``end``."""
        if end == self._end:
            return
        if end > self._end:
            old_end = self._end
            if not self._starts:
                self.__init__(end, status)  # type: ignore[misc]
                return
            self._end = end
            ci = len(self._starts) - 1
            bi = len(self._starts[ci]) - 1
            if self._sts[ci][bi] == STATUS_CODE[status]:
                self._bytes[status] += end - old_end
            else:
                self._starts[ci].append(old_end)
                self._sts[ci].append(STATUS_CODE[status])
                self._count[status] += 1
                self._bytes[status] += end - old_end
                self._fix_chunk(ci)
            return
        blocks = [(s, e, st) for s, e, st in self._iter_upto(end)]
        self.__init__(0)  # type: ignore[misc]
        starts = array("q", [s for s, _, _ in blocks])
        sts = bytearray(STATUS_CODE[st] for _, _, st in blocks)
        other = BlockMap.from_arrays(starts, sts, end)
        self.__dict__.update(other.__dict__)


def _compact(starts: array, statuses: bytearray) -> tuple[array, bytearray]:
    out_s = array("q")
    out_c = bytearray()
    prev = -1
    for s, c in zip(starts, statuses, strict=True):
        if c != prev:
            out_s.append(s)
            out_c.append(c)
            prev = c
    return out_s, out_c

"""The read side of a :class:`~engine.map.blockmap.BlockMap`: its storage and the queries on it.

The storage is a list of chunks, each an ``array('q')`` of block starts and a ``bytearray`` of
status codes, with ``_index`` holding each chunk's first start, so a lookup is two binary
searches. The updates (:mod:`engine.map.blockmap_update`) and the construction
(:mod:`engine.map.blockmap`) build on this class.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator

from engine.map.statuses import STATUSES


class BlockMapQueries:
    """The chunked storage of consecutive, compacted blocks, and the read-only queries on it."""

    LOAD: int  # the chunk size target (set by BlockMap)
    _end: int
    _starts: list[array]
    _sts: list[bytearray]
    _index: list[int]
    _bytes: dict[str, int]
    _count: dict[str, int]

    @property
    def end(self) -> int:
        """The end of the map extent (the input size, once normalised)."""
        return self._end

    def __len__(self) -> int:
        return sum(len(c) for c in self._starts)

    def size_of(self, status: str) -> int:
        """Bytes in blocks of ``status``."""
        return self._bytes[status]

    def size_in(self, ranges: Iterable[tuple[int, int]], statuses: str) -> int:
        """Bytes of ``statuses`` inside the sorted, disjoint ``(start, end)`` ``ranges``."""
        total = 0
        for a, b in ranges:
            for s, e, st in self.blocks_from(a):
                if s >= b:
                    break
                if st in statuses:
                    total += min(e, b) - max(s, a)
        return total

    def count_of(self, status: str) -> int:
        """Number of blocks of ``status`` (for ``-``: the number of bad areas)."""
        return self._count[status]

    def __iter__(self) -> Iterator[tuple[int, int, str]]:
        nchunks = len(self._starts)
        for ci in range(nchunks):
            starts = self._starts[ci]
            sts = self._sts[ci]
            nxt = self._index[ci + 1] if ci + 1 < nchunks else self._end
            n = len(starts)
            for bi in range(n):
                s = starts[bi]
                e = starts[bi + 1] if bi + 1 < n else nxt
                yield s, e - s, chr(sts[bi])

    def arrays(self) -> tuple[array, bytearray]:
        """All block starts and statuses as two flat arrays (for fast saving)."""
        starts = array("q")
        sts = bytearray()
        for c, s in zip(self._starts, self._sts, strict=True):
            starts.extend(c)
            sts.extend(s)
        return starts, sts

    def array_pieces(self, lines: int = 65536) -> Iterator[tuple[array, bytearray, int]]:
        """The blocks as ``(starts, statuses, end of the last block)`` pieces of >= ``lines``.

        For saving: unlike :meth:`arrays`, never holds a flat copy of the whole map.
        """
        starts, sts = array("q"), bytearray()
        nchunks = len(self._starts)
        for ci in range(nchunks):
            starts.extend(self._starts[ci])
            sts.extend(self._sts[ci])
            if len(starts) >= lines:
                yield starts, sts, self._index[ci + 1] if ci + 1 < nchunks else self._end
                starts, sts = array("q"), bytearray()
        if starts:
            yield starts, sts, self._end

    def _locate(self, pos: int) -> tuple[int, int]:
        ci = bisect_right(self._index, pos) - 1
        return ci, bisect_right(self._starts[ci], pos) - 1

    def _block_end(self, ci: int, bi: int) -> int:
        starts = self._starts[ci]
        if bi + 1 < len(starts):
            return starts[bi + 1]
        if ci + 1 < len(self._starts):
            return self._index[ci + 1]
        return self._end

    def block_by_index(self, index: int) -> tuple[int, int, str]:
        """The ``index``-th block (0 = the first) as ``(start, end, status)``."""
        if index < 0:
            raise IndexError(index)
        for ci, starts in enumerate(self._starts):
            if index < len(starts):
                return starts[index], self._block_end(ci, index), chr(self._sts[ci][index])
            index -= len(starts)
        raise IndexError(index)

    def block_at(self, pos: int) -> tuple[int, int, str]:
        """The block containing ``pos`` as ``(start, end, status)``."""
        if not 0 <= pos < self._end:
            raise IndexError(pos)
        ci, bi = self._locate(pos)
        return self._starts[ci][bi], self._block_end(ci, bi), chr(self._sts[ci][bi])

    def status_at(self, pos: int) -> str:
        return self.block_at(pos)[2]

    def _forward(self, ci: int, bi: int) -> Iterator[tuple[int, int, int]]:
        """Yield ``(start, end, status code)`` from block (ci, bi) onwards."""
        nchunks = len(self._starts)
        while ci < nchunks:
            starts = self._starts[ci]
            sts = self._sts[ci]
            n = len(starts)
            nxt = self._index[ci + 1] if ci + 1 < nchunks else self._end
            while bi < n:
                yield starts[bi], (starts[bi + 1] if bi + 1 < n else nxt), sts[bi]
                bi += 1
            ci += 1
            bi = 0

    def _backward(self, ci: int, bi: int) -> Iterator[tuple[int, int, int]]:
        """Yield ``(start, end, status code)`` from block (ci, bi) backwards."""
        while ci >= 0:
            starts = self._starts[ci]
            sts = self._sts[ci]
            n = len(starts)
            nxt = self._index[ci + 1] if ci + 1 < len(self._starts) else self._end
            while bi >= 0:
                yield starts[bi], (starts[bi + 1] if bi + 1 < n else nxt), sts[bi]
                bi -= 1
            ci -= 1
            if ci >= 0:
                bi = len(self._starts[ci]) - 1

    def blocks_from(self, pos: int) -> Iterator[tuple[int, int, str]]:
        """Blocks from the one containing ``pos`` onwards, as ``(start, end, status)``."""
        if pos >= self._end:
            return
        ci, bi = self._locate(max(pos, 0))
        for s, e, c in self._forward(ci, bi):
            yield s, e, chr(c)

    def find_forward(
        self, pos: int, statuses: str, limit: int | None = None
    ) -> tuple[int, int] | None:
        """First run of a status in ``statuses`` in ``[pos, limit)``, clipped, or None."""
        limit = self._end if limit is None else min(limit, self._end)
        if pos >= limit:
            return None
        codes = statuses.encode()
        ci, bi = self._locate(max(pos, 0))
        if self._sts[ci][bi] in codes:  # the usual case: pos is inside a wanted block
            return max(self._starts[ci][bi], pos), min(self._block_end(ci, bi), limit)
        for s, e, c in self._forward(ci, bi):
            if s >= limit:
                return None
            if c in codes:
                return max(s, pos), min(e, limit)
        return None

    def find_backward(self, pos: int, statuses: str, limit: int = 0) -> tuple[int, int] | None:
        """Last run of a status in ``statuses`` in ``[limit, pos)``, clipped, or None."""
        pos = min(pos, self._end)
        if pos <= limit:
            return None
        codes = statuses.encode()
        ci, bi = self._locate(pos - 1)
        for s, e, c in self._backward(ci, bi):
            if e <= limit:
                return None
            if c in codes:
                return max(s, limit), min(e, pos)
        return None

    def _iter_upto(self, end: int) -> Iterator[tuple[int, int, str]]:
        for s, e, st in self.blocks_from(0):
            if s >= end:
                return
            yield s, min(e, end), st

    def check(self) -> None:
        """Assert the invariants (for tests)."""
        blocks = list(self)
        if self._end == 0:
            assert not blocks
            return
        assert blocks[0][0] == 0
        pos = 0
        prev = None
        bytes_ = dict.fromkeys(STATUSES, 0)
        count = dict.fromkeys(STATUSES, 0)
        for s, size, st in blocks:
            assert s == pos and size > 0, (s, pos, size)
            assert st != prev, (s, st)
            prev = st
            pos = s + size
            bytes_[st] += size
            count[st] += 1
        assert pos == self._end
        assert bytes_ == self._bytes, (bytes_, self._bytes)
        assert count == self._count, (count, self._count)
        assert self._index == [c[0] for c in self._starts]
        assert all(0 < len(c) <= 2 * self.LOAD for c in self._starts)

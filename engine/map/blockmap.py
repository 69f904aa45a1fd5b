"""The block map: which status every byte of the input has, fast with a million fragments.

A :class:`BlockMap` covers ``[0, end)`` with consecutive blocks, each with one of ddrescue's
status characters (``?`` non-tried, ``*`` non-trimmed, ``/`` non-scraped, ``-`` bad sector,
``+`` finished). It is kept compacted: two neighbours never share a status, so a bad area is
one ``-`` block and the bad-area count is the number of ``-`` blocks.

Storage is a list of chunks, each an ``array('q')`` of block starts and a ``bytearray`` of
statuses, with an index of first starts, so a lookup is two binary searches and an update
touches one or two chunks of at most ``2 * LOAD`` entries (O(log n) plus a bounded memmove).
A million blocks take about 9 MB.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from itertools import compress

STATUSES = "?*/-+"
NON_TRIED, NON_TRIMMED, NON_SCRAPED, BAD_SECTOR, FINISHED = STATUSES
_ORD = {c: ord(c) for c in STATUSES}
_MASKS = {ord(c): bytes(1 if i == ord(c) else 0 for i in range(256)) for c in STATUSES}


class BlockMap:
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
            sts.append(_ORD[st])
            end = pos + size
        return cls.from_arrays(starts, sts, end)

    # ------------------------------------------------------------------ queries
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

    # ------------------------------------------------------------------ updates
    def set_status(self, pos: int, size: int, status: str) -> None:
        """Give ``[pos, pos+size)`` the status ``status``, merging with equal neighbours."""
        if size <= 0:
            return
        end = pos + size
        if pos < 0 or end > self._end:
            raise ValueError(f"range [{pos}, {end}) outside map [0, {self._end})")
        code = _ORD[status]
        ci, bi = self._locate(pos)
        starts = self._starts[ci]
        sts = self._sts[ci]
        bstart = starts[bi]
        bend = self._block_end(ci, bi)
        old = sts[bi]
        if old == code and end <= bend:
            return
        # Fast path: the range is the head of its block and extends the previous block.
        if pos == bstart and end < bend and (bi > 0 or ci > 0):
            pci, pbi = (ci, bi - 1) if bi > 0 else (ci - 1, len(self._starts[ci - 1]) - 1)
            if self._sts[pci][pbi] == code:
                starts[bi] = end
                if bi == 0:
                    self._index[ci] = end
                ch = chr(old)
                self._bytes[ch] -= size
                self._bytes[status] += size
                return
        self._rewrite(pos, end, code)

    def _rewrite(self, pos: int, end: int, code: int) -> None:
        """General update: replace the blocks around ``[pos, end)`` with a compacted list."""
        ci0, bi0 = self._locate(pos)
        # include the previous block so a merge with it is seen
        if bi0 > 0:
            bi0 -= 1
        elif ci0 > 0:
            ci0 -= 1
            bi0 = len(self._starts[ci0]) - 1
        new: list[tuple[int, int]] = []
        removed = 0
        for s, e, c in self._forward(ci0, bi0):
            removed += 1
            self._count[chr(c)] -= 1
            self._bytes[chr(c)] -= e - s
            if e <= pos:  # the block before: kept, seen for a merge
                new.append((s, c))
            elif s >= end:  # the block after: kept, seen for a merge
                new.append((s, c))
                break
            else:
                if s < pos:
                    new.append((s, c))
                new.append((max(s, pos), code))
                if e > end:
                    new.append((end, c))
                    break
        # compact the replacement list and account for it
        compacted: list[tuple[int, int]] = []
        for s, c in new:
            if compacted and compacted[-1][1] == c:
                continue
            compacted.append((s, c))
        self._replace(ci0, bi0, removed, compacted)

    def _replace(self, ci: int, bi: int, removed: int, new: list[tuple[int, int]]) -> None:
        """Delete ``removed`` blocks from (ci, bi) on and insert ``new`` there."""
        # account for the new blocks (sizes need the end of the last one)
        ci_end, bi_end = ci, bi
        left = removed
        # find the position right after the removed run to learn its end
        while left > 0:
            n = len(self._starts[ci_end]) - bi_end
            if left < n:
                bi_end += left
                left = 0
            else:
                left -= n
                ci_end += 1
                bi_end = 0
        if ci_end < len(self._starts):
            tail_end = self._starts[ci_end][bi_end]
        else:
            tail_end = self._end
        for i, (s, c) in enumerate(new):
            e = new[i + 1][0] if i + 1 < len(new) else tail_end
            ch = chr(c)
            self._count[ch] += 1
            self._bytes[ch] += e - s
        # splice: cut the removed run out of the chunks, put the new blocks into chunk ci
        starts = self._starts[ci]
        sts = self._sts[ci]
        new_starts = array("q", [s for s, _ in new])
        new_sts = bytearray(c for _, c in new)
        if ci_end == ci:
            starts[bi:bi_end] = new_starts
            sts[bi:bi_end] = new_sts
            touched = [ci]
        else:
            del starts[bi:]
            del sts[bi:]
            starts.extend(new_starts)
            sts.extend(new_sts)
            if ci_end < len(self._starts):
                del self._starts[ci_end][:bi_end]
                del self._sts[ci_end][:bi_end]
            del self._starts[ci + 1 : ci_end]
            del self._sts[ci + 1 : ci_end]
            del self._index[ci + 1 : ci_end]
            touched = [ci, ci + 1] if ci + 1 < len(self._starts) else [ci]
        for t in reversed(touched):
            self._fix_chunk(t)

    def _fix_chunk(self, ci: int) -> None:
        starts = self._starts[ci]
        if len(starts) == 0:
            del self._starts[ci]
            del self._sts[ci]
            del self._index[ci]
            return
        self._index[ci] = starts[0]
        while len(starts) > 2 * self.LOAD:
            half = len(starts) - self.LOAD
            self._starts.insert(ci + 1, starts[half:])
            self._sts.insert(ci + 1, self._sts[ci][half:])
            self._index.insert(ci + 1, starts[half])
            del starts[half:]
            del self._sts[ci][half:]

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
            if self._sts[ci][bi] == _ORD[status]:
                self._bytes[status] += end - old_end
            else:
                self._starts[ci].append(old_end)
                self._sts[ci].append(_ORD[status])
                self._count[status] += 1
                self._bytes[status] += end - old_end
                self._fix_chunk(ci)
            return
        blocks = [(s, e, st) for s, e, st in self._iter_upto(end)]
        self.__init__(0)  # type: ignore[misc]
        starts = array("q", [s for s, _, _ in blocks])
        sts = bytearray(_ORD[st] for _, _, st in blocks)
        other = BlockMap.from_arrays(starts, sts, end)
        self.__dict__.update(other.__dict__)

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

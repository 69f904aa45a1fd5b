"""The in-place updates of a :class:`~engine.map.blockmap.BlockMap`: setting the status of a
range, keeping the blocks compacted, the per-status counts exact and the chunks at most
``2 * LOAD`` entries (O(log n) plus a bounded memmove per update).
"""

from __future__ import annotations

from array import array

from engine.map.blockmap_query import BlockMapQueries
from engine.map.statuses import STATUS_CODE


class BlockMapUpdates(BlockMapQueries):
    """Status changes on the chunked storage of :class:`BlockMapQueries`."""

    def set_status(self, pos: int, size: int, status: str) -> None:
        """Give ``[pos, pos+size)`` the status ``status``, merging with equal neighbours."""
        if size <= 0:
            return
        end = pos + size
        if pos < 0 or end > self._end:
            raise ValueError(f"range [{pos}, {end}) outside map [0, {self._end})")
        code = STATUS_CODE[status]
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

"""Trimming as ddrescue 1.30 does it: only the edges next to finished data, so that a bad area
is delimited as a whole.

The ``*`` blocks of the domain are visited in block order (reverse order with ``-R``). A block's
leading edge is read sector by sector forwards, until a read fails, only when the block before
it is finished (or the map starts there); its trailing edge likewise backwards when the block
after it is finished (or the map ends there). An edge next to a ``?`` or ``*`` block is left for
the sweeping phase. A block with no finished neighbour becomes ``/`` without reads unless a
neighbour is ``?`` or ``*`` (or the map's end); so does what is left in the middle of a
trimmed block.

ddrescue walks its block list by index: after a trimmed block it looks at the same index again
(the block's first piece now), and after a block it marks ``/`` it goes on to the next index,
although the mark joined that block with its ``/`` neighbours, so the block after them is
passed over. The walk here is by index too, to make the same reads.

The same pass runs inside the sweeping phase after each swept block, under the sweeping
message (:mod:`engine.schedule.ddrescue130.sweep`).
"""

from __future__ import annotations

from collections.abc import Iterator

from engine.map.blockmap import FINISHED, NON_SCRAPED, NON_TRIED, NON_TRIMMED
from engine.schedule.base import Read, ScheduleContext

UNTRIED = (NON_TRIED, NON_TRIMMED)


def trimming_phase(ctx: ScheduleContext, message: str | None = None) -> Iterator[Read]:
    """Trim the ``*`` blocks of the domain in block order. ``message``: the sweeping phase's
    (its pass is announced already); None: the trimming phase, announced at its first read."""
    forward = not ctx.opts.reverse
    announce = message is None
    if message is None:
        message = f"Trimming failed blocks... ({'forwards' if forward else 'backwards'})"
    walk = Walk(ctx, forward)
    i = 0
    while (found := walk.find(i, NON_TRIMMED)) is not None:
        i, start, end = found
        trimmed = False
        for read in trim_block(ctx, start, end):
            if announce:
                ctx.announce(NON_TRIMMED, 1, message)
                announce = False
            trimmed = True
            yield read
        walk.changed()
        if not trimmed:
            i += 1


class Walk:
    """ddrescue's block list, walked by index: the map's blocks, cut where the map book keeps
    blocks of one status apart (after ``-M``/``-A``, ddrescue changes blocks without joining
    them) and at the domain's borders. Call :meth:`changed` after the map changed."""

    def __init__(self, ctx: ScheduleContext, forward: bool) -> None:
        self.ctx = ctx
        self.forward = forward
        self._blocks: list[tuple[int, int, str]] | None = None
        # the plain map serves when nothing cuts its blocks but one domain range (clipped)
        self.plain = not ctx.book.sticky and len(ctx.book.domain) <= 1

    def changed(self) -> None:
        self._blocks = None

    def __len__(self) -> int:
        if self.plain:
            return len(self.ctx.book.bmap)
        return len(self._split())

    def _split(self) -> list[tuple[int, int, str]]:
        """The blocks cut at kept-apart borders and at the domain's borders; the pieces
        outside the domain get the status ``""``."""
        if self._blocks is None:
            book = self.ctx.book
            borders = sorted({p for r in book.domain for p in r})
            out = []
            for start, size, status in book.bmap:
                end = start + size
                marks = book.sticky.get(status, ())
                cuts = sorted({p for p in (*marks, *borders) if start < p < end})
                for a, b in zip([start, *cuts], [*cuts, end], strict=True):
                    inside = any(lo <= a and b <= hi for lo, hi in book.domain)
                    out.append((a, b, status if inside else ""))
            self._blocks = out
        return self._blocks

    def find(self, i: int, status: str) -> tuple[int, int, int] | None:
        """From the ``i``-th block on, the first of ``status`` inside the domain: its index,
        start and end; None when there is none."""
        while i < len(self):
            block = self.block(i)
            if block is None:
                return None
            if block[2] == status:
                return i, block[0], block[1]
            i += 1
        return None

    def block(self, i: int) -> tuple[int, int, str] | None:
        """The ``i``-th block of the walk (from the map's end backwards), cut to the domain;
        status ``""`` outside the domain; None past its end."""
        n = len(self)
        idx = i if self.forward else n - 1 - i
        if self.plain:
            start, end, status = self.ctx.book.bmap.block_by_index(idx)
        else:
            start, end, status = self._split()[idx]
        lo, hi = self.ctx.book.domain_start, self.ctx.book.domain_end
        if (self.forward and start >= hi) or (not self.forward and end <= lo):
            return None
        if end <= lo or start >= hi:
            return start, end, ""
        return max(start, lo), min(end, hi), status


def trim_block(ctx: ScheduleContext, start: int, end: int) -> Iterator[Read]:
    """Trim the ``*`` block ``[start, end)`` from its edges next to finished data; a block
    that yields no read is marked or left, and the walk goes on to the next index."""
    ss = ctx.ss
    before, after = ctx.book.status_before(start), ctx.book.status_after(end)
    lgood, rgood = before in ("", FINISHED), after in ("", FINISHED)
    untried = before in ("", *UNTRIED) or after in ("", *UNTRIED)
    if not (lgood or rgood):
        if not untried:
            ctx.book.mark(start, end - start, NON_SCRAPED)
        return
    a, b = start, end
    if lgood:
        while a < b:
            read = Read(a, min((a // ss + 1) * ss, b) - a)
            yield read
            a = read.end
            if read.failed or read.copied < read.size:
                break
    if rgood:
        while b > a:
            s = max(((b - 1) // ss) * ss, a)
            read = Read(s, b - s, backward=True)
            yield read
            b = s
            if read.failed:
                break
    if a < b and not untried:
        rest = ctx.book.bmap.block_at(b - 1)
        if rest[2] == NON_TRIMMED:
            ctx.book.mark(rest[0], rest[1] - rest[0], NON_SCRAPED)

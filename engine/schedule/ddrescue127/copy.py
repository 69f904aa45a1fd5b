"""Copying non-tried blocks: passes 1-5 with skips (ddrescue 1.27, behaviour §2.3).

Odd passes go the normal way, even ones the other (``-u``: all the normal way). Reads are a
cluster long and end on absolute cluster boundaries, except the last one of a block. After a
failed read pass 1 skips ahead by a skip size that doubles on consecutive errors, and passes
2-4 skip the rest of the ``?`` block that follows the read (no skips at all with ``-K0``); a
slow read (``-a``) in passes 1 and 2 is skipped after in the same way, pass 1 by the rate;
passes 3 and 4 only read ``?`` blocks next to a finished block; pass 5 sweeps without skipping.
A pass is announced to the rescuer (:attr:`ScheduleContext.announce`) just before its first read, so
a pass that reads nothing leaves no trace in the status line or the read log.

:data:`RULES_130` gives ddrescue 1.30's copying instead: passes 1-4 (pass 5 became the sweeping
phase), passes 2-4 read only ``?`` blocks next to a finished block, and a slow read in pass 2 is
skipped as in pass 1.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass

from engine.map.blockmap import FINISHED, NON_TRIED
from engine.schedule.base import Read, ScheduleContext


@dataclass(frozen=True)
class CopyRules:
    """What differs between ddrescue versions' copying passes."""

    passes: int = 5  # the last pass
    adjacent: tuple[int, ...] = (3, 4)  # passes that read only '?' blocks next to finished data
    slow_skips_block: bool = True  # after a slow read, pass 2 skips the rest of the block


RULES_127 = CopyRules()
RULES_130 = CopyRules(passes=4, adjacent=(2, 3, 4), slow_skips_block=False)


def _msg(passno: int, forward: bool) -> str:
    way = "forwards" if forward else "backwards"
    return f"Copying non-tried blocks... Pass {passno} ({way})"


def copying_phase(ctx: ScheduleContext, rules: CopyRules = RULES_127) -> Iterator[Read]:
    """Run the selected copying passes until one finds no non-tried data at all.

    A saved status ``?`` resumes (unless ``--cpass`` is given): the saved pass continues from
    ``current_pos``; a saved pass above 5 restarts at pass 1, still from ``current_pos``.
    The pass number becomes the first pass's at once, before anything is read.
    """
    every = list(range(1, rules.passes + 1))
    passes = ctx.opts.cpass if ctx.opts.cpass is not None else every
    if ctx.opts.no_sweep:  # ddrescue 1.30 replaced pass 5 by the sweeping phase -N turns off
        passes = [p for p in passes if p != 5]
    resume = ctx.opts.cpass is None and ctx.resume.status == NON_TRIED
    first = ctx.resume.passno if resume and ctx.resume.passno <= rules.passes else 1
    ctx.book.current_pass = first  # at once, even if no pass reads anything
    for passno in passes:
        if passno < first:
            continue
        forward = ctx.direction(passno)
        start = resume_start(ctx, NON_TRIED, forward, resume and passno == first)
        if forward:
            found = yield from _forward(ctx, passno, start, rules)
        else:
            found = yield from _backward(ctx, passno, start, rules)
        if not found:
            return


def resume_start(ctx: ScheduleContext, status: str, forward: bool, resume: bool) -> int:
    """Where a pass over ``status`` data starts: the domain's start (its end backwards), or on
    a resume the first such data at or after the saved position (at or before it backwards)."""
    if forward:
        if resume and ctx.book.find_forward(ctx.resume.pos, status):
            return max(ctx.book.domain_start, ctx.resume.pos)
        return ctx.book.domain_start
    if resume and ctx.book.find_backward(ctx.resume.pos, status):
        return min(ctx.book.domain_end, ctx.resume.pos)
    return ctx.book.domain_end


def _qualifies(
    ctx: ScheduleContext, passno: int, start: int, end: int, forward: bool, rules: CopyRules
) -> bool:
    """Passes 3 and 4 (1.30: 2 to 4) read a ``?`` block only when the block behind it (in the
    direction of the pass) is finished or absent.

    The block is ddrescue's map block: the whole run of ``?`` as the map book's lookups see it,
    which ends at domain borders (and wherever the map book keeps blocks apart). A run cut there
    has ``?`` behind it, so it does not qualify.
    """
    if passno not in rules.adjacent:
        return True
    if forward:
        run = ctx.book.find_backward(start + 1, NON_TRIED)
        block_start = run[0] if run is not None else start
        return ctx.book.status_before(block_start) in ("", FINISHED)
    run = ctx.book.find_forward(end - 1, NON_TRIED)
    block_end = run[1] if run is not None else end
    return ctx.book.status_after(block_end) in ("", FINISHED)


def _next_skip(eskip: int, maximum: int) -> int:
    """The skip size doubles after each error, up to MAX."""
    return eskip * 2 if eskip <= maximum // 2 else maximum


def _slow_skip(ctx: ScheduleContext, sskip: int, initial: int, maximum: int) -> int:
    """The skip after a slow read in pass 1 (``-a``): the current rate, at least INITIAL and at
    most MAX, doubling while the samples stay slow."""
    if not ctx.rates.prev_slow:
        return max(initial, min(ctx.rates.c_rate, maximum))
    return _next_skip(sskip, maximum)


def _skip_forward(ctx: ScheduleContext, pos: int, size: int | None) -> int:
    """The skip after a failed read ending at ``pos``: over at most ``size`` bytes (None: all)
    of the ``?`` block that begins exactly at ``pos``, ending on a sector boundary unless it
    ends with the block. Nothing is skipped when no ``?`` block begins at ``pos``."""
    nxt = ctx.book.find_forward(pos, NON_TRIED)
    if nxt is None or nxt[0] != pos:
        return pos
    end = nxt[1] if size is None else min(pos + size, nxt[1])
    if end < nxt[1]:
        end -= end % ctx.ss
    return max(pos, end)


def _skip_backward(ctx: ScheduleContext, pos: int, size: int | None) -> int:
    """The mirror of :func:`_skip_forward` for a failed read starting at ``pos``."""
    prv = ctx.book.find_backward(pos, NON_TRIED)
    if prv is None or prv[1] != pos:
        return pos
    start = prv[0] if size is None else max(pos - size, prv[0])
    if start > prv[0]:
        start = -(-start // ctx.ss) * ctx.ss
    return min(pos, start)


class _Skips:
    """The skip sizes of one pass: after an error (doubling in pass 1, reset by a good read or
    a change of block) and after a slow read (``-a``); passes 2-4 skip the rest of the block."""

    def __init__(self, ctx: ScheduleContext, rules: CopyRules) -> None:
        self.ctx = ctx
        self.rules = rules
        self.initial, self.maximum = ctx.skip_initial, ctx.skip_max
        self.eskip = self.initial
        self.sskip = 0

    def reset(self) -> None:
        self.eskip = self.initial

    def after(self, read: Read, passno: int, pos: int, skip: Callable[..., int]) -> int:
        """Where the pass goes on after ``read``, which ended at ``pos`` (its start, backwards)."""
        initial = self.initial
        if read.failed or read.slow:
            like_pass1 = passno == 1 or (not read.failed and not self.rules.slow_skips_block)
            if initial > 0 and like_pass1:
                if read.failed:
                    pos = skip(self.ctx, pos, self.eskip)
                    self.eskip = _next_skip(self.eskip, self.maximum)
                else:
                    self.sskip = _slow_skip(self.ctx, self.sskip, initial, self.maximum)
                    pos = skip(self.ctx, pos, self.sskip)
            elif initial > 0 and passno <= 4:
                pos = skip(self.ctx, pos, None)
        elif read.copied > 0:
            self.eskip = initial
        return pos


def _forward(
    ctx: ScheduleContext, passno: int, pos: int, rules: CopyRules
) -> Generator[Read, None, bool]:
    """One forward pass from ``pos``; returns whether any ``?`` data was found."""
    softbs = ctx.softbs
    skips = _Skips(ctx, rules)
    expected: int | None = None
    found_any = started = False
    while True:
        blk = ctx.book.find_forward(pos, NON_TRIED)
        if blk is None:
            return found_any
        found_any = True
        bs, be = blk
        if not _qualifies(ctx, passno, bs, be, True, rules):
            pos = be
            continue
        if not started:
            ctx.announce(NON_TRIED, passno, _msg(passno, True))
            started = True
        pos = max(pos, bs)
        end = min(pos + softbs, be)
        if end < be:
            end -= end % softbs
        if expected is not None and pos != expected:
            skips.reset()
            ctx.rates.block_changed()
        read = Read(pos, end - pos, run_end=be)
        yield read
        if read.ran:  # the rescuer read good clusters before this one (RescueBook.do_run)
            skips.reset()
        pos = skips.after(read, passno, read.end, _skip_forward)
        expected = pos


def _backward(
    ctx: ScheduleContext, passno: int, pos: int, rules: CopyRules
) -> Generator[Read, None, bool]:
    """One backward pass down from ``pos``; returns whether any ``?`` data was found."""
    softbs = ctx.softbs
    skips = _Skips(ctx, rules)
    expected: int | None = None
    found_any = started = False
    while True:
        blk = ctx.book.find_backward(pos, NON_TRIED)
        if blk is None:
            return found_any
        found_any = True
        bs, be = blk
        if not _qualifies(ctx, passno, bs, be, False, rules):
            pos = bs
            continue
        if not started:
            ctx.announce(NON_TRIED, passno, _msg(passno, False))
            started = True
        pos = min(pos, be)
        start = max(pos - softbs, bs)
        if start > bs:
            start = -(-start // softbs) * softbs
        if expected is not None and pos != expected:
            skips.reset()
            ctx.rates.block_changed()
        read = Read(start, pos - start, backward=True)
        yield read
        pos = skips.after(read, passno, read.pos, _skip_backward)
        expected = pos
